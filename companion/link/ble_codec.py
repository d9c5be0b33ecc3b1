"""Which codecs a BLE link uses: the headset's offer, the host's preference and what the radio can carry.

Pure functions (no I/O), so the choice is tested without a radio (tests/test_ble_parts.py).
"""

from __future__ import annotations

import math

from companion.protocol import CodecId, Profile, codec_spec, max_payload

from .base import SAMPLE_RATE

#: Preference order when the host picks codecs; the first the headset supports and the link can carry wins.
MIC_PREFERENCE = (CodecId.OPUS_16K_20MS, CodecId.PCM16_16K, CodecId.MULAW_16K, CodecId.OPUS_16K_60MS)
SPEAKER_PREFERENCE = (CodecId.PCM16_16K, CodecId.OPUS_16K_20MS, CodecId.MULAW_16K, CodecId.OPUS_16K_60MS)
#: Rough bytes per 20 ms for codecs without a fixed size, used only to judge whether a link can carry them.
TYPICAL_FRAME_BYTES = {"pcm16": 640, "mulaw": 320, "opus": 80}


def codec_fits(codec: CodecId, mtu: int, budget_per_s: int, profile: Profile = Profile.COMPANION) -> bool:
    """Whether ``codec`` needs fewer packets per second than the link budget at this MTU."""
    spec = codec_spec(codec)
    frame_ms = spec.frame_ms or 20
    frame_bytes = TYPICAL_FRAME_BYTES[spec.family] * frame_ms // 20 * spec.sample_rate // SAMPLE_RATE
    packets = math.ceil(frame_bytes / max_payload(profile, mtu)) * 1000 / frame_ms
    return packets <= budget_per_s


def choose_codec(
    offered: tuple[CodecId, ...],
    preference: tuple[CodecId, ...],
    wanted: CodecId | None,
    mtu: int,
    budget: int,
) -> CodecId:
    """Pick a codec the headset offers: the wanted one if it fits, else the first preferred that fits, else
    the smallest offered (a link that carries nothing well still carries that best)."""
    if wanted is not None and wanted in offered and codec_fits(wanted, mtu, budget):
        return wanted
    for codec in (*preference, *offered):
        if codec in offered and codec_fits(codec, mtu, budget):
            return codec
    return min(offered, key=lambda c: TYPICAL_FRAME_BYTES[codec_spec(c).family])
