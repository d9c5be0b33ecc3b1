"""The open-ear world the virtual headset's mic hears: its own speaker through an echo path, bystanders at a
level relative to the wearer, noise at an SNR — and the ground truth of each, kept apart from the wearer."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import numpy as np
import pytest

from companion.protocol import PlaybackEvent
from firmware_sim import ConfigError, HeadsetConfig, SimWorld
from firmware_sim.cli import build_parser, configs
from firmware_sim.firmware.acoustics import Acoustics, echo_impulse_response
from firmware_sim.recording import read_recording
from tests.fixtures.sim import connect_host
from tests.fixtures.speech import Utterance

TICK = 320


def _db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def _run(acoustics: Acoustics, voice: np.ndarray, played: np.ndarray) -> tuple[np.ndarray, list]:
    mics, parts = [], []
    for i in range(0, len(voice), TICK):
        mic, p = acoustics.mix(
            voice[i : i + TICK], played[i : i + TICK], i / 16000, "w" if voice[i : i + TICK].any() else None
        )
        mics.append(mic)
        parts.append(p)
    return np.concatenate(mics), parts


@pytest.mark.parametrize("level", [-6.0, -12.0, -20.0])
def test_echo_comes_back_at_the_set_level_after_the_delay(level: float) -> None:
    rng = np.random.default_rng(1)
    played = np.clip(rng.normal(0, 3000, 16000 * 2), -32768, 32767).astype(np.int16)
    silence = np.zeros_like(played)
    mic, parts = _run(Acoustics(HeadsetConfig(echo_db=level, seed=3)), silence, played)
    echo = np.concatenate([p.echo for p in parts])
    assert abs((_db(echo[1600:]) - _db(played[1600:])) - level) < 0.5
    assert np.allclose(mic, np.clip(np.round(echo), -32768, 32767), atol=1)
    h = echo_impulse_response(level, 4.0, 150.0, seed=3)
    assert np.argmax(np.abs(h)) == 64  # 4 ms at 16 kHz: the direct sound
    assert np.array_equal(h, echo_impulse_response(level, 4.0, 150.0, seed=3))  # deterministic


def test_no_echo_when_the_headset_cancels_it() -> None:
    played = np.full(3200, 5000, dtype=np.int16)
    mic, _ = _run(Acoustics(HeadsetConfig(echo_db=-6, has_aec=True)), np.zeros_like(played), played)
    assert not mic.any()


def test_bystander_and_noise_levels_follow_the_wearer(speech_set: list[Utterance]) -> None:
    wearer = speech_set[0].pcm()
    other = speech_set[1]
    cfg = HeadsetConfig(
        bystanders=(str(other.path),), bystander_db=-6.0, bystander_gap_s=(0.5, 0.5), noise_snr_db=20
    )
    from firmware_sim.firmware import load_wav

    ac = Acoustics(cfg, [(other.path.name, load_wav(other.path))])
    voice = np.concatenate((wearer, np.zeros(16000 * 22, dtype=np.int16)))
    voice = voice[: len(voice) // TICK * TICK]
    _, parts = _run(ac, voice, np.zeros_like(voice))
    by = np.concatenate([p.bystander for p in parts])
    noise = np.concatenate([p.noise for p in parts])
    speech_db = 20 * math.log10(ac.speech_rms)
    # the first clip started before the wearer's level was known (nominal); the later ones follow the wearer
    later = [
        s
        for s in ac.segments
        if s.source == "bystander" and s.start > len(wearer) / 16000 and not math.isnan(s.end)
    ]
    assert later, ac.segments
    s = later[0]
    clip = by[int(s.start * 16000) : int(s.end * 16000)]
    clip = clip[: len(clip) // TICK * TICK].reshape(-1, TICK)
    active = clip[(clip**2).mean(axis=1) > (32768 * 10 ** (-50 / 20)) ** 2]
    assert abs(_db(active) - speech_db - (-6.0)) < 1.0
    assert abs(_db(noise[len(wearer) + TICK :]) - (speech_db - 20)) < 0.5  # once the level is known
    wearer_segments = [s for s in ac.segments if s.source == "wearer"]
    assert len(wearer_segments) == 1 and abs(wearer_segments[0].end - len(wearer) / 16000) < 0.03


def test_bad_acoustics_settings_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bystanders"):
        HeadsetConfig(bystanders=(str(tmp_path / "missing.wav"),))
    with pytest.raises(ConfigError, match="echo_db"):
        HeadsetConfig(echo_db=40)
    with pytest.raises(ConfigError, match="noise_snr_db"):
        HeadsetConfig(noise_snr_db=float("nan"))


def test_cli_flags_reach_the_headset_config(speech_set: list[Utterance]) -> None:
    args = build_parser().parse_args(
        [
            "--echo-db",
            "-12",
            "--bystander",
            str(speech_set[0].path),
            "--bystander",
            str(speech_set[1].path),
            "--bystander-db",
            "-6",
            "--noise-snr",
            "30",
        ]
    )
    ((hs, _),) = configs(args)
    assert hs.echo_db == -12 and hs.bystander_db == -6 and hs.noise_snr_db == 30
    assert hs.bystanders == (str(speech_set[0].path), str(speech_set[1].path))


async def test_recording_keeps_the_wearer_clean_and_writes_the_ground_truth(
    sim_world: SimWorld, tmp_path: Path, speech_set: list[Utterance]
) -> None:
    other = speech_set[2]
    hs = sim_world.add_headset(
        HeadsetConfig(
            name="Sim Ear",
            echo_db=-6,
            bystanders=(str(other.path),),
            bystander_db=-6,
            seed=5,
            bystander_gap_s=(0.2, 0.2),
            mic_codec="pcm16",
        )
    )
    host = await connect_host(sim_world, hs)
    await host.listen()
    path = tmp_path / "conv.wav"
    hs.start_recording(path)
    wearer = speech_set[3].pcm()
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.int16)
    said = asyncio.create_task(hs.mic.say(wearer))
    await host.play(tone)
    await host.wait_playback(PlaybackEvent.DRAINED)
    await said
    await asyncio.sleep(0.1)
    hs.stop_recording()
    decoded, _ = await host.decode_mic()
    await host.client.disconnect()

    left, right = read_recording(path)
    rec = hs.last_recording
    assert rec is not None
    start = int(np.flatnonzero(left)[0])
    assert np.array_equal(left[start : start + len(wearer)], wearer)  # left: the wearer alone
    echo = rec.world("echo")
    assert right.any() and echo.any()
    assert abs(_db(echo[echo != 0]) - _db(right[right != 0]) - (-6)) < 1.5
    assert rec.world("bystander").any()
    truth = json.loads(rec.sidecar(".json").read_text())
    assert truth["echo_db"] == -6 and truth["bystanders"] == [other.path.name]
    sources = {s["source"] for s in truth["segments"]}
    assert sources == {"wearer", "bystander"}
    assert rec.sidecar(".wav").exists()
    # the mic carried wearer + echo + bystander: more energy than the wearer alone
    assert _db(decoded) > _db(wearer) - 3
