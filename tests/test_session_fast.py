"""The session's logic with fakes (tests/fixtures/fakes.py): a real utterance through the real VAD and
turn detector, a scripted recogniser, a tone "voice" and an in-memory headset. Milliseconds per test; the
same paths with Whisper, piper and the simulated radio are in test_session.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator

import numpy as np
import pytest

from companion.config import Config
from companion.engines import Engines
from companion.events import EventHub, ReplyEvent, StateChanged, TranscriptEvent, TurnTimings
from companion.link.base import SAMPLE_RATE
from companion.protocol import Button, DeviceState
from companion.session import Session
from tests.fixtures.conditions import until
from tests.fixtures.fakes import FakeLink, FakeRecognizer, FakeTTS, speech
from tests.fixtures.session_rig import next_event


def _config(turn: dict[str, object] | None = None, **session: object) -> Config:
    # No audio end-of-turn model: the words decide (the model has its own tests).
    return Config.model_validate({"turn": {"smart_turn": False, **(turn or {})}, "session": session})


class GatedTTS(FakeTTS):
    """Synthesises nothing until `gate` is set: the reply is still being made while the wearer goes on."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def stream(self, text: str) -> AsyncGenerator[np.ndarray, None]:
        await self.gate.wait()
        async for chunk in super().stream(text):
            yield chunk


class FastRig:
    def __init__(
        self,
        *texts: str,
        mode: str | None = None,
        tts: FakeTTS | None = None,
        turn: dict[str, object] | None = None,
        **session: object,
    ) -> None:
        self.link = FakeLink()
        self.stt = FakeRecognizer(*texts)
        self.tts = tts or FakeTTS()
        self.hub = EventHub()
        self.events = self.hub.subscriber()
        self.seen: list[object] = []
        engines = Engines(stt=self.stt, tts=self.tts, llm=None)
        self.session = Session.from_engines(
            engines, self.link, _config(turn, **session), hub=self.hub, mode=mode, earcons_enabled=False
        )

    async def next(self, kind: type, where=lambda e: True, timeout: float = 3.0):  # type: ignore[no-untyped-def]
        return await next_event(self.events, kind, timeout, where, self.seen)

    def states(self) -> list[str]:
        return [e.state for e in self.seen if isinstance(e, StateChanged)]


@pytest.fixture
async def rig_factory() -> AsyncIterator:  # type: ignore[type-arg]
    tasks: list[asyncio.Task[None]] = []

    async def start(*texts: str, **kw: object) -> FastRig:
        rig = FastRig(*texts, **kw)  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(rig.session.run()))
        await until(lambda: rig.session.detector is not None, 2, "the session to start")
        return rig

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_turn_is_answered_and_the_state_goes_round(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory("What time is it?")
    rig.link.speak(speech())
    transcript = await rig.next(TranscriptEvent)
    reply = await rig.next(ReplyEvent)
    timings = await rig.next(TurnTimings)
    assert transcript.text == "What time is it?"
    assert reply.intent == "time" and not reply.interrupted
    assert rig.tts.spoken and rig.link.played  # the skill's words were synthesised and sent
    assert rig.states()[:5] == ["idle", "listening", "thinking", "speaking", "idle"]
    assert timings.first_audio_sent_ms is not None and timings.first_audio_played_ms is not None
    await until(
        lambda: rig.link.states and rig.link.states[-1] is DeviceState.IDLE, 1, "the LED back to idle"
    )
    assert rig.session.turns == 1


async def test_speech_without_words_goes_back_to_idle(rig_factory) -> None:  # type: ignore[no-untyped-def]
    """A noise the VAD took for speech shows "listening" while it lasts, and "idle" once it is known to
    hold no words (it stayed "listening" until the next utterance before)."""
    rig = await rig_factory("")
    rig.link.speak(speech())
    await rig.next(StateChanged, where=lambda e: e.state == "listening")
    await rig.next(StateChanged, where=lambda e: e.state == "idle")
    assert rig.states() == ["idle", "listening", "idle"]
    assert rig.stt.calls and rig.session.turns == 0


async def test_an_open_questions_first_sentence_is_ready_when_the_turn_ends(rig_factory, caplog) -> None:  # type: ignore[no-untyped-def]
    """No skill knows the question, so the language model answers (here the offline engine). Its first
    sentence is synthesised while the wearer is silent (the turn hold), not after the turn ends."""
    caplog.set_level(logging.DEBUG, logger="companion.session.reply")
    rig = await rig_factory("What's the capital of France?")
    rig.link.speak(speech(silence_s=0.4))  # past the end of speech: five unknown words are held
    await until(lambda: rig.session.player.prefetch, 2, "the first sentence synthesised in the hold")
    rig.link.speak(np.zeros(int(1.5 * SAMPLE_RATE), np.int16))  # the hold runs out: the turn ends
    reply = await rig.next(ReplyEvent)
    timings = await rig.next(TurnTimings)
    assert reply.intent == "fallback" and timings.speculative
    first = rig.tts.spoken[0]
    assert reply.text.startswith(first) and rig.tts.spoken.count(first) == 1  # synthesised once
    spoken = [r.getMessage() for r in caplog.records if "speaking" in r.getMessage()]
    assert spoken[0].endswith("(prepared)"), spoken


async def test_a_finished_open_question_is_synthesised_before_its_silence_runs_out(rig_factory) -> None:  # type: ignore[no-untyped-def]
    """A long open question reads finished at its first pause: its reply's first sentence is synthesised
    there, while the end-of-turn silence still runs, so its audio is ready when the turn ends."""
    rig = await rig_factory("Could you tell me what the capital of France is?")
    rig.link.speak(speech(silence_s=0.05))  # past its pause (a draft), short of the end of the turn
    await until(lambda: rig.session.player.prefetch, 2, "the first sentence synthesised in the silence")
    assert rig.session.turns == 0 and rig.tts.spoken
    rig.link.speak(np.zeros(int(0.5 * SAMPLE_RATE), np.int16))  # the silence runs out: the turn ends
    reply = await rig.next(ReplyEvent)
    timings = await rig.next(TurnTimings)
    assert reply.intent == "fallback" and timings.speculative
    assert rig.tts.spoken.count(rig.tts.spoken[0]) == 1  # synthesised once, at the pause


async def test_the_volume_skill_acts_through_the_session_commands(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory("Set the volume to 30.")
    rig.link.speak(speech())
    reply = await rig.next(ReplyEvent)
    assert reply.intent.startswith("volume")
    await until(lambda: 30 in rig.link.volumes, 1, "the headset told volume 30")
    assert rig.session.commands.volume == 30 and rig.session.commands.status()["volume"] == 30


async def test_commands_say_volume_listen_and_stop(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory("", mode="tap_to_talk")
    commands = rig.session.commands
    assert commands.set_volume(140) == 100  # clamped
    await until(lambda: rig.link.volumes[-1:] == [100], 1, "the headset told volume 100")
    assert await commands.say("Hello there.") == "played"
    said = await rig.next(ReplyEvent)
    assert (said.text, said.intent, said.interrupted) == ("Hello there.", "say", False)
    await commands.listen(True)
    assert rig.link.listens == [True] and rig.session.state is DeviceState.LISTENING
    await commands.listen(False)
    assert rig.link.listens == [True, False] and rig.session.state is DeviceState.IDLE
    rig.link.hold_playback = True  # the next announcement keeps playing until stopped
    spoken = commands.queue_say("A long announcement that plays on and on.")
    await rig.next(StateChanged, where=lambda e: e.state == "speaking")
    await commands.stop()
    assert await spoken in ("stopped", "cut")
    assert rig.link.aborts == 1


async def test_a_button_tap_interrupts_the_reply(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory("What can you do?")  # the help skill: a long reply
    rig.link.hold_playback = True
    rig.link.speak(speech())
    await rig.next(StateChanged, where=lambda e: e.state == "speaking")
    rig.link.press(Button.TAP)
    reply = await rig.next(ReplyEvent)
    assert reply.interrupted and rig.link.aborts == 1
    await until(lambda: rig.session.state is DeviceState.LISTENING, 1, "listening again")


async def test_push_to_talk_ends_the_turn_on_release(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory("What time is it?", mode="push_to_talk")
    rig.link.press(Button.PRESS)
    await until(lambda: rig.link.listens == [True], 1, "the mic opened")
    rig.link.speak(speech(silence_s=0.0))  # no silence after it: the release ends the turn
    await until(lambda: rig.link._audio.empty(), 2, "the audio read")
    rig.link.press(Button.RELEASE)
    transcript = await rig.next(TranscriptEvent)
    assert transcript.text == "What time is it?"
    assert rig.link.listens[-1] is False


async def test_mic_is_ignored_while_not_listening(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory("What time is it?", mode="tap_to_talk")
    rig.link.speak(speech())
    await until(lambda: rig.link._audio.empty(), 2, "the audio read")
    await asyncio.sleep(0.05)  # a window in which no turn may start: nothing is listening
    assert not rig.stt.calls and rig.session.turns == 0


async def test_a_tap_while_the_headset_has_no_credit_ends_the_whole_reply(rig_factory) -> None:  # type: ignore[no-untyped-def]
    # The barge-in lands while the speaker waits for flow credit, not inside the reply's audio generator:
    # the generator chain must still be closed then, or its TTS producer outlives the reply and may record
    # the whole reply as heard after the barge-in kept only what was played.
    rig = await rig_factory("What can you do?")  # the help skill: a long reply in several sentences
    rig.link.stall_after = 3
    rig.link.speak(speech())
    await rig.next(StateChanged, where=lambda e: e.state == "speaking")
    await until(lambda: len(rig.link.played) == 3, 2, "the headset to run out of credit")
    rig.link.press(Button.TAP)
    reply = await rig.next(ReplyEvent)
    assert reply.interrupted
    producers = [t for t in asyncio.all_tasks() if t.get_name().startswith("tts-producer")]
    assert not producers, producers
    heard = rig.session.conversation.last_assistant() or ""
    assert len(heard) < len(reply.text), heard


async def _two_parts(rig: FastRig, *, tap_between: bool = False) -> tuple[TranscriptEvent, ReplyEvent]:
    """The first part ends a turn (its reply is held back by the TTS gate); the wearer goes on at once."""
    assert isinstance(rig.tts, GatedTTS)
    rig.link.speak(speech(silence_s=0.6))
    await rig.next(TranscriptEvent)
    await rig.next(StateChanged, where=lambda e: e.state == "thinking")
    if tap_between:
        rig.link.press(Button.TAP)
        await until(lambda: rig.session.reply_task is None, 1, "the reply stopped")
    rig.link.speak(speech())
    second = await rig.next(TranscriptEvent)
    rig.tts.gate.set()
    return second, await rig.next(ReplyEvent, where=lambda e: not e.interrupted)


def _asked(rig: FastRig) -> list[str]:
    return [t.content for t in rig.session.conversation.turns if t.role == "user"]


async def test_going_on_before_the_reply_is_heard_makes_one_request(rig_factory) -> None:  # type: ignore[no-untyped-def]
    """ "Set a timer." ends a turn (the skills need a duration: not a command by itself) and the wearer goes
    on, "for five minutes.", before a word of the question back was played: one request, answered whole,
    and the history holds it once."""
    rig = await rig_factory("Set a timer.", "for five minutes.", tts=GatedTTS(), turn={"unsure_ms": 0})
    second, reply = await _two_parts(rig)
    assert second.text == "for five minutes."  # the transcript is the utterance's own
    assert reply.intent == "timer.set" and "5 minutes" in reply.text, reply.text
    assert _asked(rig) == ["Set a timer for five minutes."]
    assert len(rig.session.skills_context.timers.list()) == 1


async def test_after_a_tap_or_a_command_the_next_words_stand_alone(rig_factory) -> None:  # type: ignore[no-untyped-def]
    """A tap stops the reply on purpose, and a command the skills know stands by itself: neither is joined
    to the turn before."""
    rig = await rig_factory("Set a timer.", "for five minutes.", tts=GatedTTS(), turn={"unsure_ms": 0})
    _second, reply = await _two_parts(rig, tap_between=True)
    assert reply.intent == "fallback"  # "for five minutes." alone is no command
    assert _asked(rig) == ["Set a timer.", "for five minutes."]

    rig = await rig_factory("Set a timer.", "What time is it?", tts=GatedTTS(), turn={"unsure_ms": 0})
    _second, reply = await _two_parts(rig)
    assert reply.intent == "time"
