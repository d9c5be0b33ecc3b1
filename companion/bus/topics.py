"""The MQTT wire format: topic layout under the prefix, event payloads and command parsing (no I/O).

Layout (``<dev>`` is :func:`device_id` of the headset address)::

    <prefix>/status                  online|offline, retained; the bridge's last will is "offline"
    <prefix>/<dev>/availability      online|offline, retained
    <prefix>/<dev>/state             idle|listening|thinking|speaking, retained
    <prefix>/<dev>/battery           0-100, retained
    <prefix>/<dev>/transcript        JSON of the event, retained (last transcript)
    <prefix>/<dev>/reply             JSON of the event, retained (last reply)
    <prefix>/<dev>/timings           JSON of the event
    <prefix>/<dev>/button            JSON of the event
    <prefix>/<dev>/error             JSON of the event
    <prefix>/<dev>/cmd/say           command: the text to speak
    <prefix>/<dev>/cmd/listen        command: start|stop (also on|off)
    <prefix>/<dev>/cmd/stop          command: stop speaking (any payload)
    <prefix>/<dev>/cmd/volume        command: 0-100

Retained state topics carry plain values because that is what Home Assistant and most dashboards read
without templates; event topics carry ``event.to_dict()`` as JSON so no field is lost.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from companion.events import (
    Availability,
    BatteryChanged,
    ButtonPressed,
    ErrorEvent,
    Event,
    ReplyEvent,
    StateChanged,
    TranscriptEvent,
    TurnTimings,
)

ONLINE = "online"
OFFLINE = "offline"
COMMANDS = ("say", "listen", "stop", "volume")
MAX_SAY_CHARS = 2000

CommandName = Literal["say", "listen", "stop", "volume"]

_UNSAFE = re.compile(r"[^a-z0-9_-]")
_LISTEN = {"start": True, "on": True, "1": True, "stop": False, "off": False, "0": False}


class TopicError(ValueError):
    """A topic prefix that cannot be used (the message says why)."""


class BadCommand(ValueError):
    """A command message that cannot be carried out; the message names the topic and the reason."""


def device_id(address: str) -> str:
    """The id of a headset in topics and Home Assistant unique ids: ``AA:BB:..`` -> ``aa_bb_..``.

    Lower-case, ``:`` becomes ``_`` and anything outside ``[a-z0-9_-]`` becomes ``_`` too, so platform
    addresses (macOS UUIDs, simulator names) are safe in MQTT topics and HA ids alike.
    """
    dev = _UNSAFE.sub("_", address.strip().lower().replace(":", "_"))
    if not dev.strip("_"):
        raise TopicError(f"headset address {address!r} gives no usable device id")
    return dev


def check_prefix(key: str, prefix: str) -> str:
    """``prefix`` if it can start topics; otherwise :class:`TopicError` naming the config ``key``."""
    if not prefix or prefix.startswith("/") or prefix.endswith("/"):
        raise TopicError(f"{key} {prefix!r}: must be non-empty without a leading or trailing /")
    if any(c in prefix for c in "+#\0"):
        raise TopicError(f"{key} {prefix!r}: must not contain +, # or NUL")
    return prefix


def safe_id(text: str) -> str:
    """``text`` reduced to the characters HA allows in discovery node and object ids."""
    return _UNSAFE.sub("_", text.lower())


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish (always QoS 1)."""

    topic: str
    payload: str
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command for one headset: only the field for its ``name`` is meaningful."""

    device: str
    name: CommandName
    text: str = ""
    on: bool = False
    percent: int = 0


class Topics:
    """Topic names under one prefix."""

    def __init__(self, prefix: str = "companion") -> None:
        self.prefix = check_prefix("mqtt.topic_prefix", prefix)

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def command_filter(self) -> str:
        """The subscription that receives every command of every headset."""
        return f"{self.prefix}/+/cmd/+"

    def device(self, dev: str, leaf: str) -> str:
        return f"{self.prefix}/{dev}/{leaf}"

    def availability(self, dev: str) -> str:
        return self.device(dev, "availability")

    def state(self, dev: str) -> str:
        return self.device(dev, "state")

    def battery(self, dev: str) -> str:
        return self.device(dev, "battery")

    def transcript(self, dev: str) -> str:
        return self.device(dev, "transcript")

    def reply(self, dev: str) -> str:
        return self.device(dev, "reply")

    def command(self, dev: str, name: str) -> str:
        return self.device(dev, f"cmd/{name}")

    def event_message(self, event: Event) -> Outgoing:
        """The message that carries ``event``; unknown event types go to ``<dev>/<type>`` as JSON."""
        dev = device_id(event.device)
        match event:
            case Availability(online=online):
                return Outgoing(self.availability(dev), ONLINE if online else OFFLINE, retain=True)
            case StateChanged(state=state):
                return Outgoing(self.state(dev), state, retain=True)
            case BatteryChanged(percent=percent):
                return Outgoing(self.battery(dev), str(int(percent)), retain=True)
            case TranscriptEvent() | ReplyEvent():
                return Outgoing(self.device(dev, event.type), to_json(event), retain=True)
            case TurnTimings() | ButtonPressed() | ErrorEvent():
                return Outgoing(self.device(dev, event.type), to_json(event))
        return Outgoing(self.device(dev, safe_id(event.type)), to_json(event))

    def parse_command(self, topic: str, payload: bytes | str) -> Command:
        """Validate one command message; raises :class:`BadCommand` naming the topic and the reason."""
        parts = topic.split("/")
        head = self.prefix.split("/")
        if parts[: len(head)] != head or len(parts) != len(head) + 3 or parts[-2] != "cmd":
            raise BadCommand(f"{topic}: not a command topic ({self.command_filter})")
        dev, name = parts[-3], parts[-1]
        if name not in COMMANDS:
            raise BadCommand(f"{topic}: unknown command {name!r} (known: {', '.join(COMMANDS)})")
        try:
            text = payload.decode() if isinstance(payload, bytes) else str(payload)
        except UnicodeDecodeError:
            raise BadCommand(f"{topic}: payload is not UTF-8 text") from None
        value = text.strip()
        if name == "say":
            if not value:
                raise BadCommand(f"{topic}: nothing to say (empty payload)")
            if len(value) > MAX_SAY_CHARS:
                raise BadCommand(f"{topic}: text too long ({len(value)} > {MAX_SAY_CHARS} characters)")
            return Command(dev, "say", text=value)
        if name == "listen":
            if value.lower() not in _LISTEN:
                raise BadCommand(f"{topic}: expected start or stop, got {value[:40]!r}")
            return Command(dev, "listen", on=_LISTEN[value.lower()])
        if name == "volume":
            return Command(dev, "volume", percent=_percent(topic, value))
        return Command(dev, "stop")


def _percent(topic: str, value: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise BadCommand(f"{topic}: expected a volume 0-100, got {value[:40]!r}") from None
    if not 0 <= number <= 100:  # also rejects nan
        raise BadCommand(f"{topic}: volume {value[:40]} is outside 0-100")
    return round(number)


def to_json(event: Event) -> str:
    return json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":"))
