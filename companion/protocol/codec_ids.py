"""Codec identifiers carried on the wire.

The numbering is the Omi/Friend firmware's (0, 1, 10, 11, 20, 21) so both profiles share one table; 22 (Opus
60 ms) is our own. Every codec runs at a fixed sample rate; Opus ids also fix the frame duration.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .errors import UnknownCodec


class CodecId(IntEnum):
    PCM16_16K = 0
    PCM16_8K = 1
    MULAW_16K = 10
    MULAW_8K = 11
    OPUS_16K_10MS = 20
    OPUS_16K_20MS = 21
    OPUS_16K_60MS = 22


@dataclass(frozen=True)
class CodecSpec:
    """What a codec id means: family ("pcm16", "mulaw", "opus"), sample rate, fixed frame length if any."""

    id: CodecId
    family: str
    sample_rate: int
    frame_ms: int | None  # None: any whole number of samples per frame (PCM, mu-law)

    @property
    def name(self) -> str:
        suffix = f"-{self.frame_ms}ms" if self.family == "opus" else ""
        return f"{self.family}-{self.sample_rate // 1000}k{suffix}"


CODECS: dict[CodecId, CodecSpec] = {
    CodecId.PCM16_16K: CodecSpec(CodecId.PCM16_16K, "pcm16", 16000, None),
    CodecId.PCM16_8K: CodecSpec(CodecId.PCM16_8K, "pcm16", 8000, None),
    CodecId.MULAW_16K: CodecSpec(CodecId.MULAW_16K, "mulaw", 16000, None),
    CodecId.MULAW_8K: CodecSpec(CodecId.MULAW_8K, "mulaw", 8000, None),
    CodecId.OPUS_16K_10MS: CodecSpec(CodecId.OPUS_16K_10MS, "opus", 16000, 10),
    CodecId.OPUS_16K_20MS: CodecSpec(CodecId.OPUS_16K_20MS, "opus", 16000, 20),
    CodecId.OPUS_16K_60MS: CodecSpec(CodecId.OPUS_16K_60MS, "opus", 16000, 60),
}

#: Names accepted on the command line and in config files.
CODEC_NAMES: dict[str, CodecId] = {
    "pcm16": CodecId.PCM16_16K,
    "mulaw": CodecId.MULAW_16K,
    "opus": CodecId.OPUS_16K_20MS,
    "opus10": CodecId.OPUS_16K_10MS,
    "opus20": CodecId.OPUS_16K_20MS,
    "opus60": CodecId.OPUS_16K_60MS,
}


def codec_spec(value: int) -> CodecSpec:
    """Look a wire codec id up; unknown ids raise :class:`UnknownCodec`."""
    try:
        return CODECS[CodecId(value)]
    except ValueError:
        raise UnknownCodec(f"unknown codec id {value}") from None


def codec_by_name(name: str) -> CodecId:
    try:
        return CODEC_NAMES[name.lower()]
    except KeyError:
        raise UnknownCodec(f"unknown codec {name!r}; choose one of {', '.join(CODEC_NAMES)}") from None
