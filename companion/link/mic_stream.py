"""A headset's mic notifications in, 20 ms frames of 16 kHz PCM out: sans-IO.

:class:`MicStream` chains the protocol's :class:`~companion.protocol.Reassembler` (order, loss, repeats),
:class:`~companion.protocol.codecs.StreamDecoder` (loss concealment, FEC) and :class:`Rechunker` (any frame
length and 8 kHz codecs to 20 ms at 16 kHz). It owns the stream's sample clock, which runs on across
reconnects, so a link only calls :meth:`MicStream.start` per connection and :meth:`MicStream.feed` per
notification. No radio, no event loop: tests/test_ble_parts.py drives it with bytes.
"""

from __future__ import annotations

import numpy as np
import soxr

from companion.protocol import CodecId, LinkCounters, Profile, Reassembler, codec_spec
from companion.protocol.codecs import StreamDecoder
from companion.protocol.framing import Frame

from .base import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk


class Rechunker:
    """Turns decoded frames of any length (and 8 kHz codecs) into 20 ms 16 kHz frames."""

    def __init__(self) -> None:
        self._buf = np.empty(0, dtype=np.int16)
        self._concealed = False
        self._resampler: soxr.ResampleStream | None = None
        self._rate = SAMPLE_RATE

    def push(self, pcm: np.ndarray, rate: int, concealed: bool) -> list[tuple[np.ndarray, bool]]:
        """Add one decoded frame; return the whole 20 ms frames now ready, each with its concealed flag
        (a frame is concealed if any of its samples were)."""
        if rate != SAMPLE_RATE:
            if self._resampler is None or self._rate != rate:
                self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16")
                self._rate = rate
            pcm = self._resampler.resample_chunk(pcm)
        if not len(self._buf) and len(pcm) == FRAME_SAMPLES:
            return [(pcm, concealed)]  # the usual case: one decoded 20 ms frame, passed on as it is
        self._buf = np.concatenate((self._buf, pcm))
        self._concealed |= concealed
        out = []
        while len(self._buf) >= FRAME_SAMPLES:
            out.append((self._buf[:FRAME_SAMPLES].copy(), self._concealed))
            self._buf = self._buf[FRAME_SAMPLES:]
            self._concealed = concealed and len(self._buf) > 0
        return out


class MicStream:
    """One link's mic audio across its connections: packets in, :class:`AudioChunk` frames out."""

    def __init__(self, reorder_window: int = 8) -> None:
        self.reorder_window = reorder_window
        self.codec: CodecId | None = None
        self._history = LinkCounters()  # counters of earlier connections
        self._history_decode_errors = 0
        self._reasm: Reassembler | None = None
        self._decoder: StreamDecoder | None = None
        self._rechunk = Rechunker()
        self._samples_out = 0
        self._connection_start = 0  # the stream's sample count when this connection's stream began
        self._frame_samples = FRAME_SAMPLES  # 16 kHz samples per codec frame, as last decoded

    def start(self, profile: Profile, codec: CodecId) -> None:
        """A new connection streams ``codec``: fresh reassembly and decoder, the same sample clock."""
        if self._reasm is not None:
            self._history.add(self._reasm.counters)
        if self._decoder is not None:
            self._history_decode_errors += self._decoder.errors
        self._reasm = Reassembler(profile, codec, window=self.reorder_window)
        self._decoder = StreamDecoder(codec)
        self.codec = codec
        self._connection_start = self._samples_out

    @property
    def codec_name(self) -> str:
        return codec_spec(self.codec).name if self.codec is not None else ""

    @property
    def stream_time(self) -> float:
        """Seconds of mic audio delivered so far: the headset's sample clock, across connections."""
        return self._samples_out / SAMPLE_RATE

    @property
    def newest_time(self) -> float:
        """The stream time just after the newest packet received, including packets held back while a
        hole waits to be filled: when the headset sent it, on its own sample clock. Other notifications
        that arrive now are stamped with it (the speaker's playout, for the echo canceller)."""
        held = self._reasm.frames_held if self._reasm is not None else 0.0
        return (self._samples_out + held * self._frame_samples) / SAMPLE_RATE

    def stamp(self, mic_samples: int | None) -> float:
        """Where on this stream's clock to put a notification arriving now: at the mic position it carries
        (:meth:`time_of`), else at the newest packet received (:attr:`newest_time`), which a reliable
        notification may overtake while mic frames wait in the headset's queue."""
        return self.newest_time if mic_samples is None else self.time_of(mic_samples)

    def time_of(self, mic_samples: int) -> float:
        """The stream time of a mic position the headset reports (16 kHz samples since this connection's
        stream began, mod 2^32): exact, whatever the radio queued or the reorder window holds back."""
        expected = self._samples_out - self._connection_start
        delta = (mic_samples - expected) % (1 << 32)
        if delta >= 1 << 31:
            delta -= 1 << 32
        return (self._connection_start + expected + delta) / SAMPLE_RATE

    def feed(self, data: bytes | bytearray, now: float) -> list[AudioChunk]:
        """One notification's bytes, arrived at ``now``; the frames that became complete (maybe none)."""
        if self._reasm is None:
            raise RuntimeError("MicStream.feed before start(): no codec negotiated yet")
        return self._decode(self._reasm.feed(data), now)

    def flush(self, now: float) -> list[AudioChunk]:
        """The stream paused or the connection dropped: what the reassembler still holds, holes concealed."""
        return self._decode(self._reasm.flush(), now) if self._reasm is not None else []

    def counters(self) -> LinkCounters:
        """Packet counters over every connection so far."""
        total = LinkCounters()
        total.add(self._history)
        if self._reasm is not None:
            total.add(self._reasm.counters)
        return total

    @property
    def decode_errors(self) -> int:
        return self._history_decode_errors + (self._decoder.errors if self._decoder is not None else 0)

    def _decode(self, frames: list[Frame], now: float) -> list[AudioChunk]:
        if not frames or self._decoder is None:
            return []
        pcms = self._decoder.decode(frames)
        rate = self._decoder.sample_rate
        out = []
        for frame, pcm in zip(frames, pcms, strict=True):
            self._frame_samples = len(pcm) * SAMPLE_RATE // rate
            for chunk, concealed in self._rechunk.push(pcm, rate, frame.lost):
                out.append(AudioChunk(chunk, self._samples_out / SAMPLE_RATE, now, concealed))
                self._samples_out += len(chunk)
        return out
