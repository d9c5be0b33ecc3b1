"""One conversation with one headset: the turn state machine.

idle -> listening (the wearer speaks) -> thinking (turn over, reply being made) -> speaking (reply playing)
-> idle. The state is mirrored on the headset's LED. Replies stream: LLM deltas -> sentences -> TTS audio ->
the link, so the first sentence plays while later ones are still being written and synthesised.

Speed comes from speculation: when the wearer pauses, the turn detector transcribes the pause's audio; the
session then prepares the reply (skills matched without side effects, an LLM request started, the first
sentence synthesised) while the end-of-turn silence runs out. If the wearer goes on speaking, all of it is
thrown away; if the turn ends with the same words, the prepared audio plays at once.

Barge-in (button, or voice when the headset cancels its own echo) cancels the reply task, which stops LLM,
TTS and sending at once, tells the headset to flush, and keeps only the words actually played in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from companion.announcements import Announcement, Announcements, Outcome
from companion.audio import earcons
from companion.audio.aec import EchoCanceller
from companion.audio.silence import trim_leading_silence
from companion.config import Config
from companion.events import (
    Availability,
    BatteryChanged,
    ButtonPressed,
    ErrorEvent,
    EventHub,
    ReplyEvent,
    StateChanged,
    TranscriptEvent,
    TurnTimings,
    Unaddressed,
)
from companion.gestures import Act, omi_gesture
from companion.link.base import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    BatteryEvent,
    ButtonEvent,
    ConnectionEvent,
    HeadsetLink,
    LinkError,
    LinkErrorEvent,
    PlaybackReport,
    PlaybackStatus,
)
from companion.llm.base import LLMTimeout
from companion.llm.memory import Conversation
from companion.llm.responder import PreparedReply, Responder, apology
from companion.llm.skills import SkillsResponder
from companion.llm.timers import Timers
from companion.protocol import Button, DeviceState, PlaybackEvent, Profile
from companion.remote.errors import SpeechServiceUnavailable
from companion.stt.turn import Hypothesis, SpeechStarted, Turn, TurnDetector
from companion.thinking import with_thinking_cue
from companion.tts.chunker import SentenceChunker
from companion.wake import Addressing

log = logging.getLogger(__name__)

# Said when every remote speech-recognition server fails for a turn; at most once per STT_FALLBACK_EVERY_S.
STT_FALLBACK_LINE = "Sorry, I can't reach speech recognition right now."
STT_FALLBACK_EVERY_S = 4.0

_BARGE_BUTTONS = {Button.TAP, Button.PRESS, Button.DOUBLE_TAP}


@dataclass(slots=True)
class _Milestones:
    """Monotonic times of one turn's milestones; turned into a TurnTimings event at the end."""

    end_of_speech: float
    end_of_turn: float | None = None
    stt_done: float | None = None
    llm_first_token: float | None = None
    first_sentence: float | None = None
    tts_first_audio: float | None = None
    first_audio_sent: float | None = None
    first_audio_played: float | None = None
    stt_ms: float | None = None
    speculative: bool = False

    def event(self, device: str, turn: int) -> TurnTimings:
        def rel(t: float | None) -> float | None:
            return None if t is None else round((t - self.end_of_speech) * 1000, 1)

        return TurnTimings(
            device=device,
            turn=turn,
            end_of_turn_ms=rel(self.end_of_turn),
            stt_done_ms=rel(self.stt_done),
            llm_first_token_ms=rel(self.llm_first_token),
            first_sentence_ms=rel(self.first_sentence),
            tts_first_audio_ms=rel(self.tts_first_audio),
            first_audio_sent_ms=rel(self.first_audio_sent),
            first_audio_played_ms=rel(self.first_audio_played),
            stt_ms=None if self.stt_ms is None else round(self.stt_ms, 1),
            speculative=self.speculative,
        )


@dataclass(slots=True)
class _Spoken:
    """What one reply sent to the headset, sentence by sentence, to know what was heard at a barge-in."""

    sentences: list[tuple[str, float]] = field(default_factory=list)  # (text, seconds of audio)
    t_play_start: float | None = None

    def heard(self, now: float) -> str:
        if self.t_play_start is None:
            return ""
        left = now - self.t_play_start
        words: list[str] = []
        for text, seconds in self.sentences:
            if left >= seconds:
                words.append(text)
                left -= seconds
                continue
            parts = text.split()
            if seconds > 0 and left > 0:
                words.append(" ".join(parts[: int(len(parts) * left / seconds)]))
            break
        return " ".join(w for w in words if w)


class _SessionSkills:
    """The SkillContext the skills see: this session's headset, volume, memory and timers."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self.timers = Timers(on_due=session.announce)

    def battery_percent(self) -> int | None:
        return self._s.link.info.battery

    def set_volume(self, percent: int) -> None:
        self._s.volume = max(0, min(100, percent))
        self._s._spawn(self._s.link.set_volume(self._s.volume), "set-volume")

    def volume(self) -> int:
        return self._s.volume

    def stop_speaking(self) -> None:
        self._s._spawn(self._s.barge_in("stop"), "stop-speaking")

    def last_reply(self) -> str | None:
        return self._s.conversation.last_assistant()

    def now(self) -> datetime:
        return datetime.now().astimezone()


class Session:
    """Runs one headset's conversation until cancelled; owns every task it starts."""

    def __init__(
        self,
        link: HeadsetLink,
        *,
        stt,
        tts,
        llm=None,
        config: Config | None = None,
        hub: EventHub | None = None,
        earcons_enabled: bool | None = None,
        speaker: HeadsetLink | None = None,
        mode: str | None = None,
    ) -> None:
        self.link = link
        # Where replies play: the headset itself, or (omi pendants have no speaker) a local sound device.
        self.speaker = speaker or link
        self.config = config or Config()
        self.hub = hub or EventHub()
        self.device = link.info.address
        self.stt = stt
        self.tts = tts
        self.volume = self.config.session.volume
        self.earcons = self.config.session.earcons if earcons_enabled is None else earcons_enabled
        self.mode = mode or self.config.session.mode or "hands_free"
        sc = self.config.session
        self.addressing = Addressing(sc.wake_phrase, sc.follow_up_s)
        self._t_speech_start = 0.0
        self.conversation = Conversation(self.config.llm.system_prompt, self.config.llm.history_turns)
        self.skills_context = _SessionSkills(self)
        self.skills = SkillsResponder(self.skills_context)
        self.responder = Responder(self.skills, llm, self.conversation)
        self.state = DeviceState.IDLE
        self.turns = 0
        self._detector: TurnDetector | None = None
        self._reply_task: asyncio.Task[None] | None = None
        self._spoken: _Spoken | None = None
        self._prepared: PreparedReply | None = None
        self._prefetch: dict[str, asyncio.Task[list[np.ndarray]]] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._led: asyncio.Queue[DeviceState] = asyncio.Queue()
        self._drained = asyncio.Event()
        self._played_started = asyncio.Event()
        self._t_played: float | None = None
        self._clock: tuple[float, float] = (0.0, time.monotonic())  # (stream time, monotonic) of latest frame
        self._listening = self.mode in ("hands_free", "wake")
        self._aec = self._make_echo_canceller()
        self._mute_mic_until = 0.0
        self._stt_fallback_at = -STT_FALLBACK_EVERY_S
        self.announcements = Announcements(self._play_announcement, lambda: self.speaker.connected)
        self._link_was_connected = link.connected
        self.pending_timers: list = []

    # -- running -----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the headset until cancelled."""
        self._detector = TurnDetector.from_config(self.stt, self.config.turn, recognised=self._recognised)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump_audio(), name=f"audio-{self.device}")
                tg.create_task(self._handle_turns(), name=f"turns-{self.device}")
                tg.create_task(self._handle_link_events(self.link), name=f"link-events-{self.device}")
                if self.speaker is not self.link:
                    tg.create_task(
                        self._handle_link_events(self.speaker), name=f"speaker-events-{self.device}"
                    )
                tg.create_task(self._write_led(), name=f"led-{self.device}")
                tg.create_task(self.announcements.run(), name=f"announcements-{self.device}")
                self.hub.publish(Availability(self.device, self.link.connected))
                self.hub.publish(StateChanged(self.device, self.state.name.lower()))  # retained from now
                with contextlib.suppress(LinkError):
                    await self.link.set_volume(self.volume)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        self.pending_timers = self.skills_context.timers.list()  # for the next session (carryover.py)
        await self._cancel_reply()
        await self._drop_speculation()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.skills_context.timers.aclose()
        if self._detector is not None:
            await self._detector.aclose()

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"{name}-{self.device}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %r", task.get_name(), task.exception())

    # -- state -------------------------------------------------------------------------------------
    def _set_state(self, state: DeviceState) -> None:
        if state is self.state:
            return
        self.state = state
        self.hub.publish(StateChanged(self.device, state.name.lower()))
        self._led.put_nowait(state)

    async def _write_led(self) -> None:
        """Mirror the state on the LED without ever delaying audio: writes happen here, latest wins."""
        while True:
            state = await self._led.get()
            while not self._led.empty():
                state = self._led.get_nowait()
            with contextlib.suppress(LinkError, OSError, asyncio.TimeoutError):
                await self.link.set_state(state)

    # -- microphone --------------------------------------------------------------------------------
    async def _pump_audio(self) -> None:
        assert self._detector is not None
        silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        async for chunk in self.link.audio():
            t_end = chunk.t_stream + len(chunk.pcm) / SAMPLE_RATE
            self._clock = (t_end, chunk.t_arrival)
            pcm = chunk.pcm
            if self._aec is not None and self._host_cancels_echo():
                pcm = self._aec.process(pcm, chunk.t_stream)
            self._detector.feed(silence if self._mic_muted() else pcm, chunk.t_stream)

    def _make_echo_canceller(self) -> EchoCanceller | None:
        """Host echo cancellation when replies play on the headset itself (decided per frame, since the
        headset's capabilities are known only once it is connected)."""
        if self.config.session.echo_cancel == "off" or self.speaker is not self.link:
            return None
        return EchoCanceller(noise_suppression=self.config.session.noise_suppression)

    def _host_cancels_echo(self) -> bool:
        return self._aec is not None and self.link.info.has_speaker and not self.link.info.has_aec

    def _echo_handled(self) -> bool:
        """Whether the mic may stay open while a reply plays: no echo, or someone cancels it."""
        return self.speaker is not self.link or self.link.info.has_aec or self._host_cancels_echo()

    def _mic_muted(self) -> bool:
        """Whether the mic must be ignored now: not listening, or our own reply would echo into it."""
        if not self._listening:
            return True
        if self.state is DeviceState.SPEAKING or time.monotonic() < self._mute_mic_until:
            if self.speaker is not self.link:
                return False  # replies play elsewhere: no echo in the headset's mic
            return not (self._echo_handled() and self.config.session.voice_barge_in)
        return False

    def stream_time(self, wall: float) -> float:
        """The stream time the mic had reached at monotonic time ``wall`` (inverse of :meth:`wall_time`)."""
        t_latest, wall_latest = self._clock
        return t_latest - (wall_latest - wall)

    def wall_time(self, t_stream: float) -> float:
        """Monotonic time at which the stream reached ``t_stream`` (via the latest frame's arrival)."""
        t_latest, wall_latest = self._clock
        return wall_latest - (t_latest - t_stream)

    # -- turns -------------------------------------------------------------------------------------
    async def _handle_turns(self) -> None:
        while True:
            assert self._detector is not None
            try:
                async for event in self._detector:
                    if isinstance(event, SpeechStarted):
                        await self._on_speech_started(event)
                    elif isinstance(event, Hypothesis):
                        await self._speculate(event.text)
                    elif isinstance(event, Turn):
                        await self._on_turn(event)
                return
            except SpeechServiceUnavailable as exc:
                await self._on_stt_unavailable(exc)

    async def _on_stt_unavailable(self, exc: SpeechServiceUnavailable) -> None:
        """Every remote STT server failed: say so (once per few seconds) and listen again with a fresh
        detector, whose next turn tries every server anew."""
        log.error("%s: speech recognition unavailable: %s", self.device, exc)
        self.hub.publish(ErrorEvent(self.device, str(exc)))
        old, self._detector = (
            self._detector,
            TurnDetector.from_config(self.stt, self.config.turn, recognised=self._recognised),
        )
        if old is not None:
            await old.aclose()
        await self._drop_speculation()
        now = time.monotonic()
        if now - self._stt_fallback_at >= STT_FALLBACK_EVERY_S:
            self._stt_fallback_at = now
            self._spawn(self.say(STT_FALLBACK_LINE, intent="stt-unavailable"), "stt-fallback")
        else:
            self._set_state(DeviceState.IDLE)

    async def _on_speech_started(self, event: SpeechStarted) -> None:
        self._t_speech_start = self.wall_time(event.t)
        if self.state in (DeviceState.SPEAKING, DeviceState.THINKING) and self._reply_task is not None:
            # In wake mode the interruption may be a bystander: it stops the reply once it is addressed.
            if self._echo_handled() and self.config.session.voice_barge_in and self.mode != "wake":
                await self.barge_in("voice", clear=False)
            return
        await self._drop_speculation()
        if self.mode != "wake" or self.addressing.in_window(self._t_speech_start):
            self._set_state(DeviceState.LISTENING)

    async def _on_turn(self, turn: Turn) -> None:
        t_decided = time.monotonic()
        text = turn.text.strip()
        if self.mode == "tap_to_talk":
            self._listening = False
            self._spawn(self._listen(False), "listen-off")
        if not text:
            await self._drop_speculation()
            self._set_state(DeviceState.IDLE)
            return
        if self.mode == "wake":
            addressed = self.addressing.check(text, self._t_speech_start)
            if addressed is None:  # not for us: no text leaves this method, only a count
                await self._drop_speculation()
                self.hub.publish(Unaddressed(self.device, round(len(turn.audio) / SAMPLE_RATE, 2)))
                if self._reply_task is None or self._reply_task.done():
                    self._set_state(DeviceState.IDLE)
                return
            text = addressed.text
            if self._reply_task is not None and not self._reply_task.done():
                await self.barge_in("addressed speech")
            if not text:  # the phrase alone: the request follows
                await self._drop_speculation()
                self.addressing.open_window()
                self._set_state(DeviceState.LISTENING)
                return
        self.turns += 1
        marks = _Milestones(end_of_speech=self.wall_time(turn.t_end_of_speech), end_of_turn=t_decided)
        marks.stt_ms = turn.stt_ms
        marks.stt_done = self.wall_time(turn.t_stt_done) if turn.t_stt_done is not None else t_decided
        self.hub.publish(TranscriptEvent(self.device, text, round(len(turn.audio) / SAMPLE_RATE, 2)))
        log.info("%s heard: %s", self.device, text)
        await self._cancel_reply()
        prepared, self._prepared = self._prepared, None
        marks.speculative = prepared is not None and prepared.user_text == text
        self._reply_task = self._spawn(self._reply(text, prepared, marks, self.turns), "reply")

    def _recognised(self, text: str) -> bool:
        """Whether the skills understand `text` outright; the turn detector holds short unknown ones."""
        reply = self.skills.match(text)
        return reply is not None and not reply.incomplete

    async def _speculate(self, text: str) -> None:
        """Prepare the reply to a transcript that may still be extended."""
        text = text.strip()
        if self.mode == "wake":  # nothing is prepared (no LLM request) for speech not addressed to us
            request = self.addressing.peek(text, self._t_speech_start)
            if request is None and text and self._detector is not None:
                self._detector.end_turn()  # no need to wait for the rest of someone else's sentence
                return
            text = request or ""
        if not text or (self._reply_task is not None and not self._reply_task.done()):
            return
        if self._prepared is not None and self._prepared.user_text == text:
            return
        await self._drop_speculation()
        log.debug("%s: preparing a reply to %r while the wearer is silent", self.device, text)
        self._prepared = self.responder.prepare(text)
        if self._prepared.skill is not None and self._prepared.skill.text:
            first = SentenceChunker().feed(self._prepared.skill.text + " ")
            if first:
                self._prefetch[first[0]] = self._spawn(self._synthesise(first[0]), "tts-prefetch")

    async def _drop_speculation(self) -> None:
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            await prepared.aclose()
        for task in self._prefetch.values():
            task.cancel()
        self._prefetch.clear()

    async def _synthesise(self, sentence: str) -> list[np.ndarray]:
        async with contextlib.aclosing(self.tts.stream(sentence)) as chunks:
            return [chunk async for chunk in chunks]

    # -- replies -----------------------------------------------------------------------------------
    async def _reply(self, text: str, prepared: PreparedReply | None, marks: _Milestones, turn: int) -> None:
        self._set_state(DeviceState.THINKING)
        spoken = self._spoken = _Spoken()
        reply_parts: list[str] = []
        interrupted = False
        source = ""
        try:
            deltas = self.responder.respond(text, prepared)
            source = self.responder.last_intent or ""
            audio = self._speak(deltas, marks, spoken, reply_parts)
            if self.earcons:
                audio = with_thinking_cue(audio, earcons.thinking(), on_cue=self._prepare_fallback)
            await self._play(audio, marks, spoken)
        except asyncio.CancelledError:
            interrupted = True
            raise
        except LinkError as exc:
            interrupted = True
            log.warning("%s: reply not delivered: %s", self.device, exc)
            self.hub.publish(ErrorEvent(self.device, str(exc)))
            self._set_state(DeviceState.IDLE)
        finally:
            self._prefetch.clear()
            reply = "".join(reply_parts).strip()
            if interrupted:
                self.conversation.truncate_assistant(spoken.heard(time.monotonic()))
            else:
                self._set_state(DeviceState.IDLE)
                self.addressing.open_window()  # a follow-up needs no wake phrase
            if reply:
                log.info("%s replied: %s", self.device, reply)
                self.hub.publish(ReplyEvent(self.device, reply, source, interrupted))
            self.hub.publish(marks.event(self.device, turn))
            self._spoken = None

    def _prepare_fallback(self) -> None:
        """The LLM is slow: synthesise its time-out apology now, so it plays at once if the limit passes."""
        if self.responder.llm is self.skills:
            return
        chunker = SentenceChunker()
        for sentence in [*chunker.feed(apology(LLMTimeout("")) + " "), *chunker.flush()]:
            if sentence not in self._prefetch:
                self._prefetch[sentence] = self._spawn(self._synthesise(sentence), "tts-fallback")

    async def _speak(
        self, deltas: AsyncGenerator[str, None], marks: _Milestones, spoken: _Spoken, reply_parts: list[str]
    ) -> AsyncGenerator[np.ndarray, None]:
        """LLM deltas -> sentences -> TTS audio, noting each milestone once."""
        chunker = SentenceChunker()
        queue: asyncio.Queue[tuple[str, list[np.ndarray]] | None] = asyncio.Queue(maxsize=2)

        async def produce() -> None:
            async with contextlib.aclosing(deltas) as stream:
                async for delta in stream:
                    marks.llm_first_token = marks.llm_first_token or time.monotonic()
                    reply_parts.append(delta)
                    for sentence in chunker.feed(delta):
                        await queue.put((sentence, await self._audio_for(sentence, marks)))
            for sentence in chunker.flush():
                await queue.put((sentence, await self._audio_for(sentence, marks)))
            await queue.put(None)

        producer = asyncio.create_task(produce(), name=f"tts-producer-{self.device}")
        try:
            while (item := await queue.get()) is not None:
                sentence, pcm = item
                spoken.sentences.append((sentence, sum(len(p) for p in pcm) / SAMPLE_RATE))
                for chunk in pcm:
                    yield chunk
            await producer  # surface its errors
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def _audio_for(self, sentence: str, marks: _Milestones) -> list[np.ndarray]:
        marks.first_sentence = marks.first_sentence or time.monotonic()
        task = self._prefetch.pop(sentence, None)
        log.debug("%s: speaking %r (%s)", self.device, sentence, "prepared" if task else "synthesising now")
        pcm = await task if task is not None else await self._synthesise(sentence)
        if marks.tts_first_audio is None and pcm:
            marks.tts_first_audio = time.monotonic()
            pcm = [trim_leading_silence(pcm[0]), *pcm[1:]]  # the reply starts with its first sound
        return pcm

    async def _play(
        self, audio: AsyncGenerator[np.ndarray, None], marks: _Milestones, spoken: _Spoken
    ) -> None:
        """Send the reply; mark first audio sent and played; wait until the headset has played it out."""
        first = True
        t_reply: float | None = None  # when the reply's own first chunk came, if a thinking cue preceded it

        async def tracked() -> AsyncGenerator[np.ndarray, None]:
            nonlocal first, t_reply
            async with contextlib.aclosing(audio) as chunks:
                async for chunk in chunks:
                    if chunk is earcons.thinking():  # the cue is not the reply: still thinking
                        t_reply = math.inf
                    elif first:
                        first = False
                        t_reply = time.monotonic() if t_reply is not None else None
                        self._set_state(DeviceState.SPEAKING)
                    yield chunk

        self._drained.clear()
        self._played_started.clear()
        report = await self._send(tracked())
        marks.first_audio_sent = report.t_first_sent
        if t_reply is not None and report.t_first_sent is not None:
            marks.first_audio_sent = max(report.t_first_sent, t_reply) if t_reply < math.inf else None
        if report.frames_sent == 0:
            return
        # The reply is sent; the headset plays the last ~buffer of it now. Wait for it to say so.
        try:
            async with asyncio.timeout(report.seconds_sent + 2.0):
                await self._played_started.wait()
                marks.first_audio_played = self._t_played
                if t_reply is not None and self._t_played is not None:  # approximate: after the cue
                    marks.first_audio_played = max(self._t_played, marks.first_audio_sent or 0.0)
                spoken.t_play_start = marks.first_audio_played
                await self._drained.wait()
        except TimeoutError:
            log.debug("%s: no playback report from the headset", self.device)
        self._mute_mic_until = time.monotonic() + 0.15  # the echo's tail

    async def _send(self, audio: AsyncGenerator[np.ndarray, None]) -> PlaybackReport:
        """Play audio on the speaker; what is sent is also the echo canceller's reference."""
        aec = self._aec
        if aec is None:
            return await self.speaker.play(audio)

        async def teed() -> AsyncGenerator[np.ndarray, None]:
            async with contextlib.aclosing(audio) as chunks:
                async for chunk in chunks:
                    aec.sent(chunk)
                    yield chunk

        aec.begin()
        try:
            return await self.speaker.play(teed())
        finally:
            aec.end()

    async def _cancel_reply(self) -> None:
        task, self._reply_task = self._reply_task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we are being cancelled ourselves (the service stops during a barge-in)

    async def barge_in(self, why: str, *, clear: bool = True) -> None:
        """Stop the reply now: cancel LLM, TTS and sending, flush the headset, keep what was heard.

        ``clear`` (an explicit stop) also drops the announcements waiting; a disconnect keeps them.
        """
        if clear and (dropped := self.announcements.clear()):
            log.info("%s: %d queued announcement(s) dropped (%s)", self.device, dropped, why)
        if self._reply_task is None or self._reply_task.done():
            return
        log.info("%s: barge-in (%s)", self.device, why)
        task = self._reply_task
        task.cancel()  # it sends nothing more: its next await raises
        with contextlib.suppress(LinkError, OSError, asyncio.TimeoutError):
            await self.speaker.abort()  # flush the headset first; the reply's cleanup can take longer
        await self._cancel_reply()
        self._set_state(DeviceState.LISTENING if self._listening else DeviceState.IDLE)

    async def say(self, text: str, intent: str = "say") -> None:
        """Speak ``text`` on the headset (the `say` command): not part of the conversation.

        Waits until it was played (or stopped); raises AnnouncementRefused when it cannot be queued.
        """
        await self.queue_say(text, intent)

    def queue_say(self, text: str, intent: str = "say") -> asyncio.Future[Outcome]:
        """Queue ``text`` to be spoken now (raises AnnouncementRefused at once when it cannot be queued);
        the returned future resolves with the outcome once it was played or stopped."""
        return self.announcements.put(text, intent).done

    async def announce(self, message: str) -> None:
        """A timer or reminder is due: queue it (chime first when earcons are on); it rings as soon as a
        speaker is connected, so one that falls due while the headset is away rings when it returns."""
        self.announcements.put(message, "announcement", chime=self.earcons)

    async def _play_announcement(self, item: Announcement) -> Outcome:
        """Play one queued announcement as the reply task, after any reply in progress."""
        while self._reply_task is not None and not self._reply_task.done():
            await asyncio.wait({self._reply_task})  # a barge-in may cancel it; only our own cancel raises
        marks = _Milestones(end_of_speech=time.monotonic())
        task = self._reply_task = self._spawn(self._announce_reply(item, marks), item.intent)
        await asyncio.wait({task})
        if task.cancelled():  # a stop, a disconnect or the wearer's next turn: Announcements decides
            return "cut"
        return task.result() if task.exception() is None else "stopped"

    async def _announce_reply(self, item: Announcement, marks: _Milestones) -> Outcome:
        async def once() -> AsyncGenerator[str, None]:
            yield item.text

        async def with_chime() -> AsyncGenerator[np.ndarray, None]:
            if item.chime:
                yield earcons.timer_ring()
            async for chunk in self._speak(once(), marks, _Spoken(), []):
                yield chunk

        self._set_state(DeviceState.SPEAKING)
        outcome: Outcome = "cut"
        try:
            await self._play(with_chime(), marks, _Spoken())
            outcome = "played"
        except LinkError as exc:
            log.warning("%s: announcement %r not delivered: %s", self.device, item.text, exc)
            self.hub.publish(ErrorEvent(self.device, str(exc)))
        finally:
            self.hub.publish(ReplyEvent(self.device, item.text, item.intent, outcome != "played"))
            self._set_state(DeviceState.IDLE)
        return outcome

    async def _listen(self, on: bool) -> None:
        listen = getattr(self.link, "listen", None)
        if listen is not None:
            with contextlib.suppress(LinkError, OSError, asyncio.TimeoutError):
                await listen(on)

    # -- headset events ----------------------------------------------------------------------------
    async def _handle_link_events(self, link: HeadsetLink) -> None:
        async for event in link.events():
            if isinstance(event, ButtonEvent):
                self.hub.publish(ButtonPressed(self.device, event.button.name.lower()))
                await self._on_button(event.button)
            elif isinstance(event, PlaybackStatus):
                if event.event is PlaybackEvent.STARTED:
                    if not self._played_started.is_set():  # a restart after a gap is not the first audio
                        self._t_played = event.t
                    self._played_started.set()
                elif event.event in (PlaybackEvent.DRAINED, PlaybackEvent.ABORTED):
                    self._drained.set()
                if self._aec is not None and link is self.link:
                    self._playout_to_aec(event)
            elif isinstance(event, BatteryEvent):
                self.hub.publish(BatteryChanged(self.device, event.percent))
            elif isinstance(event, ConnectionEvent):
                self.hub.publish(Availability(self.device, event.connected, event.reason))
                await self._on_connection(link, event.connected)
            elif isinstance(event, LinkErrorEvent):
                self.hub.publish(ErrorEvent(self.device, event.message))

    async def _on_connection(self, link: HeadsetLink, connected: bool) -> None:
        """The headset went away or came back: the session (memory, timers, queue) lives on."""
        self.announcements.link_changed()
        if link is not self.link:
            return
        if not connected and self.speaker is self.link:
            await self.barge_in("headset disconnected", clear=False)
            self._set_state(DeviceState.IDLE)
        elif connected and not self._link_was_connected:
            log.info("%s is back: %d announcement(s) waiting", self.device, len(self.announcements))
            self._led.put_nowait(self.state)  # a rebooted headset shows its LED afresh
            self._spawn(self._restore_volume(), "set-volume")
        self._link_was_connected = connected

    async def _restore_volume(self) -> None:
        with contextlib.suppress(LinkError):  # gone again already: the next return restores it
            await self.link.set_volume(self.volume)

    def _playout_to_aec(self, event: PlaybackStatus) -> None:
        """Place the reference on the mic's clock: the event left the headset in the tick that played
        (or flushed) the sample, with the mic frame of that tick, which ends at the stream time reached
        when the event arrived."""
        assert self._aec is not None
        t = self.stream_time(event.t) - FRAME_SAMPLES / SAMPLE_RATE
        if event.event is PlaybackEvent.STARTED:
            self._aec.played(t)
        elif event.event is PlaybackEvent.DRAINED:
            self._aec.drained(t)
        elif event.event is PlaybackEvent.ABORTED:
            self._aec.stopped(t)

    async def _on_button(self, button: Button) -> None:
        busy = self._reply_task is not None and not self._reply_task.done()
        if self.link.info.profile is Profile.OMI:
            await self._on_omi_gesture(button, busy)
            return
        if busy and button in _BARGE_BUTTONS:
            await self.barge_in(f"button {button.name.lower()}")
            if self.mode != "tap_to_talk" or button is not Button.TAP:
                return
        if self.mode in ("tap_to_talk", "wake") and button is Button.TAP:
            await self.start_listening()
        elif self.mode == "push_to_talk" and button is Button.PRESS:
            await self.start_listening()
        elif self.mode == "push_to_talk" and button is Button.RELEASE and self._detector is not None:
            self._listening = False
            self._detector.end_turn()
            self._spawn(self._listen(False), "listen-off")

    async def _on_omi_gesture(self, button: Button, busy: bool) -> None:
        """Omi sends tap, double tap and long press (no press; a release after each): see gestures.py."""
        listening = self._listening and self.mode != "hands_free"
        for act in omi_gesture(button, self.mode, busy=busy, listening=listening):
            if act is Act.BARGE_IN:
                await self.barge_in(f"button {button.name.lower()}")
            elif act is Act.LISTEN:
                await self.start_listening()
            elif act is Act.END_TURN and self._detector is not None:
                self._listening = False
                self._detector.end_turn()
                self._spawn(self._listen(False), "listen-off")
            elif act is Act.CLOSE:
                await self.stop_listening()

    async def start_listening(self) -> None:
        """Open the mic for one turn (tap-to-talk, push-to-talk, the `listen` command; in wake mode the
        next utterance needs no phrase)."""
        self._listening = True
        self.addressing.open_window()
        self._set_state(DeviceState.LISTENING)
        await self._listen(True)
        if self.earcons:
            with contextlib.suppress(LinkError):
                await self._send(_once(earcons.listening_start()))

    async def stop_listening(self) -> None:
        if self.mode not in ("hands_free", "wake"):
            self._listening = False
            await self._listen(False)
            self._set_state(DeviceState.IDLE)


async def _once(pcm: np.ndarray) -> AsyncGenerator[np.ndarray, None]:
    yield pcm
