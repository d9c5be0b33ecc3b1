"""Control messages of the `companion` profile: one small dataclass per message, decoded through a registry.

Wire form: ``[type u8][length u8][payload]``, one message per write or notification (docs/protocol.md).
Types below 0x80 are commands (host -> headset), 0x80 and up are events (headset -> host). The vocabulary
follows xiaozhi's (listen start/stop, tts start/sentence_start/stop, abort). Each class knows its type, its
payload size and how to encode and decode its payload, as the `wyoming` package's event classes do, so a
reader matches on the class (``match msg: case Listen(on=on): ...``) instead of on ``(type, value)``.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeVar

from .codec_ids import CodecId, codec_spec
from .errors import BadField, TruncatedPacket
from .gatt import ATT_HEADER


class Button(IntEnum):
    """Button gestures; the numbers are the Omi firmware's so both profiles share them."""

    TAP = 1
    DOUBLE_TAP = 2
    LONG_PRESS = 3
    PRESS = 4
    RELEASE = 5


class DeviceState(IntEnum):
    """What the headset's state LED shows."""

    IDLE = 0
    LISTENING = 1
    THINKING = 2
    SPEAKING = 3


class TtsPhase(IntEnum):
    START = 0
    SENTENCE_START = 1
    STOP = 2


class PlaybackEvent(IntEnum):
    STARTED = 0  # first sample of a reply left the speaker
    DRAINED = 1  # the reply finished playing
    ABORTED = 2  # an abort flushed the buffer


class ErrorCode(IntEnum):
    """Codes of the ERROR event (its text is free-form and short: it must fit one notification)."""

    UNSUPPORTED_CODEC = 1
    BAD_MESSAGE = 2
    UNSUPPORTED = 3
    BAD_AUDIO = 4


class Msg(IntEnum):
    # commands, host -> headset
    SET_STATE = 0x01  # u8 DeviceState
    SET_VOLUME = 0x02  # u8 percent 0-100
    ABORT = 0x03  # empty: stop playback now, flush the speaker buffer
    SET_CODECS = 0x04  # u8 mic codec, u8 speaker codec
    LISTEN = 0x05  # u8 1 start / 0 stop streaming the mic
    TTS = 0x06  # u8 TtsPhase
    TIME_SYNC = 0x07  # u32 LE epoch seconds
    # events, headset -> host
    BUTTON = 0x81  # u8 Button
    STATE = 0x82  # u8 DeviceState (acknowledges SET_STATE)
    VOLUME = 0x83  # u8 percent (acknowledges SET_VOLUME, or changed on the device)
    CODECS = 0x84  # u8 mic codec, u8 speaker codec (acknowledges SET_CODECS)
    PLAYBACK = 0x85  # u8 PlaybackEvent
    ERROR = 0x86  # u8 error code, then UTF-8 text


#: Longest ERROR text sent; the whole message must also fit one notification (MTU - 3).
MAX_ERROR_TEXT = 200
#: Bytes a control message puts before its payload: type and payload length.
CONTROL_HEADER = 2


def error_text_room(mtu: int) -> int:
    """Bytes of ERROR text that fit one notification at this MTU: after ATT's header, the message's header
    and the code byte, and at most MAX_ERROR_TEXT."""
    return max(0, min(MAX_ERROR_TEXT, mtu - ATT_HEADER - CONTROL_HEADER - 1))


class ControlMsg(ABC):
    """Base of the control messages. ``TYPE`` and ``SIZE`` (payload bytes, None: variable, at least 1) are
    per class; subclasses implement ``payload()`` and ``from_payload()``."""

    __slots__ = ()
    TYPE: ClassVar[Msg]
    SIZE: ClassVar[int | None] = 1

    @abstractmethod
    def payload(self) -> bytes: ...

    @classmethod
    @abstractmethod
    def from_payload(cls: type[_M], p: bytes) -> _M: ...

    def encode(self) -> bytes:
        p = self.payload()
        return bytes((self.TYPE, len(p))) + p


_M = TypeVar("_M", bound=ControlMsg)
_REGISTRY: dict[Msg, type[ControlMsg]] = {}


def _register(cls: type[_M]) -> type[_M]:
    if cls.TYPE in _REGISTRY:  # pragma: no cover - a programming error caught at import
        raise TypeError(f"two classes for control message {cls.TYPE.name}")
    _REGISTRY[cls.TYPE] = cls
    return cls


def message_class(mtype: Msg) -> type[ControlMsg]:
    """The class that encodes and decodes messages of this type."""
    return _REGISTRY[mtype]


def decode_control(data: bytes | bytearray) -> ControlMsg:
    """One control message from a write or notification; raises a ProtocolError for anything malformed."""
    if len(data) < 2:
        raise TruncatedPacket(f"control message of {len(data)} bytes; needs at least 2")
    try:
        mtype = Msg(data[0])
    except ValueError:
        raise BadField(f"unknown control message type 0x{data[0]:02x}") from None
    length = data[1]
    if len(data) != 2 + length:
        raise TruncatedPacket(f"{mtype.name}: length byte says {length}, got {len(data) - 2}")
    cls = _REGISTRY[mtype]
    want = cls.SIZE
    if (want is not None and length != want) or (want is None and length < 1):
        raise BadField(f"{mtype.name}: payload of {length} bytes, expected {want if want else '>= 1'}")
    try:
        return cls.from_payload(bytes(data[2:]))
    except BadField:
        raise
    except ValueError as exc:  # an enum or codec id out of range
        raise BadField(f"{mtype.name}: {exc}") from None


def _percent(value: int) -> int:
    if not 0 <= value <= 100:
        raise BadField(f"volume {value} outside 0-100")
    return value


# -- payload shapes shared by a command and its acknowledgement ----------------------------------------
@dataclass(frozen=True, slots=True)
class _StateBody(ControlMsg):
    state: DeviceState

    def payload(self) -> bytes:
        return bytes((int(self.state),))

    @classmethod
    def from_payload(cls: type[_S], p: bytes) -> _S:
        return cls(DeviceState(p[0]))


@dataclass(frozen=True, slots=True)
class _VolumeBody(ControlMsg):
    percent: int

    def payload(self) -> bytes:
        return bytes((_percent(int(self.percent)),))

    @classmethod
    def from_payload(cls: type[_V], p: bytes) -> _V:
        return cls(_percent(p[0]))


@dataclass(frozen=True, slots=True)
class _CodecsBody(ControlMsg):
    SIZE: ClassVar[int | None] = 2
    mic: CodecId
    speaker: CodecId

    def payload(self) -> bytes:
        return bytes((int(self.mic), int(self.speaker)))

    @classmethod
    def from_payload(cls: type[_C], p: bytes) -> _C:
        return cls(codec_spec(p[0]).id, codec_spec(p[1]).id)


_S = TypeVar("_S", bound=_StateBody)
_V = TypeVar("_V", bound=_VolumeBody)
_C = TypeVar("_C", bound=_CodecsBody)


# -- commands, host -> headset -------------------------------------------------------------------------
@_register
@dataclass(frozen=True, slots=True)
class SetState(_StateBody):
    """Show this state on the headset's LED."""

    TYPE: ClassVar[Msg] = Msg.SET_STATE


@_register
@dataclass(frozen=True, slots=True)
class SetVolume(_VolumeBody):
    """Set the speaker volume, 0-100 percent."""

    TYPE: ClassVar[Msg] = Msg.SET_VOLUME


@_register
@dataclass(frozen=True, slots=True)
class Abort(ControlMsg):
    """Stop playback now and flush the speaker buffer."""

    TYPE: ClassVar[Msg] = Msg.ABORT
    SIZE: ClassVar[int | None] = 0

    def payload(self) -> bytes:
        return b""

    @classmethod
    def from_payload(cls, p: bytes) -> Abort:
        return cls()


@_register
@dataclass(frozen=True, slots=True)
class SetCodecs(_CodecsBody):
    """Choose the mic and speaker codecs (from the headset's capabilities)."""

    TYPE: ClassVar[Msg] = Msg.SET_CODECS


@_register
@dataclass(frozen=True, slots=True)
class Listen(ControlMsg):
    """Start (True) or stop streaming the mic."""

    TYPE: ClassVar[Msg] = Msg.LISTEN
    on: bool

    def payload(self) -> bytes:
        return bytes((1 if self.on else 0,))

    @classmethod
    def from_payload(cls, p: bytes) -> Listen:
        if p[0] > 1:
            raise BadField(f"LISTEN flag {p[0]} is not 0 or 1")
        return cls(bool(p[0]))


@_register
@dataclass(frozen=True, slots=True)
class Tts(ControlMsg):
    """A reply's phase: the speaker is about to receive audio, a sentence starts, the reply ends."""

    TYPE: ClassVar[Msg] = Msg.TTS
    phase: TtsPhase

    def payload(self) -> bytes:
        return bytes((int(self.phase),))

    @classmethod
    def from_payload(cls, p: bytes) -> Tts:
        return cls(TtsPhase(p[0]))


@_register
@dataclass(frozen=True, slots=True)
class TimeSync(ControlMsg):
    """The host's clock, so the headset can stamp offline recordings."""

    TYPE: ClassVar[Msg] = Msg.TIME_SYNC
    SIZE: ClassVar[int | None] = 4
    epoch_s: int

    def payload(self) -> bytes:
        return encode_time_sync(self.epoch_s)

    @classmethod
    def from_payload(cls, p: bytes) -> TimeSync:
        return cls(parse_time_sync(p))


# -- events, headset -> host ---------------------------------------------------------------------------
@_register
@dataclass(frozen=True, slots=True)
class ButtonReport(ControlMsg):
    """A button gesture."""

    TYPE: ClassVar[Msg] = Msg.BUTTON
    button: Button

    def payload(self) -> bytes:
        return bytes((int(self.button),))

    @classmethod
    def from_payload(cls, p: bytes) -> ButtonReport:
        return cls(Button(p[0]))


@_register
@dataclass(frozen=True, slots=True)
class StateReport(_StateBody):
    """The LED state (acknowledges SetState)."""

    TYPE: ClassVar[Msg] = Msg.STATE


@_register
@dataclass(frozen=True, slots=True)
class VolumeReport(_VolumeBody):
    """The speaker volume (acknowledges SetVolume, or changed on the device)."""

    TYPE: ClassVar[Msg] = Msg.VOLUME


@_register
@dataclass(frozen=True, slots=True)
class CodecsReport(_CodecsBody):
    """The codecs in use (acknowledges SetCodecs)."""

    TYPE: ClassVar[Msg] = Msg.CODECS


@_register
@dataclass(frozen=True, slots=True)
class PlaybackReport(ControlMsg):
    """The speaker started, drained or aborted a reply."""

    TYPE: ClassVar[Msg] = Msg.PLAYBACK
    event: PlaybackEvent

    def payload(self) -> bytes:
        return bytes((int(self.event),))

    @classmethod
    def from_payload(cls, p: bytes) -> PlaybackReport:
        return cls(PlaybackEvent(p[0]))


@_register
@dataclass(frozen=True, slots=True)
class ErrorReport(ControlMsg):
    """Something the headset refused; ``code`` is an ErrorCode, kept as int so newer codes still decode."""

    TYPE: ClassVar[Msg] = Msg.ERROR
    SIZE: ClassVar[int | None] = None
    code: int
    text: str = ""

    def payload(self) -> bytes:
        return bytes((int(self.code),)) + str(self.text).encode()[:MAX_ERROR_TEXT]

    @classmethod
    def from_payload(cls, p: bytes) -> ErrorReport:
        return cls(p[0], p[1:].decode("utf-8", "replace"))


# -- the u32 clock shared by TIME_SYNC and the time-sync characteristic --------------------------------
def encode_time_sync(epoch_s: int) -> bytes:
    """u32 LE epoch seconds."""
    return struct.pack("<I", int(epoch_s))


def parse_time_sync(data: bytes | bytearray) -> int:
    if len(data) != 4:
        raise TruncatedPacket(f"time sync of {len(data)} bytes; expected 4")
    value: int = struct.unpack("<I", data)[0]
    return value
