"""Simulator configuration: profile defaults and clear errors for bad values (pure logic, no I/O)."""

from __future__ import annotations

import pytest

from companion.protocol import CodecId, Profile
from firmware_sim import ConfigError, HeadsetConfig, OpusSettings, RadioConfig


def test_companion_defaults() -> None:
    c = HeadsetConfig()
    assert c.profile is Profile.COMPANION
    assert c.name == "Companion Sim"
    assert c.mic_codec is CodecId.OPUS_16K_20MS
    assert c.mic_opus == OpusSettings(application="voip", bitrate=24000, fec=True)
    assert c.has_speaker and not c.has_haptic
    assert c.speaker_capacity_frames == 20
    assert c.battery_notify_s == 0.0  # notify on change
    assert c.min_stream_mtu == 23


def test_omi_defaults_follow_the_shipping_firmware() -> None:
    c = HeadsetConfig(profile="omi")
    assert c.name == "Omi"
    assert c.mic_codec is CodecId.OPUS_16K_20MS
    # config.h: CELT restricted low delay, 32 kbit/s unconstrained VBR, complexity 3, no FEC, <= 160 B
    assert c.mic_opus == OpusSettings(
        application="lowdelay", bitrate=32000, fec=False, complexity=3, constrained_vbr=False, max_bytes=160
    )
    assert not c.has_speaker and c.has_haptic
    assert c.battery_notify_s == 5.0
    assert c.min_stream_mtu == 100 and c.requests_mtu
    assert (c.manufacturer, c.model, c.hardware_revision) == ("Based Hardware", "Omi CV 1", "5.0")
    assert c.firmware_version[:2] == (3, 0)  # type: ignore[index]
    devkit = c.replace(variant="devkit")
    assert devkit.mic_codec is CodecId.OPUS_16K_10MS and devkit.model == "Omi DevKit 2"
    with pytest.raises(ConfigError, match="variant"):
        HeadsetConfig(variant="devkit")  # a companion headset has no variants


def test_codec_names_and_copies_keep_values() -> None:
    c = HeadsetConfig(mic_codec="pcm16", speaker_codec="mulaw")
    assert c.mic_codec is CodecId.PCM16_16K and c.speaker_codec is CodecId.MULAW_16K
    # PCM16's id is 0: a copy must not mistake it for "unset"
    assert c.replace(serial="X").mic_codec is CodecId.PCM16_16K


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"profile": "airpods"}, "profile"),
        ({"name": ""}, "name"),
        ({"name": "x" * 40}, "name"),
        ({"address": "nope"}, "address"),
        ({"mic_codec": "flac"}, "mic_codec"),
        ({"mic_codec": 99}, "mic_codec"),
        ({"volume": 101}, "volume"),
        ({"speaker_buffer_ms": 10}, "speaker_buffer_ms"),
        ({"playout_start_ms": 900}, "playout_start_ms"),
        ({"battery_percent": -1}, "battery_percent"),
        ({"echo_gain": float("nan")}, "echo_gain"),
        ({"profile": "omi", "has_speaker": True}, "omi"),
        ({"profile": "omi", "mic_codec": "opus60"}, "omi"),
        ({"mic_codec": "opus60", "mic_codecs": (CodecId.OPUS_16K_20MS,)}, "mic_codecs"),
    ],
)
def test_bad_headset_values_name_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        HeadsetConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_mtu": 22}, "max_mtu"),
        ({"max_mtu": 600}, "max_mtu"),
        ({"max_mtu": 100.5}, "max_mtu"),
        ({"interval_ms": 5}, "interval_ms"),
        ({"packets_per_event": 0}, "packets_per_event"),
        ({"loss": 1.5}, "loss"),
        ({"reorder": -0.1}, "reorder"),
        ({"duplicate": "a lot"}, "duplicate"),
        ({"tx_ring_frames": 0}, "tx_ring_frames"),
        ({"latency_ms": -1}, "latency_ms"),
    ],
)
def test_bad_radio_values_name_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RadioConfig(**kwargs)  # type: ignore[arg-type]


def test_radio_capacity_follows_mtu() -> None:
    r = RadioConfig()
    # 6 packets per 15 ms event: 400 packets/s; MTU 23 leaves 20 bytes each, MTU 247 leaves 244
    assert r.payload_rate(23) == pytest.approx(8000)
    assert r.payload_rate(247) == pytest.approx(97600)
    assert r.connect_delay_ms == 30


def test_switching_profile_resets_profile_defaults() -> None:
    c = HeadsetConfig(volume=40).replace(profile="omi")
    assert c.name == "Omi" and not c.has_speaker and c.volume == 40


def test_replace_validates_like_a_new_config() -> None:
    c = HeadsetConfig()
    with pytest.raises(ConfigError, match=r"volume = 120 is outside 0\.\.100"):
        c.replace(volume=120)
    with pytest.raises(ConfigError, match="playout_start_ms"):
        c.replace(speaker_buffer_ms=40, playout_start_ms=200)
    with pytest.raises(ConfigError, match="nonsense"):
        c.replace(nonsense=1)
    assert c.replace(volume=10).volume == 10 and c.volume == 80  # a copy; the original is frozen
    with pytest.raises(ValueError, match="frozen"):
        c.volume = 10  # type: ignore[misc]
    r = RadioConfig(interval_ms=20)
    assert r.replace(interval_ms=50).connect_delay_ms == 100  # derived again from the new interval
    with pytest.raises(ConfigError, match="loss"):
        r.replace(loss=2)
    opus = OpusSettings()
    with pytest.raises(ConfigError, match=r"bitrate = 1 is outside 6000\.\.128000"):
        opus.replace(bitrate=1)


def test_numbers_refuse_booleans_and_nested_errors_name_the_path() -> None:
    with pytest.raises(ConfigError, match="volume: must be a number"):
        HeadsetConfig(volume=True)
    with pytest.raises(ConfigError, match=r"mic_opus.*bitrate"):
        HeadsetConfig(mic_opus={"bitrate": 3})  # type: ignore[arg-type]
