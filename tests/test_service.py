"""`companion run --sim --mqtt URL` as users run it: separate processes, a real broker, a virtual headset."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from companion.audio.v2v import read_stereo, voice_to_voice

pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "config.toml").touch()
    return {
        **os.environ,
        "COMPANION_SIM_SOCKET": str(tmp_path / "sim.sock"),
        "COMPANION_CONTROL_SOCKET": str(tmp_path / "control.sock"),
        "COMPANION_REGISTRY": str(tmp_path / "headsets.json"),
        "COMPANION_CONFIG": str(tmp_path / "config.toml"),
    }


async def _wait_for(path: Path, proc: asyncio.subprocess.Process, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.returncode is not None:
            raise AssertionError("process exited early")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {seconds} s")
        await asyncio.sleep(0.1)


async def test_run_sim_mqtt_end_to_end(tmp_path: Path, mosquitto) -> None:
    broker = mosquitto()
    env = _env(tmp_path)
    record = tmp_path / "conversation.wav"
    sim = await asyncio.create_subprocess_exec(
        *[
            sys.executable,
            "-m",
            "firmware_sim",
            "--name",
            "Kitchen",
            "--mic-text",
            "What time is it?",
            "--settle",
            "1.5",
            "--record",
            str(record),
        ],
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    service = None
    try:
        await _wait_for(tmp_path / "sim.sock", sim, 30)
        async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
            await watcher.subscribe("companion/#", qos=1)
            service = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "companion.cli",
                "run",
                "--sim",
                "--mqtt",
                broker.url,
                env=env,
                stderr=asyncio.subprocess.PIPE,
            )
            seen: dict[str, list[str]] = {}
            device = None
            said = False
            async with asyncio.timeout(90):
                async for message in watcher.messages:
                    topic = str(message.topic)
                    payload = (
                        message.payload.decode()
                        if isinstance(message.payload, bytes)
                        else str(message.payload)
                    )
                    leaf = topic.split("/", 2)[-1]
                    seen.setdefault(leaf, []).append(payload)
                    if leaf == "transcript":
                        device = topic.split("/")[1]
                    if leaf == "timings" and device and not said:
                        # The broker commands the headset to speak.
                        await watcher.publish(f"companion/{device}/cmd/say", "Hello from the broker.", qos=1)
                        said = True
                    if leaf == "reply" and said and "broker" in payload:
                        break
        assert device is not None
        assert "time" in json.loads(seen["transcript"][0])["text"].lower()
        assert any("percent" not in p for p in seen["reply"])
        timings = json.loads(seen["timings"][0])
        assert timings["first_audio_played_ms"] is not None
        states = set(seen["state"])
        assert {"listening", "thinking", "speaking", "idle"} <= {s.strip('"') for s in states} | {
            json.loads(s).get("state", "") if s.startswith("{") else s for s in states
        }
        assert seen.get("availability") and "online" in seen["availability"][-1]
        await asyncio.sleep(1.0)  # let the spoken command play out
    finally:
        service_out = ""
        if service is not None:
            service.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                service_out = (await service.communicate())[1].decode()
        sim.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await sim.communicate()
    assert service.returncode == 0, service_out
    assert "Task was destroyed" not in service_out and "Traceback" not in service_out
    left, right, _ = read_stereo(record)
    turns = voice_to_voice(left, right)
    assert len(turns) == 1 and turns[0].latency_ms is not None  # the question was answered
    # Two separate stretches of reply audio: the answer and the commanded "Hello from the broker."
    active = right.reshape(-1, 160).std(axis=1) > 30
    starts = (active[1:] & ~active[:-1]).sum()
    assert starts >= 2


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[llm]\ntimeout_s = "soon"\n[session]\nmood = "cheerful"\n')
    result = subprocess.run(
        [sys.executable, "-m", "companion.cli", "--config", str(config), "run", "--sim"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "llm.timeout_s" in result.stderr and "session.mood: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_explains_the_missing_adapter(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "companion.cli", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path),
    )
    assert "Traceback" not in result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    if not list(Path("/sys/class/bluetooth").glob("hci*")):
        assert checks["bluetooth"]["status"] == "warn"
        assert "--sim" in checks["bluetooth"]["advice"]
    assert checks["stt"]["status"] == "ok"
    assert checks["config"]["status"] == "ok"


def test_demo_runs_end_to_end_offline(tmp_path: Path) -> None:
    record = tmp_path / "demo.wav"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "companion.cli",
            "demo",
            "--json",
            "--record",
            str(record),
            "--say",
            "What time is it?",
            "--say",
            "What's the date today?",
            "--no-wait-timers",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    turns = [json.loads(line) for line in result.stdout.splitlines()]
    assert [t["turn"] for t in turns] == [1, 2]
    assert "time" in turns[0]["transcript"].lower() and turns[0]["reply"]
    assert all(t["voice_to_voice_ms"] is not None and not t["answered_early"] for t in turns)
    assert all(t["timings_ms"]["first_audio_played_ms"] is not None for t in turns)
    left, right, rate = read_stereo(record)
    assert rate == 16000 and len(voice_to_voice(left, right)) == 2
