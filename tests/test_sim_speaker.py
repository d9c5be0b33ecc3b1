"""The headset speaker: replies written over GATT play out in real time, land in the recording's right
channel, never overflow the buffer while the host keeps to its credits, and stop at once on ABORT."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from companion.protocol import Abort, CodecId, PlaybackEvent, SetVolume
from firmware_sim import HeadsetConfig, RadioConfig, SimWorld, read_recording
from tests.fixtures.sim import caught_up, connect_host, find_offset, snr_db, until
from tests.fixtures.speech import Utterance


@pytest.fixture(scope="module")
def reply(speech_set: list[Utterance]) -> np.ndarray:
    """About 1.9 s of real speech standing in for a TTS reply."""
    return min((u for u in speech_set if u.seconds >= 1.5), key=lambda u: u.seconds).pcm()


async def test_reply_plays_out_into_the_recordings_right_channel(
    sim_world: SimWorld, reply: np.ndarray, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    hs = sim_world.add_headset(name="Sim Spk", volume=100)
    host = await connect_host(sim_world, hs)
    await host.listen()
    path = tmp_path / "conversation.wav"
    hs.start_recording(path)
    await host.play(reply)
    await host.wait_playback(PlaybackEvent.DRAINED)
    rec = hs.stop_recording()
    assert rec is not None
    left, right = read_recording(path)
    assert np.array_equal(right, rec.right) and np.array_equal(left, rec.left)
    assert not left.any()  # the wearer said nothing
    start = int(np.flatnonzero(right)[0] - np.flatnonzero(reply)[0])
    assert np.array_equal(right[start : start + len(reply)], reply)  # PCM16 at volume 100: bit-exact
    assert hs.speaker.underruns == 0 and hs.speaker.overflows == 0
    assert hs.speaker.played_samples >= len(reply)
    # PLAYBACK STARTED when the first sample played, DRAINED after the last, on the headset clock
    events = [(e.event, e.t) for e in hs.speaker.events]
    assert [e for e, _ in events] == [PlaybackEvent.STARTED, PlaybackEvent.DRAINED]
    first = rec.time_of(int(np.flatnonzero(right)[0]))
    assert events[0][1] == pytest.approx(first, abs=0.02)
    assert host.playback() == [PlaybackEvent.STARTED, PlaybackEvent.DRAINED]
    await host.client.disconnect()


async def test_volume_and_opus_replies(sim_world: SimWorld, reply: np.ndarray) -> None:
    hs = sim_world.add_headset(name="Sim Vol")
    host = await connect_host(sim_world, hs, acquire_mtu=False)  # MTU 23: Opus is what fits
    await host.listen()
    await host.command(SetVolume(50))
    rec = hs.start_recording()
    await host.play(reply, CodecId.OPUS_16K_20MS)
    await host.wait_playback(PlaybackEvent.DRAINED)
    right = rec.right
    offset = find_offset(right, reply)
    half = (reply.astype(np.float64) * 0.5).astype(np.int16)
    assert snr_db(half, right[offset : offset + len(reply)]) > 6
    assert np.abs(right).max() <= np.abs(reply).max() * 0.55
    await host.client.disconnect()


async def test_credits_never_let_the_buffer_overflow(sim_world: SimWorld, reply: np.ndarray) -> None:
    hs = sim_world.add_headset(name="Sim Credits", speaker_buffer_ms=200)
    host = await connect_host(sim_world, hs)
    await host.listen()
    long_reply = np.concatenate([reply, reply])
    t0 = asyncio.get_running_loop().time()
    frames = await host.play(long_reply)
    sent_in = asyncio.get_running_loop().time() - t0
    await host.wait_playback(PlaybackEvent.DRAINED)
    sp = hs.speaker
    assert sp.overflows == 0 and sp.max_buffered_frames <= sp.capacity_frames == 10
    assert sent_in > len(long_reply) / 16000 - 0.3  # credits paced the host to real time
    credits = [f.credits for f in host.flow]
    assert credits == sorted(credits) and credits[-1] == frames + sp.capacity_frames
    assert host.flow[-1].buffered_ms == 0 and host.flow[-1].capacity_frames == 10
    await host.client.disconnect()


async def test_a_host_that_ignores_credits_overflows_the_buffer(
    sim_world: SimWorld, reply: np.ndarray
) -> None:
    hs = sim_world.add_headset(name="Sim Greedy", speaker_buffer_ms=200)
    host = await connect_host(sim_world, hs)
    await host.listen()
    await host.play(reply, respect_credits=False)
    await host.wait_playback(PlaybackEvent.DRAINED)
    assert hs.speaker.overflows > 0 and hs.speaker.max_buffered_frames == hs.speaker.capacity_frames
    await host.client.disconnect()


async def test_abort_flushes_at_once_and_regrants_credit(sim_world: SimWorld, reply: np.ndarray) -> None:
    hs = sim_world.add_headset(name="Sim Abort", speaker_buffer_ms=400)
    host = await connect_host(sim_world, hs)
    await host.listen()
    rec = hs.start_recording()
    await host.play(reply[: 16000 // 2], stop=False)  # half a second, reply still going on
    await host.wait_playback(PlaybackEvent.STARTED)
    assert hs.speaker.buffered_ms > 100
    await host.command(Abort())  # returns once the headset has taken it
    assert hs.speaker.buffered_ms == 0 and not hs.speaker.playing
    t_abort = hs.clock()
    await host.wait_playback(PlaybackEvent.ABORTED)
    next_tick = int((t_abort - rec.t0) * 16000) + 320
    await until(lambda: len(rec.right) > next_tick + 1000, 2, "the recording to go on after the abort")
    after = rec.right[next_tick:]
    assert len(after) > 1000 and not after.any()  # silence from the next tick on
    assert host.flow[-1].credits == host.speaker_sent + hs.speaker.capacity_frames  # flushed frames credited
    assert hs.speaker.frames_flushed > 0
    # the next reply plays normally
    await host.play(reply[:3200])
    await host.wait_playback(PlaybackEvent.DRAINED)
    assert host.playback()[-3:] == [
        PlaybackEvent.ABORTED,
        PlaybackEvent.STARTED,
        PlaybackEvent.DRAINED,
    ]
    await host.client.disconnect()


async def test_a_stalled_reply_counts_underruns(sim_world: SimWorld, reply: np.ndarray) -> None:
    hs = sim_world.add_headset(name="Sim Stall", drain_timeout_ms=1000)
    host = await connect_host(sim_world, hs)
    await host.listen()
    await host.play(reply[:4800], stop=False)  # 300 ms, then the "TTS" is late
    await host.wait_playback(PlaybackEvent.STARTED)
    await asyncio.sleep(0.55)  # the stimulus: the next sentence comes 250 ms after the buffer ran dry
    await host.play(reply[4800:9600])
    await host.wait_playback(PlaybackEvent.DRAINED)
    assert 8 <= hs.speaker.underruns <= 25  # ~250 ms dry, in 20 ms ticks (rebuffering included)
    assert host.flow[-1].underruns == hs.speaker.underruns
    assert host.playback() == [PlaybackEvent.STARTED, PlaybackEvent.DRAINED]  # one reply
    # the tail of a reply is not an underrun
    before = hs.speaker.underruns
    await host.play(reply[:3200])
    await until(lambda: host.playback().count(PlaybackEvent.DRAINED) == 2, 3, "second DRAINED")
    await asyncio.sleep(0.1)  # a window in which no underrun may be counted
    assert hs.speaker.underruns == before
    await host.client.disconnect()


async def test_downlink_loss_is_concealed_and_counted(sim_world: SimWorld, reply: np.ndarray) -> None:
    hs = sim_world.add_headset(None, RadioConfig(downlink_loss=0.05, seed=3), name="Sim DLoss")
    host = await connect_host(sim_world, hs)
    await host.listen()
    await host.play(reply)
    await host.wait_playback(PlaybackEvent.DRAINED)
    t = hs.truth.speaker
    assert t.lost > 0 and t.sent == t.delivered + t.lost
    assert hs.speaker.counters.packets_lost == t.lost
    assert hs.speaker.underruns == 0  # lost frames were concealed, not skipped
    await host.client.disconnect()


@pytest.mark.parametrize("aec", [False, True])
async def test_speaker_echo_reaches_the_mic_unless_cancelled(
    sim_world: SimWorld, reply: np.ndarray, aec: bool
) -> None:
    hs = sim_world.add_headset(
        HeadsetConfig(name=f"Sim Echo {aec}", mic_codec="pcm16", echo_gain=0.5, has_aec=aec)
    )
    host = await connect_host(sim_world, hs)
    await host.listen()
    rec = hs.start_recording()
    await host.play(reply[:8000])
    await host.wait_playback(PlaybackEvent.DRAINED)
    await caught_up(hs)
    mic, _ = await host.decode_mic()
    assert not rec.left.any()  # the recording keeps the wearer's voice only, never the echo
    if aec:
        assert not mic.any()
    else:
        played = rec.right[np.flatnonzero(rec.right)[0] :][:4000]
        offset = find_offset(mic, played)
        echo = mic[offset : offset + len(played)]
        assert snr_db(np.round(played * 0.5).astype(np.int16), echo) > 40
    await host.client.disconnect()
