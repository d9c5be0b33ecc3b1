"""Where a headset's speaker is in the audio sent to it, on the mic's stream clock (the echo reference).

The headset reports its speaker's progress in every FLOW notification: ``credits`` = frames that left its
buffer + the buffer's capacity, ``buffered_ms`` = what the buffer still holds. With the frames the host
sent, in order, that places the play head exactly, underruns included:
``received = consumed + ceil(buffered / frame)`` and ``head = received * frame - buffered`` samples into
everything sent on this connection.

The link stamps each FLOW with the mic stream time it had reached when the notification arrived. Mic
frames and notifications share one radio link, so the stamp is on the headset's own sample clock however
late the host's event loop runs. Reliable notifications can overtake mic frames still queued in the
headset's transmit ring; that stamps a record early, so the reference leads the echo a little (which an
echo canceller allows) and never lags it (which it does not).

Between records the head moves at real time, but never past what the headset held, and only if it moved
since the record before: a record with an empty buffer is a stall (an underrun, or the end of a reply),
and one whose head stood still has audio that has not started playing yet (the headset waits for a few
frames first); in both the head waits until a record shows it moving again.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque

import numpy as np

SAMPLE_RATE = 16000
TICK_SAMPLES = 320  # a report's stamp may be one 20 ms tick off the headset's playout
KEEP_S = 8.0  # audio and progress kept for the reference; far more than a canceller's reach (~0.5 s)


class PlayoutTrack:
    """What one connection's speaker was sent, frame by frame, and where its play head was when."""

    def __init__(self, frame_samples: int, keep_s: float = KEEP_S) -> None:
        self.frame_samples = frame_samples
        self._keep_frames = max(1, math.ceil(keep_s * SAMPLE_RATE / frame_samples))
        self._frames: deque[np.ndarray] = deque()
        self._first = 0  # index of the oldest frame kept
        self.frames_sent = 0
        self._keep_s = keep_s
        # progress records: stream time, play head (samples), samples the head may still advance
        self._t: list[float] = []
        self._head: list[int] = []
        self._room: list[int] = []

    # -- what the host does ------------------------------------------------------------------------
    def sent(self, pcm: np.ndarray) -> None:
        """One speaker frame's samples, in the order sent (a short last frame is padded, as encoded)."""
        frame = np.zeros(self.frame_samples, dtype=np.int16)
        pcm = np.asarray(pcm, dtype=np.int16)[: self.frame_samples]
        frame[: len(pcm)] = pcm
        self._frames.append(frame)
        self.frames_sent += 1
        while len(self._frames) > self._keep_frames:
            self._frames.popleft()
            self._first += 1

    # -- what the headset reports ------------------------------------------------------------------
    def progress(self, t_stream: float, consumed: int, buffered_ms: int) -> None:
        """A FLOW notification stamped at mic stream time ``t_stream``: ``consumed`` frames have left the
        speaker's buffer (played or flushed) and ``buffered_ms`` of audio is waiting in it."""
        buffered = buffered_ms * SAMPLE_RATE // 1000
        received = consumed + math.ceil(buffered / self.frame_samples)
        head = received * self.frame_samples - buffered
        if self._t and t_stream < self._t[-1]:
            t_stream = self._t[-1]  # stamps never go back (a new connection keeps the mic's clock)
        if self._t:
            # The speaker played more since the last report than that report allowed: it started or
            # resumed in between. Place the start of that stretch just before this report, as it was.
            # A jump further than real time allows is a flush (ABORT), which plays nothing.
            t_prev = self._t[-1]
            elapsed = round((t_stream - t_prev) * SAMPLE_RATE)
            expected = self._head[-1] + min(elapsed, self._room[-1])
            extra = head - expected
            if 0 < extra <= elapsed + TICK_SAMPLES:
                self._record(max(t_prev, t_stream - extra / SAMPLE_RATE), expected, extra + buffered)
        # A head that has not moved since the last report has not started (or resumed) playing yet: the
        # headset waits for enough audio first. Only a moving head plays on until the next report.
        moving = head > (self._head[-1] if self._head else 0)
        self._record(t_stream, head, buffered if moving else 0)

    def _record(self, t_stream: float, head: int, room: int) -> None:
        self._t.append(t_stream)
        self._head.append(head)
        self._room.append(room)
        horizon = bisect_right(self._t, t_stream - self._keep_s)
        if horizon > 1:  # keep one record from before the horizon: it places the head at the horizon
            del self._t[: horizon - 1], self._head[: horizon - 1], self._room[: horizon - 1]

    # -- what the canceller asks -------------------------------------------------------------------
    def playing_until(self) -> float | None:
        """The stream time until which the speaker is known to be playing (None before any report)."""
        if not self._t:
            return None
        return self._t[-1] + self._room[-1] / SAMPLE_RATE

    @property
    def pending(self) -> bool:
        """Frames were sent that the headset has not reported playing (or flushing) yet."""
        if not self._t:
            return self.frames_sent > 0
        return self.frames_sent * self.frame_samples > self._head[-1] + self._room[-1]

    def active(self, t_stream: float, tail_s: float) -> bool:
        """Whether a mic frame at ``t_stream`` can hold the speaker's sound: playing, about to, or within
        ``tail_s`` of the last sample played."""
        if not self.frames_sent:
            return False
        until = self.playing_until()
        return self.pending or (until is not None and t_stream < until + tail_s)

    def heads(self, t_stream: float, n: int) -> np.ndarray:
        """For each of ``n`` samples from ``t_stream``, the index (into everything sent) of the sample the
        speaker played then; -1 where it played nothing (before any report, stalled, drained)."""
        if not self._t:
            return np.full(n, -1, dtype=np.int64)
        times = t_stream + np.arange(n) / SAMPLE_RATE
        t_rec = np.asarray(self._t)
        idx = np.searchsorted(t_rec, times, side="right") - 1
        before = idx < 0
        idx = np.maximum(idx, 0)
        elapsed = np.maximum(np.round((times - t_rec[idx]) * SAMPLE_RATE).astype(np.int64), 0)
        heads = np.asarray(self._head, dtype=np.int64)[idx] + elapsed
        heads[before | (elapsed >= np.asarray(self._room, dtype=np.int64)[idx])] = -1
        return heads

    def reference(self, t_stream: float, n: int) -> np.ndarray:
        """The ``n`` samples the speaker played from stream time ``t_stream`` on (zeros where it played
        nothing, or where the audio is no longer kept)."""
        heads = self.heads(t_stream, n)
        out = np.zeros(n, dtype=np.int16)
        lo = self._first * self.frame_samples
        ok = (heads >= lo) & (heads < self.frames_sent * self.frame_samples)
        if not ok.any():
            return out
        sel = heads[ok] - lo
        first, last = int(sel.min()) // self.frame_samples, int(sel.max()) // self.frame_samples
        audio = np.concatenate([self._frames[i] for i in range(first, last + 1)])
        out[ok] = audio[sel - first * self.frame_samples]
        return out
