"""End-of-turn detection: the endpointer's silence timing plus a speculative transcript.

A short pause starts transcription in the STT worker while the wearer is still silent. When the
endpointer declares the end of speech, a transcript of exactly that audio is usually ready: if it
reads as a complete utterance the turn ends at once; if it reads as a fragment ("set a timer for")
the detector keeps listening, up to `fallback_ms` of silence, and a resumed sentence joins the same
turn. Speech that resumes makes the speculative result stale. With `commit`, a draft still running then
finishes in the background, and words that two drafts agree on are committed (`companion.stt.prefix`), so
later passes decode only the audio after them.

A hesitation can also cut a sentence where Whisper hears a whole one: "what is the ... date today?"
transcribes as "What is that?", "turn the volume ... up" as "Turn the volume." Given a `recognised`
check (the session passes its skills' matcher), a short transcript that nothing recognises is held
for `unsure_ms` of silence before the turn ends; a recognised command still ends at once.

Where the words leave the end unsure (a complete-looking sentence that no skill recognises: an open
question, an unknown command, or a hesitation's first half), an audio end-of-turn model (`SmartTurn`, given
as `end_model`) reads the voice: "finished" ends the turn at the normal silence, "not finished" holds it
`unsure_ms`. Without the model, short unsure transcripts are held and longer ones end (text only). The
full table is `companion.stt.decision.decide`; the events given out are in `companion.stt.turn_events`.
The model is started with the transcript at each pause, not after it: the recogniser's decoder keeps one
core and the model takes the other, so an open question's end waits for the slower of the two instead of
their sum (docs/benchmarks.md, "Smart Turn alongside the draft"). Words that settle the end by themselves
(a command, a fragment, nothing) cancel it. The model hears the pause's silence so far, not the whole
`end_silence_ms`: on real speech that makes it a little more cautious (a finished sentence held now and then),
where padding the silence out to its full length split more sentences at their pauses. Once a pause's words
and voice say the turn ends there, `settled()` returns, so the session can synthesise the reply's first
sentence while the silence runs out.

In wake mode a `gate` (the session's addressing check) is asked about the first words of each utterance
(a draft at its first pause, or a probe of its first `probe_ms` of speech): an utterance it refuses is not
transcribed further, ends at its end of speech and is never joined to the next one; the table is
`companion.stt.decision.WAKE_RULE`. Such a `Turn` carries `addressed=False` and no words.

All times are seconds on the audio clock of the frames given to `feed`. Between frames the clock is
extrapolated with the wall clock, which is exact for a live stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from companion.audio.vad import EndOfSpeech, Endpointer, SpeechPaused, SpeechResumed, SpeechStarted
from companion.stt.base import PassRecognizer, SpeechRecognizer
from companion.stt.decision import UNSURE_MAX_WORDS, Decision, decide, text_cue, wake_rule
from companion.stt.prefix import Prefix, join_text
from companion.stt.turn_events import EndModel, Hypothesis, SpeechDropped, Turn, TurnEvent
from companion.stt.turn_jobs import _CLOSED, _Closed, _Ending, _Failure, _Job
from companion.stt.turn_wake import PROBE_MS, WakeGating

if TYPE_CHECKING:
    from companion.config import TurnConfig

__all__ = [
    "UNSURE_MAX_WORDS",
    "EndModel",
    "Hypothesis",
    "SpeechDropped",
    "Turn",
    "TurnDetector",
    "TurnEvent",
    "text_cue",
]

log = logging.getLogger(__name__)


class TurnDetector(WakeGating):
    """Feeds audio frames to an `Endpointer` and yields `SpeechStarted`, `Hypothesis` and `Turn` events.

    `feed()` is synchronous and cheap (the VAD runs inline, ~0.15 ms per 32 ms window); it must be
    called from the event loop's thread. Transcription runs in the STT's worker thread through tasks
    this detector owns; `aclose()` (or leaving `async with`) cancels them.
    """

    @classmethod
    def from_config(
        cls,
        stt: SpeechRecognizer,
        turn: TurnConfig,
        *,
        recognised: Callable[[str], bool] | None = None,
        end_model: EndModel | None = None,
        gate: Callable[[str, float], bool] | None = None,
    ) -> TurnDetector:
        """A detector from a `companion.config.TurnConfig` (end_silence_ms, speculate_ms, fallback_ms,
        unsure_ms, preroll_ms, barge_in_speech_ms, barge_in_threshold, echo_residual_margin_db,
        voice_margin_db, max_utterance_s, smart_turn, smart_turn_model, smart_turn_threshold,
        smart_turn_at_pause).

        The audio model is the installed Smart Turn unless `end_model` is given or `smart_turn` is off."""
        if turn.speculate_ms > turn.end_silence_ms:
            raise ValueError(
                f"turn.speculate_ms ({turn.speculate_ms}) must not exceed turn.end_silence_ms "
                f"({turn.end_silence_ms}): the speculative transcript starts during the end-of-turn silence"
            )
        endpointer = Endpointer(
            speculate_ms=turn.speculate_ms,
            end_silence_ms=turn.end_silence_ms,
            pre_roll_ms=turn.preroll_ms,
            barge_in_speech_ms=getattr(turn, "barge_in_speech_ms", None),
            barge_in_threshold=getattr(turn, "barge_in_threshold", None),
            residual_margin_db=getattr(turn, "echo_residual_margin_db", 6.0),
            voice_margin_db=getattr(turn, "voice_margin_db", 0.0) or None,
            quiet_onsets=gate is None,  # wake mode: see Endpointer.quiet_onsets
            tail_ms=min(100, turn.speculate_ms),
            max_utterance_s=turn.max_utterance_s,
            history_s=max(60.0, 2 * turn.max_utterance_s),
        )
        if end_model is None and getattr(turn, "smart_turn", False) and turn.unsure_ms:
            from companion.stt.smart_turn import SmartTurn

            end_model = SmartTurn.shared(getattr(turn, "smart_turn_model", None))
        return cls(
            stt,
            endpointer,
            fallback_ms=turn.fallback_ms,
            unsure_ms=turn.unsure_ms,
            recognised=recognised,
            end_model=end_model,
            threshold=getattr(turn, "smart_turn_threshold", 0.5),
            model_at_pause=getattr(turn, "smart_turn_at_pause", True),
            gate=gate,
        )

    def __init__(
        self,
        stt: SpeechRecognizer,
        endpointer: Endpointer,
        *,
        fallback_ms: float = 1200,
        unsure_ms: float = 0,
        recognised: Callable[[str], bool] | None = None,
        end_model: EndModel | None = None,
        threshold: float = 0.5,
        model_at_pause: bool = True,
        commit: bool = False,
        gate: Callable[[str, float], bool] | None = None,
        probe_ms: float = PROBE_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`recognised(text)` says whether a transcript is one the assistant understands outright (a
        skill command). With `unsure_ms` > 0, transcripts it rejects are unsure: `end_model` (if given)
        decides from the audio, P(finished) >= `threshold` ends the turn; otherwise, or without a model
        for short ones, they wait `unsure_ms` of silence. `model_at_pause`: the model starts with each
        transcript that may end the turn and is cancelled if the words settle it; otherwise it starts only
        once the words read unsure. `commit`: transcribe while the wearer speaks
        (`companion.stt.prefix`; off by default: on real speech it cost 0.8 WER points for ~40% less audio
        in the final pass of the turns it applied to, see docs/benchmarks.md). `clock` is the wall clock
        (tests script it).

        `gate(text, t_start)` (wake mode) says whether an utterance that began at audio time `t_start`
        with the words `text` is addressed; `probe_ms` of speech without a pause gets a probe transcript
        of its start for it."""
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold ({threshold}) must be between 0 and 1")
        if fallback_ms < endpointer.end_silence_ms:
            raise ValueError(
                f"fallback_ms ({fallback_ms}) must be >= the endpointer's end_silence_ms "
                f"({endpointer.end_silence_ms})"
            )
        if unsure_ms and not endpointer.end_silence_ms <= unsure_ms <= fallback_ms:
            raise ValueError(
                f"unsure_ms ({unsure_ms}) must be 0 (off) or between end_silence_ms "
                f"({endpointer.end_silence_ms}) and fallback_ms ({fallback_ms})"
            )
        self.stt = stt
        self.endpointer = endpointer
        self.fallback_s = fallback_ms / 1000
        self.unsure_s = unsure_ms / 1000
        self.recognised = recognised
        self.end_model = end_model if unsure_ms else None
        self.threshold = threshold
        self.model_at_pause = model_at_pause
        self._clock = clock
        self._queue: asyncio.Queue[TurnEvent | _Failure | _Closed] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._settled = asyncio.Event()  # the words and voice say how the turn now ending ends (`settled`)
        self._turn_start: int | None = None
        self._prefix: Prefix | None = None  # the turn's committed start (see companion.stt.prefix)
        self._background: _Job | None = None  # a stale draft left to finish for the prefix
        self.commit = commit
        self._spec: _Job | None = None  # the transcription of the latest pause, if still current
        self._ending: _Ending | None = None
        self._fed_at = clock()
        self._closed = False
        self._warmed = self.end_model is None
        self._init_wake(gate, probe_ms)

    # -- clock

    def now(self) -> float:
        """The audio clock now: the end of the newest frame plus the wall time since it was fed."""
        return self.endpointer.now + (self._clock() - self._fed_at)

    # -- input

    @property
    def interruptible(self) -> bool:
        """Whether a reply the wearer may interrupt by voice is playing (speech is confirmed sooner)."""
        return self.endpointer.interruptible

    @interruptible.setter
    def interruptible(self, on: bool) -> None:
        self.endpointer.interruptible = on

    @property
    def echo_residual(self) -> bool:
        """Whether the audio fed now comes out of an echo canceller (speech must stand above the noise)."""
        return self.endpointer.echo_residual

    @echo_residual.setter
    def echo_residual(self, on: bool) -> None:
        self.endpointer.echo_residual = on

    def feed(self, frame: np.ndarray, t: float) -> None:
        """Consume one frame (int16 mono 16 kHz) that starts at audio time `t`."""
        if self._closed:
            raise RuntimeError("TurnDetector is closed")
        if not self._warmed:
            self._warmed = True
            self._own(self._warm(), "turn-model-load")
        events = self.endpointer.feed(frame, t)
        self._fed_at = self._clock()
        for ev in events:
            self._on_speech_event(ev)
        self._maybe_probe()
        self._check_fallback()

    def end_turn(self) -> None:
        """End the turn now (push-to-talk release, end of the stream): no waiting for more speech.

        An open utterance is closed at its last speech; the turn is emitted as soon as its transcript
        is ready (at once if the speculative one covers the same audio).
        """
        for ev in self.endpointer.flush():
            self._on_speech_event(ev)
        ending = self._ending
        if ending is None:
            return
        ending.forced = True
        if ending.job.result is not None and ending.job.result.suspect:
            self._reread(ending)
        elif ending.job.result is not None:
            self._finish(ending, max(self.endpointer.now, ending.job.t_done), "forced")

    def _on_speech_event(self, ev: object) -> None:
        if isinstance(ev, SpeechStarted):
            if self._ending is not None and wake_rule("restart", self._addressed) == "detach":
                self._detach()
            elif self._ending is not None:
                log.debug("speech resumed after a fragment: the turn continues")
                self._ending = None
                self._settled.clear()
            self._drop_spec(keep=True)
            if self._turn_start is None:
                self._onset, self._t_onset = ev.sample, ev.t
            self._emit(ev)
        elif isinstance(ev, SpeechPaused):
            self._begin(ev.start_sample)
            self._drop_spec()
            if wake_rule("pause", self._addressed) == "draft":
                self._spec = self._start_job(ev.end_sample, ev.t_end_of_speech, draft=True)
                self._ask_alongside(self._spec)
        elif isinstance(ev, SpeechResumed):
            self._drop_spec(keep=True)
            self._resumed(ev.t)
        elif isinstance(ev, EndOfSpeech):
            self._begin(ev.start_sample)
            if wake_rule("end", self._addressed) == "end":
                self._finish_unaddressed(ev.end_sample, ev.t_end_of_speech, ev.t_decided)
                return
            job = self._spec
            if (
                job is None
                or job.start != self._turn_start
                or job.end != ev.end_sample
                or job.error is not None  # a draft that failed: try again now
            ):
                self._drop_spec()
                job = self._spec = self._start_job(ev.end_sample, ev.t_end_of_speech)
                self._ask_alongside(job)
            self._ending = _Ending(job, ev.t_decided, ev.forced)
            if job.result is not None and job.result.suspect:
                self._reread(self._ending)
            elif job.result is not None:
                self._decide(self._ending, ev.t_decided)

    # -- transcription and audio-model jobs

    def _own(self, coro: Any, name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def settled(self) -> None:
        """Wait until the words and the voice have settled how the turn now ending ends, and none of this
        detector's transcription or audio-model jobs is running: its pause reads as finished (it ends
        when the silence runs out), or it is held for more speech (`unsure_ms`). Work that only pays off
        if the turn ends, such as synthesising a speculative reply, waits for this: started at every
        pause, on two cores it slowed the very decisions it was preparing for (docs/benchmarks.md, "First
        sentence during the hold"); started once they are made, it is usually done when the silence is.
        Speech that resumes unsettles it again."""
        await self._settled.wait()
        while pending := [task for task in self._tasks if not task.done()]:
            await asyncio.wait(pending)

    async def _warm(self) -> None:
        aload = getattr(self.end_model, "aload", None)
        if aload is None:
            return
        try:
            await aload()
        except Exception as e:  # a broken model file: say so once, go on with text cues only
            log.warning("audio end-of-turn model unusable, text cues only: %s", e)
            self.end_model = None

    def _begin(self, start: int) -> None:
        if self._turn_start is None:
            self._turn_start = start
            # Committing needs a recogniser that takes the committed words as a prompt (the local Whisper).
            self._prefix = Prefix(start) if self.commit and isinstance(self.stt, PassRecognizer) else None

    def _start_job(self, end: int, t_end_of_speech: float, *, draft: bool = False) -> _Job:
        assert self._turn_start is not None
        audio = self.endpointer.audio(self._turn_start, end)
        job = _Job(self._turn_start, end, t_end_of_speech, audio, draft=draft, offset=self._turn_start)
        if self._prefix is not None and self._prefix.start < end:
            job.offset, job.after = self._prefix.start, self._prefix.text
        job.task = self._own(self._transcribe(job), "turn-stt")
        return job

    def _ask_alongside(self, job: _Job) -> None:
        """Start the audio model on the turn so far (with the silence heard up to now, ~64 ms at a pause)
        while `job` transcribes it. Not for speech whose address is still unknown (wake mode): its first
        words may show it is not for the assistant at all."""
        unknown_address = self.gate is not None and not self._addressed
        if self.model_at_pause and self.end_model is not None and not unknown_address:
            self._start_model(job)

    def _start_model(self, job: _Job) -> None:
        """Ask the audio model about the turn from its start to the pause, its first `speculate_ms` of
        silence included, however late this runs (a re-read, or not asked alongside the draft)."""
        pcm = self.endpointer.audio(job.start, self.endpointer.pause_point(job.end))
        job.model_task = self._own(self._ask_model(job, pcm), "turn-model")

    def _reread(self, ending: _Ending) -> None:
        """The draft that ends the turn came back suspect (a short clip heard as silence or with a
        repeat): transcribe the same audio again as a final pass, which may re-read it."""
        old = ending.job
        if old.model_task is not None:
            old.model_task.cancel()  # the re-read's words decide whether the voice is asked again
        job = _Job(old.start, old.end, old.t_end_of_speech, old.audio, reread=True, offset=old.offset)
        job.after = old.after
        ending.job = self._spec = job
        job.task = self._own(self._transcribe(job), "turn-stt")

    def _drop_spec(self, *, keep: bool = False) -> None:
        """The speculative transcript is stale. With `keep` (speech resumed) a draft still running is
        left to finish in the background, where it may settle the start of the turn (`Prefix`); one older
        background draft still queued is superseded and dropped."""
        job, self._spec = self._spec, None
        if self._ending is None:
            self._settled.clear()  # it was about this pause
        if job is None:
            return
        if job.model_task is not None and not job.model_task.done():
            job.model_task.cancel()
        if keep and self._prefix is not None and job.task is not None and not job.task.done():
            old, self._background = self._background, job
            job = old
            if job is None:
                return
        if job.task is not None and not job.task.done():
            job.task.cancel()  # a queued request is dropped; a running one finishes, unheard

    def _waited_on(self, job: _Job) -> bool:
        """Whether a turn waits on this job: a final pass, or the draft the ending turn took up. A draft
        made at a pause (or a wake-mode probe or scan) is only a head start while the wearer may go on."""
        return not job.draft or (self._ending is not None and self._ending.job is job)

    async def _transcribe(self, job: _Job) -> None:
        # Only the local Whisper makes drafts and takes committed words (remote engines: whole turns).
        stt = self.stt
        kind = "draft" if job.draft else "reread" if job.reread else "final"
        try:
            if not isinstance(stt, PassRecognizer):
                job.result = await stt.atranscribe(job.audio)
            else:
                pcm = self.endpointer.audio(job.offset, job.end) if job.offset != job.start else job.audio
                result = await stt.apass(pcm, kind, after=job.after)
                job.tail = result.text
                job.result = replace(result, text=join_text(job.after, result.text))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            job.error, job.t_done = e, self.now()
            self._forget_wake_job(job)
            if self._waited_on(job):
                if self._ending is not None and self._ending.job is job:
                    # The turn is lost (the wearer is told and says it again); the detector listens on
                    # with what it knows of the room (its noise floor).
                    self._reset()
                self._emit(_Failure(e))  # surfaced to the consumer of events()
            else:  # the wearer may still be speaking: the end of the turn tries again
                log.debug("a speculative %s failed, retried at the end of the turn: %s", kind, e)
            return
        job.t_done = self.now()
        if self._wake_job_done(job):
            return
        prefix = self._prefix
        if job.draft and prefix is not None and job.start == self._turn_start and not job.result.suspect:
            if prefix.offer(job.offset, job.end, job.tail):
                log.debug("turn start settled: %d passes agreed (commit %d)", 2, prefix.commits)
        if self._closed or job is not self._spec:
            return  # stale: the wearer spoke again
        ending = self._ending
        if job.result.suspect:  # not offered: the final pass re-reads it
            if ending is not None and ending.job is job:
                self._reread(ending)
            return
        if self._addressed is None and self._gate_answer(job) is False:
            return  # not addressed: no hypothesis, no model, no decision (it ends at its end of speech)
        job.cue = text_cue(job.result.text, self.recognised)
        if job.cue == "open" and self.end_model is not None:
            if job.model_task is None:
                self._start_model(job)  # not asked alongside: now, while the endpointer's silence runs on
            elif job.model_task.done() and job.p_complete is None:
                job.cue = "open-text"  # the model failed on it already
        elif job.model_task is not None:
            job.model_task.cancel()  # the words settle the end: the voice's answer is not needed
            job.model_task = None
        if ending is not None and ending.job is job:
            self._decide(ending, max(ending.t_decided, job.t_done, job.t_model_done))
        elif job.result.text:
            job.offered = True
            self._emit(Hypothesis(job.result.text, job.t_end_of_speech))
            self._foresee(job)

    async def _ask_model(self, job: _Job, pcm: np.ndarray) -> None:
        assert self.end_model is not None
        try:
            p = await self.end_model.aprobability(pcm)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the model failing must not lose the turn: the text cues decide
            log.warning("audio end-of-turn model failed, text cues only for this turn: %s", e)
            p = None
        job.t_model_done = self.now()
        job.p_complete = p
        if job.result is None:
            return  # asked alongside the transcript, which is not in yet: it decides when it is
        if p is None:
            job.cue = "open-text"
        ending = self._ending
        if not self._closed and job is self._spec and ending is not None and ending.job is job:
            self._decide(ending, max(ending.t_decided, job.t_done, job.t_model_done))
        elif not self._closed and job is self._spec and ending is None:
            self._foresee(job)

    # -- decisions

    def _decision(self, job: _Job, *, forced: bool = False) -> Decision:
        """The decision table (`companion.stt.decision.decide`) for `job`'s transcript and voice."""
        result = job.result
        assert result is not None
        return decide(
            job.cue or text_cue(result.text, self.recognised),
            len(result.text.split()),
            forced=forced,
            model_asked=job.model_task is not None,
            p_complete=job.p_complete,
            threshold=self.threshold,
            unsure_s=self.unsure_s,
            fallback_s=self.fallback_s,
            text_rule=self.recognised is not None,
        )

    def _foresee(self, job: _Job) -> None:
        """A pause's draft (and the voice, if asked) is in while the silence still runs: if the table
        would end the turn on them, the turn is settled (`settled`) unless the wearer speaks again."""
        if job.result is None or (job.model_task is not None and job.p_complete is None):
            return  # the voice is still to answer (or failed: the words alone decide at the end)
        if self._decision(job).action == "end":
            self._settled.set()

    def _decide(self, ending: _Ending, t: float) -> None:
        """Act on the decision table (`companion.stt.decision.decide`) for the transcript ending the turn.

        Only counts are logged, never the words: in wake mode this may be a bystander's speech.
        """
        job = ending.job
        result = job.result
        assert result is not None
        decision = self._decision(job, forced=ending.forced)
        if decision.action == "drop":
            log.debug("speech without words (noise?): no turn")
            self._emit(SpeechDropped(job.t_end_of_speech))
            self._reset()
        elif decision.action == "wait":
            if decision.reason == "held":
                p = "-" if job.p_complete is None else f"{job.p_complete:.2f}"
                cue = job.cue or text_cue(result.text, self.recognised)
                log.debug("%d words (%s, P=%s) held for more speech", len(result.text.split()), cue, p)
            self._wait(ending, decision.wait_s, decision.reason)
        else:
            self._finish(ending, t, decision.reason)

    def _wait(self, ending: _Ending, wait_s: float, reason: str) -> None:
        """Offer the transcript, then wait for more speech or for `wait_s` of silence."""
        ending.wait_s, ending.reason = wait_s, reason
        if reason == "held":
            self._settled.set()
        if not ending.job.offered:
            ending.job.offered = True
            result = ending.job.result
            assert result is not None  # an ending is waited on only once its transcript is in
            self._emit(Hypothesis(result.text, ending.job.t_end_of_speech))
        self._check_fallback()

    def _check_fallback(self) -> None:
        ending = self._ending
        if ending is None or ending.job.result is None or not ending.wait_s:
            return
        if self.endpointer.now - ending.job.t_end_of_speech >= ending.wait_s:
            self._finish(ending, max(self.endpointer.now, ending.job.t_done), ending.reason)

    def _finish(self, ending: _Ending, t_end_of_turn: float, reason: str) -> None:
        if ending.job.model_task is not None and not ending.job.model_task.done():
            ending.job.model_task.cancel()  # ended without the voice (forced, or the hold ran out)
        self._emit_turn(ending.job, t_end_of_turn, reason, self._t_onset)
        self._reset()

    def _emit_turn(
        self, job: _Job, t_end_of_turn: float, reason: str, t_start: float, addressed: bool | None = None
    ) -> None:
        result = job.result
        assert result is not None
        if not result.text:
            return
        if self.gate is not None and addressed is None:
            addressed = self._addressed
        self._emit(
            Turn(
                text=result.text,
                audio=job.audio,
                t_end_of_speech=job.t_end_of_speech,
                t_end_of_turn=t_end_of_turn,
                stt_ms=result.stt_ms,
                t_stt_done=job.t_done,
                reason=reason,
                p_complete=job.p_complete,
                t_start=t_start,
                addressed=addressed,
            )
        )

    def _reset(self) -> None:
        self._settled.clear()
        self._turn_start = None
        self._prefix = None
        self._background = None
        self._spec = None
        self._ending = None
        self._reset_wake()

    # -- output

    def _emit(self, item: TurnEvent | _Failure | _Closed) -> None:
        if not self._closed:
            self._queue.put_nowait(item)

    async def events(self) -> AsyncGenerator[TurnEvent, None]:
        """The detector's events until `aclose()`. An STT failure is raised here; the turn it ended is
        dropped, and iterating the detector again goes on with the next one."""
        while True:
            item = await self._queue.get()
            if isinstance(item, _Closed):
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def __aiter__(self) -> AsyncIterator[TurnEvent]:
        return self.events()

    async def aclose(self) -> None:
        """Cancel the transcription tasks and end `events()`."""
        if self._closed:
            return
        self._closed = True
        self._detached.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reset()
        self._queue.put_nowait(_CLOSED)

    async def __aenter__(self) -> TurnDetector:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
