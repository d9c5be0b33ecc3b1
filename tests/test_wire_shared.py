"""The wire pieces both sides share: the host's and the simulator's encoders agree byte for byte."""

from __future__ import annotations

import pytest

from companion.protocol import (
    ATT_HEADER,
    Capabilities,
    CodecId,
    ErrorReport,
    decode_control,
    encode_omi_features,
    encode_time_sync,
    parse_omi_features,
    parse_time_sync,
)
from companion.protocol.control import OmiFeature
from companion.protocol.messages import MAX_ERROR_TEXT, error_text_room
from firmware_sim import HeadsetConfig
from firmware_sim.firmware.descriptors import capabilities, omi_features, preferred_speaker_codec


@pytest.mark.parametrize("mtu", [23, 50, 247, 517])
def test_an_error_text_cut_to_its_room_fits_one_notification(mtu: int) -> None:
    room = error_text_room(mtu)
    assert room == min(MAX_ERROR_TEXT, mtu - ATT_HEADER - 3)
    message = ErrorReport(4, "x" * 1000)
    wire = ErrorReport(message.code, message.text[:room]).encode()
    assert len(wire) <= mtu - ATT_HEADER
    assert decode_control(wire) == ErrorReport(4, "x" * room)


def test_time_sync_is_one_u32_clock() -> None:
    assert encode_time_sync(1_764_633_600) == (1_764_633_600).to_bytes(4, "little")
    assert parse_time_sync(encode_time_sync(1_764_633_600)) == 1_764_633_600


def test_the_headset_describes_itself_with_the_protocols_types() -> None:
    omi = HeadsetConfig(profile="omi", name="Omi")
    bits = omi_features(omi, is_omi=True)
    assert parse_omi_features(encode_omi_features(bits)) == bits
    assert bits & OmiFeature.LED and bits & OmiFeature.MIC_GAIN  # every omi build sets both
    spk = HeadsetConfig(name="Spk")
    assert isinstance(spk.mic_codec, CodecId)
    preferred = preferred_speaker_codec(spk, None)  # no link yet: not PCM16, which needs a fast one
    assert preferred is not None and preferred is not CodecId.PCM16_16K
    caps = capabilities(spk, spk.mic_codec, preferred)
    assert Capabilities.decode(caps.encode()) == caps
    assert caps.mic_codecs[0] is spk.mic_codec and caps.speaker_codecs[0] is preferred
