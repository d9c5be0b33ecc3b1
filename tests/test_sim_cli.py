"""``python -m firmware_sim``'s options are derived from the config models: every field has a flag or is
left out on purpose, values reach the models, and a bad value names the flag and the field (pure logic)."""

from __future__ import annotations

import argparse

import pytest

from companion.protocol import CodecId, Profile
from firmware_sim import ConfigError, HeadsetConfig, RadioConfig
from firmware_sim.cli import RunOptions, build_parser, configs, explain, main, run_options
from firmware_sim.options import dest_of, flagged_fields

# Fields with no flag, and why: per-headset identity the world assigns, nested encoder settings that
# follow the profile, and runtime state tests change through the world.
NOT_FLAGS = {
    HeadsetConfig: {"address", "serial", "mic_opus"},
    RadioConfig: {"in_range"},
    RunOptions: set(),
}

# Flags that scripts, tests and docs pass today; they keep their names and meaning.
KEPT_FLAGS = {
    "--profile": ("profile", "omi", Profile.OMI),
    "--variant": ("variant", "devkit", "devkit"),
    "--codec": ("mic_codec", "pcm16", CodecId.PCM16_16K),
    "--speaker-buffer-ms": ("speaker_buffer_ms", "200", 200),
    "--echo-gain": ("echo_gain", "0.5", 0.5),
    "--noise": ("mic_noise_rms", "30", 30.0),
    "--echo-db": ("echo_db", "-6", -6.0),
    "--bystander-db": ("bystander_db", "-3", -3.0),
    "--noise-snr": ("noise_snr_db", "20", 20.0),
    "--battery": ("battery_percent", "55", 55.0),
    "--mtu": ("max_mtu", "185", 185),
    "--interval-ms": ("interval_ms", "30", 30.0),
    "--packets-per-event": ("packets_per_event", "4", 4),
    "--latency-ms": ("latency_ms", "12", 12.0),
    "--loss": ("loss", "0.1", 0.1),
    "--dup": ("duplicate", "0.2", 0.2),
    "--reorder": ("reorder", "0.05", 0.05),
    "--downlink-loss": ("downlink_loss", "0.3", 0.3),
    "--seed": ("seed", "7", 7),
}


@pytest.mark.parametrize("model", [HeadsetConfig, RadioConfig, RunOptions])
def test_every_field_has_a_flag_or_is_left_out_on_purpose(model: type) -> None:
    flagged = {name for name, _info, _extra in flagged_fields(model)}
    assert flagged | NOT_FLAGS[model] == set(model.model_fields)
    assert not flagged & NOT_FLAGS[model]
    options = build_parser()._option_string_actions
    for _name, info, extra in flagged_fields(model):
        action = options[str(extra["flag"])]
        assert action.help and info.description and action.help.startswith(info.description)


def test_kept_flags_reach_the_models() -> None:
    argv = [part for flag, (_f, text, _v) in KEPT_FLAGS.items() for part in (flag, text)]
    argv += ["--aec", "--storage", "--auto-mtu", "--no-device-mtu", "--name", "Pod"]
    ((hs, radio),) = configs(build_parser().parse_args(argv))
    for flag, (field, _text, value) in KEPT_FLAGS.items():
        got = getattr(hs if field in HeadsetConfig.model_fields else radio, field)
        assert got == value, flag
    assert hs.seed == radio.seed == 7
    assert hs.has_aec and hs.has_storage and radio.auto_mtu and hs.requests_mtu is False
    assert hs.name == "Pod"


def test_unset_flags_leave_the_profile_defaults() -> None:
    ((hs, radio),) = configs(build_parser().parse_args(["--profile", "omi"]))
    assert hs == HeadsetConfig(profile="omi") and radio == RadioConfig()
    assert hs.requests_mtu and hs.battery_notify_s == 5.0  # not overwritten by an argparse default


def test_pairs_and_derived_flags() -> None:
    args = build_parser().parse_args(
        [
            *("--count", "2", "--seed", "3", "--no-speaker", "--speaker-codecs", "pcm16", "opus"),
            *("--bystander-gap-s", "0.5", "2", "--firmware-version", "2", "1", "0", "--no-button"),
        ]
    )
    pairs = configs(args)
    assert [(h.name, h.seed, r.seed) for h, r in pairs] == [
        ("Companion Sim-1", 3, 3),
        ("Companion Sim-2", 4, 4),
    ]
    hs = pairs[0][0]
    assert not hs.has_speaker and not hs.has_button
    assert hs.speaker_codecs == (CodecId.PCM16_16K, CodecId.OPUS_16K_20MS)
    assert hs.bystander_gap_s == (0.5, 2.0) and hs.firmware_version == (2, 1, 0)
    assert run_options(args) == RunOptions(count=2)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--loss", "1.5"], "argument --loss: loss = 1.5 is outside 0.0..0.9"),
        (["--codec", "flac"], "argument --codec: mic_codec: unknown codec 'flac'"),
        (["--count", "0"], "argument --count: count = 0 is outside 1..1000"),
        (["--mtu", "many"], "argument --mtu: max_mtu: Input should be a valid integer"),
        (["--profile", "airpods"], "argument --profile: invalid choice"),
    ],
)
def test_a_bad_value_names_the_flag_and_field(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2 and says in capsys.readouterr().err


def test_a_cross_field_error_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--speaker-buffer-ms", "100", "--playout-start-ms", "200"]) == 2
    assert "--playout-start-ms: playout_start_ms = 200 is outside 0..100" in capsys.readouterr().err
    assert explain(ConfigError("no field here")) == "no field here"


def test_help_shows_ranges_and_defaults() -> None:
    text = build_parser().format_help()
    assert "--volume PCT" in text and "(0..100, default 80)" in text
    assert "--button, --no-button" in text and "--device-mtu, --no-device-mtu" in text
    assert isinstance(build_parser(), argparse.ArgumentParser)
    assert dest_of("--no-device-mtu") == "no_device_mtu"
