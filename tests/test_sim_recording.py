"""Conversation recordings on the headset clock, offline storage, and the world's defaults and cleanup."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest
from bleak import BleakScanner

from companion.protocol import PlaybackEvent, SetVolume
from firmware_sim import ConfigError, HeadsetConfig, SimScanner, SimWorld, default_world, read_recording
from firmware_sim.recording import Recording
from tests.fixtures.sim import connect_host, other_tasks, until


async def test_voice_to_voice_latency_reads_off_the_recording(sim_world: SimWorld, tmp_path: Path) -> None:
    hs = sim_world.add_headset(HeadsetConfig(name="Sim V2V", volume=100))
    host = await connect_host(sim_world, hs)
    await host.listen()
    path = tmp_path / "v2v.wav"
    rec = hs.start_recording(path)
    question = (3000 * np.sin(np.arange(12000) * 0.05)).astype(np.int16)
    end = await hs.mic.say(question)
    await asyncio.sleep(0.25)  # the "service" thinks
    answer = np.full(4800, 2000, dtype=np.int16)
    await host.play(answer)
    await host.wait_playback(PlaybackEvent.DRAINED)
    hs.stop_recording()
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 16000)
        assert w.getnframes() == len(rec.left) == len(rec.right)
        assert w.getnframes() % 320 == 0  # whole ticks
    left, right = read_recording(path)
    speech_end = int(np.flatnonzero(left)[-1]) + 1
    reply_start = int(np.flatnonzero(right)[0])
    latency = (reply_start - speech_end) / 16000
    started = next(e.t for e in hs.speaker.events if e.event is PlaybackEvent.STARTED)
    # the file and the headset's own clock agree to the sample
    assert rec.time_of(speech_end) == pytest.approx(end, abs=1e-9)
    assert rec.time_of(reply_start) == pytest.approx(started, abs=1e-9)
    assert latency == pytest.approx(started - end, abs=1e-9)
    assert 0.25 < latency < 0.5
    await host.client.disconnect()


async def test_omi_offline_storage_keeps_audio_while_no_host_is_connected(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(profile="omi", name="Omi Store", has_storage=True, storage_frames=20)
    storage = hs.storage
    assert storage is not None
    await until(lambda: storage.count >= 10, 2, "half the storage filled")
    ticks = round(hs.clock() / 0.02)
    assert storage.count in (ticks - 1, ticks) and storage.dropped == 0  # one 20 ms frame per tick
    await until(lambda: storage.dropped > 0, 2, "storage overflowing")
    assert storage.count == 20  # full: the oldest go
    host = await connect_host(sim_world, hs)
    kept = storage.count
    await host.listen()
    await until(lambda: len(host.mic_packets) >= 5, 2, "live audio")
    assert storage.count == kept  # connected: audio streams live instead
    assert len(storage.clear()) == kept and storage.count == 0
    await host.client.disconnect()


async def test_backend_uses_the_innermost_open_world(fast_backoff: None) -> None:
    before = other_tasks()
    async with SimWorld() as outer:
        outer.add_headset(name="Outer")
        async with SimWorld() as inner:
            inner.add_headset(name="Inner")
            assert default_world() is inner
            found = await BleakScanner.discover(timeout=0.25, backend=SimScanner, sim_socket=False)
            assert [d.name for d in found] == ["Inner"]
        assert default_world() is outer
        host = await connect_host(None, None, name="Outer")
        await host.command(SetVolume(20))
        assert outer.by_name("Outer").volume == 20
        # leave the client connected: closing the world must still end every task
    await asyncio.sleep(0)
    assert not host.client.is_connected and host.disconnects == 1
    assert not (other_tasks() - before)


async def test_world_needs_a_loop_and_unique_addresses(sim_world: SimWorld) -> None:
    sim_world.add_headset(name="A", address="C0:FF:EE:00:00:01")
    with pytest.raises(ConfigError, match="already taken"):
        sim_world.add_headset(name="B", address="c0:ff:ee:00:00:01")
    with pytest.raises(RuntimeError, match="running event loop"):
        await asyncio.to_thread(SimWorld().add_headset)


def test_length_channels_and_file_agree_after_every_block(tmp_path: Path) -> None:
    """The length is counted as blocks come (the headset asks for it every tick); it must stay the sum."""
    rng = np.random.default_rng(7)
    rec = Recording(tmp_path / "talk.wav", t0=12.5)
    assert rec.seconds == 0.0
    lefts, rights = [], []
    for n in (320, 320, 0, 320 // 2, 320):  # an empty block and a short one too
        left = rng.integers(-3000, 3000, n, dtype=np.int16)
        right = rng.integers(-3000, 3000, n, dtype=np.int16)
        rec.write(left, right)
        lefts.append(left)
        rights.append(right)
        assert rec.seconds == sum(len(x) for x in lefts) / 16000
    rec.close()
    rec.write(np.ones(320, np.int16), np.ones(320, np.int16))  # after close: ignored
    expected_left, expected_right = np.concatenate(lefts), np.concatenate(rights)
    assert rec.seconds == len(expected_left) / 16000 == 0.07
    assert np.array_equal(rec.left, expected_left) and np.array_equal(rec.right, expected_right)
    on_disk = read_recording(tmp_path / "talk.wav")
    assert np.array_equal(on_disk[0], expected_left) and np.array_equal(on_disk[1], expected_right)
    assert rec.time_of(len(expected_left)) == 12.5 + rec.seconds
