"""What a headset tells a host about itself: its capabilities record, its omi feature bits, and which
speaker codec it prefers on the current link. Pure functions of the headset's config (and the link)."""

from __future__ import annotations

from companion.protocol import ATT_HEADER, Capabilities, CodecId, codec_spec
from companion.protocol.control import OmiFeature
from companion.protocol.framing import COMPANION_HEADER

from ..config import SAMPLE_RATE, HeadsetConfig
from ..radio import Link

PCM16_BYTES_PER_S = 2 * SAMPLE_RATE
PCM_HEADROOM = 1.5  # the speaker prefers PCM16 when the link carries 1.5x its rate


def preferred_speaker_codec(config: HeadsetConfig, link: Link | None) -> CodecId | None:
    """PCM16 if the link carries it with headroom, else the first opus codec, else the first offered; None
    without a speaker."""
    if not config.has_speaker:
        return None
    codecs = config.speaker_codecs or ()
    if (
        CodecId.PCM16_16K in codecs
        and link is not None
        and link.config.payload_rate(link.mtu) * (1 - COMPANION_HEADER / max(link.mtu - ATT_HEADER, 1))
        >= PCM16_BYTES_PER_S * PCM_HEADROOM
    ):
        return CodecId.PCM16_16K
    for c in codecs:
        if codec_spec(c).family == "opus":
            return CodecId(c)
    return CodecId(codecs[0])


def capabilities(config: HeadsetConfig, mic_codec: CodecId, speaker_codec: CodecId | None) -> Capabilities:
    """The CAPABILITIES record; the current mic codec and the preferred speaker codec come first."""
    assert config.firmware_version is not None  # HeadsetConfig fills in the profile's default
    mic = (mic_codec, *(c for c in config.mic_codecs or () if c != mic_codec))
    spk = tuple(config.speaker_codecs or ())
    if speaker_codec is not None:
        spk = (speaker_codec, *(c for c in spk if c != speaker_codec))
    return Capabilities(
        firmware=config.firmware_version,
        has_speaker=bool(config.has_speaker),
        has_aec=config.has_aec,
        has_button=config.has_button,
        has_battery=config.has_battery,
        mic_codecs=tuple(CodecId(c) for c in mic),
        speaker_codecs=tuple(CodecId(c) for c in spk),
        speaker_buffer_ms=config.speaker_buffer_ms,
        has_storage=config.has_storage,
    )


def omi_features(config: HeadsetConfig, *, is_omi: bool) -> int:
    """The omi FEATURES bits for this headset's hardware."""
    bits = 0
    if config.has_button:
        bits |= OmiFeature.BUTTON
    if config.has_battery:
        bits |= OmiFeature.BATTERY
    if config.has_haptic:
        bits |= OmiFeature.HAPTIC
    if config.has_storage:
        bits |= OmiFeature.OFFLINE_STORAGE
    if is_omi:
        bits |= OmiFeature.LED | OmiFeature.MIC_GAIN  # transport.c sets both on every build
    return bits
