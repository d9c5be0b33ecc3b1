"""The speaker's playout on the mic's clock (`companion.link.playout.PlayoutTrack`), from scripted FLOW
reports: what the echo canceller is given as the reference. No radio, no real time."""

from __future__ import annotations

import numpy as np

from companion.link.mic_stream import MicStream
from companion.link.playout import PlayoutTrack
from companion.protocol import CodecId, Packetizer, Profile
from companion.protocol.codecs import make_encoder

FRAME = 320  # 20 ms at 16 kHz, one headset tick
TICK = 0.02


def frames(n: int, start: int = 0) -> list[np.ndarray]:
    """Frames whose samples are their own index (mod 2^15), so a reference says where it came from."""
    return [((np.arange(FRAME) + (start + i) * FRAME) % 32768).astype(np.int16) for i in range(n)]


def track_with(n: int) -> PlayoutTrack:
    track = PlayoutTrack(FRAME)
    for f in frames(n):
        track.sent(f)
    return track


def test_steady_playout_gives_the_frames_in_order_at_the_reported_times() -> None:
    track = track_with(10)
    assert track.active(0.0, 0.8)  # sent, not yet reported: pending
    track.progress(1.00, consumed=0, buffered_ms=200)  # all ten arrived, not playing yet
    assert not track.reference(1.00, FRAME).any()  # a head that has not moved plays nothing
    for k in range(1, 6):  # one frame played per tick
        track.progress(1.00 + k * TICK, consumed=k, buffered_ms=200 - 20 * k)
    ref = track.reference(1.04, 2 * FRAME)
    assert np.array_equal(ref, np.concatenate(frames(2, start=2)))
    # Between reports the head runs on at real time, as far as the headset holds audio.
    assert np.array_equal(track.reference(1.11, FRAME), np.concatenate(frames(2, start=5))[160:480])
    # The headset held 100 ms after the last report: nothing is played past that.
    assert np.array_equal(track.reference(1.10, 6 * FRAME)[: 5 * FRAME], np.concatenate(frames(5, start=5)))
    assert not track.reference(1.10, 6 * FRAME)[5 * FRAME :].any()


def test_the_first_frame_of_a_stretch_is_placed_before_the_report_that_shows_it_played() -> None:
    track = track_with(4)
    track.progress(0.0, consumed=0, buffered_ms=0)
    track.progress(2.00, consumed=1, buffered_ms=60)  # frame 0 played in the tick this report closes
    assert np.array_equal(track.reference(1.98, FRAME), frames(1)[0])
    assert np.array_equal(track.reference(2.00, FRAME), frames(1, start=1)[0])


def test_an_underrun_stops_the_reference_until_the_head_moves_again() -> None:
    track = track_with(6)
    track.progress(1.00, consumed=0, buffered_ms=40)
    track.progress(1.02, consumed=1, buffered_ms=20)
    track.progress(1.04, consumed=2, buffered_ms=0)  # ran dry: TTS is behind
    assert not track.reference(1.06, 5 * FRAME).any()
    track.progress(1.30, consumed=2, buffered_ms=80)  # audio again, waiting to start
    assert not track.reference(1.30, FRAME).any()
    track.progress(1.32, consumed=3, buffered_ms=60)  # playing: frame 2 played in this tick
    assert np.array_equal(track.reference(1.30, FRAME), frames(1, start=2)[0])
    assert np.array_equal(track.reference(1.32, FRAME), frames(1, start=3)[0])


def test_an_abort_flushes_without_playing_what_was_flushed() -> None:
    track = track_with(20)
    track.progress(1.00, consumed=0, buffered_ms=0)
    track.progress(1.02, consumed=1, buffered_ms=300)
    track.progress(1.04, consumed=20, buffered_ms=0)  # ABORT: 18 buffered frames flushed at once
    assert not track.reference(1.04, 10 * FRAME).any()
    assert not track.pending and not track.active(2.0, 0.8)
    assert track.active(1.5, 0.8)  # the echo's tail


def test_nothing_is_active_before_anything_was_sent() -> None:
    track = PlayoutTrack(FRAME)
    track.progress(0.0, consumed=0, buffered_ms=0)  # the report read at connection
    assert not track.active(0.1, 0.8)
    track.sent(frames(1)[0])
    assert track.pending and track.active(5.0, 0.8)


def test_old_audio_is_let_go() -> None:
    track = PlayoutTrack(FRAME, keep_s=1.0)
    for f in frames(200):
        track.sent(f)
    track.progress(0.0, consumed=0, buffered_ms=0)
    for k in range(1, 200):
        track.progress(k * TICK, consumed=k, buffered_ms=20)
    assert np.array_equal(track.reference(3.0, FRAME), frames(1, start=150)[0])
    assert not track.reference(0.5, FRAME).any()  # older than kept: silence, not a wrong frame
    assert len(track._t) < 60


def test_the_newest_mic_packet_stamps_reports_while_a_hole_holds_the_stream_back() -> None:
    """Reports are stamped with the stream time of the newest mic packet, not of the audio let out: a lost
    packet holds the stream back for the reorder window, the headset's clock goes on."""
    stream = MicStream(reorder_window=4)
    stream.start(Profile.COMPANION, CodecId.OPUS_16K_20MS)
    enc = make_encoder(CodecId.OPUS_16K_20MS)
    pk = Packetizer(Profile.COMPANION, 247, CodecId.OPUS_16K_20MS)
    packets = [p for f in frames(8) for p in pk.packetize(enc.encode(f))]
    assert len(packets) == 8  # one packet per frame at this MTU
    for p in packets[:2]:
        stream.feed(p, 0.0)
    assert stream.newest_time == stream.stream_time == 0.04
    for p in packets[3:5]:  # packet 2 lost: 3 and 4 wait for it
        stream.feed(p, 0.0)
    assert stream.stream_time == 0.04 and abs(stream.newest_time - 0.10) < 1e-9


def test_a_reported_mic_position_places_the_report_exactly() -> None:
    """A FLOW status that carries the mic position is placed there (per connection, wrapping at 2^32),
    not at whatever the radio had delivered when it arrived."""
    stream = MicStream()
    stream.start(Profile.COMPANION, CodecId.PCM16_16K)
    pk = Packetizer(Profile.COMPANION, 247, CodecId.PCM16_16K)
    for f in frames(5):
        for p in pk.packetize(make_encoder(CodecId.PCM16_16K).encode(f)):
            stream.feed(p, 0.0)
    assert stream.stream_time == 0.1
    assert stream.stamp(None) == 0.1  # an older headset: where the stream is
    assert stream.stamp(8 * FRAME) == 0.16  # the headset is three frames ahead of what arrived
    stream.start(Profile.COMPANION, CodecId.PCM16_16K)  # a new connection counts from zero again
    assert stream.stamp(FRAME) == 0.12
    assert stream.stamp((1 << 32) - FRAME) == 0.08  # a position just before a wrap is behind, not ahead
