"""Configuration: a TOML file in the platform config directory, overridden by environment variables.

Environment overrides use ``COMPANION_<SECTION>__<KEY>`` (double underscore between section and key), e.g.
``COMPANION_LLM__BASE_URL=http://127.0.0.1:8080/v1``. Values from the environment are parsed as TOML values
when they look like one (numbers, booleans, lists) and taken as strings otherwise. Every error names the
key and the reason: ``llm.timeout_s: Input should be a valid number``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

APP = "companion"
ENV_PREFIX = "COMPANION_"


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the reason."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SttConfig(_Section):
    model: str = "tiny.en"  # tiny.en ships offline; other names are downloaded by faster-whisper
    compute_type: str = "int8"
    threads: int = Field(2, ge=1, le=64)


class TurnConfig(_Section):
    end_silence_ms: int = Field(220, ge=100, le=2000)
    speculate_ms: int = Field(60, ge=40, le=1000)
    fallback_ms: int = Field(1200, ge=200, le=10000)
    # Short transcripts the skills do not recognise wait this much silence (0: off): see stt/turn.py.
    unsure_ms: int = Field(1000, ge=0, le=10000)
    preroll_ms: int = Field(300, ge=0, le=2000)
    max_utterance_s: float = Field(30.0, gt=1, le=120)


class LlmConfig(_Section):
    backend: Literal["skills", "openai"] = "skills"
    base_url: str | None = None
    model: str = "default"
    api_key: str | None = None  # or OPENAI_API_KEY
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    max_tokens: int = Field(200, ge=1)
    temperature: float = Field(0.7, ge=0, le=2)
    system_prompt: str = (
        "You are a friendly voice assistant speaking through an open-ear headset. Answer in one or two short "
        "spoken sentences, without lists or markdown."
    )
    history_turns: int = Field(8, ge=0, le=100)


class TtsConfig(_Section):
    engine: Literal["piper", "espeak", "openai", "auto"] = "auto"
    voice: str | None = None  # piper .onnx path, espeak voice name, or OpenAI voice
    base_url: str | None = None
    model: str = "tts-1"


class SessionConfig(_Section):
    # None: `companion run` listens for the wake phrase (and taps) on real headsets, hands-free on --sim
    mode: Literal["hands_free", "wake", "tap_to_talk", "push_to_talk"] | None = None
    wake_phrase: str = Field("hey companion", min_length=1)
    follow_up_s: float = Field(8.0, ge=0, le=300)  # after a reply (or a tap) no phrase is needed
    earcons: bool = True
    voice_barge_in: bool = True  # when echo is handled: by the headset, the host's canceller, or no echo
    echo_cancel: Literal["auto", "off"] = "auto"  # auto: on for headsets that play replies without AEC
    noise_suppression: bool = False  # WebRTC noise suppression on the mic (with the echo canceller)
    volume: int = Field(70, ge=0, le=100)


class LinkConfig(_Section):
    sim: bool = False
    allow: list[str] = Field(default_factory=list)  # addresses or names allowed besides paired ones
    mic_codec: str | None = None  # pcm16, mulaw, opus, opus10, opus20, opus60
    speaker_codec: str | None = None
    scan_timeout_s: float = Field(5.0, gt=0)
    reconnect_backoff_max_s: float = Field(0.5, gt=0, le=60)

    @field_validator("mic_codec", "speaker_codec")
    @classmethod
    def _known_codec(cls, v: str | None) -> str | None:
        if v is not None:
            from companion.protocol import codec_by_name

            codec_by_name(v)  # raises with the list of names
        return v


class MqttConfig(_Section):
    url: str | None = None  # mqtt://host:1883 or mqtts://host:8883
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    topic_prefix: str = "companion"
    discovery_prefix: str = "homeassistant"
    discovery: bool = True


class Config(_Section):
    stt: SttConfig = Field(default_factory=SttConfig)
    turn: TurnConfig = Field(default_factory=TurnConfig)
    llm: LlmConfig = Field(default_factory=LlmConfig)
    tts: TtsConfig = Field(default_factory=TtsConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    link: LinkConfig = Field(default_factory=LinkConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP))


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP))


def default_config_path() -> Path:
    return Path(os.environ.get("COMPANION_CONFIG", config_dir() / "config.toml"))


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """``COMPANION_SECTION__KEY=value`` pairs as a nested dict."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in (environ if environ is not None else os.environ).items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        out.setdefault(section, {})[key] = _env_value(raw)
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        reason = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{source}: {key}: {reason}")
    return "\n".join(lines)


def load_config(path: Path | str | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read the TOML file (missing default file: defaults) and apply environment overrides."""
    explicit = path is not None
    file = Path(path) if path is not None else default_config_path()
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read: {exc}") from None
    elif explicit:
        raise ConfigError(f"{file}: no such config file")
    env = env_overrides(environ)
    try:
        Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(file))) from None
    try:
        return Config.model_validate(_merge(data, env))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "environment (COMPANION_*)")) from None
