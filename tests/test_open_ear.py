"""Open-ear behaviour end to end (virtual headset with its acoustic world -> BLE link -> session, real STT,
skills and piper): the headset hears its own replies, the host cancels that echo, the wearer can interrupt
by voice, and in wake mode a bystander is never answered."""

from __future__ import annotations

import asyncio

import pytest

from companion.config import Config
from companion.events import ReplyEvent, StateChanged, TranscriptEvent, TurnTimings, Unaddressed
from companion.protocol import PlaybackEvent
from companion.wake import Addressing
from firmware_sim import SimWorld
from tests.fixtures.session_rig import SessionRig
from tests.fixtures.speech import Utterance

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_backoff")]


def open_ear_rig(
    world: SimWorld, stt, tts, *, mode: str = "hands_free", earcons: bool = False, **headset
) -> SessionRig:
    """A virtual open-ear headset (no on-board AEC), its link and a session with host echo cancellation."""
    config = Config.model_validate({"session": {"echo_cancel": "auto"}})  # the default, said here
    return SessionRig(
        world,
        stt,
        tts,
        config=config,
        mode=mode,
        earcons=earcons,
        timeout=30.0,
        name="Open Ear",
        seed=1,
        **headset,
    )


async def after_bystanders(rig: SessionRig, sentences: int) -> None:
    """Wait until `sentences` bystander sentences have ended and none is playing (the simulator's ground
    truth: only the test knows it, the session never does)."""
    assert rig.recording is not None
    while True:
        segments = rig.recording.truth().get("segments", [])
        said = [s for s in segments if s["source"] == "bystander"]  # type: ignore[index]
        if len(said) >= sentences and all(s["end"] is not None for s in said):
            return
        await asyncio.sleep(0.05)


@pytest.fixture
async def world(fast_backoff):
    async with SimWorld() as w:
        yield w


async def test_echo_at_minus_6_db_never_interrupts_a_reply(
    world, whisper_stt, piper_tts, synth_speech
) -> None:
    questions = ["What can you do?", "What is the date today?", "What can you do?"]
    async with open_ear_rig(world, whisper_stt, piper_tts, echo_db=-6) as rig:
        for q in questions:
            await rig.headset.mic.say(synth_speech(q))
            reply = await rig.next(ReplyEvent)
            await rig.next(TurnTimings)
            assert not reply.interrupted, f"the reply to {q!r} interrupted itself: {reply.text!r}"
            await asyncio.sleep(1.0)  # the echo's tail
        aec = rig.session.mic.aec
    transcripts = [e for e in rig.seen if isinstance(e, TranscriptEvent)]
    assert len(transcripts) == len(questions), [t.text for t in transcripts]  # no turn made of echo
    # The mic stayed open during replies and the host canceller ran on them.
    assert aec is not None and aec.frames_processed > 100
    assert aec.erle_db is not None and aec.erle_db > 15, aec.erle_db
    echo = rig.recording.world("echo")
    assert echo.any()  # the headset really heard itself


async def test_voice_barge_in_stops_the_reply_and_hears_the_new_question(
    world, whisper_stt, piper_tts, synth_speech
) -> None:
    async with open_ear_rig(world, whisper_stt, piper_tts, echo_db=-6) as rig:
        await rig.headset.mic.say(synth_speech("What can you do?"))  # the help skill: a long reply
        await rig.next(StateChanged, where=lambda e: e.state == "speaking")
        await asyncio.sleep(0.8)
        assert rig.session.detector is not None and rig.session.detector.interruptible  # quick confirmation
        # The first ~150 ms of an interruption overlap the reply's echo (double talk), where the canceller's
        # suppressor also dims the wearer; scripts/bench_acoustics.py reports the WER of such speech.
        question = synth_speech("Wait, what time is it?")
        t_onset = rig.headset.clock()
        saying = asyncio.create_task(rig.headset.mic.say(question))
        first = await rig.next(ReplyEvent)
        transcript = await rig.next(TranscriptEvent)
        second = await rig.next(ReplyEvent)
        await saying
    assert first.intent == "help" and first.interrupted
    aborted = [e for e in rig.headset.speaker.events if e.event is PlaybackEvent.ABORTED]
    assert aborted and aborted[0].t > t_onset
    stop_ms = (aborted[0].t - t_onset) * 1000
    assert stop_ms < 1000, stop_ms  # the benchmark measures the latency; here: it stopped, promptly
    assert "time" in transcript.text.lower(), transcript.text  # the interrupting question, whole
    assert second.intent == "time" and not second.interrupted, (transcript.text, second.text)


async def test_wake_mode_ignores_a_bystander_and_answers_the_wake_phrase(
    world, whisper_stt, piper_tts, synth_speech, speech_set: list[Utterance]
) -> None:
    bystander = next(u for u in speech_set if 2.0 < u.seconds < 5.0)
    async with open_ear_rig(
        world,
        whisper_stt,
        piper_tts,
        mode="wake",
        echo_db=-12,
        bystanders=(str(bystander.path),),
        bystander_db=0.0,
        bystander_gap_s=(0.5, 0.5),
        bystander_loop=False,
    ) as rig:
        await rig.next(Unaddressed)
        await after_bystanders(rig, 1)
        await asyncio.sleep(0.5)
        await rig.headset.mic.say(synth_speech("Hey companion, what time is it?"))
        transcript = await rig.next(TranscriptEvent)
        reply = await rig.next(ReplyEvent)
        counters = rig.session.addressing.counters
    ignored = [e for e in rig.seen if isinstance(e, Unaddressed)]
    assert sum(e.audio_s for e in ignored) > 1.0
    assert counters.unaddressed >= 1 and counters.wake_ups == 1
    assert reply.intent == "time" and "time" in transcript.text.lower()
    assert "companion" not in transcript.text.lower()  # the phrase is not part of the request
    # Nothing of the bystander was published: one transcript, one reply.
    assert [type(e).__name__ for e in rig.seen if isinstance(e, TranscriptEvent | ReplyEvent)] == [
        "TranscriptEvent",
        "ReplyEvent",
    ]


async def test_wake_mode_bystander_sentences_end_apart_and_the_request_after_them_is_answered(
    world, whisper_stt, piper_tts, synth_speech, speech_set: list[Utterance]
) -> None:
    # Real read sentences, looped with short gaps (each transcribes as a fragment that ordinary turn rules
    # would wait on): every one must end on its own, so the wearer's request is never swallowed by them.
    # A headset with on-board echo cancellation keeps the host canceller (issue 15, not yet reliable) out.
    bystanders = [u for u in speech_set if 1.5 < u.seconds < 6.0][:4]
    async with open_ear_rig(
        world,
        whisper_stt,
        piper_tts,
        mode="wake",
        has_aec=True,
        bystanders=tuple(str(u.path) for u in bystanders),
        bystander_db=-6.0,
        bystander_gap_s=(3.0, 3.5),
    ) as rig:
        await after_bystanders(rig, 2)
        # In the next gap, after a breath. A request begun within the endpointer's silence window is resumed
        # speech inside the bystander's utterance, split off by the detector (test_wake_turns.py's
        # test_a_request_right_after_a_bystander_is_split_off_and_heard): with real speech mixed in, that
        # path made this test fail now and then (in one full suite of the last five).
        await asyncio.sleep(0.4)
        await rig.headset.mic.say(synth_speech("Hey companion, what time is it?"))
        transcript = await rig.next(TranscriptEvent)
        reply = await rig.next(ReplyEvent)
        counters = rig.session.addressing.counters
    ignored = [e for e in rig.seen if isinstance(e, Unaddressed)]
    assert ignored and max(e.audio_s for e in ignored) < 7.0  # sentence by sentence, not one growing turn
    assert reply.intent == "time" and "time" in transcript.text.lower()
    assert counters.wake_ups == 1 and counters.unaddressed >= 2
    assert [type(e).__name__ for e in rig.seen if isinstance(e, TranscriptEvent | ReplyEvent)] == [
        "TranscriptEvent",
        "ReplyEvent",
    ]


async def test_wake_phrase_then_a_pause_then_the_request(world, whisper_stt, piper_tts, synth_speech) -> None:
    async with open_ear_rig(world, whisper_stt, piper_tts, mode="wake", has_aec=True, earcons=True) as rig:
        await rig.headset.mic.say(synth_speech("Hey companion."))
        # The phrase alone: the session listens (LED) and plays the listening cue; the wearer goes on.
        await rig.next(StateChanged, where=lambda e: e.state == "listening")
        await asyncio.sleep(0.8)
        t_request = rig.headset.clock()
        await rig.headset.mic.say(synth_speech("What time is it?"))
        transcript = await rig.next(TranscriptEvent)
        reply = await rig.next(ReplyEvent)
        counters = rig.session.addressing.counters
        played = list(rig.headset.speaker.events)
    assert reply.intent == "time" and transcript.text.lower().startswith("what time")
    assert counters.wake_ups + counters.follow_ups >= 1 and counters.unaddressed == 0
    assert any(e.event is PlaybackEvent.STARTED and e.t < t_request for e in played)  # the cue


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("Hey companion, what time is it?", "what time is it?"),
        ("Hey, Companion! Set a timer.", "Set a timer."),
        ("hey companions what's the date", "what's the date"),
        ("Okay hey companion stop", "stop"),
        ("Hey Companion.", ""),
        ("In being comparatively modern.", None),
        ("Hey, how are you?", None),
        ("The companion was late.", None),
    ],
)
def test_the_wake_phrase_is_found_in_a_transcript(text: str, rest: str | None) -> None:
    assert Addressing().strip_phrase(text) == rest


def test_the_follow_up_window_needs_no_phrase() -> None:
    now = [100.0]
    a = Addressing(follow_up_s=5.0, clock=lambda: now[0])
    assert a.check("what about tomorrow") is None
    a.open_window()
    now[0] += 4.0
    assert a.check("what about tomorrow") is not None
    now[0] += 2.0
    assert a.check("what about tomorrow") is None
    assert a.counters.as_dict() == {
        "heard": 3,
        "addressed": 1,
        "wake_ups": 0,
        "follow_ups": 1,
        "unaddressed": 2,
    }
