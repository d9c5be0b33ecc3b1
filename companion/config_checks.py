"""Checks that need more than one key's type: URLs, files, keys that depend on each other.

They run when the config loads (so a bad value stops `companion run` with exit 2 before any model
loads, and `companion doctor` lists it) and again where a setting is used (the MQTT bridge). Each
problem names its dotted key; URLs in messages never show their credentials.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import SplitResult, urlsplit

from companion.redact import redact_url

MQTT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class ConfigProblems(ValueError):
    """One or more ``(dotted key, reason)`` pairs; the config loader prints one line for each."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{k}: {r}" for k, r in problems))
        self.problems = problems


class MqttTarget(NamedTuple):
    host: str
    port: int
    tls: bool
    parts: SplitResult


def _split(url: str) -> SplitResult:
    if any(c.isspace() for c in url):
        raise ValueError(f"{redact_url(url)!r}: contains white space")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        reason = "the port is not a number in 1-65535" if "port" in str(exc).lower() else "malformed"
        raise ValueError(f"{redact_url(url)!r}: {reason}") from None
    return parts


def check_mqtt_url(url: str) -> MqttTarget:
    """``mqtt://host[:port]`` or ``mqtts://host[:port]``; raises ValueError saying what is wrong."""
    parts = _split(url)
    shown = repr(redact_url(url))
    if parts.scheme not in MQTT_PORTS:
        raise ValueError(f"{shown}: the scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError(f"{shown}: no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{shown}: only scheme://host:port is allowed, no path")
    if parts.port == 0:
        raise ValueError(f"{shown}: the port is not a number in 1-65535")
    return MqttTarget(parts.hostname, parts.port or MQTT_PORTS[parts.scheme], parts.scheme == "mqtts", parts)


def check_http_url(url: str) -> SplitResult:
    """An http(s) URL with a host, as OpenAI-compatible servers are reached; raises ValueError."""
    parts = _split(url)
    shown = repr(redact_url(url))
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{shown}: must be an http:// or https:// URL such as http://127.0.0.1:8080/v1")
    if not parts.hostname:
        raise ValueError(f"{shown}: no host name")
    if parts.port == 0:
        raise ValueError(f"{shown}: the port is not a number in 1-65535")
    return parts


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine (traffic to it never crosses a network)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _blame(fields_set: set[str], *keys: str) -> str:
    """The first of ``keys`` the user actually set (else the first): the one the message should name."""
    return next((k for k in keys if k in fields_set), keys[0])


def turn_problems(turn: Any) -> list[tuple[str, str]]:
    """The ordering the turn detector requires (companion/stt/turn.py, audio/vad.py):
    speculate_ms <= end_silence_ms <= fallback_ms, and unsure_ms 0 or end_silence_ms..fallback_ms."""
    out: list[tuple[str, str]] = []
    s, e, f, u = turn.speculate_ms, turn.end_silence_ms, turn.fallback_ms, turn.unsure_ms
    set_ = turn.model_fields_set
    if s > e:
        key = _blame(set_, "speculate_ms", "end_silence_ms")
        out.append(
            (f"turn.{key}", f"speculate_ms ({s}) must not exceed end_silence_ms ({e}): the speculative "
             "transcript starts during the end-of-turn silence")
        )  # fmt: skip
    if f < e:
        key = _blame(set_, "fallback_ms", "end_silence_ms")
        out.append((f"turn.{key}", f"fallback_ms ({f}) must be at least end_silence_ms ({e})"))
    if u and u < e:
        key = _blame(set_, "unsure_ms", "end_silence_ms")
        out.append((f"turn.{key}", f"unsure_ms ({u}) must be 0 (off) or at least end_silence_ms ({e})"))
    if u and u > f:
        key = _blame(set_, "fallback_ms", "unsure_ms")
        out.append(
            (f"turn.{key}", f"fallback_ms ({f}) must be at least unsure_ms ({u}): raise fallback_ms, or "
             "lower unsure_ms (0 turns the hold off)")
        )  # fmt: skip
    return out


def _url_problem(key: str, url: str | None, check: Any) -> list[tuple[str, str]]:
    if url is None:
        return []
    try:
        check(url)
    except ValueError as exc:
        return [(key, str(exc))]
    return []


def mqtt_problems(mqtt: Any) -> list[tuple[str, str]]:
    from companion.bus.topics import TopicError, check_prefix

    out = _url_problem("mqtt.url", mqtt.url, check_mqtt_url)
    tls = bool(mqtt.url) and mqtt.url.startswith("mqtts:")
    for name in ("ca_file", "client_cert", "client_key"):
        path = getattr(mqtt, name)
        if path is None:
            continue
        if mqtt.url and not tls:
            out.append((f"mqtt.{name}", "is set but mqtt.url is mqtt://: use mqtts:// for TLS"))
        elif not Path(path).is_file():
            out.append((f"mqtt.{name}", f"no such file: {path!r}"))
    if mqtt.client_key and not mqtt.client_cert:
        out.append(("mqtt.client_key", "is set without mqtt.client_cert"))
    for name in ("topic_prefix", "discovery_prefix"):
        try:
            check_prefix(f"mqtt.{name}", getattr(mqtt, name))
        except TopicError as exc:
            out.append((f"mqtt.{name}", str(exc).removeprefix(f"mqtt.{name} ")))
    return out


def config_problems(cfg: Any) -> list[tuple[str, str]]:
    """Every problem in a whole :class:`companion.config.Config` (empty: it is usable)."""
    out = turn_problems(cfg.turn)
    out += _url_problem("llm.base_url", cfg.llm.base_url, check_http_url)
    if cfg.llm.backend == "openai" and not cfg.llm.base_url:
        out.append(("llm.backend", "is openai but llm.base_url is not set (e.g. http://127.0.0.1:8080/v1)"))
    out += _url_problem("tts.base_url", cfg.tts.base_url, check_http_url)
    if cfg.tts.engine == "openai" and not cfg.tts.base_url:
        out.append(("tts.engine", "is openai but tts.base_url (the speech server's URL) is not set"))
    out += remote_problems("stt", cfg.stt.engine, cfg.stt.urls)
    out += remote_problems("tts", cfg.tts.engine, cfg.tts.urls)
    out += mqtt_problems(cfg.mqtt)
    return out


# Remote engines that take a list of endpoints, and the schemes each speaks. (The OpenAI TTS engine takes
# one tts.base_url, checked above.)
_REMOTE_SCHEMES = {
    ("stt", "wyoming"): ("tcp", "unix"),
    ("stt", "openai"): ("http", "https"),
    ("tts", "wyoming"): ("tcp", "unix"),
}


def remote_problems(section: str, engine: str, urls: list[str]) -> list[tuple[str, str]]:
    """A remote STT/TTS engine needs at least one endpoint, each with a scheme that engine speaks."""
    schemes = _REMOTE_SCHEMES.get((section, engine))
    if schemes is None:
        return []
    if not urls:
        return [(f"{section}.urls", f"engine {engine!r} needs at least one server in {section}.urls")]
    out = []
    for url in urls:
        try:
            parts = _split(url)
        except ValueError as exc:
            out.append((f"{section}.urls", str(exc)))
            continue
        if parts.scheme not in schemes:
            wanted = " or ".join(f"{s}://..." for s in schemes)
            out.append((f"{section}.urls", f"{redact_url(url)!r} is not a {engine} endpoint (use {wanted})"))
    return out
