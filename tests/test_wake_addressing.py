"""The follow-up window of wake mode (companion.wake.Addressing), on a scripted clock."""

from __future__ import annotations

from companion.wake import Addressing, command_in


def test_speech_already_under_way_when_the_window_opens_is_not_a_follow_up() -> None:
    now = [100.0]
    a = Addressing(follow_up_s=5.0, clock=lambda: now[0])
    bystander_began = now[0] - 1.0  # talking through the reply
    a.open_window()  # the reply ended
    assert not a.in_window(bystander_began)
    assert a.check("and the weather there", bystander_began) is None
    now[0] += 2.0
    assert a.check("and what about tomorrow", now[0] - 0.5) is not None  # begun after the reply
    assert a.counters.follow_ups == 1 and a.counters.unaddressed == 1


def test_the_phrase_alone_opens_the_window_from_its_end_of_speech() -> None:
    now = [50.0]
    a = Addressing(follow_up_s=8.0, clock=lambda: now[0])
    assert a.check("Hey companion.", 49.0) is not None  # the request follows after a pause
    # The phrase's turn is decided a moment after the wearer went on: the window starts at its end of speech.
    now[0] += 1.5
    a.open_window(since=49.8)
    assert a.in_window(50.4)  # the request began before the phrase's turn was decided
    assert not a.in_window(49.5)
    assert a.check("what time is it", 50.4) is not None


def test_an_open_window_keeps_its_start_and_the_gate_refusal_is_counted() -> None:
    now = [10.0]
    a = Addressing(follow_up_s=4.0, clock=lambda: now[0])
    a.open_window()
    now[0] += 1.0
    a.open_window()  # a tap while the window is open: it is extended, not moved
    assert a.in_window(10.5) and a.in_window(14.9) and not a.in_window(9.9)
    a.ignore()
    assert a.counters.as_dict() == {
        "heard": 1,
        "addressed": 0,
        "wake_ups": 0,
        "follow_ups": 0,
        "unaddressed": 1,
    }


def test_a_follow_up_must_read_as_a_request_when_asked_to() -> None:
    now = [0.0]
    a = Addressing(follow_up_s=8.0, clock=lambda: now[0], follow_up_ok=lambda t: "?" in t)
    a.open_window()
    now[0] += 1.0
    assert a.peek("Printing, in the only sense with which we are concerned.", 0.5) is None
    assert a.check("Printing, in the only sense with which we are concerned.", 0.5) is None
    assert a.check("And what about tomorrow?", 0.8) is not None
    assert a.counters.follow_ups == 1 and a.counters.unaddressed == 1
    a.open_window(asked=True)  # the phrase alone: what follows is the request, whatever it reads like
    now[0] += 1.0
    assert a.check("How much battery is left", 1.5) is not None


def test_the_command_in_an_addressed_transcript_is_kept_apart_from_other_words() -> None:
    known = {"what is the date today?", "what time is it?"}.__contains__

    def recognised(t: str) -> bool:
        return known(t.lower())

    assert command_in("What is the date today? Present concerned.", recognised) == "What is the date today?"
    assert command_in("What time is it? What time is it?", recognised) == "What time is it?"
    open_question = "Tell me about printing. It is old."
    assert command_in(open_question, recognised) == open_question
    assert command_in("What time is it?", recognised) == "What time is it?"
