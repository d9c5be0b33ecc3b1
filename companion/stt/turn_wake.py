"""Wake mode in the turn detector: its gate, and what it does with speech the gate refuses.

The session (wake mode) gives `TurnDetector` a `gate(text, t_start)`: do these first words of an utterance
address the assistant (the wake phrase, or the follow-up window)? The first words come from the draft at the
utterance's first pause, or from a probe of its first `probe_ms` of speech. A refused utterance is not
transcribed further, ends at its own end of speech and is never joined to the next: an unaddressed `Turn`
with no words. Resumed speech inside it is split off as a new utterance, so a request that follows a
bystander within a breath is still heard; and while it goes on, a scan transcribes its last
`SCAN_WINDOW` every `SCAN_HOP` of speech, so a wake phrase said over a bystander (no pause between them)
splits the addressed rest off too. The table is `companion.stt.decision.WAKE_RULE`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from companion.audio.vad import SAMPLE_RATE
from companion.stt.decision import wake_rule
from companion.stt.turn_events import Turn, TurnEvent
from companion.stt.turn_jobs import _Closed, _Ending, _Failure, _Job

if TYPE_CHECKING:
    from companion.audio.vad import Endpointer

__all__ = ["LEAD_IN", "PROBE_MS", "WakeGating"]

log = logging.getLogger(__name__)

PROBE_MS = 1500  # speech this long without a pause gets a transcript of its start for the gate
LEAD_IN = 1600  # samples (100 ms) before a probe's or a split utterance's first speech
# A scan of unaddressed speech hears 2.5 s every 1.5 s: windows overlap by 1 s, more than the phrase lasts.
SCAN_WINDOW = 40000
SCAN_HOP = 24000
SCAN_TAIL = 9600  # an unaddressed utterance ends with this much speech unscanned: one last scan of it


class WakeGating:
    """The wake-mode half of `companion.stt.turn.TurnDetector` (a mixin: it works on the detector's state)."""

    if TYPE_CHECKING:  # the detector's own members this half uses
        endpointer: Endpointer
        _spec: _Job | None
        _ending: _Ending | None
        _turn_start: int | None

        def _own(self, coro: Any, name: str) -> asyncio.Task[None]: ...
        async def _transcribe(self, job: _Job) -> None: ...
        def _drop_spec(self, *, keep: bool = False) -> None: ...
        def _emit(self, item: TurnEvent | _Failure | _Closed) -> None: ...
        def _reset(self) -> None: ...
        def _emit_turn(
            self, job: _Job, t_end_of_turn: float, reason: str, t_start: float, addressed: bool | None = None
        ) -> None: ...

    def _init_wake(self, gate: Callable[[str, float], bool] | None, probe_ms: float) -> None:
        self.gate = gate
        self._probe_samples = int(probe_ms * 16)
        self._addressed: bool | None = None if gate is not None else True  # no gate: all is addressed
        self._onset: int | None = None  # where the current utterance's speech began (sample, time)
        self._t_onset = 0.0
        self._probe: _Job | None = None
        self._probed = False  # one probe per utterance
        self._resumed_at: tuple[int, float] | None = None  # the latest resumption in this utterance
        self._detached: list[_Ending] = []  # ended utterances decided alone
        self._scan: _Job | None = None  # a scan of unaddressed speech for the phrase
        self._scanned_to = 0  # the end of the audio the gate or the last scan heard
        self._scan_ended: tuple[int, float, float] | None = None  # the scanned utterance ended meanwhile

    def _reset_wake(self) -> None:
        self._addressed = None if self.gate is not None else True
        self._onset = None
        self._resumed_at = None
        self._probed = False
        probe, self._probe = self._probe, None
        if probe is not None and probe.task is not None and not probe.task.done():
            probe.task.cancel()

    def _resumed(self, t: float) -> None:
        """Speech resumed after a short pause at audio time `t`: split an unaddressed utterance there."""
        at = self.endpointer.stream_end - round((self.endpointer.now - t) * SAMPLE_RATE)
        self._resumed_at = (at, t)
        if wake_rule("resumed", self._addressed) == "split":
            self._split(at, t)

    def _wake_job_done(self, job: _Job) -> bool:
        """Handle a finished probe, scan or detached transcription; False for the detector's own jobs."""
        if job is self._probe:
            self._probe = None
            self._gate_answer(job)
        elif job is self._scan:
            self._scan = None
            self._scan_answer(job)
        elif any(e.job is job for e in self._detached):
            self._finish_detached(job)
        else:
            return False
        return True

    def _forget_wake_job(self, job: _Job) -> None:
        """A transcription failed. A probe or scan: the utterance's address is then decided by its own
        transcript, and a later hop of unaddressed speech may be scanned again. A detached ending: it is
        over (the failure is raised)."""
        if job is self._probe:
            self._probe = None
        elif job is self._scan:
            self._scan = None
        else:
            self._detached = [e for e in self._detached if e.job is not job]

    def _maybe_probe(self) -> None:
        """Transcribe the start of a long utterance whose address is not known yet, or scan the latest
        audio of an unaddressed one for the phrase."""
        self._maybe_scan()
        onset = self._onset
        if self._probed or onset is None or not self.endpointer.in_speech:
            return
        if self.endpointer.stream_end - onset < self._probe_samples:
            return
        drafting = self._spec is not None and self._spec.result is None
        if wake_rule("long", self._addressed) != "probe" or drafting:
            return  # known, or a draft will answer first
        start, end = max(0, onset - LEAD_IN), onset + self._probe_samples
        audio = self.endpointer.audio(start, end)
        self._probed = True
        job = self._probe = _Job(start, end, self.endpointer.time_of(end), audio, draft=True, offset=start)
        job.task = self._own(self._transcribe(job), "turn-stt-probe")

    def _maybe_scan(self) -> None:
        if self._addressed is not False or self._scan is not None or self._onset is None:
            return
        end = self.endpointer.stream_end
        if not self.endpointer.in_speech or end - self._scanned_to < SCAN_HOP:
            return
        first = self._turn_start if self._turn_start is not None else self._onset - LEAD_IN
        self._start_scan(max(0, first, end - SCAN_WINDOW), end)

    def _start_scan(self, start: int, end: int) -> None:
        self._scanned_to, self._scan_ended = end, None
        job = self._scan = _Job(start, end, self.endpointer.time_of(end), self.endpointer.audio(start, end))
        job.draft, job.offset = True, start
        job.task = self._own(self._transcribe(job), "turn-stt-scan")

    def _scan_answer(self, job: _Job) -> None:
        """The phrase said inside unaddressed speech: what follows the scan's start is a new, addressed
        utterance (split off now, or transcribed alone if the speech has ended meanwhile)."""
        assert job.result is not None and self.gate is not None
        ended, self._scan_ended = self._scan_ended, None
        t = self.endpointer.time_of(job.start)
        if not job.result.text.strip() or not self.gate(job.result.text, t):
            return
        log.debug("wake phrase heard inside unaddressed speech")
        if ended is None and self._addressed is False and self._onset is not None:
            self._drop_spec()
            self._finish_unaddressed(job.start, t, t)
            self._turn_start, self._onset, self._t_onset = job.start, job.start, t
            self._addressed = True
        elif ended is not None:
            end, t_end_of_speech, t_decided = ended
            audio = self.endpointer.audio(job.start, end)
            rest = _Job(job.start, end, t_end_of_speech, audio, offset=job.start)
            self._detached.append(_Ending(rest, t_decided, forced=True, t_start=t))
            rest.task = self._own(self._transcribe(rest), "turn-stt")

    def _gate_answer(self, job: _Job) -> bool | None:
        """Ask the gate about a transcript of this utterance's start; act on a refusal."""
        assert job.result is not None and self.gate is not None
        if self._addressed is not None or not job.result.text.strip():
            return self._addressed
        self._addressed = bool(self.gate(job.result.text, self._t_onset))
        if self._addressed:
            return True
        log.debug("utterance not addressed: not transcribed further")  # counts only, never the words
        spec, self._spec = self._spec, None
        for j in (spec, self._probe):
            if j is not None and j.task is not None and not j.task.done():
                j.task.cancel()
            if j is not None and j.model_task is not None and not j.model_task.done():
                j.model_task.cancel()
        self._probe = None
        self._scanned_to = job.end
        ending = self._ending
        if ending is not None:  # its end of speech is past: it ends now
            self._finish_unaddressed(ending.job.end, ending.job.t_end_of_speech, self.endpointer.now)
        elif self._resumed_at is not None and self._resumed_at[0] > job.end:
            self._split(*self._resumed_at)  # speech that resumed after the words heard may be addressed
        return False

    def _finish_unaddressed(self, end: int, t_end_of_speech: float, t_decided: float) -> None:
        """End an unaddressed utterance: a Turn with its audio and no words."""
        first = self._turn_start if self._turn_start is not None else (self._onset or end) - LEAD_IN
        if self._scan is None and end - self._scanned_to >= SCAN_TAIL and self._addressed is False:
            start = max(0, first, self._scanned_to - (SCAN_WINDOW - SCAN_HOP))  # what no scan heard
            self._start_scan(start, end)
        if self._scan is not None:
            self._scan_ended = (end, t_end_of_speech, t_decided)  # a scan running on may find the phrase
        start = self._turn_start if self._turn_start is not None else max(0, (self._onset or end) - LEAD_IN)
        self._emit(
            Turn(
                text="",
                audio=self.endpointer.audio(start, end),
                t_end_of_speech=t_end_of_speech,
                t_end_of_turn=t_decided,
                stt_ms=0.0,
                t_stt_done=t_decided,
                reason="unaddressed",
                t_start=self._t_onset,
                addressed=False,
            )
        )
        self._reset()

    def _split(self, at: int, t: float) -> None:
        """Speech resumed inside an unaddressed utterance: end it there; the rest is a new utterance."""
        t_end = self.endpointer.time_of(at)
        self._drop_spec()
        self._finish_unaddressed(at, t_end, t_end)
        self._turn_start = max(0, at - LEAD_IN)
        self._onset, self._t_onset = at, t

    def _detach(self) -> None:
        """New speech after an ended utterance whose address is not known: decide that one alone (when
        its transcript is in) and start afresh, so it never grows into the next utterance."""
        ending = self._ending
        assert ending is not None
        ending.t_start = self._t_onset
        self._detached.append(ending)
        if ending.job.model_task is not None and not ending.job.model_task.done():
            ending.job.model_task.cancel()
        self._spec = self._ending = None  # its job runs on, owned by the detached ending
        self._reset()

    def _finish_detached(self, job: _Job) -> None:
        ending = next(e for e in self._detached if e.job is job)
        self._detached.remove(ending)
        assert job.result is not None and self.gate is not None
        if not job.result.text.strip():
            return
        if self.gate(job.result.text, ending.t_start):
            self._emit_turn(job, max(ending.t_decided, job.t_done), "forced", ending.t_start, True)
            return
        unaddressed = Turn("", job.audio, job.t_end_of_speech, job.t_done, 0.0, job.t_done, "unaddressed")
        self._emit(replace(unaddressed, t_start=ending.t_start, addressed=False))
