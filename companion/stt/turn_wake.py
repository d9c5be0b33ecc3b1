"""Wake mode in the turn detector: its gate, and what it does with speech the gate refuses.

The session (wake mode) gives `TurnDetector` a `gate(text, t_start)`: do these first words of an utterance
address the assistant (the wake phrase, or the follow-up window)? The first words come from the draft at the
utterance's first pause, or from a probe of its first `probe_ms` of speech. A refused utterance is not
transcribed further, ends at its own end of speech and is never joined to the next: an unaddressed `Turn`
with no words. Resumed speech inside it is split off as a new utterance, so a request that follows a
bystander within a breath is still heard. The table is `companion.stt.decision.WAKE_RULE`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from companion.stt.decision import wake_rule
from companion.stt.turn_events import Turn, TurnEvent
from companion.stt.turn_jobs import _Closed, _Ending, _Failure, _Job

if TYPE_CHECKING:
    from companion.audio.vad import Endpointer

__all__ = ["LEAD_IN", "PROBE_MS", "WakeGating"]

log = logging.getLogger(__name__)

PROBE_MS = 1500  # speech this long without a pause gets a transcript of its start for the gate
LEAD_IN = 1600  # samples (100 ms) before a probe's or a split utterance's first speech


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

    def _reset_wake(self) -> None:
        self._addressed = None if self.gate is not None else True
        self._onset = None
        self._resumed_at = None
        self._probed = False
        probe, self._probe = self._probe, None
        if probe is not None and probe.task is not None and not probe.task.done():
            probe.task.cancel()

    def _maybe_probe(self) -> None:
        """Transcribe the start of a long utterance whose address is not known yet."""
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
        ending = self._ending
        if ending is not None:  # its end of speech is past: it ends now
            self._finish_unaddressed(ending.job.end, ending.job.t_end_of_speech, self.endpointer.now)
        elif self._resumed_at is not None and self._resumed_at[0] > job.end:
            self._split(*self._resumed_at)  # speech that resumed after the words heard may be addressed
        return False

    def _finish_unaddressed(self, end: int, t_end_of_speech: float, t_decided: float) -> None:
        """End an unaddressed utterance: a Turn with its audio and no words."""
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
