"""Configuration: a TOML file in the platform config directory, overridden by environment variables.

Environment overrides use ``COMPANION_<SECTION>__<KEY>`` (double underscore between section and key), e.g.
``COMPANION_LLM__BASE_URL=http://127.0.0.1:8080/v1``. A value for a text key is taken as written (so a
password ``123456`` stays text); numbers and booleans are converted by the key's type; lists are written
as TOML (``["a", "b"]``). Secrets can also come from files: see :mod:`companion.credentials`.
Every error names its source, the key and the reason: ``environment (COMPANION_*): llm.timeout_s: Input
should be a valid number``. Keys that depend on each other and URLs are checked at load as well
(:mod:`companion.config_checks`), so a config that loads is one the service can run with.
"""

from __future__ import annotations

import logging
import os
import tomllib
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from companion import credentials
from companion.config_checks import ConfigProblems, config_problems

log = logging.getLogger(__name__)

APP = "companion"
ENV_PREFIX = "COMPANION_"


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key and the reason."""


class _Section(BaseModel):
    # numbers are accepted for text keys (a TOML `password = 123456`); inf and nan for none
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, coerce_numbers_to_str=True, allow_inf_nan=False
    )


class SttConfig(_Section):
    # "local": faster-whisper in this process; "wyoming": Wyoming servers (wyoming-faster-whisper,
    # `companion serve`); "openai": OpenAI-compatible /v1/audio/transcriptions servers. Remote engines
    # take several `urls`, tried in order with failover (docs/scale.md).
    engine: Literal["local", "wyoming", "openai"] = "local"
    urls: list[str] = Field(default_factory=list)  # tcp://host:port (wyoming) or http://host:port/v1 (openai)
    timeout_s: float = Field(1.5, gt=0, le=60)  # all endpoints of one request, failover included
    remote_model: str = "whisper-1"  # the model name sent to an OpenAI-compatible server
    api_key: str | None = None
    model: str = "tiny.en"  # tiny.en ships offline; other names are downloaded by faster-whisper
    compute_type: str = "int8"
    threads: int = Field(2, ge=1, le=64)


class TurnConfig(_Section):
    end_silence_ms: int = Field(220, ge=100, le=2000)
    speculate_ms: int = Field(60, ge=40, le=1000)
    fallback_ms: int = Field(1200, ge=200, le=10000)
    # Short transcripts the skills do not recognise wait this much silence (0: off): see stt/turn.py.
    unsure_ms: int = Field(1000, ge=0, le=10000)
    # Unsure transcripts ask the audio end-of-turn model (Smart Turn v3, when installed: see
    # companion/stt/smart_turn.py) whether the voice sounds finished; P >= the threshold ends the turn.
    smart_turn: bool = True
    smart_turn_model: str | None = None  # a .onnx path; default: the installed copy, if any
    smart_turn_threshold: float = Field(0.5, gt=0, lt=1)
    preroll_ms: int = Field(300, ge=0, le=2000)
    max_utterance_s: float = Field(30.0, gt=1, le=120)


class LlmConfig(_Section):
    backend: Literal["skills", "openai"] = "skills"
    base_url: str | None = None
    model: str = "default"
    api_key: str | None = None  # or OPENAI_API_KEY
    timeout_s: float = Field(30.0, gt=0)
    # No text from the LLM within this many seconds: the wearer hears an apology (a "thinking" cue plays
    # after 1.5 s of waiting when earcons are on).
    first_token_timeout_s: float = Field(8.0, gt=0, le=120)
    max_retries: int = Field(2, ge=0, le=10)
    max_tokens: int = Field(200, ge=1)
    temperature: float = Field(0.7, ge=0, le=2)
    system_prompt: str = (
        "You are a friendly voice assistant speaking through an open-ear headset. Answer in one or two short "
        "spoken sentences, without lists or markdown."
    )
    history_turns: int = Field(8, ge=0, le=100)


class TtsConfig(_Section):
    engine: Literal["piper", "espeak", "openai", "auto", "wyoming"] = "auto"
    voice: str | None = None  # piper .onnx path, espeak voice name, or OpenAI voice
    base_url: str | None = None
    model: str = "tts-1"
    urls: list[str] = Field(default_factory=list)  # engine "wyoming": tcp://host:port, tried in order
    timeout_s: float = Field(1.5, gt=0, le=60)  # until the first audio, failover included
    fallback: Literal["espeak", "piper", "none"] = "espeak"  # local voice when every server fails


class SessionConfig(_Section):
    # None: `companion run` listens for the wake phrase (and taps) on real headsets, hands-free on --sim
    mode: Literal["hands_free", "wake", "tap_to_talk", "push_to_talk"] | None = None
    wake_phrase: str = Field("hey companion", min_length=1)
    follow_up_s: float = Field(8.0, ge=0, le=300)  # after a reply (or a tap) no phrase is needed
    earcons: bool = True
    voice_barge_in: bool = True  # when echo is handled: by the headset, the host's canceller, or no echo
    # "auto": the host cancels the echo of headsets that play replies without AEC, so the mic stays open
    # during replies (voice barge-in). Off by default until it meets the open-ear targets
    # (docs/benchmarks.md); off, the mic is ignored while such a headset plays a reply, as before.
    echo_cancel: Literal["auto", "off"] = "off"
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


class SatelliteConfig(_Section):
    """Serve each headset as a Home Assistant Assist satellite (Wyoming) instead of the local pipeline."""

    enabled: bool = False
    host: str = "127.0.0.1"  # 0.0.0.0 so a Home Assistant on another machine can connect
    base_port: int = Field(
        10800, ge=0, le=65535
    )  # headsets get base_port, base_port + 1, ... (0: any free port)
    ports: dict[str, int] = Field(
        default_factory=dict
    )  # fixed ports by headset address, e.g. {"AA:BB:..": 10801}
    start: Literal["button", "wake"] = "button"  # the button starts a pipeline, or Home Assistant's wake word
    area: str | None = None


class Config(_Section):
    stt: SttConfig = Field(default_factory=SttConfig)
    turn: TurnConfig = Field(default_factory=TurnConfig)
    llm: LlmConfig = Field(default_factory=LlmConfig)
    tts: TtsConfig = Field(default_factory=TtsConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    link: LinkConfig = Field(default_factory=LinkConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    satellite: SatelliteConfig = Field(default_factory=SatelliteConfig)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Config:
        if info.context and info.context.get("fields_only"):
            return self  # one source of several: keys that depend on each other are checked on the whole
        problems = config_problems(self)
        if problems:
            raise ConfigProblems(problems)
        return self


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


def _wants_toml(section: str, key: str) -> bool:
    """Whether the key holds a list or table, written as TOML in the environment."""
    sec = Config.model_fields.get(section)
    model = sec.annotation if sec is not None else None  # a section's model class
    field = model.model_fields.get(key) if isinstance(model, type) and issubclass(model, BaseModel) else None
    if field is None:
        return True  # unknown key: parsed as before, then reported as unknown
    kinds = {typing.get_origin(a) or a for a in (field.annotation, *typing.get_args(field.annotation))}
    return bool(kinds & {list, dict, tuple, set})


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """``COMPANION_SECTION__KEY=value`` pairs (and ``..._FILE=path`` for secrets) as a nested dict."""
    out: dict[str, dict[str, Any]] = {}
    files: list[tuple[str, str, str, str]] = []
    for name, raw in (environ if environ is not None else os.environ).items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        secret = credentials.file_variable(section, key)
        if secret is not None:
            files.append((name, section, secret, raw))
            continue
        out.setdefault(section, {})[key] = _env_value(raw) if _wants_toml(section, key) else raw
    for name, section, key, path in files:
        if key in out.get(section, {}):
            continue  # the value itself wins over its file
        out.setdefault(section, {})[key] = credentials.read_secret_file(
            path, source=f"environment ({name})", key=f"{section}.{key}"
        )
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def format_validation_error(exc: ValidationError, source: str | Callable[[str], str]) -> str:
    """One ``<source>: <key>: <reason>`` line per error; ``source`` may depend on the key."""
    where = source if callable(source) else (lambda _key: source)
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigProblems):
            lines += [f"{where(k)}: {k}: {r}" for k, r in cause.problems]
            continue
        reason = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{where(key)}: {key}: {reason.removeprefix('Value error, ')}")
    return "\n".join(lines)


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{file}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {raw[: exc.start].count(10) + 1}): "
            "save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None


def _validate(data: dict[str, Any], source: str | Callable[[str], str], *, whole: bool = True) -> Config:
    """``data`` as a Config; ``whole=False`` checks each key alone (one source of several)."""
    try:
        return Config.model_validate(data, context={"fields_only": not whole})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def _source_of(*layers: tuple[str, dict[str, Any]]) -> Callable[[str], str]:
    """For a dotted key, the name of the last (highest-precedence) layer that sets it."""

    def source(key: str) -> str:
        section, _, name = key.partition(".")
        for label, data in reversed(layers):
            if name in (data.get(section) or {}):
                return label
        return layers[0][0]

    return source


def load_config(
    path: Path | str | None = None,
    environ: dict[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Config:
    """Read the TOML file (missing default file: defaults), add systemd credentials and environment
    overrides, and check the whole. ``warn`` receives exposure warnings (default: logged)."""
    environ = dict(os.environ) if environ is None else environ
    explicit = path is not None
    file = Path(path) if path is not None else Path(environ.get("COMPANION_CONFIG") or default_config_path())
    data: dict[str, Any] = {}
    if file.exists():
        data = _read_toml(file)
    elif explicit:
        raise ConfigError(f"{file}: no such config file")
    try:
        creds = credentials.credentials(environ)
        env = env_overrides(environ)
    except credentials.SecretSourceError as exc:
        raise ConfigError(str(exc)) from None
    creds_label, env_label = "systemd credentials ($CREDENTIALS_DIRECTORY)", "environment (COMPANION_*)"
    _validate(data, str(file), whole=False)
    merged = data
    if creds:
        merged = _merge(merged, creds)
        _validate(merged, creds_label, whole=False)
    merged = _merge(merged, env)
    _validate(merged, env_label, whole=False)
    cfg = _validate(merged, _source_of((str(file), data), (creds_label, creds), (env_label, env)))
    credentials.register(cfg)
    for message in credentials.exposure_warnings(cfg, file if file.exists() else None, data):
        (warn or log.warning)(message)
    return cfg


def with_overrides(cfg: Config, source: str, **sections: dict[str, Any]) -> Config:
    """``cfg`` with command-line values applied (``llm={"base_url": ...}``), checked like the file."""
    merged = _merge(cfg.model_dump(exclude_unset=True), sections)
    out = _validate(merged, _source_of(("config", {}), (source, sections)))
    credentials.register(out)
    return out
