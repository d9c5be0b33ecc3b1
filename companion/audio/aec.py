"""Host-side echo cancellation for headsets that hear their own speaker (open-ear, no on-board AEC).

The engine is WebRTC's AEC3 through ``livekit``'s ``rtc.AudioProcessingModule`` (binary wheels on PyPI; the
other candidate, ``aec-audio-processing``, ships only as a source package that compiles WebRTC at install
time). It takes the far-end signal (what the speaker plays) and the mic in 10 ms frames and removes the
echo with an adaptive filter, its delay estimator and a residual-echo suppressor.

AEC3 can only cancel an echo whose reference it has already seen: the reference must lead the mic, never
lag it, and by little (measured on a synthetic echo path: ~64 dB once converged with the reference 0-400 ms
ahead, nothing at 600 ms ahead or 20 ms behind). The reference comes from one of two places:

- a link's :class:`~companion.link.playout.PlayoutTrack` (BLE companion headsets): the frames sent and the
  headset's FLOW reports, which place every sample on the mic's clock, underruns and aborts included, about
  one tick ahead of the echo. The offset is fixed, so one AEC3 instance stays converged across replies;
  only a session's first reply starts cold.
- otherwise the PLAYBACK events (:meth:`EchoCanceller.played`, :meth:`drained`, :meth:`stopped`): a
  reply's first sample is anchored at the stream time its STARTED event arrived and every mic frame is
  paired with what played ``lead_ms`` (60) later; AEC3's delay estimator finds the rest. Short underruns
  are not reported there, so the offset drifts between replies and each stretch gets a fresh instance.

The canceller costs about 3.5 % of one core while it runs (measured on the 2-core dev machine), so it runs
only while a reply plays and for ``tail_ms`` after; an idle headset streaming silence costs nothing here.
It runs inline on the event loop (about 0.7 ms per 20 ms frame, like the inline VAD), not in a thread:
the mic frames must stay in order, and a thread hop would cost more than the work.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from companion.link.playout import PlayoutTrack

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
APM_FRAME = 160  # AEC3 takes 10 ms frames
ERLE_FRAMES = 3000  # the last minute of 20 ms frames
ERLE_REF_FLOOR = 10.0**4.0  # mean square of int16 samples: 40 dB, about -50 dBFS
ERLE_MIC_FLOOR = 10.0**3.0  # 30 dB: frames quieter than this carry too little echo to measure
# Background noise caps what a canceller can show: with noise 4 dB under the echo even a perfect one
# shows 5.5 dB. Only frames whose level stands this far over the background heard without echo (the
# 10th percentile of the last FLOOR_FRAMES quiet frames) judge a stretch.
STALE_OVER_FLOOR = 10.0 ** (20 / 10)
FLOOR_FRAMES = 250  # 5 s
STALE_MIN_FRAMES = 25  # half a second of echo is enough to judge a stretch
STALE_ERLE_DB = 10.0  # a converged AEC3 removes 20-50 dB here (docs/benchmarks.md); under 10 it is lost


class AecUnavailable(RuntimeError):
    """The echo canceller's engine (livekit) is not installed."""


@dataclass(slots=True)
class _Reply:
    """One reply's audio as sent, and where on the stream clock its samples played.

    ``anchors`` are (stream time, sample offset) pairs: playout starts at the first, and when the
    headset's buffer ran dry long enough to report the reply drained, playout resumes at a new anchor
    with the next unplayed sample (a gap in the middle of a reply, when TTS fell behind).
    """

    samples: list[np.ndarray]
    length: int = 0
    anchors: list[tuple[float, int]] = field(default_factory=list)
    played_upto: int = 0  # samples played before the latest drain
    ended: bool = False  # nothing more will be sent
    cut_at: float | None = None  # stream time the headset stopped it (ABORT)

    @property
    def t_start(self) -> float | None:
        return self.anchors[0][0] if self.anchors else None

    def offset_at(self, t: float) -> int | None:
        """Sample offset playing at stream time ``t`` (None before the first anchor)."""
        pick = None
        for i, (t_a, _) in enumerate(self.anchors):
            if t_a > t:
                break
            pick = i
        if pick is None:
            return None
        t_a, off = self.anchors[pick]
        pos = off + round((t - t_a) * SAMPLE_RATE)
        if pick + 1 < len(self.anchors):
            pos = min(pos, self.anchors[pick + 1][1])
        return min(pos, self.length)

    def slice(self, offset: int, n: int) -> np.ndarray:
        """Samples ``offset .. offset + n`` of the reply (zeros outside)."""
        out = np.zeros(n, dtype=np.int16)
        lo, hi = max(offset, 0), min(offset + n, self.length)
        if lo >= hi:
            return out
        pos = 0
        for chunk in self.samples:
            c_lo, c_hi = pos, pos + len(chunk)
            if c_hi > lo and c_lo < hi:
                a, b = max(lo, c_lo), min(hi, c_hi)
                out[a - offset : b - offset] = chunk[a - c_lo : b - c_lo]
            pos = c_hi
            if pos >= hi:
                break
        return out

    def playing(self, t: float, n: int) -> np.ndarray:
        """The ``n`` samples the speaker played from stream time ``t`` on (zeros in gaps)."""
        out = np.zeros(n, dtype=np.int16)
        for i, (t_a, off) in enumerate(self.anchors):
            stop = self.anchors[i + 1][1] if i + 1 < len(self.anchors) else self.length
            start = round((t - t_a) * SAMPLE_RATE)  # offset of t within this stretch of playout
            lo, hi = max(start, 0), min(start + n, stop - off)
            if lo < hi:
                out[lo - start : hi - start] = self.slice(off + lo, hi - lo)
        return out


class EchoCanceller:
    """Removes the headset's own speaker from its mic frames, given what was sent and when it played."""

    def __init__(
        self,
        *,
        lead_ms: float = 60.0,
        track_lead_ms: float = 20.0,
        tail_ms: float = 800.0,
        noise_suppression: bool = False,
    ) -> None:
        try:
            from livekit import rtc
        except ImportError as exc:  # pragma: no cover - livekit is a dependency
            raise AecUnavailable("echo cancellation needs the livekit package: pip install livekit") from exc
        self._rtc = rtc
        self._noise_suppression = noise_suppression
        self._apm = self._new_apm()
        self._was_active = False
        self.lead = lead_ms / 1000
        self.track_lead = track_lead_ms / 1000
        self.tail = tail_ms / 1000
        self._replies: list[_Reply] = []
        self._until: float = -1.0  # stream time until which the canceller must run
        self.frames_processed = 0
        self._erle: deque[float] = deque(maxlen=ERLE_FRAMES)
        self._stretch_erle: list[float] = []  # per-frame ERLE since the canceller last became active
        self._stale = False  # start the next stretch with a fresh canceller
        self._quiet: deque[float] = deque(maxlen=FLOOR_FRAMES)  # mic power of recent frames without echo
        self._stretch_floor = 0.0  # the background's power when the current stretch began

    def _new_apm(self):  # livekit's AudioProcessingModule
        return self._rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=self._noise_suppression, high_pass_filter=True
        )

    # -- the reference -----------------------------------------------------------------------------
    def begin(self) -> None:
        """A reply starts being sent: its audio follows through :meth:`sent`."""
        self._replies.append(_Reply([]))
        del self._replies[:-4]  # older replies have long played out

    def sent(self, pcm: np.ndarray) -> None:
        """16 kHz int16 audio just sent to the headset, in order."""
        if not self._replies:
            self.begin()
        reply = self._replies[-1]
        reply.samples.append(np.asarray(pcm, dtype=np.int16))
        reply.length += len(pcm)

    def end(self) -> None:
        """The current reply has been sent whole (or sending stopped)."""
        if self._replies:
            self._replies[-1].ended = True

    def played(self, t_stream: float) -> None:
        """The headset started playing at ``t_stream``: a reply whose playout had stalled resumes, or the
        oldest reply not yet heard begins."""
        for reply in self._replies:
            if reply.cut_at is not None:
                continue
            if reply.anchors:
                resumes = reply.anchors[-1][1] < reply.played_upto < reply.length
                if not resumes:
                    continue
                offset = reply.played_upto
            else:
                offset = 0
            reply.anchors.append((t_stream, offset))
            self._until = max(self._until, t_stream + (reply.length - offset) / SAMPLE_RATE + self.tail)
            return

    def drained(self, t_stream: float) -> None:
        """The headset ran out of audio at ``t_stream``: the reply ended (all of it sent and played), or
        sending fell behind and it will resume at the next STARTED."""
        for reply in self._replies:
            if not reply.anchors:
                continue
            if reply.ended:
                reply.played_upto = reply.length
            else:
                pos = reply.offset_at(t_stream)
                reply.played_upto = max(reply.played_upto, pos or 0)

    def stopped(self, t_stream: float) -> None:
        """The headset flushed its speaker (ABORT) at ``t_stream``: nothing plays after it, and replies
        that never started playing never will."""
        self._replies = [r for r in self._replies if r.t_start is not None or not r.ended]
        for reply in self._replies:
            if reply.t_start is not None and reply.cut_at is None:
                reply.cut_at = t_stream
        self._until = min(self._until, t_stream + self.tail)

    @property
    def pending(self) -> bool:
        """Audio was sent whose playout the headset has not reported yet."""
        return any(r.t_start is None and r.length for r in self._replies)

    def active(self, t_stream: float, track: PlayoutTrack | None = None) -> bool:
        """Whether the mic frame at ``t_stream`` can contain echo: a reply playing, pending or its tail."""
        if track is not None:
            return track.active(t_stream, self.tail)
        return t_stream < self._until or self.pending

    # -- the mic -----------------------------------------------------------------------------------
    def reference(self, t_stream: float, n: int) -> np.ndarray:
        """What the speaker played ``lead`` after mic time ``t_stream``, ``n`` samples, from all replies."""
        t = t_stream + self.lead
        out = np.zeros(n, dtype=np.int32)
        for reply in self._replies:
            if reply.t_start is None or t + n / SAMPLE_RATE < reply.t_start:
                continue
            part = reply.playing(t, n).astype(np.int32)
            if reply.cut_at is not None:
                cut = round((reply.cut_at - t) * SAMPLE_RATE)
                part[max(cut, 0) :] = 0
            out += part
        return np.clip(out, -32768, 32767).astype(np.int16)

    def process(self, pcm: np.ndarray, t_stream: float, track: PlayoutTrack | None = None) -> np.ndarray:
        """The mic frame at ``t_stream`` with the echo removed (unchanged when nothing can echo).

        ``track``: the link's record of what its speaker played when (:meth:`HeadsetLink.playout_track`);
        without one the reference is placed by the PLAYBACK events (:meth:`played` ...)."""
        if not self.active(t_stream, track):
            if self._was_active:
                self._stretch_ended()
            self._was_active = False
            x = pcm.astype(np.float64)
            if (power := float(np.dot(x, x)) / max(len(x), 1)) > 0:  # digital silence: a muted mic
                self._quiet.append(power)
            return pcm
        if not self._was_active and (track is None or self._stale):
            # Placed by PLAYBACK events the reference's offset differs from one stretch of replies to the
            # next, so each stretch gets a fresh canceller (about 1 ms to make) rather than one whose
            # delay estimate is stale. A link's playout track keeps the offset fixed: one canceller
            # stays converged across replies, and only the first reply of a session starts cold, unless
            # the last stretch showed it had lost its way (:meth:`_stretch_ended`).
            self._apm = self._new_apm()
            self._stale = False
        if not self._was_active:
            self._stretch_erle.clear()
            self._stretch_floor = float(np.percentile(self._quiet, 10)) if len(self._quiet) >= 25 else 0.0
        self._was_active = True
        if track is not None:  # placed exactly: a tick's lead covers a FLOW sent after its mic frame
            ref = track.reference(t_stream + self.track_lead, len(pcm))
        else:
            ref = self.reference(t_stream, len(pcm))
        out = np.empty_like(pcm)
        rtc = self._rtc
        for i in range(0, len(pcm) - APM_FRAME + 1, APM_FRAME):
            r = rtc.AudioFrame(ref[i : i + APM_FRAME].tobytes(), SAMPLE_RATE, 1, APM_FRAME)
            self._apm.process_reverse_stream(r)
            m = rtc.AudioFrame(pcm[i : i + APM_FRAME].tobytes(), SAMPLE_RATE, 1, APM_FRAME)
            self._apm.process_stream(m)
            out[i : i + APM_FRAME] = np.frombuffer(m.data, dtype=np.int16)
        tail = len(pcm) % APM_FRAME
        if tail:
            out[-tail:] = pcm[-tail:]
        self.frames_processed += 1
        e_in, e_out, e_ref = (
            float(np.dot(v, v)) / len(v) for v in (x.astype(np.float64) for x in (pcm, out, ref))
        )
        if e_ref > ERLE_REF_FLOOR and e_in > ERLE_MIC_FLOOR:
            erle = 10 * np.log10(e_in / max(e_out, 1.0))
            self._erle.append(erle)
            if e_in > self._stretch_floor * STALE_OVER_FLOOR:
                self._stretch_erle.append(erle)
        return out

    def _stretch_ended(self) -> None:
        """A stretch of replies has played out. If the canceller hardly cancelled through it (a reference
        that jumped, a headset that reconnected), the next stretch starts with a fresh one rather than
        one stuck on a wrong filter."""
        n = len(self._stretch_erle)
        if n >= STALE_MIN_FRAMES and (median := float(np.median(self._stretch_erle))) < STALE_ERLE_DB:
            log.info("echo canceller reset: %.1f dB median over the last %d frames of echo", median, n)
            self._stale = True

    @property
    def running(self) -> bool:
        """Whether the latest frame went through the canceller (a reply, or its tail, could echo)."""
        return self._was_active

    @property
    def erle_db(self) -> float | None:
        """Echo return loss enhancement: the median, over recent frames in which the speaker played and the
        mic heard something, of energy in over energy out, in dB. The median keeps frames in which the
        wearer talked over a reply (nothing to cancel there) from dragging it down."""
        if not self._erle:
            return None
        return float(np.median(self._erle))
