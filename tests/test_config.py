"""Config errors are found when the config loads (exit 2, the key named, before any model loads), secrets
come from the environment, files and systemd credentials, and no credential is ever printed."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from companion import redact
from companion.config import Config, ConfigError, load_config, with_overrides
from companion.registry import RegistryError, load_known

PASSWORD = "S3cretPassw0rd"


def _base_env(tmp_path: Path) -> dict[str, str]:
    """An environment that shares nothing with the user's own config, registry or service."""
    config = tmp_path / "config.toml"
    if not config.exists():
        config.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env.update(
        COMPANION_CONFIG=str(config),
        COMPANION_REGISTRY=str(tmp_path / "headsets.json"),
        COMPANION_CONTROL_SOCKET=str(tmp_path / "control.sock"),
        COMPANION_SIM_SOCKET=str(tmp_path / "sim.sock"),
    )
    return env


def _cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "companion.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_base_env(tmp_path), **(env or {})},
    )


def _error(environ: dict[str, str], path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ)
    return str(info.value)


# ----- every config error at load, naming the key


@pytest.mark.parametrize(
    ("environ", "key", "reason"),
    [
        ({"COMPANION_MQTT__URL": "http://x"}, "mqtt.url", "mqtt:// or mqtts://"),
        ({"COMPANION_MQTT__URL": "mqtt://host:99999"}, "mqtt.url", "port"),
        (
            {"COMPANION_MQTT__URL": "mqtts://h", "COMPANION_MQTT__CA_FILE": "/no/ca.pem"},
            "mqtt.ca_file",
            "no such",
        ),
        ({"COMPANION_MQTT__TOPIC_PREFIX": "a/#"}, "mqtt.topic_prefix", "must not contain"),
        ({"COMPANION_LLM__BASE_URL": "ftp://example.com/v1"}, "llm.base_url", "http:// or https://"),
        ({"COMPANION_LLM__BASE_URL": "http://[::1"}, "llm.base_url", "malformed"),
        ({"COMPANION_LLM__BASE_URL": "http://"}, "llm.base_url", "no host"),
        ({"COMPANION_LLM__BACKEND": "openai"}, "llm.backend", "llm.base_url is not set"),
        ({"COMPANION_TTS__ENGINE": "openai"}, "tts.engine", "tts.base_url"),
        ({"COMPANION_TURN__FALLBACK_MS": "800"}, "turn.fallback_ms", "unsure_ms (1000)"),
        ({"COMPANION_TURN__SPECULATE_MS": "500"}, "turn.speculate_ms", "end_silence_ms (220)"),
        ({"COMPANION_TURN__END_SILENCE_MS": "1500"}, "turn.end_silence_ms", "fallback_ms (1200)"),
        ({"COMPANION_TURN__UNSURE_MS": "5000"}, "turn.unsure_ms", "fallback_ms (1200)"),
        ({"COMPANION_LLM__TIMEOUT_S": "1e400"}, "llm.timeout_s", "finite"),
        ({"COMPANION_TURN__VOICE_MARGIN_DB": "12"}, "turn.voice_margin_db", "0 (off) or at least 20 dB"),
    ],
)
def test_each_bad_value_is_named_at_load(environ: dict[str, str], key: str, reason: str) -> None:
    message = _error(environ)
    assert message.startswith("environment (COMPANION_*): ")
    assert f": {key}: " in message and reason in message


def test_timing_values_the_turn_detector_accepts_load() -> None:
    """What load accepts, TurnDetector.from_config accepts too (the rule is the same)."""
    cfg = load_config(None, {"COMPANION_TURN__FALLBACK_MS": "800", "COMPANION_TURN__UNSURE_MS": "0"})
    assert (cfg.turn.fallback_ms, cfg.turn.unsure_ms) == (800, 0)
    cfg = load_config(None, {"COMPANION_TURN__END_SILENCE_MS": "1500", "COMPANION_TURN__FALLBACK_MS": "3000",
                             "COMPANION_TURN__UNSURE_MS": "2000"})  # fmt: skip
    assert cfg.turn.end_silence_ms == 1500


def test_a_file_error_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[mqtt]\nurl = "http://x"\n[turn]\nfallback_ms = 800\n')
    message = _error({}, config)
    assert f"{config}: mqtt.url: " in message and f"{config}: turn.fallback_ms: " in message


def test_a_non_utf8_config_file_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(b'[llm]\nmodel = "caf\xe9"\n')
    assert "not UTF-8 text (byte 0xe9 on line 2)" in _error({}, config)


def test_command_line_values_are_checked_like_the_file() -> None:
    with pytest.raises(ConfigError, match=r"--mqtt: mqtt\.url: .*mqtt:// or mqtts://"):
        with_overrides(Config(), "--mqtt", mqtt={"url": "http://x"})
    cfg = with_overrides(
        Config(), "--llm-url", llm={"backend": "openai", "base_url": "http://127.0.0.1:1/v1"}
    )
    assert cfg.llm.backend == "openai"


@pytest.mark.parametrize(
    "env",
    [
        {"COMPANION_MQTT__URL": "http://x"},
        {"COMPANION_LLM__BASE_URL": "ftp://files.example.com/v1"},
        {"COMPANION_LLM__BACKEND": "openai"},
        {"COMPANION_TURN__FALLBACK_MS": "800"},
        {"COMPANION_TURN__SPECULATE_MS": "500"},
        {"COMPANION_TURN__END_SILENCE_MS": "1500"},
    ],
)
def test_run_exits_2_before_loading_models(tmp_path: Path, env: dict[str, str]) -> None:
    result = _cli(tmp_path, "run", "--sim", env=env)
    assert result.returncode == 2, result.stderr
    name = next(iter(env)).removeprefix("COMPANION_")
    assert name.lower().replace("__", ".") in result.stderr
    assert "loading" not in result.stderr  # no model was loaded
    assert "Traceback" not in result.stderr


def test_run_with_a_bad_mqtt_flag_exits_2_without_the_password(tmp_path: Path) -> None:
    result = _cli(tmp_path, "run", "--sim", "--mqtt", f"http://companion:{PASSWORD}@broker.lan")
    assert result.returncode == 2
    assert "--mqtt: mqtt.url" in result.stderr and PASSWORD not in result.stderr


def test_run_with_a_non_utf8_config_exits_2(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes(b"[llm]\nmodel = '\xff'\n")
    result = _cli(tmp_path, "run", "--sim")
    assert result.returncode == 2 and "not UTF-8" in result.stderr and "Traceback" not in result.stderr


# ----- the headset registry


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'[{"address": 5, "name": "x", "profile": "companion", "paired_at": 1}]',
        b'{"a": 1}',
        b"\xff",
    ],
)
def test_a_damaged_registry_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "headsets.json"
    path.write_bytes(content)
    with pytest.raises(RegistryError, match="damaged headset registry"):
        load_known(path)


def test_run_and_doctor_report_a_damaged_registry(tmp_path: Path) -> None:
    (tmp_path / "headsets.json").write_text('[{"address": "AA"')
    result = _cli(tmp_path, "run", "--sim")
    assert result.returncode == 2 and "headsets.json" in result.stderr and "Traceback" not in result.stderr
    assert "loading" not in result.stderr
    doctor = _cli(tmp_path, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["headsets"]["status"] == "fail" and "damaged" in checks["headsets"]["detail"]


def test_the_service_keeps_the_last_good_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bleak.backends.device import BLEDevice

    from companion.link.ble import FoundHeadset
    from companion.protocol import Profile
    from companion.service import Service

    path = tmp_path / "headsets.json"
    monkeypatch.setenv("COMPANION_REGISTRY", str(path))
    path.write_text('[{"address": "AA:BB", "name": "Mine", "profile": "companion", "paired_at": 1.0}]')
    service = Service(Config())
    mine = FoundHeadset(BLEDevice("AA:BB", "Mine", None), Profile.COMPANION, -40, None)
    other = FoundHeadset(BLEDevice("CC:DD", "Other", None), Profile.COMPANION, -40, None)
    assert service.allowed(mine) and not service.allowed(other)
    path.write_text("[{")  # damaged while running (the old code raised out of the scan loop)
    assert service.allowed(mine) and not service.allowed(other)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"COMPANION_TURN__FALLBACK_MS": "800"}, "turn.fallback_ms"),
        ({"COMPANION_LLM__BACKEND": "openai", "COMPANION_LLM__BASE_URL": "http://[::1"}, "llm.base_url"),
    ],
)
def test_doctor_lists_config_errors(tmp_path: Path, env: dict[str, str], key: str) -> None:
    result = _cli(tmp_path, "doctor", "--json", env=env)
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["config"]["status"] == "fail" and key in checks["config"]["detail"]
    assert result.returncode == 1 and "Traceback" not in result.stderr


# ----- secrets


def test_secrets_that_look_like_numbers_stay_text() -> None:
    cfg = load_config(None, {"COMPANION_MQTT__PASSWORD": "123456", "COMPANION_LLM__API_KEY": "12345678",
                             "COMPANION_MQTT__USERNAME": "true", "COMPANION_LLM__MODEL": "007"})  # fmt: skip
    assert (cfg.mqtt.password, cfg.llm.api_key, cfg.mqtt.username, cfg.llm.model) == (
        "123456", "12345678", "true", "007",
    )  # fmt: skip
    # typed keys still convert, lists are still TOML
    cfg = load_config(None, {"COMPANION_LLM__TIMEOUT_S": "12.5", "COMPANION_SESSION__EARCONS": "false",
                             "COMPANION_LINK__ALLOW": '["AA:BB", "Kitchen"]'})  # fmt: skip
    assert (cfg.llm.timeout_s, cfg.session.earcons, cfg.link.allow) == (12.5, False, ["AA:BB", "Kitchen"])


def test_secrets_from_files_and_systemd_credentials(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-a-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "llm.api_key").write_text("sk-from-systemd")
    (creds / "mqtt.password").write_text("systemd-password")
    env = {"COMPANION_MQTT__PASSWORD_FILE": str(tmp_path / "pw"), "CREDENTIALS_DIRECTORY": str(creds)}
    cfg = load_config(None, env)
    assert cfg.mqtt.password == "from-a-file"  # the environment wins over systemd credentials
    assert cfg.llm.api_key == "sk-from-systemd"
    # a _FILE variable that cannot be read names itself and the key
    message = _error({"COMPANION_LLM__API_KEY_FILE": str(tmp_path / "missing")})
    assert message.startswith("environment (COMPANION_LLM__API_KEY_FILE): llm.api_key: cannot read")
    # mqtt.ca_file is a key of its own, not a secret file
    assert "mqtt.ca_file" in _error({"COMPANION_MQTT__URL": "mqtts://h", "COMPANION_MQTT__CA_FILE": "/no"})


def test_warnings_for_exposed_secrets(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[mqtt]\nurl = "mqtt://broker.lan"\npassword = "{PASSWORD}"\n')
    config.chmod(0o644)
    warnings: list[str] = []
    load_config(config, {}, warn=warnings.append)
    assert any("readable by other users (mode 0644)" in w and "mqtt.password" in w for w in warnings)
    assert any("plain mqtt://" in w for w in warnings)
    assert not any(PASSWORD in w for w in warnings)
    config.chmod(0o600)
    warnings.clear()
    load_config(config, {"COMPANION_MQTT__URL": "mqtts://broker.lan"}, warn=warnings.append)
    assert warnings == []
    load_config(config, {"COMPANION_MQTT__URL": "mqtt://127.0.0.1"}, warn=warnings.append)
    assert warnings == []  # loopback: the password never crosses a network


# ----- redaction


def test_redact_hides_url_credentials_and_registered_secrets() -> None:
    assert redact.redact_url(f"mqtt://companion:{PASSWORD}@host:1883") == "mqtt://***@host:1883"
    assert redact.redact_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"
    text = f"failed: https://user:{PASSWORD}@api.example.com/v1 and 'mqtts://a:b@c'"
    assert redact.redact(text) == "failed: https://***@api.example.com/v1 and 'mqtts://***@c'"
    redact.register_secret("sk-unique-test-key-42")
    assert "sk-unique" not in redact.redact("auth sk-unique-test-key-42 refused")


def test_log_lines_and_tracebacks_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    handler = logging.StreamHandler()
    redact.install(handler)
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "cannot reach %s", (f"http://u:{PASSWORD}@h/v1",), None
    )
    try:
        raise ValueError(f"bad url mqtt://u:{PASSWORD}@h")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = handler.format(record)
    assert PASSWORD not in line and "http://***@h/v1" in line and "mqtt://***@h" in line


def test_config_errors_do_not_show_url_passwords() -> None:
    message = _error({"COMPANION_LLM__BASE_URL": f"ftp://user:{PASSWORD}@files.example.com/v1"})
    assert PASSWORD not in message and "ftp://***@files.example.com/v1" in message


def test_llm_messages_do_not_show_url_passwords() -> None:
    from companion.llm.openai_backend import OpenAIBackend

    backend = OpenAIBackend(f"http://user:{PASSWORD}@127.0.0.1:9/v1", "m")
    assert PASSWORD not in backend.name and PASSWORD not in backend.base_url


def test_doctor_does_not_print_url_passwords(tmp_path: Path) -> None:
    env = {
        "COMPANION_MQTT__URL": f"mqtt://companion:{PASSWORD}@127.0.0.1:9",
        "COMPANION_LLM__BACKEND": "openai",
        "COMPANION_LLM__BASE_URL": f"http://user:{PASSWORD}@127.0.0.1:9/v1",
    }
    result = _cli(tmp_path, "doctor", env=env)
    assert "mqtt://***@" in result.stdout or "127.0.0.1:9" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_keys_that_depend_on_each_other_are_checked_on_the_whole(tmp_path: Path) -> None:
    """The file alone may be inconsistent when the environment completes it, and the reverse."""
    config = tmp_path / "config.toml"
    config.write_text('[llm]\nbackend = "openai"\n[turn]\nfallback_ms = 800\n')
    cfg = load_config(
        config, {"COMPANION_LLM__BASE_URL": "http://127.0.0.1:8080/v1", "COMPANION_TURN__UNSURE_MS": "0"}
    )
    assert cfg.llm.base_url and cfg.turn.fallback_ms == 800
    # a problem is reported against the source that set the key it names
    message = _error({"COMPANION_LLM__BASE_URL": "http://127.0.0.1:8080/v1"}, config)
    assert (
        message == f"{config}: turn.fallback_ms: fallback_ms (800) must be at least unsure_ms (1000): raise "
        "fallback_ms, or lower unsure_ms (0 turns the hold off)"
    )
