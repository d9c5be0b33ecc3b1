"""An Omi headset under the service (`companion run`'s code path): replies play on this machine's sound
device, and the button gestures an Omi really sends drive the conversation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from companion.config import Config
from companion.engines import Engines
from companion.events import ErrorEvent, ReplyEvent, StateChanged, TranscriptEvent, TurnTimings
from companion.gestures import Act, omi_gesture
from companion.protocol import Button, DeviceState
from companion.service import Service
from firmware_sim import HeadsetConfig, SimWorld
from tests.fixtures.session_rig import next_event
from tests.fixtures.sim import until

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_backoff")]


@pytest.fixture
def service_env(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPANION_SIM_SOCKET", str(tmp_path / "sim.sock"))  # no simulator process here
    monkeypatch.setenv("COMPANION_CONTROL_SOCKET", str(tmp_path / "control.sock"))
    monkeypatch.setenv("COMPANION_REGISTRY", str(tmp_path / "headsets.json"))


async def _serve(config: Config, whisper_stt, piper_tts):  # type: ignore[no-untyped-def]
    service = Service(config, sim=True, engines=Engines(stt=whisper_stt, tts=piper_tts, llm=None))
    events = service.hub.subscriber()
    task = asyncio.create_task(service.run(lambda _: None))
    await until(lambda: any(d.session is not None for d in service.devices.values()), 20, "a session")
    session = next(d.session for d in service.devices.values() if d.session is not None)
    await until(lambda: session.mic.clock[0] > 0.1, 10, "the session to receive mic audio")
    return service, events, task


async def _stop(task: asyncio.Task) -> None:  # type: ignore[type-arg]
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=15)
    assert done, "the service did not stop"
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_an_omi_under_the_service_speaks_on_the_local_sound_device(
    service_env, whisper_stt, piper_tts, synth_speech, pulse_null
) -> None:
    async with SimWorld() as world:
        headset = world.add_headset(HeadsetConfig(profile="omi", name="Pendant"))
        config = Config()
        config.session.earcons = False
        service, events, task = await _serve(config, whisper_stt, piper_tts)
        try:
            dev = next(iter(service.devices.values()))
            session = dev.session
            assert session is not None and session.speaker is not session.link  # wired by the service
            await headset.mic.say(synth_speech("What time is it?"))
            seen: list = []
            reply = await next_event(events, ReplyEvent, seen=seen)
            timings = await next_event(events, TurnTimings, seen=seen)
            played = session.speaker.counters()["samples_played"]
        finally:
            await _stop(task)
    assert not [e for e in seen if isinstance(e, ErrorEvent)]
    assert reply.intent == "time" and not reply.interrupted
    assert timings.first_audio_played_ms is not None
    assert played > 16000 * 0.5


async def test_omi_taps_talk_and_stop_in_push_to_talk(
    service_env, whisper_stt, piper_tts, synth_speech, pulse_null
) -> None:
    async with SimWorld() as world:
        headset = world.add_headset(HeadsetConfig(profile="omi", name="Tapper"))
        config = Config()
        config.session.earcons = False
        config.session.mode = "push_to_talk"
        service, events, task = await _serve(config, whisper_stt, piper_tts)
        try:
            session = next(d.session for d in service.devices.values() if d.session is not None)
            await headset.mic.say(synth_speech("What time is it?"))  # mic closed: not heard
            await asyncio.sleep(0.3)  # a window in which nothing may be heard
            headset.press(Button.TAP)  # tap to talk (its release 40 ms later must not end the turn)
            await until(lambda: session.state is DeviceState.LISTENING, 3, "the tap to open the mic")
            speech = synth_speech("What is the date today?")
            await headset.mic.say(speech)
            await asyncio.sleep(len(speech) / 16000 + 0.1)
            headset.press(Button.TAP)  # tap to stop: the turn ends now
            transcript = await next_event(events, TranscriptEvent)
            reply = await next_event(events, ReplyEvent)
        finally:
            await _stop(task)
    assert "date" in transcript.text.lower()
    assert reply.intent == "date"


async def test_omi_double_tap_stops_a_reply(
    service_env, whisper_stt, piper_tts, synth_speech, pulse_null
) -> None:
    async with SimWorld() as world:
        headset = world.add_headset(HeadsetConfig(profile="omi", name="Stopper"))
        config = Config()
        config.session.earcons = False
        _, events, task = await _serve(config, whisper_stt, piper_tts)
        try:
            await headset.mic.say(synth_speech("What can you do?"))  # the help skill: a long reply
            async with asyncio.timeout(30):
                while not (isinstance(e := await events.get(), StateChanged) and e.state == "speaking"):
                    pass
            await asyncio.sleep(0.6)
            headset.press(Button.DOUBLE_TAP)
            reply = await next_event(events, ReplyEvent, timeout=10)
            assert reply.interrupted
            # the service stopping in the middle of a barge-in must not swallow its own cancellation
            await headset.mic.say(synth_speech("What can you do?"))
            async with asyncio.timeout(30):
                while not (isinstance(e := await events.get(), StateChanged) and e.state == "speaking"):
                    pass
            headset.press(Button.DOUBLE_TAP)
            await asyncio.sleep(0.06)  # the gesture is on its way through the link and the session
        finally:
            await _stop(task)


def test_omi_gesture_table() -> None:
    # narrow unit test of the mapping; the sessions above run it for real
    assert omi_gesture(Button.RELEASE, "push_to_talk", busy=False, listening=True) == ()
    assert omi_gesture(Button.TAP, "push_to_talk", busy=False, listening=False) == (Act.LISTEN,)
    assert omi_gesture(Button.TAP, "push_to_talk", busy=False, listening=True) == (Act.END_TURN,)
    assert omi_gesture(Button.TAP, "hands_free", busy=True, listening=False) == (Act.BARGE_IN,)
    stop = omi_gesture(Button.DOUBLE_TAP, "tap_to_talk", busy=True, listening=False)
    assert stop == (Act.BARGE_IN, Act.CLOSE)
    assert omi_gesture(Button.LONG_PRESS, "tap_to_talk", busy=True, listening=True) == ()
