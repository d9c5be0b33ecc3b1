"""Flow status and capabilities of the `companion` profile, the standard and omi characteristics.

The control messages live in :mod:`.messages`; their names are re-exported here for older imports.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from .codec_ids import CodecId, codec_spec
from .errors import BadField, TruncatedPacket
from .messages import (  # noqa: F401 - re-exported for older imports
    Button,
    DeviceState,
    ErrorCode,
    Msg,
    PlaybackEvent,
    TtsPhase,
    encode_time_sync,
    parse_time_sync,
)

# -- flow control ----------------------------------------------------------------------------------
FLOW_STATUS_SIZE = 10
FLOW_STATUS_WITH_MIC_SIZE = 14  # with the mic position (headsets that have a mic stream)


@dataclass(frozen=True, slots=True)
class FlowStatus:
    """The speaker's flow status, notified by the headset on the FLOW characteristic.

    ``credits`` is cumulative (mod 2^32): the host may have sent at most ``credits`` speaker frames since
    the stream started. The headset raises it by one for every frame it plays out (and re-grants a whole
    buffer after an abort), so a lost or late notification never leaks credit. ``buffered_ms`` is what the
    playout buffer holds, ``underruns`` counts 20 ms ticks the speaker starved while a reply was playing.
    ``mic_samples`` (optional, mod 2^32) is how far the mic stream of this connection had got when the status
    was taken: the samples of every mic frame queued for sending so far. It places the speaker's progress on
    the mic's own clock, which the host's echo canceller needs; a status without it is the older 10 bytes.
    """

    credits: int
    buffered_ms: int
    underruns: int
    capacity_frames: int
    mic_samples: int | None = None

    def encode(self) -> bytes:
        head = struct.pack(
            "<IHHH", self.credits % (1 << 32), self.buffered_ms, self.underruns % 65536, self.capacity_frames
        )
        if self.mic_samples is None:
            return head
        return head + struct.pack("<I", self.mic_samples % (1 << 32))

    @classmethod
    def decode(cls, data: bytes | bytearray) -> FlowStatus:
        if len(data) not in (FLOW_STATUS_SIZE, FLOW_STATUS_WITH_MIC_SIZE):
            sizes = f"{FLOW_STATUS_SIZE} or {FLOW_STATUS_WITH_MIC_SIZE}"
            raise TruncatedPacket(f"flow status of {len(data)} bytes; expected {sizes}")
        credits, buffered, underruns, capacity = struct.unpack_from("<IHHH", data)
        if capacity == 0:
            raise BadField("flow status with zero buffer capacity")
        mic = struct.unpack_from("<I", data, FLOW_STATUS_SIZE)[0] if len(data) > FLOW_STATUS_SIZE else None
        return cls(credits, buffered, underruns, capacity, mic)


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


def encode_battery(percent: int) -> bytes:
    """Battery Level (0x2A19) from a percentage, clamped to 0-100 as the characteristic requires."""
    return bytes((max(0, min(100, int(percent))),))


def encode_omi_button(button: Button) -> bytes:
    return struct.pack("<ii", int(button), 0)


def parse_omi_button(data: bytes | bytearray) -> Button:
    """Omi button notification: 8 bytes, int32[2] LE; element 0 is the gesture."""
    if len(data) != 8:
        raise TruncatedPacket(f"omi button event of {len(data)} bytes; expected 8")
    code: int = struct.unpack("<ii", data)[0]
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


def encode_omi_codec(codec: CodecId) -> bytes:
    """Omi codec characteristic: the codec id, one byte."""
    return bytes((int(codec),))


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


def encode_omi_features(features: int) -> bytes:
    """Omi features characteristic: u32 LE bit set of OmiFeature."""
    return struct.pack("<I", int(features))


def parse_omi_features(data: bytes | bytearray) -> int:
    if len(data) != 4:
        raise TruncatedPacket(f"omi features of {len(data)} bytes; expected 4")
    value: int = struct.unpack("<I", data)[0]
    return value
