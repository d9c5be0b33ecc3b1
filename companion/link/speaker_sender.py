"""Replies to a headset's speaker: encode, packetize, and write only as fast as its credits allow.

The headset grants speaker frames as cumulative credits (mod 2^32) in FLOW notifications (docs/protocol.md,
flow control). :class:`FlowCredits` keeps that account and :class:`ThroughputWatch` notices a radio that is
slower than real time; both are sans-IO. :class:`SpeakerSender` joins them with the codec for one
connection; the link gives it the coroutine that writes a frame's packets, so the radio stays in the link.
Every frame sent and every FLOW report also go into the connection's :class:`PlayoutTrack`, which says what
the speaker played when (the host echo canceller's reference).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Awaitable, Callable

import numpy as np

from companion.protocol import CodecId, FlowStatus, Packetizer, Profile, codec_spec
from companion.protocol.codecs import make_encoder

from .base import SAMPLE_RATE, LinkBandwidthError, NotConnected, PlaybackReport
from .playout import PlayoutTrack

_WRAP = 1 << 32


class FlowCredits:
    """How many speaker frames the headset lets us send: frames sent vs. cumulative credits granted."""

    def __init__(self, status: FlowStatus) -> None:
        self.frames_sent = 0
        self.credits = status.credits
        self.capacity = status.capacity_frames

    def update(self, status: FlowStatus) -> None:
        """A FLOW notification: credits are cumulative mod 2^32, unwrapped relative to what we have sent."""
        delta = (status.credits - self.frames_sent) % _WRAP
        self.credits = self.frames_sent + (delta if delta < _WRAP // 2 else delta - _WRAP)
        self.capacity = status.capacity_frames

    @property
    def available(self) -> int:
        return self.credits - self.frames_sent

    def sent(self) -> None:
        self.frames_sent += 1


class ThroughputWatch:
    """Notices when the radio carries the speaker audio slower than real time although credits allow more."""

    WINDOW_S = 1.0

    def __init__(self, frame_s: float, codec: CodecId, mtu: int) -> None:
        self.frame_s = frame_s
        self.codec = codec
        self.mtu = mtu
        self.busy_s = 0.0
        self.audio_s = 0.0
        self.bytes = 0

    def waited(self) -> None:
        """Waiting for credits means the radio kept up; start measuring afresh."""
        self.busy_s = self.audio_s = 0.0
        self.bytes = 0

    def wrote(self, seconds: float, nbytes: int) -> None:
        """One frame of ``nbytes`` took ``seconds`` to write; raise LinkBandwidthError when a whole window
        of audio took over 5 % longer to write than to play."""
        self.busy_s += seconds
        self.audio_s += self.frame_s
        self.bytes += nbytes
        if self.audio_s >= self.WINDOW_S and self.busy_s > self.audio_s * 1.05:
            carried = self.bytes * 8 / self.busy_s / 1000
            needed = self.bytes * 8 / self.audio_s / 1000
            raise LinkBandwidthError(
                f"the link carries {carried:.1f} kbit/s of {codec_spec(self.codec).name} audio but real time "
                f"needs {needed:.1f} kbit/s at MTU {self.mtu}: raise the MTU, shorten the connection "
                "interval, or choose a smaller codec (opus)"
            )
        if self.audio_s >= self.WINDOW_S:
            self.busy_s = self.audio_s = 0.0
            self.bytes = 0


class SpeakerSender:
    """The speaker side of one connection: its codec, packetizer and credit account."""

    def __init__(self, codec: CodecId, mtu: int, status: FlowStatus, address: str) -> None:
        self.codec = codec
        self.mtu = mtu
        self.address = address
        self.flow = FlowCredits(status)
        self.packetizer = Packetizer(Profile.COMPANION, mtu, codec)
        self.track = PlayoutTrack(make_encoder(codec).frame_samples)
        self._changed = asyncio.Event()
        self._gone = False

    def on_flow(self, status: FlowStatus, t_stream: float | None = None) -> None:
        """A FLOW notification; ``t_stream`` is the mic stream time the link had reached when it arrived
        (None: the mic is not streaming, so nothing can hear the speaker)."""
        self.flow.update(status)
        if t_stream is not None:
            self.track.progress(t_stream, self.flow.credits - status.capacity_frames, status.buffered_ms)
        self._changed.set()

    def disconnected(self) -> None:
        """The connection dropped: a send waiting for credits stops with NotConnected."""
        self._gone = True
        self._changed.set()

    async def play(
        self, chunks: AsyncIterable[np.ndarray], write: Callable[[list[bytes]], Awaitable[None]]
    ) -> PlaybackReport:
        """Send PCM chunks of any length as codec frames (the last padded with silence); ``write`` sends
        one frame's packets. Returns when the last frame is written, not when it has played."""
        report = PlaybackReport()
        encoder = make_encoder(self.codec)
        n = encoder.frame_samples
        frame_s = n / SAMPLE_RATE
        watch = ThroughputWatch(frame_s, self.codec, self.mtu)
        buf = np.empty(0, dtype=np.int16)
        try:
            async for chunk in chunks:
                buf = np.concatenate((buf, np.asarray(chunk, dtype=np.int16)))
                while len(buf) >= n:
                    await self._send_frame(buf[:n], encoder.encode(buf[:n]), write, report, watch)
                    buf = buf[n:]
            if len(buf):
                tail = np.zeros(n, dtype=np.int16)
                tail[: len(buf)] = buf
                await self._send_frame(tail, encoder.encode(tail), write, report, watch)
        except asyncio.CancelledError:
            report.aborted = True
            raise
        report.seconds_sent = report.frames_sent * frame_s
        return report

    async def _send_frame(
        self,
        pcm: np.ndarray,
        frame: bytes,
        write: Callable[[list[bytes]], Awaitable[None]],
        report: PlaybackReport,
        watch: ThroughputWatch,
    ) -> None:
        while self.flow.available <= 0:
            if self._gone:
                raise NotConnected(f"headset {self.address} went away during playback")
            self._changed.clear()
            await self._changed.wait()
            watch.waited()
        t0 = time.monotonic()
        await write(self.packetizer.packetize(frame))
        t1 = time.monotonic()
        self.flow.sent()
        self.track.sent(pcm)
        report.frames_sent += 1
        report.t_first_sent = report.t_first_sent or t0
        report.t_last_sent = t1
        watch.wrote(t1 - t0, len(frame))
