"""Control channel, flow status and capabilities of the `companion` profile, plus the omi button.

Control messages are ``[type u8][length u8][payload]``, one message per write or notification. Types below
0x80 are commands (host -> headset), 0x80 and up are events (headset -> host). The vocabulary follows
xiaozhi's (listen start/stop, tts start/sentence_start/stop, abort).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from .codec_ids import CodecId, codec_spec
from .errors import BadField, TruncatedPacket


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


_PAYLOAD_LEN: dict[Msg, int | None] = {
    Msg.SET_STATE: 1,
    Msg.SET_VOLUME: 1,
    Msg.ABORT: 0,
    Msg.SET_CODECS: 2,
    Msg.LISTEN: 1,
    Msg.TTS: 1,
    Msg.TIME_SYNC: 4,
    Msg.BUTTON: 1,
    Msg.STATE: 1,
    Msg.VOLUME: 1,
    Msg.CODECS: 2,
    Msg.PLAYBACK: 1,
    Msg.ERROR: None,  # variable, at least 1
}


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """One decoded control message; ``value`` holds the typed payload (None for ABORT)."""

    type: Msg
    value: object = None

    def encode(self) -> bytes:
        payload = _encode_value(self.type, self.value)
        return bytes((self.type, len(payload))) + payload

    @classmethod
    def decode(cls, data: bytes | bytearray) -> ControlMessage:
        if len(data) < 2:
            raise TruncatedPacket(f"control message of {len(data)} bytes; needs at least 2")
        try:
            mtype = Msg(data[0])
        except ValueError:
            raise BadField(f"unknown control message type 0x{data[0]:02x}") from None
        length = data[1]
        if len(data) != 2 + length:
            raise TruncatedPacket(f"{mtype.name}: length byte says {length}, got {len(data) - 2}")
        want = _PAYLOAD_LEN[mtype]
        if (want is not None and length != want) or (want is None and length < 1):
            raise BadField(f"{mtype.name}: payload of {length} bytes, expected {want if want else '>= 1'}")
        return cls(mtype, _decode_value(mtype, bytes(data[2:])))


def _encode_value(mtype: Msg, value: object) -> bytes:
    if mtype is Msg.ABORT:
        return b""
    if mtype in (Msg.SET_CODECS, Msg.CODECS):
        mic, spk = value  # type: ignore[misc]
        return bytes((int(mic), int(spk)))
    if mtype is Msg.TIME_SYNC:
        return struct.pack("<I", int(value))  # type: ignore[arg-type]
    if mtype is Msg.ERROR:
        code, text = value  # type: ignore[misc]
        return bytes((int(code),)) + str(text).encode()[:200]
    if mtype in (Msg.SET_VOLUME, Msg.VOLUME) and not 0 <= int(value) <= 100:  # type: ignore[call-overload]
        raise BadField(f"volume {value} outside 0-100")
    if mtype is Msg.LISTEN:
        return bytes((1 if value else 0,))
    return bytes((int(value),))  # type: ignore[call-overload]


def _decode_value(mtype: Msg, p: bytes) -> object:
    try:
        if mtype is Msg.ABORT:
            return None
        if mtype in (Msg.SET_STATE, Msg.STATE):
            return DeviceState(p[0])
        if mtype in (Msg.SET_VOLUME, Msg.VOLUME):
            if p[0] > 100:
                raise BadField(f"volume {p[0]} outside 0-100")
            return p[0]
        if mtype in (Msg.SET_CODECS, Msg.CODECS):
            return (codec_spec(p[0]).id, codec_spec(p[1]).id)
        if mtype is Msg.LISTEN:
            if p[0] > 1:
                raise BadField(f"LISTEN flag {p[0]} is not 0 or 1")
            return bool(p[0])
        if mtype is Msg.TTS:
            return TtsPhase(p[0])
        if mtype is Msg.TIME_SYNC:
            return struct.unpack("<I", p)[0]
        if mtype is Msg.BUTTON:
            return Button(p[0])
        if mtype is Msg.PLAYBACK:
            return PlaybackEvent(p[0])
        if mtype is Msg.ERROR:
            return (p[0], p[1:].decode("utf-8", "replace"))
    except ValueError as exc:
        if isinstance(exc, BadField):
            raise
        raise BadField(f"{mtype.name}: {exc}") from None
    raise BadField(f"unhandled control message {mtype.name}")  # pragma: no cover


# -- flow control ----------------------------------------------------------------------------------
FLOW_STATUS_SIZE = 10


@dataclass(frozen=True, slots=True)
class FlowStatus:
    """The speaker's flow status, notified by the headset on the FLOW characteristic.

    ``credits`` is cumulative (mod 2^32): the host may have sent at most ``credits`` speaker frames since
    the stream started. The headset raises it by one for every frame it plays out (and re-grants a whole
    buffer after an abort), so a lost or late notification never leaks credit. ``buffered_ms`` is what the
    playout buffer holds, ``underruns`` counts 20 ms ticks the speaker starved while a reply was playing.
    """

    credits: int
    buffered_ms: int
    underruns: int
    capacity_frames: int

    def encode(self) -> bytes:
        return struct.pack(
            "<IHHH", self.credits % (1 << 32), self.buffered_ms, self.underruns % 65536, self.capacity_frames
        )

    @classmethod
    def decode(cls, data: bytes | bytearray) -> FlowStatus:
        if len(data) != FLOW_STATUS_SIZE:
            raise TruncatedPacket(f"flow status of {len(data)} bytes; expected {FLOW_STATUS_SIZE}")
        credits, buffered, underruns, capacity = struct.unpack("<IHHH", data)
        if capacity == 0:
            raise BadField("flow status with zero buffer capacity")
        return cls(credits, buffered, underruns, capacity)


# -- capabilities ----------------------------------------------------------------------------------
class CapabilityFlag(IntEnum):
    HAS_SPEAKER = 0x01
    HAS_AEC = 0x02
    HAS_BUTTON = 0x04
    HAS_BATTERY = 0x08
    HAS_STORAGE = 0x10


CAPABILITIES_VERSION = 1


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the headset can do, read once after connecting.

    Wire form: ``[version u8 = 1][fw major u8][fw minor u8][fw patch u8][flags u8]
    [speaker buffer ms u16 LE][n mic codecs u8][mic codecs...][n speaker codecs u8][speaker codecs...]``.
    """

    firmware: tuple[int, int, int]
    has_speaker: bool
    has_aec: bool
    has_button: bool
    has_battery: bool
    mic_codecs: tuple[CodecId, ...]
    speaker_codecs: tuple[CodecId, ...]
    speaker_buffer_ms: int
    has_storage: bool = False

    @property
    def firmware_version(self) -> str:
        return ".".join(map(str, self.firmware))

    def encode(self) -> bytes:
        flags = (
            (CapabilityFlag.HAS_SPEAKER if self.has_speaker else 0)
            | (CapabilityFlag.HAS_AEC if self.has_aec else 0)
            | (CapabilityFlag.HAS_BUTTON if self.has_button else 0)
            | (CapabilityFlag.HAS_BATTERY if self.has_battery else 0)
            | (CapabilityFlag.HAS_STORAGE if self.has_storage else 0)
        )
        out = struct.pack("<BBBBBH", CAPABILITIES_VERSION, *self.firmware, flags, self.speaker_buffer_ms)
        out += bytes((len(self.mic_codecs), *self.mic_codecs))
        out += bytes((len(self.speaker_codecs), *self.speaker_codecs))
        return out

    @classmethod
    def decode(cls, data: bytes | bytearray) -> Capabilities:
        data = bytes(data)
        if len(data) < 9:
            raise TruncatedPacket(f"capabilities of {len(data)} bytes; needs at least 9")
        version, major, minor, patch, flags, buffer_ms = struct.unpack_from("<BBBBBH", data)
        if version != CAPABILITIES_VERSION:
            raise BadField(f"capabilities version {version}; this host understands {CAPABILITIES_VERSION}")
        pos = 7
        lists: list[tuple[CodecId, ...]] = []
        for what in ("mic", "speaker"):
            if pos >= len(data):
                raise TruncatedPacket(f"capabilities end before the {what} codec list")
            n = data[pos]
            ids = data[pos + 1 : pos + 1 + n]
            if len(ids) != n:
                raise TruncatedPacket(f"capabilities: {what} codec list says {n}, has {len(ids)}")
            lists.append(tuple(codec_spec(c).id for c in ids))
            pos += 1 + n
        if pos != len(data):
            raise BadField(f"capabilities: {len(data) - pos} trailing bytes")
        if not lists[0]:
            raise BadField("capabilities list no mic codec")
        return cls(
            firmware=(major, minor, patch),
            has_speaker=bool(flags & CapabilityFlag.HAS_SPEAKER),
            has_aec=bool(flags & CapabilityFlag.HAS_AEC),
            has_button=bool(flags & CapabilityFlag.HAS_BUTTON),
            has_battery=bool(flags & CapabilityFlag.HAS_BATTERY),
            has_storage=bool(flags & CapabilityFlag.HAS_STORAGE),
            mic_codecs=lists[0],
            speaker_codecs=lists[1],
            speaker_buffer_ms=buffer_ms,
        )


# -- standard and omi characteristics --------------------------------------------------------------
def parse_battery(data: bytes | bytearray) -> int:
    """Battery Level (0x2A19): one byte, percent."""
    if len(data) != 1:
        raise TruncatedPacket(f"battery level of {len(data)} bytes; expected 1")
    if data[0] > 100:
        raise BadField(f"battery level {data[0]} above 100")
    return data[0]


def encode_omi_button(button: Button) -> bytes:
    return struct.pack("<ii", int(button), 0)


def parse_omi_button(data: bytes | bytearray) -> Button:
    """Omi button notification: 8 bytes, int32[2] LE; element 0 is the gesture."""
    if len(data) != 8:
        raise TruncatedPacket(f"omi button event of {len(data)} bytes; expected 8")
    code, _ = struct.unpack("<ii", data)
    try:
        return Button(code)
    except ValueError:
        raise BadField(f"omi button code {code} unknown") from None


OMI_CODECS = frozenset(
    {
        CodecId.PCM16_16K,
        CodecId.PCM16_8K,
        CodecId.MULAW_16K,
        CodecId.MULAW_8K,
        CodecId.OPUS_16K_10MS,
        CodecId.OPUS_16K_20MS,
    }
)


def parse_omi_codec(data: bytes | bytearray) -> CodecId:
    """Omi codec characteristic: one byte; ids the omi firmware does not use are rejected."""
    if len(data) != 1:
        raise TruncatedPacket(f"omi codec of {len(data)} bytes; expected 1")
    codec = codec_spec(data[0]).id
    if codec not in OMI_CODECS:
        raise BadField(f"codec {codec.name} is not an omi codec")
    return codec


class OmiFeature(IntEnum):
    SPEAKER = 1 << 0
    ACCELEROMETER = 1 << 1
    BUTTON = 1 << 2
    BATTERY = 1 << 3
    USB = 1 << 4
    HAPTIC = 1 << 5
    OFFLINE_STORAGE = 1 << 6
    LED = 1 << 7
    MIC_GAIN = 1 << 8


def parse_omi_features(data: bytes | bytearray) -> int:
    if len(data) != 4:
        raise TruncatedPacket(f"omi features of {len(data)} bytes; expected 4")
    return struct.unpack("<I", data)[0]
