"""The conversation loop end to end: virtual headset -> BLE link -> session (real STT, skills/LLM, piper)."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest

from companion.audio.v2v import voice_to_voice
from companion.config import Config
from companion.engines import Engines
from companion.events import EventHub, ReplyEvent, StateChanged, TranscriptEvent, TurnTimings
from companion.link.ble import BleHeadsetLink
from companion.protocol import Button, DeviceState, PlaybackEvent
from companion.session import Session
from firmware_sim import HeadsetConfig, SimClient, SimScanner, SimWorld
from tests.fixtures.conditions import until
from tests.fixtures.session_rig import SessionRig

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_backoff")]


@pytest.fixture
async def world(fast_backoff):
    async with SimWorld() as w:
        yield w


async def test_a_spoken_question_gets_a_spoken_answer(world, whisper_stt, piper_tts, synth_speech) -> None:
    async with SessionRig(world, whisper_stt, piper_tts) as rig:
        await rig.headset.mic.say(synth_speech("What time is it?"))
        transcript = await rig.next(TranscriptEvent)
        reply = await rig.next(ReplyEvent)
        timings = await rig.next(TurnTimings)
        await until(lambda: rig.headset.state is DeviceState.IDLE, 3, "the headset's LED back to idle")
    assert "time" in transcript.text.lower()
    assert reply.intent == "time" and not reply.interrupted
    assert any(ch.isdigit() for ch in reply.text)
    # Every milestone happened, in order.
    order = [
        timings.end_of_turn_ms,
        timings.tts_first_audio_ms,
        timings.first_audio_sent_ms,
        timings.first_audio_played_ms,
    ]
    assert None not in order and order == sorted(order)
    # The state machine went (idle, published at the start) listening -> thinking -> speaking -> idle,
    # mirrored on the headset LED.
    states = [e.state for e in rig.seen if isinstance(e, StateChanged)]
    assert states[:5] == ["idle", "listening", "thinking", "speaking", "idle"]
    assert rig.headset.state is DeviceState.IDLE
    # The reply is audible in the headset's own recording, after the wearer finished.
    (turn,) = voice_to_voice(rig.recording.left, rig.recording.right)
    assert turn.latency_ms is not None and 0 < turn.latency_ms < 3000


async def test_a_timer_rings_when_due(world, whisper_stt, piper_tts, synth_speech) -> None:
    async with SessionRig(world, whisper_stt, piper_tts) as rig:
        await rig.headset.mic.say(synth_speech("Set a timer for two seconds."))
        reply = await rig.next(ReplyEvent)
        assert reply.intent == "timer.set"
        rang = await rig.next(ReplyEvent, timeout=10.0, where=lambda e: e.intent == "announcement")
    assert "timer" in rang.text.lower()


async def test_a_pause_inside_a_sentence_is_not_the_end_of_the_turn(
    world, whisper_stt, piper_tts, synth_speech
) -> None:
    pause = np.zeros(int(16000 * 0.4), np.int16)
    fragmented = np.concatenate([synth_speech("Set a timer for"), pause, synth_speech("five seconds.")])
    async with SessionRig(world, whisper_stt, piper_tts) as rig:
        await rig.headset.mic.say(fragmented)
        transcript = await rig.next(TranscriptEvent)
        reply = await rig.next(ReplyEvent)
    assert "five" in transcript.text.lower() or "5" in transcript.text
    assert reply.intent == "timer.set"
    turns = [e for e in rig.seen if isinstance(e, TranscriptEvent)]
    assert len(turns) == 1
    for turn in voice_to_voice(rig.recording.left, rig.recording.right):
        assert not turn.answered_early


async def test_button_barge_in_stops_playback_within_150_ms(
    world, whisper_stt, piper_tts, synth_speech
) -> None:
    async with SessionRig(world, whisper_stt, piper_tts) as rig:
        await rig.headset.mic.say(synth_speech("What can you do?"))  # the help skill: a long reply
        await rig.next(StateChanged, where=lambda e: e.state == "speaking")
        await asyncio.sleep(0.6)  # the stimulus: a press 0.6 s into the reply
        t_press = rig.headset.clock()
        rig.headset.press(Button.TAP)
        reply = await rig.next(ReplyEvent)
        # The headset's own record: the abort reached it, and the recording runs on past the 150 ms mark.
        await until(
            lambda: (
                any(e.event is PlaybackEvent.ABORTED for e in rig.headset.speaker.events)
                and rig.headset.clock() > t_press + 0.45
            ),
            5,
            "the abort at the headset",
        )
        events = list(rig.headset.speaker.events)
        played_after = rig.recording.right[int(t_press * 16000) + int(0.15 * 16000) :]
    assert reply.interrupted
    aborted = [e for e in events if e.event is PlaybackEvent.ABORTED]
    assert aborted, events
    stop_ms = (aborted[-1].t - t_press) * 1000
    assert 0 <= stop_ms <= 150, stop_ms
    assert not np.any(played_after), "the speaker kept playing after the barge-in"
    # Only what was heard stays in memory.
    heard = rig.session.conversation.last_assistant() or ""
    assert len(heard) < len(reply.text)


async def test_llm_answers_through_a_real_openai_compatible_server(
    world, whisper_stt, piper_tts, synth_speech, llama_server
) -> None:
    from companion.llm.openai_backend import OpenAIBackend

    config = Config()
    config.llm.max_tokens = 24
    llm = OpenAIBackend(llama_server, "gemma", max_tokens=24)
    try:
        async with SessionRig(world, whisper_stt, piper_tts, config=config, llm=llm) as rig:
            await rig.headset.mic.say(synth_speech("Tell me a story about a dragon."))
            await rig.next(TranscriptEvent)
            reply = await rig.next(ReplyEvent, timeout=40)
            timings = await rig.next(TurnTimings)
    finally:
        await llm.aclose()
    assert reply.text  # a base model's words, but real streamed tokens over real HTTP
    assert timings.llm_first_token_ms is not None


async def test_omi_replies_play_on_the_local_sound_device(
    world, whisper_stt, piper_tts, synth_speech, pulse_null
) -> None:
    from companion.link.local import LocalAudioLink, LocalAudioOptions

    headset = world.add_headset(HeadsetConfig(profile="omi", name="Pendant"))
    hub = EventHub()
    events = hub.subscriber()
    async with (
        BleHeadsetLink(headset.address, backend=SimClient, scanner_backend=SimScanner) as link,
        LocalAudioLink(name="laptop", options=LocalAudioOptions(capture=False)) as speaker,
    ):
        assert not link.info.has_speaker
        engines = Engines(stt=whisper_stt, tts=piper_tts, llm=None)
        session = Session.from_engines(engines, link, hub=hub, earcons_enabled=False, speaker=speaker)
        task = asyncio.create_task(session.run())
        try:
            await until(lambda: session.mic.clock[0] > 0.1, 10, "the session to receive mic audio")
            await headset.mic.say(synth_speech("What time is it?"))
            async with asyncio.timeout(30):
                while not isinstance(event := await events.get(), TurnTimings):
                    if isinstance(event, ReplyEvent):
                        reply = event
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert reply.intent == "time" and not reply.interrupted
    assert event.first_audio_played_ms is not None
    assert speaker.counters()["samples_played"] > 16000 * 0.5
