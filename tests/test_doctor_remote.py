"""`companion doctor` checks every configured remote STT/TTS endpoint: reachable, describe answered, model or
voice present; one that is down next to a working one warns, all down fails, and the exit code says so.

The working endpoint is a real `companion serve` (tests/fixtures/wyoming.py); the dead ones are free ports
nothing listens on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.wyoming import ServerProcess, free_port


def _doctor(tmp_path: Path, **settings: str) -> tuple[int, dict[str, dict[str, str]], str]:
    (tmp_path / "config.toml").touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env.update(
        COMPANION_CONFIG=str(tmp_path / "config.toml"),
        COMPANION_REGISTRY=str(tmp_path / "headsets.json"),
        COMPANION_CONTROL_SOCKET=str(tmp_path / "control.sock"),
        COMPANION_SIM_SOCKET=str(tmp_path / "sim.sock"),
        **{f"COMPANION_{k.upper()}": v for k, v in settings.items()},
    )
    result = subprocess.run(
        [sys.executable, "-m", "companion.cli", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert "Traceback" not in result.stderr, result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    return result.returncode, checks, result.stderr


def _exit_code_is_meaningful(code: int, checks: dict[str, dict[str, str]]) -> None:
    assert code == (1 if any(c["status"] == "fail" for c in checks.values()) else 0), (code, checks)


@pytest.mark.slow
def test_each_endpoint_is_checked_and_all_down_fails(tmp_path: Path, companion_serve: ServerProcess) -> None:
    dead = f"tcp://127.0.0.1:{free_port()}"
    code, checks, _ = _doctor(
        tmp_path,
        stt__engine="wyoming",
        stt__urls=json.dumps([companion_serve.uri, dead]),
        tts__engine="wyoming",
        tts__urls=json.dumps([dead]),
    )
    assert checks["stt"]["status"] == "ok" and "remote (wyoming): 2 endpoints" in checks["stt"]["detail"]
    assert checks["stt[0]"]["status"] == "ok", checks["stt[0]"]
    assert "companion-stt: model tiny.en" in checks["stt[0]"]["detail"]
    # down, but the other STT server answers: failover covers it
    assert checks["stt[1]"]["status"] == "warn" and dead in checks["stt[1]"]["detail"]
    assert "start the server" in checks["stt[1]"]["advice"]
    # the only TTS server is down: every reply would come from the local fallback voice
    assert checks["tts[0]"]["status"] == "fail" and dead in checks["tts[0]"]["detail"]
    assert code == 1
    _exit_code_is_meaningful(code, checks)


@pytest.mark.slow
def test_a_missing_voice_warns_and_a_healthy_pool_passes(
    tmp_path: Path, companion_serve: ServerProcess
) -> None:
    code, checks, _ = _doctor(
        tmp_path,
        stt__engine="wyoming",
        stt__urls=json.dumps([companion_serve.uri]),
        tts__engine="wyoming",
        tts__urls=json.dumps([companion_serve.uri]),
        tts__voice="en_GB-nobody-low",
    )
    assert checks["stt[0]"]["status"] == "ok"
    assert checks["tts[0]"]["status"] == "warn", checks["tts[0]"]
    assert "no voice 'en_GB-nobody-low'" in checks["tts[0]"]["detail"]
    assert not any(name.startswith(("stt", "tts")) and c["status"] == "fail" for name, c in checks.items())
    _exit_code_is_meaningful(code, checks)

    code, checks, _ = _doctor(
        tmp_path, tts__engine="wyoming", tts__urls=json.dumps([companion_serve.uri]), tts__fallback="none"
    )
    assert checks["tts[0]"]["status"] == "ok" and "companion-tts: voice" in checks["tts[0]"]["detail"]
    assert "stt[0]" not in checks  # local speech recognition: nothing remote to check
    _exit_code_is_meaningful(code, checks)


def test_openai_endpoints_that_are_down_fail_with_advice(tmp_path: Path) -> None:
    dead = f"http://user:hunter2pw@127.0.0.1:{free_port()}/v1"
    code, checks, _ = _doctor(tmp_path, stt__engine="openai", stt__urls=json.dumps([dead]))
    assert checks["stt[0]"]["status"] == "fail"
    assert "hunter2pw" not in json.dumps(checks)  # the URL's password is redacted
    assert "/v1" in checks["stt[0]"]["advice"]
    assert code == 1
