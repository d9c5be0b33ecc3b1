"""One conversation with one headset: the turn state machine.

idle -> listening (the wearer speaks) -> thinking (turn over, reply being made) -> speaking (reply playing)
-> idle. The state is mirrored on the headset's LED (`led.py`). Replies stream (`reply.py`): LLM deltas ->
sentences -> TTS audio -> the link, so the first sentence plays while later ones are still being written
and synthesised.

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
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import numpy as np

from companion.aio import TaskSet, cancel_and_wait
from companion.announcements import Announcements
from companion.audio import earcons
from companion.config import Config
from companion.events import (
    Availability,
    ErrorEvent,
    EventHub,
    ReplyEvent,
    StateChanged,
    TranscriptEvent,
    Unaddressed,
)
from companion.link.base import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    HeadsetLink,
    LinkError,
)
from companion.llm.memory import Conversation
from companion.llm.responder import PreparedReply, Responder
from companion.llm.skills import SkillsResponder
from companion.llm.timers import Timer
from companion.protocol import DeviceState
from companion.remote.errors import SpeechServiceUnavailable
from companion.session.announce import AnnouncementPlayer
from companion.session.commands import SessionCommands
from companion.session.continuation import Unheard, continued
from companion.session.headset import HeadsetEvents
from companion.session.led import LedMirror
from companion.session.mic import MicPath
from companion.session.reply import Milestones, ReplyPlayer, Spoken, once
from companion.session.skills import SessionSkills
from companion.stt.turn import Hypothesis, SpeechDropped, SpeechStarted, Turn, TurnDetector
from companion.thinking import with_thinking_cue
from companion.wake import Addressing, command_in

if TYPE_CHECKING:
    from companion.engines import Engines
    from companion.llm.base import LLMBackend
    from companion.stt.base import SpeechRecognizer
    from companion.tts.base import TTSEngine

log = logging.getLogger(__name__)

# Said when every remote speech-recognition server fails for a turn; at most once per STT_FALLBACK_EVERY_S.
STT_FALLBACK_LINE = "Sorry, I can't reach speech recognition right now."
STT_FALLBACK_EVERY_S = 4.0


class Session:
    """Runs one headset's conversation until cancelled; owns every task it starts."""

    def __init__(
        self,
        link: HeadsetLink,
        *,
        stt: SpeechRecognizer,
        tts: TTSEngine,
        llm: LLMBackend | None = None,
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
        sc = self.config.session
        self.volume = sc.volume
        self.earcons = sc.earcons if earcons_enabled is None else earcons_enabled
        self.mode = mode or sc.mode or "hands_free"
        self.addressing = Addressing(sc.wake_phrase, sc.follow_up_s, follow_up_ok=self._reads_as_request)
        self._t_speech_start = 0.0
        self._unheard: Unheard | None = None  # the last turn, if its reply was cut before a word played
        self.conversation = Conversation(self.config.llm.system_prompt, self.config.llm.history_turns)
        self.commands = SessionCommands(self)
        self.skills_context = SessionSkills(self)
        self.skills = SkillsResponder(self.skills_context)
        self.responder = Responder(self.skills, llm, self.conversation)
        self.state = DeviceState.IDLE
        self.turns = 0
        self.listening = self.mode in ("hands_free", "wake")
        self.detector: TurnDetector | None = None
        self.reply_task: asyncio.Task[Any] | None = None
        self._prepared: PreparedReply | None = None
        self._tasks = TaskSet(f"session {self.device}")
        self.mic = MicPath(link, self.speaker, sc)
        self.led = LedMirror(link)
        self.player = ReplyPlayer(
            tts,
            self.speaker,
            self.mic,
            spawn=self.spawn,
            on_speaking=lambda: self.set_state(DeviceState.SPEAKING),
            device=self.device,
        )
        self.headset = HeadsetEvents(self)
        self.spoken_items = AnnouncementPlayer(self)
        self._stt_fallback_at = -STT_FALLBACK_EVERY_S
        self.announcements = Announcements(self.spoken_items.play, lambda: self.speaker.connected)
        self.pending_timers: list[Timer] = []

    @classmethod
    def from_engines(
        cls,
        engines: Engines,
        link: HeadsetLink,
        config: Config | None = None,
        *,
        hub: EventHub | None = None,
        speaker: HeadsetLink | None = None,
        mode: str | None = None,
        earcons_enabled: bool | None = None,
    ) -> Session:
        """A session on ``link`` sharing the loaded engines (the way the service and the demo make them)."""
        return cls(
            link,
            stt=engines.stt,
            tts=engines.tts,
            llm=engines.llm,
            config=config,
            hub=hub,
            earcons_enabled=earcons_enabled,
            speaker=speaker,
            mode=mode,
        )

    # -- running -----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve the headset until cancelled."""
        self.detector = self._new_detector()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump_audio(), name=f"audio-{self.device}")
                tg.create_task(self._handle_turns(), name=f"turns-{self.device}")
                tg.create_task(self.headset.run(self.link), name=f"link-events-{self.device}")
                if self.speaker is not self.link:
                    tg.create_task(self.headset.run(self.speaker), name=f"speaker-events-{self.device}")
                tg.create_task(self.led.run(), name=f"led-{self.device}")
                tg.create_task(self.announcements.run(), name=f"announcements-{self.device}")
                self.hub.publish(Availability(self.device, self.link.connected))
                self.hub.publish(StateChanged(self.device, self.state.name.lower()))  # retained from now
                with contextlib.suppress(LinkError):
                    await self.link.set_volume(self.volume)
        finally:
            await self._shutdown()

    def _new_detector(self) -> TurnDetector:
        gate = self._addressed_words if self.mode == "wake" else None
        return TurnDetector.from_config(self.stt, self.config.turn, recognised=self._recognised, gate=gate)

    def _addressed_words(self, text: str, t_start: float) -> bool:
        """The detector's wake gate: do these first words (speech begun at audio time `t_start`) address
        us? Unaddressed speech then ends at its first pause, untranscribed beyond them."""
        return self.addressing.peek(text, self.mic.monotonic_at(t_start)) is not None

    async def _shutdown(self) -> None:
        self.pending_timers = self.skills_context.timers.list()  # for the next session (carryover.py)
        await self.cancel_reply()
        await self._drop_speculation()
        await self._tasks.aclose()
        await self.skills_context.timers.aclose()
        if self.detector is not None:
            await self.detector.aclose()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task this session owns (cancelled at shutdown; a failure is logged)."""
        return self._tasks.spawn(coro, name)

    @property
    def replying(self) -> bool:
        """Whether a reply (or an announcement) is being made or played now."""
        return self.reply_task is not None and not self.reply_task.done()

    # -- state -------------------------------------------------------------------------------------
    def set_state(self, state: DeviceState) -> None:
        if state is self.state:
            return
        self.state = state
        self.hub.publish(StateChanged(self.device, state.name.lower()))
        self.led.show(state)

    # -- microphone --------------------------------------------------------------------------------
    async def _pump_audio(self) -> None:
        assert self.detector is not None
        silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        async for chunk in self.link.audio():
            pcm = self.mic.frame(chunk)
            muted = self.mic.muted(listening=self.listening, speaking=self.state is DeviceState.SPEAKING)
            self.detector.interruptible = not muted and self._voice_interrupts()
            self.detector.echo_residual = self.mic.cancelling
            self.detector.feed(silence if muted else pcm, chunk.t_stream)

    def _voice_interrupts(self) -> bool:
        """Whether speech heard now stops the reply at once (voice barge-in): a reply is being made or
        played, its echo is handled, and the mode is not wake (there a bystander must not stop it)."""
        return (
            self.state in (DeviceState.SPEAKING, DeviceState.THINKING)
            and self.replying
            and self.mode != "wake"
            and self.config.session.voice_barge_in
            and self.mic.echo_handled()
        )

    # -- turns -------------------------------------------------------------------------------------
    async def _handle_turns(self) -> None:
        while True:
            assert self.detector is not None
            try:
                async for event in self.detector:
                    if isinstance(event, SpeechStarted):
                        await self._on_speech_started(event)
                    elif isinstance(event, Hypothesis):
                        await self._speculate(event.text)
                    elif isinstance(event, Turn):
                        await self._on_turn(event)
                    elif isinstance(event, SpeechDropped):
                        self._on_speech_dropped()
                return
            except SpeechServiceUnavailable as exc:
                await self._on_stt_unavailable(exc)

    async def _on_stt_unavailable(self, exc: SpeechServiceUnavailable) -> None:
        """Every remote STT server failed: say so (once per few seconds) and listen on; the next turn tries
        every server anew. The detector stays: a fresh one would not know the room's noise floor, and
        took the echo of this very line for the wearer's voice (a barge-in that cut it)."""
        log.error("%s: speech recognition unavailable: %s", self.device, exc)
        self.hub.publish(ErrorEvent(self.device, str(exc)))
        await self._drop_speculation()
        now = time.monotonic()
        if now - self._stt_fallback_at >= STT_FALLBACK_EVERY_S:
            self._stt_fallback_at = now
            self.spawn(self.commands.say(STT_FALLBACK_LINE, intent="stt-unavailable"), "stt-fallback")
        else:
            self.set_state(DeviceState.IDLE)

    async def _on_speech_started(self, event: SpeechStarted) -> None:
        self._t_speech_start = self.mic.monotonic_at(event.t)
        if self.state in (DeviceState.SPEAKING, DeviceState.THINKING) and self.reply_task is not None:
            # In wake mode the interruption may be a bystander: it stops the reply once it is addressed.
            if self._voice_interrupts():
                await self.barge_in("voice", clear=False)
            return
        await self._drop_speculation()
        if self.mode != "wake" or self.addressing.in_window(self._t_speech_start):
            self.set_state(DeviceState.LISTENING)

    def _on_speech_dropped(self) -> None:
        """The speech that began held no words (a cough, a noise, or one that stopped a reply): show idle
        again, unless the mic was opened for a request (tap or push to talk, the wake window).
        Without this the state stayed "listening" until someone spoke."""
        if self.replying or self.state is not DeviceState.LISTENING:
            return
        opened = self.addressing.in_window() if self.mode == "wake" else self.listening
        if self.mode != "hands_free" and opened:  # tap/push-to-talk: the mic is open for a request
            return
        self.set_state(DeviceState.IDLE)

    async def _on_turn(self, turn: Turn) -> None:
        t_decided = time.monotonic()
        text = turn.text.strip()
        t_start = self.mic.monotonic_at(turn.t_start) if turn.t_start else self._t_speech_start
        if self.mode == "tap_to_talk":
            self.listening = False
            self.spawn(self.tell_listen(False), "listen-off")
        if not text and turn.addressed is not False:
            await self._drop_speculation()
            self.set_state(DeviceState.IDLE)
            return
        if self.mode == "wake":
            addressed = None if turn.addressed is False else self.addressing.check(text, t_start)
            if turn.addressed is False:
                self.addressing.ignore()
            if addressed is None:  # not for us: no text leaves this method, only a count
                await self._drop_speculation()
                self.hub.publish(Unaddressed(self.device, round(len(turn.audio) / SAMPLE_RATE, 2)))
                if not self.replying:
                    self.set_state(DeviceState.IDLE)
                return
            text = command_in(addressed.text, self._recognised)
            if self.replying:
                await self.barge_in("addressed speech")
            if not text:  # the phrase alone: the request follows (the earcon tells the wearer to go on)
                await self._drop_speculation()
                self.addressing.open_window(since=self.mic.monotonic_at(turn.t_end_of_speech), asked=True)
                self.set_state(DeviceState.LISTENING)
                if self.earcons and not self.replying:
                    self.spawn(self._listening_cue(), "wake-cue")
                return
        self.turns += 1
        marks = Milestones(end_of_speech=self.mic.monotonic_at(turn.t_end_of_speech), end_of_turn=t_decided)
        marks.stt_ms = turn.stt_ms
        marks.stt_done = self.mic.monotonic_at(turn.t_stt_done) if turn.t_stt_done is not None else t_decided
        self.hub.publish(TranscriptEvent(self.device, text, round(len(turn.audio) / SAMPLE_RATE, 2)))
        log.info("%s heard: %s", self.device, text)
        await self.cancel_reply()
        text = self._whole_request(text, turn.t_start)
        prepared, self._prepared = self._prepared, None
        self.player.stop_watching()  # from here the reply reads its words itself
        marks.speculative = prepared is not None and prepared.user_text == text
        said = Unheard(text, turn.t_end_of_speech)  # kept if the reply is cut before a word of it plays
        self.reply_task = self.spawn(self._reply(said, prepared, marks, self.turns), "reply")

    def _whole_request(self, text: str, t_start: float | None) -> str:
        """`text`, or the request it completes: the wearer went on speaking soon after the last turn and
        heard none of its reply (`session/continuation.py`). Times on the audio clock. Not in wake mode,
        where the gate decides."""
        unheard, self._unheard = self._unheard, None
        if unheard is None or self.mode == "wake" or not t_start:
            return text
        whole = continued(unheard, text, t_start, self._recognised)
        if whole is None:
            return text
        log.info("%s: went on before hearing the reply: answering both parts as one request", self.device)
        self.conversation.retract_user(unheard.text)
        return whole

    def _reads_as_request(self, text: str) -> bool:
        """A follow-up without the phrase must read as one (wake.py): a question, or a skill's words."""
        return "?" in text or self.skills.match(text) is not None

    def _recognised(self, text: str) -> bool:
        """Whether the skills understand `text` outright; the turn detector holds short unknown ones."""
        reply = self.skills.match(text)
        return reply is not None and not reply.incomplete

    async def _speculate(self, text: str) -> None:
        """Prepare the reply to a transcript that may still be extended."""
        text = text.strip()
        if self.mode == "wake":  # nothing is prepared (no LLM request) for speech not addressed to us
            text = self.addressing.peek(text, self._t_speech_start) or ""  # the detector gated it
        if not text or self.replying:
            return
        if self._prepared is not None and self._prepared.user_text == text:
            return
        await self._drop_speculation()
        log.debug("%s: preparing a reply to %r while the wearer is silent", self.device, text)
        self._prepared = self.responder.prepare(text)
        if self._prepared.skill is not None and self._prepared.skill.text:
            self.player.prefetch_first(self._prepared.skill.text)
        elif self._prepared.source == "llm":
            self.player.prefetch_first_of(
                self._prepared, when_free=self.detector.settled if self.detector is not None else None
            )

    async def _drop_speculation(self) -> None:
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            await prepared.aclose()
        self.player.drop_prefetch()

    # -- replies -----------------------------------------------------------------------------------
    async def _reply(
        self, said: Unheard, prepared: PreparedReply | None, marks: Milestones, turn: int
    ) -> None:
        text = said.text
        self.set_state(DeviceState.THINKING)
        spoken = Spoken()
        reply_parts: list[str] = []
        interrupted = cancelled = False
        source = ""
        try:
            deltas = self.responder.respond(text, prepared)
            source = self.responder.last_intent or ""
            audio = self.player.speak(deltas, marks, spoken, reply_parts)
            if self.earcons:
                audio = with_thinking_cue(audio, earcons.thinking(), on_cue=self._prepare_fallback)
            await self.player.play(audio, marks, spoken)
        except asyncio.CancelledError:
            interrupted = cancelled = True
            raise
        except LinkError as exc:
            interrupted = True
            log.warning("%s: reply not delivered: %s", self.device, exc)
            self.hub.publish(ErrorEvent(self.device, str(exc)))
            self.set_state(DeviceState.IDLE)
        finally:
            self.player.prefetch.clear()
            reply = "".join(reply_parts).strip()
            if interrupted:
                heard = spoken.heard(time.monotonic())
                self.conversation.truncate_assistant(heard)
                if cancelled and not heard:
                    self._unheard = said
            else:
                self.set_state(DeviceState.IDLE)
                self.addressing.open_window()  # a follow-up needs no wake phrase
            if reply:
                log.info("%s replied: %s", self.device, reply)
                self.hub.publish(ReplyEvent(self.device, reply, source, interrupted))
            self.hub.publish(marks.event(self.device, turn))

    def _prepare_fallback(self) -> None:
        """A thinking cue plays: unless the skills answer (no time-out), prepare the LLM's apology."""
        if self.responder.llm is not self.skills:
            self.player.prefetch_apology()

    async def announce(self, message: str) -> None:
        """A timer or reminder is due: queue it (chime first when earcons are on); it rings as soon as a
        speaker is connected, so one that falls due while the headset is away rings when it returns."""
        self.announcements.put(message, "announcement", chime=self.earcons)

    async def cancel_reply(self) -> None:
        task, self.reply_task = self.reply_task, None
        if task is not None and not task.done():
            await cancel_and_wait(task)  # re-raises if we are cancelled ourselves (the service stops)

    async def barge_in(self, why: str, *, clear: bool = True) -> None:
        """Stop the reply now: cancel LLM, TTS and sending, flush the headset, keep what was heard.

        ``clear`` (an explicit stop) also drops the announcements waiting; a disconnect keeps them.
        """
        if clear and (dropped := self.announcements.clear()):
            log.info("%s: %d queued announcement(s) dropped (%s)", self.device, dropped, why)
        if self.reply_task is None or self.reply_task.done():
            return
        log.info("%s: barge-in (%s)", self.device, why)
        task = self.reply_task
        task.cancel()  # it sends nothing more: its next await raises
        with contextlib.suppress(LinkError, OSError, asyncio.TimeoutError):
            await self.speaker.abort()  # flush the headset first; the reply's cleanup can take longer
        await self.cancel_reply()
        if clear:
            self._unheard = None  # stopped on purpose: what the wearer says next is a new request
        self.set_state(DeviceState.LISTENING if self.listening else DeviceState.IDLE)

    # -- listening ---------------------------------------------------------------------------------
    async def tell_listen(self, on: bool) -> None:
        """Tell the headset to open or close its mic stream (a failure is left to the next command)."""
        with contextlib.suppress(LinkError, OSError, asyncio.TimeoutError):
            await self.link.listen(on)

    def end_turn(self) -> None:
        """The wearer ended the turn (push-to-talk release, omi tap): close the mic and decide now."""
        if self.detector is None:
            return
        self.listening = False
        self.detector.end_turn()
        self.spawn(self.tell_listen(False), "listen-off")

    async def start_listening(self) -> None:
        """Open the mic for one turn (tap-to-talk, push-to-talk, the `listen` command; in wake mode the
        next utterance needs no phrase)."""
        self.listening = True
        self.addressing.open_window(asked=True)
        self.set_state(DeviceState.LISTENING)
        await self.tell_listen(True)
        if self.earcons:
            await self._listening_cue()

    async def _listening_cue(self) -> None:
        with contextlib.suppress(LinkError):
            await self.player.send(once(earcons.listening_start()))

    async def stop_listening(self) -> None:
        if self.mode not in ("hands_free", "wake"):
            self.listening = False
            await self.tell_listen(False)
            self.set_state(DeviceState.IDLE)
