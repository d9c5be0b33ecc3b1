"""The BLE link's sans-IO parts, without a radio: codec choice, the mic stream from notification bytes to
20 ms frames, the speaker's credit account and sender, and the notifications that become link events."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from companion.link.base import ButtonEvent, HeadsetInfo, LinkBandwidthError, LinkErrorEvent, NotConnected
from companion.link.ble_codec import MIC_PREFERENCE, SPEAKER_PREFERENCE, choose_codec, codec_fits
from companion.link.mic_stream import MicStream
from companion.link.notices import HeadsetNotices
from companion.link.speaker_sender import FlowCredits, SpeakerSender, ThroughputWatch
from companion.protocol import (
    Button,
    ButtonReport,
    CodecId,
    ErrorReport,
    FlowStatus,
    Packetizer,
    Profile,
    VolumeReport,
    encode_battery,
    parse_packet,
)
from companion.protocol.codecs import make_encoder
from tests.fixtures.conditions import until

ALL = (CodecId.PCM16_16K, CodecId.MULAW_16K, CodecId.OPUS_16K_20MS, CodecId.OPUS_16K_60MS)


def test_codec_choice_follows_the_wish_then_the_preference_then_the_link() -> None:
    assert choose_codec(ALL, MIC_PREFERENCE, None, 247, 400) is CodecId.OPUS_16K_20MS
    assert choose_codec(ALL, SPEAKER_PREFERENCE, None, 247, 400) is CodecId.PCM16_16K
    assert choose_codec(ALL, MIC_PREFERENCE, CodecId.MULAW_16K, 247, 400) is CodecId.MULAW_16K
    # At the default MTU PCM16 needs 32 packets per 20 ms: more than the budget, so the speaker falls back.
    assert not codec_fits(CodecId.PCM16_16K, 23, 400)
    assert choose_codec(ALL, SPEAKER_PREFERENCE, CodecId.PCM16_16K, 23, 400) is CodecId.OPUS_16K_20MS
    # Nothing fits: the smallest offered still goes.
    assert (
        choose_codec((CodecId.PCM16_16K, CodecId.MULAW_16K), MIC_PREFERENCE, None, 23, 10)
        is CodecId.MULAW_16K
    )


def _packets(codec: CodecId, pcm: np.ndarray, mtu: int = 100) -> list[bytes]:
    enc = make_encoder(codec)
    pk = Packetizer(Profile.COMPANION, mtu, codec)
    n = enc.frame_samples
    return [p for i in range(0, len(pcm) - n + 1, n) for p in pk.packetize(enc.encode(pcm[i : i + n]))]


def test_mic_stream_turns_bytes_into_frames_on_one_clock_across_connections() -> None:
    tone = (3000 * np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000)).astype(np.int16)
    stream = MicStream(reorder_window=4)
    with pytest.raises(RuntimeError, match="start"):
        stream.feed(b"\x00" * 8, 0.0)
    stream.start(Profile.COMPANION, CodecId.PCM16_16K)
    packets = _packets(CodecId.PCM16_16K, tone[:3200])  # 10 frames, several packets each
    packets[3], packets[4] = packets[4], packets[3]  # one swap: reordered, not lost
    out = [c for p in packets for c in stream.feed(p, 1.5)]
    out += stream.flush(2.0)
    assert [len(c.pcm) for c in out] == [320] * 10
    assert np.array_equal(np.concatenate([c.pcm for c in out]), tone[:3200])
    assert [c.t_stream for c in out] == pytest.approx([i * 0.02 for i in range(10)])
    assert not any(c.concealed for c in out) and out[0].t_arrival == 1.5
    assert stream.counters().packets_reordered == 1 and stream.counters().packets_lost == 0
    # A reconnect with another codec: the clock goes on, counters add up, a lost packet is concealed.
    stream.start(Profile.COMPANION, CodecId.MULAW_16K)
    assert stream.codec_name == "mulaw-16k"
    packets = _packets(CodecId.MULAW_16K, tone[:3200])
    lost = packets.pop(5)
    assert parse_packet(lost, Profile.COMPANION).seq == 5
    more = [c for p in packets for c in stream.feed(p, 3.0)] + stream.flush(3.0)
    assert len(more) == 10 and more[0].t_stream == pytest.approx(0.2)
    assert sum(c.concealed for c in more) == 1
    assert stream.counters().packets_lost == 1 and stream.counters().packets_reordered == 1


def test_mic_stream_resamples_8k_codecs_to_16k_frames() -> None:
    stream = MicStream()
    stream.start(Profile.COMPANION, CodecId.PCM16_8K)
    tone8 = (3000 * np.sin(np.arange(8000) * 2 * np.pi * 300 / 8000)).astype(np.int16)
    out = [c for p in _packets(CodecId.PCM16_8K, tone8) for c in stream.feed(p, 0.0)] + stream.flush(0.0)
    assert out and all(len(c.pcm) == 320 for c in out)
    assert len(out) >= 40  # 1 s of audio, less the resampler's delay (under 0.2 s)


def test_flow_credits_unwrap_past_2_32() -> None:
    flow = FlowCredits(FlowStatus((1 << 32) - 2, 0, 0, 10))
    assert flow.available == (1 << 32) - 2
    flow.frames_sent = (1 << 32) - 2
    assert flow.available == 0
    flow.update(FlowStatus(3, 20, 0, 10))  # wrapped: 5 more than sent
    assert flow.available == 5 and flow.credits == (1 << 32) + 3
    flow.update(FlowStatus((1 << 32) - 4, 0, 0, 10))  # a stale notice: fewer credits than sent
    assert flow.available == -2


def test_throughput_watch_names_what_to_change() -> None:
    watch = ThroughputWatch(0.02, CodecId.PCM16_16K, 23)
    for _ in range(49):
        watch.wrote(0.019, 640)  # faster than real time
    watch.waited()
    with pytest.raises(LinkBandwidthError, match=r"MTU 23.*opus"):
        for _ in range(50):
            watch.wrote(0.03, 640)


async def test_speaker_sender_waits_for_credits_and_stops_when_the_headset_goes() -> None:
    sender = SpeakerSender(CodecId.PCM16_16K, 247, FlowStatus(2, 0, 0, 4), "AA")
    written: list[list[bytes]] = []

    async def write(packets: list[bytes]) -> None:
        written.append(packets)

    async def pcm():
        yield np.ones(700, dtype=np.int16)  # two whole frames and a 60-sample tail

    task = asyncio.create_task(sender.play(pcm(), write))
    await until(lambda: len(written) == 2, 1.0, "two frames written")
    for _ in range(5):
        await asyncio.sleep(0)  # the sender would write a third frame here if it did not wait for credit
    assert len(written) == 2 and not task.done()  # the third frame waits for a credit
    sender.on_flow(FlowStatus(3, 40, 0, 4))
    report = await asyncio.wait_for(task, 1)
    assert report.frames_sent == 3 and report.seconds_sent == pytest.approx(0.06)
    assert report.t_first_sent is not None and report.t_last_sent is not None
    task = asyncio.create_task(sender.play(pcm(), write))
    for _ in range(5):
        await asyncio.sleep(0)
    sender.disconnected()
    with pytest.raises(NotConnected, match="went away"):
        await asyncio.wait_for(task, 1)


def test_notices_become_events_and_bad_ones_are_counted() -> None:
    info = HeadsetInfo(address="AA", name="x", profile=Profile.COMPANION)
    notices = HeadsetNotices(info)
    assert notices.control(ButtonReport(Button.PRESS).encode(), 1.0) == ButtonEvent(Button.PRESS, 1.0)
    error = notices.control(ErrorReport(3, "no").encode(), 2.0)
    assert isinstance(error, LinkErrorEvent) and "headset error 3: no" in error.message
    assert notices.control(VolumeReport(40).encode(), 3.0) is None and info.extra["volume"] == 40
    assert notices.battery(encode_battery(55), 4.0) is not None and info.battery == 55
    status = notices.flow(FlowStatus(9, 120, 1, 16).encode())
    assert status is not None and info.extra["speaker_buffered_ms"] == 120
    assert notices.control(b"\x01", 5.0) is None
    assert notices.battery(b"\xff", 5.0) is None
    assert notices.flow(b"\x00") is None
    assert notices.omi_button(b"\x00", 5.0) is None
    assert notices.malformed == 4
