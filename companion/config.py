"""Configuration: a TOML file in the platform config directory, overridden by environment variables.

Loading is pydantic-settings' (:class:`Settings`): the environment wins over systemd credentials, which
win over the file, which wins over the defaults (:mod:`companion.config_sources` has the sources).
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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
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
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from companion import credentials
from companion.config_checks import ConfigProblems, config_problems
from companion.config_sources import (
    ENV_PREFIX,
    ConfigError,
    CredentialsSource,
    EnvSource,
    TomlFileSource,
)

log = logging.getLogger(__name__)

APP = "companion"
__all__ = ["ENV_PREFIX", "Config", "ConfigError", "Settings", "load_config", "with_overrides"]


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
    # Ask the model at each pause, alongside the transcript (an open question's end then waits for the
    # slower of the two, not their sum), and cancel it when the words settle the end; false: only once the
    # transcript reads unsure (no model CPU at a command's pause, ~90 ms later on open questions).
    smart_turn_at_pause: bool = True
    preroll_ms: int = Field(300, ge=0, le=2000)
    # While a reply plays that the wearer may interrupt by voice, speech is confirmed after this much (two
    # 32 ms VAD windows) instead of three windows, so the reply stops sooner (docs/benchmarks.md, "Voice
    # barge-in"); the echo left after cancellation never scored as speech there.
    barge_in_speech_ms: int = Field(64, ge=0, le=90)
    # ... and from this VAD score up (speech outside replies: 0.5). Whispers under a reply's echo score
    # 0.25-0.5 after the canceller; its residual echo alone never scored over 0.15 (docs/benchmarks.md).
    barge_in_threshold: float = Field(0.3, gt=0, le=0.5)
    # While the mic's audio comes out of the host echo canceller, speech must also be this much louder than
    # the background heard without it: the canceller shapes noise into something the VAD scores as speech.
    echo_residual_margin_db: float = Field(6.0, ge=0, le=30)
    # Inside an utterance, audio this far over the room's noise floor (and near the level the utterance began
    # at) still counts as the voice when the VAD scores it silence, as it does falsetto and other unusual
    # voices: the turn no longer ends, and the reply no longer starts, inside the sentence. Outside replies
    # such a window also starts speech from a VAD score of 0.3 (else 0.5; not in wake mode): whispers score
    # 0.3-0.55. 0: off.
    voice_margin_db: float = Field(30.0, ge=0, le=80)
    max_utterance_s: float = Field(30.0, gt=1, le=120)

    @field_validator("voice_margin_db")
    @classmethod
    def _voice_margin(cls, v: float) -> float:
        from companion.audio.vad import VOICE_MARGIN_MIN_DB

        if 0 < v < VOICE_MARGIN_MIN_DB:
            raise ValueError(f"must be 0 (off) or at least {VOICE_MARGIN_MIN_DB:g} dB: nearer is noise")
        return v


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
    # during replies (voice barge-in; docs/benchmarks.md, "Open ear"). "off": the mic is ignored while such
    # a headset plays a reply (and 150 ms after).
    echo_cancel: Literal["auto", "off"] = "auto"
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


# The sources one load reads (set by load_config for its file and environment; else the defaults).
_SOURCES: ContextVar[tuple[PydanticBaseSettingsSource, ...] | None] = ContextVar("_SOURCES", default=None)


class Settings(Config, BaseSettings):
    """The config as pydantic-settings loads it: init values > environment (``COMPANION_<SECTION>__<KEY>``)
    > systemd credentials > the TOML file > defaults. ``Settings()`` reads ``os.environ`` and the default
    file; :func:`load_config` reads a given file and environment and names the source of each bad value."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", case_sensitive=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        given = _SOURCES.get()
        if given is None:
            given = sources(settings_cls, default_config_path(), os.environ)
        return (init_settings, *given)


def sources(
    settings_cls: type[BaseSettings], file: Path, environ: Mapping[str, str]
) -> tuple[EnvSource, CredentialsSource, TomlFileSource]:
    """The sources in precedence order, highest first (a file that is not TOML raises ConfigError)."""
    return (
        EnvSource(settings_cls, environ),
        CredentialsSource(settings_cls, environ),
        TomlFileSource(settings_cls, file),
    )


@contextmanager
def _reading(given: tuple[PydanticBaseSettingsSource, ...]) -> Iterator[None]:
    token = _SOURCES.set(given)
    try:
        yield
    finally:
        _SOURCES.reset(token)


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP))


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP))


def default_config_path() -> Path:
    return Path(os.environ.get("COMPANION_CONFIG", config_dir() / "config.toml"))


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
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Config:
    """Read the TOML file (missing default file: defaults), add systemd credentials and environment
    overrides, and check the whole. ``warn`` receives exposure warnings (default: logged).

    Each source is checked key by key as it is added (so a bad value is named with the source it came
    from, even where a higher source overrides it), then :class:`Settings` merges and checks the whole.
    """
    environ = dict(os.environ) if environ is None else environ
    explicit = path is not None
    file = Path(path) if path is not None else Path(environ.get("COMPANION_CONFIG") or default_config_path())
    if explicit and not file.exists():
        raise ConfigError(f"{file}: no such config file")
    try:
        env, creds, toml = given = sources(Settings, file, environ)
        layers = [(toml.label, toml.data), (creds.label, creds.data), (env.label, env.data)]
    except credentials.SecretSourceError as exc:
        raise ConfigError(str(exc)) from None
    merged: dict[str, Any] = {}
    for label, data in layers:
        if data or label == toml.label:
            merged = _merge(merged, data)
            _validate(merged, label, whole=False)
    try:
        with _reading(given):
            cfg = Settings()
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, _source_of(*layers))) from None
    credentials.register(cfg)
    for message in credentials.exposure_warnings(cfg, file if file.exists() else None, toml.data):
        (warn or log.warning)(message)
    return cfg


def with_overrides(cfg: Config, source: str, **sections: dict[str, Any]) -> Config:
    """``cfg`` with command-line values applied (``llm={"base_url": ...}``), checked like the file."""
    merged = _merge(cfg.model_dump(exclude_unset=True), sections)
    out = _validate(merged, _source_of(("config", {}), (source, sections)))
    credentials.register(out)
    return out
