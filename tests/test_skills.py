"""Offline skills: phrasings, number words, durations, real timers and reminders, the offline backend."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from companion.llm.base import LLMBackend, Message
from companion.llm.skills import SkillReply, SkillsResponder
from companion.llm.spoken import format_duration, format_time, normalize, parse_duration
from companion.llm.timers import Timers
from tests.fixtures.conditions import until

NOW = datetime(2026, 11, 27, 15, 7, 30)  # a Friday afternoon


class Session:
    """The part of a session the skills see (the SkillContext protocol), with real Timers."""

    def __init__(self) -> None:
        self.spoken: list[str] = []
        self.due = asyncio.Event()
        self.timers = Timers(self._on_due)
        self.volume_percent = 50
        self.battery: int | None = 80
        self.stopped = 0
        self.last: str | None = None
        self.clock = NOW

    async def _on_due(self, message: str) -> None:
        self.spoken.append(message)
        self.due.set()

    def battery_percent(self) -> int | None:
        return self.battery

    def set_volume(self, percent: int) -> None:
        self.volume_percent = percent

    def volume(self) -> int:
        return self.volume_percent

    def stop_speaking(self) -> None:
        self.stopped += 1

    def last_reply(self) -> str | None:
        return self.last

    def now(self) -> datetime:
        return self.clock


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    s = Session()
    yield s
    await s.timers.aclose()


@pytest.fixture
def skills(session: Session) -> SkillsResponder:
    return SkillsResponder(session)


def run(reply: SkillReply | None) -> SkillReply:
    assert reply is not None
    if reply.action is not None:
        reply.action()
    return reply


# --------------------------------------------------------------------------- phrasings -> intents

PHRASINGS = {
    "time": [
        "What time is it?",
        "what's the time.",
        "What is the time",
        "whats the time",
        "Hey, what time is it now?",
        "Do you know what time it is?",
        "Could you tell me the time, please?",
        "Time check.",
        "TIME",
        "what time is it right now",
    ],
    "date": [
        "What's the date today?",
        "What day is it?",
        "What is today's date?",
        "Which day is it today?",
        "what day of the week is it",
        "What’s today’s date?",
    ],
    "battery": [
        "What's my battery?",
        "How much battery is left?",
        "Battery level.",
        "How's the headset battery?",
        "what is the battery at",
        "Is the battery low?",
    ],
    "timer.set": [
        "Set a timer for ten seconds.",
        "Set a 10-minute timer.",
        "Timer for 2 and a half minutes",
        "Can you set a timer for one minute thirty please?",
        "start a timer for an hour and a half",
        "set a five minute timer",
        "Set a pasta timer for 8 minutes.",
        "Countdown 30 seconds",
    ],
    "timer.cancel": ["Cancel the timer.", "Stop the timer!", "cancel all timers", "Turn off my timer"],
    "timer.status": [
        "How long is left?",
        "How much time is left on my timer?",
        "How long until the timer goes off?",
        "Time left?",
        "Do I have any timers?",
    ],
    "reminder.set": [
        "Remind me in five minutes to call mom.",
        "Remind me to take my pills in 2 hours",
        "In ten minutes, remind me to check the oven.",
        "Set a reminder for 20 minutes to stretch",
        "remind me in an hour",
    ],
    "repeat": [
        "Say that again.",
        "Can you repeat that?",
        "What did you say?",
        "Sorry, come again?",
        "I didn't catch that.",
        "Pardon?",
    ],
    "stop": [
        "Stop.",
        "stop!",
        "Stop it.",
        "Stop talking.",
        "Please stop.",
        "OK, stop.",
        "No, no, stop!",
        "Never mind.",
        "Nevermind",
        "Cancel.",
        "That's enough.",
        "Be quiet.",
        "Shut up",
        "stop stop",
    ],
    "help": ["Help!", "What can you do?", "What can I say?", "Can you help me?", "What are your commands?"],
    "volume.up": [
        "Volume up.",
        "Louder!",
        "Turn it up a bit",
        "Turn up the volume.",
        "speak up",
        "A bit louder please",
    ],
    "volume.down": ["Volume down", "Quieter.", "Turn it down.", "Lower the volume", "It's too loud."],
    "volume.set": ["Set the volume to 30 percent.", "Volume 70%", "volume to twenty five", "Max volume"],
    "volume.get": ["What's the volume?", "how loud is it"],
}


@pytest.mark.parametrize(
    ("intent", "text"), [(intent, text) for intent, texts in PHRASINGS.items() for text in texts]
)
def test_phrasings_match_their_intent(skills: SkillsResponder, intent: str, text: str) -> None:
    reply = skills.match(text)
    assert reply is not None, f"{text!r} matched nothing"
    assert reply.intent == intent, f"{text!r} -> {reply.intent}"


@pytest.mark.parametrize(
    "text",
    [
        "I stopped by the store.",
        "Stop by the bakery on the way home and tell me what they have.",
        "Don't stop.",
        "Can you help me with my homework?",
        "What time does the train leave?",
        "What time is it in Tokyo?",
        "Set the table for dinner.",
        "The timer on my oven is broken.",
        "Remind me what the capital of France is.",
        "Cancel my subscription.",
        "Louder music is better.",
        "Tell me about the battery of the new iPhone.",
        "What's the date of the next election?",
        "Repeat after me: hello world.",
        "",
        "   ",
        "?",
    ],
)
def test_not_over_eager(skills: SkillsResponder, text: str) -> None:
    assert skills.match(text) is None


def test_normalize_removes_punctuation_case_and_politeness() -> None:
    assert normalize("What's the time?") == "what is the time"
    assert normalize("OK, can you please set a 10-minute timer, thanks.") == "set a 10 minute timer"
    assert normalize("Volume 50%.") == "volume 50 percent"
    assert normalize("It’s 1.5 minutes... ok?") == "it is 1.5 minutes ok"
    # How a wearer starts to talk over a reply.
    assert normalize("Wait, what time is it?") == "what time is it"
    assert normalize("Sorry, actually, stop.") == "stop"
    assert normalize("Wait.") == "wait"


# --------------------------------------------------------------------------- numbers and durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("ten seconds", 10),
        ("10 seconds", 10),
        ("two and a half minutes", 150),
        ("1 minute 30", 90),
        ("one minute thirty seconds", 90),
        ("1 minute and 30 seconds", 90),
        ("a minute and a half", 90),
        ("an hour and a half", 5400),
        ("half an hour", 1800),
        ("a quarter of an hour", 900),
        ("2 hours 15", 8100),
        ("twenty-five minutes", 1500),
        ("twenty five minutes", 1500),
        ("ninety seconds", 90),
        ("one hundred and twenty seconds", 120),
        ("1.5 minutes", 90),
        ("1:30", 90),
        ("a couple of minutes", 120),
        ("5 mins", 300),
        ("3 minutes from now", 180),
        ("eleven seconds", 11),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["pasta", "ten", "minutes", "5 minutes 2 hours", "zero seconds", "a while", ""]
)
def test_parse_duration_rejects_non_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_format_duration_is_speakable() -> None:
    assert format_duration(10) == "10 seconds"
    assert format_duration(60) == "1 minute"
    assert format_duration(150) == "2 minutes and 30 seconds"
    assert format_duration(3723) == "1 hour, 2 minutes and 3 seconds"
    assert format_duration(0.2) == "1 second"


# --------------------------------------------------------------------------- time, date, battery


@pytest.mark.parametrize(
    ("clock", "spoken"),
    [
        ((15, 7), "3 oh 7 PM"),
        ((15, 30), "3 30 PM"),
        ((9, 0), "9 AM"),
        ((0, 15), "12 15 AM"),
        ((12, 0), "noon"),
        ((0, 0), "midnight"),
    ],
)
def test_format_time_for_speech(clock: tuple[int, int], spoken: str) -> None:
    assert format_time(NOW.replace(hour=clock[0], minute=clock[1])) == spoken


def test_time_and_date_use_the_session_clock(skills: SkillsResponder, session: Session) -> None:
    assert run(skills.match("What time is it?")).text == "It's 3 oh 7 PM."
    assert run(skills.match("What's the date today?")).text == "Today is Friday, November 27th, 2026."
    session.clock = datetime(2027, 1, 1, 0, 0)
    assert run(skills.match("what day is it")).text == "Today is Friday, January 1st, 2027."
    assert run(skills.match("what time is it")).text == "It's midnight."
    assert run(skills.match("what year is it")).text == "It's 2027."


def test_battery(skills: SkillsResponder, session: Session) -> None:
    assert run(skills.match("battery level")).text == "The headset battery is at 80 percent."
    session.battery = 9
    assert "charge it soon" in run(skills.match("how much battery is left")).text
    session.battery = None
    assert "can't read" in run(skills.match("what's my battery")).text


# --------------------------------------------------------------------------- volume, repeat, stop, help


def test_volume_changes_only_when_the_action_runs(skills: SkillsResponder, session: Session) -> None:
    reply = skills.match("Louder!")
    assert reply is not None and reply.text == "Volume 60 percent."
    assert session.volume_percent == 50  # matching is pure
    run(reply)
    assert session.volume_percent == 60
    run(skills.match("turn it down"))
    assert session.volume_percent == 50
    assert run(skills.match("Set the volume to twenty five percent")).text == "Volume 25 percent."
    assert session.volume_percent == 25
    run(skills.match("Volume 70%"))
    assert session.volume_percent == 70
    run(skills.match("max volume"))
    assert session.volume_percent == 100
    assert run(skills.match("volume up")).text == "The volume is already at the maximum."
    assert run(skills.match("set volume to 250")).text == "Volume 100 percent."
    assert run(skills.match("what's the volume")).text == "The volume is at 100 percent."
    session.volume_percent = 5
    run(skills.match("quieter"))
    assert session.volume_percent == 0
    assert run(skills.match("volume to loud")).text.startswith("Tell me a volume")


def test_repeat_says_the_last_reply(skills: SkillsResponder, session: Session) -> None:
    assert run(skills.match("say that again")).text == "I haven't said anything yet."
    session.last = "The cat lives in a lighthouse."
    assert run(skills.match("Can you repeat that?")).text == "The cat lives in a lighthouse."


def test_stop_stops_speaking_and_says_nothing(skills: SkillsResponder, session: Session) -> None:
    reply = skills.match("Stop talking!")
    assert reply is not None and reply.text == "" and session.stopped == 0
    run(reply)
    assert session.stopped == 1


def test_help_lists_the_skills(skills: SkillsResponder) -> None:
    text = run(skills.match("what can you do")).text
    for word in ("time", "battery", "timers", "reminders", "volume", "repeat", "stop"):
        assert word in text


# --------------------------------------------------------------------------- timers and reminders


async def test_a_real_one_second_timer_fires_its_callback(skills: SkillsResponder, session: Session) -> None:
    reply = skills.match("Set a timer for one second.")
    assert reply is not None and reply.text == "Timer set for 1 second."
    assert session.timers.list() == []  # matching is pure
    t0 = time.monotonic()
    run(reply)
    assert len(session.timers.list()) == 1
    await asyncio.wait_for(session.due.wait(), 3)
    elapsed = time.monotonic() - t0
    assert 0.95 <= elapsed < 1.5, elapsed
    assert session.spoken == ["Time's up! The timer for 1 second is done."]
    assert session.timers.list() == []


async def test_reminder_is_spoken_when_due(skills: SkillsResponder, session: Session) -> None:
    reply = run(skills.match("Remind me in one second to call mom."))
    assert reply.text == "OK, I'll remind you to call mom in 1 second."
    await asyncio.wait_for(session.due.wait(), 3)
    assert session.spoken == ["Reminder: call mom."]


async def test_reminder_speaks_in_the_second_person(skills: SkillsResponder, session: Session) -> None:
    run(skills.match("remind me to take my pills in 2 hours"))
    (reminder,) = session.timers.list("reminder")
    assert reminder.message == "Reminder: take your pills."
    assert 7190 < reminder.remaining_s() <= 7200
    assert "reminder to take your pills has 2 hours" in run(skills.match("what reminders do I have")).text
    assert run(skills.match("cancel the reminder")).text == "Reminder cancelled."
    assert session.timers.list() == []


async def test_timer_status_and_cancel(skills: SkillsResponder, session: Session) -> None:
    assert run(skills.match("how long is left")).text == "You don't have any timers set."
    assert run(skills.match("cancel the timer")).text == "There's no timer set."
    run(skills.match("set a timer for two and a half minutes"))
    status = run(skills.match("How much time is left on my timer?")).text
    assert status.startswith("Your timer for 2 minutes and 30 seconds has 2 minutes and")
    run(skills.match("Set a pasta timer for 8 minutes."))
    assert run(skills.match("time left")).text.startswith("You have 2 timers: the timer for 2 minutes")
    reply = skills.match("cancel the pasta timer")
    assert reply is not None and reply.text == "Timer cancelled."
    assert len(session.timers.list()) == 2  # still pure
    run(reply)
    assert [t.label for t in session.timers.list()] == ["timer for 2 minutes and 30 seconds"]
    run(skills.match("set a timer for 1 minute"))
    assert run(skills.match("cancel all timers")).text == "Cancelled 2 timers."
    assert session.timers.list() == []


async def test_timer_limits_and_missing_duration(skills: SkillsResponder, session: Session) -> None:
    assert "up to 24 hours" in run(skills.match("set a timer for 25 hours")).text
    assert "How long" in run(skills.match("set a timer")).text
    assert "How long" in run(skills.match("set a timer for the pasta")).text
    assert "remind me in ten minutes" in run(skills.match("remind me to call mom")).text
    assert session.timers.list() == []
    # A command missing its duration is incomplete: the turn detector waits in case the wearer goes on.
    for text in ("set a timer", "Set a timer for it.", "remind me to call mom"):
        assert skills.match(text).incomplete, text
    for text in ("set a timer for 5 minutes", "set a timer for 25 hours", "what time is it"):
        assert not skills.match(text).incomplete, text


async def test_timers_object_owns_and_cancels_its_tasks() -> None:
    fired: list[str] = []

    async def on_due(message: str) -> None:
        fired.append(message)

    timers = Timers(on_due)
    a = timers.add(0.05, "a", "A")
    b = timers.add(30, "b", "B", kind="reminder")
    assert [t.id for t in timers.list()] == [a.id, b.id]
    assert [t.id for t in timers.list("reminder")] == [b.id]
    assert timers.cancel(b.id) is True
    assert timers.cancel(b.id) is False
    await until(lambda: fired, 2, "timer A")
    assert fired == ["A"]
    timers.add(60, "c", "C")
    before = {t for t in asyncio.all_tasks() if t.get_name().startswith("timer-")}
    assert len(before) == 1
    await timers.aclose()
    assert all(t.done() for t in before)
    assert timers.list() == []
    with pytest.raises(RuntimeError):
        timers.add(1, "d", "D")


async def test_timers_reject_bad_delays_and_survive_failing_callbacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def on_due(message: str) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("speaker unplugged")

    timers = Timers(on_due)
    for bad in (0, -1, float("nan"), float("inf"), 24 * 3600 + 1):
        with pytest.raises(ValueError, match="delay"):
            timers.add(bad, "x", "X")
    timers.add(0.01, "x", "X")
    timers.add(0.02, "y", "Y")
    await until(lambda: calls == 2, 2, "both timers")
    assert calls == 2
    assert "speaker unplugged" in caplog.text
    await timers.aclose()


async def test_aclose_cancels_a_running_callback() -> None:
    started = asyncio.Event()

    async def on_due(message: str) -> None:
        started.set()
        await asyncio.sleep(3600)  # speaking a long message

    timers = Timers(on_due)
    timers.add(0.01, "x", "X")
    await asyncio.wait_for(started.wait(), 1)
    t0 = time.monotonic()
    await timers.aclose()
    assert time.monotonic() - t0 < 0.1


# --------------------------------------------------------------------------- the offline backend


async def test_offline_backend_streams_an_honest_answer(skills: SkillsResponder) -> None:
    assert isinstance(skills, LLMBackend)
    messages = [Message("system", "be nice"), Message("user", "What is the meaning of life?")]
    async with contextlib.aclosing(skills.stream(messages)) as deltas:
        words = [d async for d in deltas]
    assert len(words) > 5
    text = "".join(words)
    assert "don't have a language model configured" in text and "timers" in text


async def test_offline_backend_answers_skills_and_runs_their_action(
    skills: SkillsResponder, session: Session
) -> None:
    async with contextlib.aclosing(skills.stream([Message("user", "volume up")])) as deltas:
        text = "".join([d async for d in deltas])
    assert text == "Volume 60 percent." and session.volume_percent == 60


def test_volume_step_is_validated(session: Session) -> None:
    with pytest.raises(ValueError, match="volume_step"):
        SkillsResponder(session, volume_step=0)
