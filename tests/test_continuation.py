"""Whether the next turn continues one whose reply the wearer never heard (session/continuation.py)."""

from __future__ import annotations

from companion.session.continuation import CONTINUE_WITHIN_S, Unheard, continued, join_parts


def never(_text: str) -> bool:
    return False


def test_parts_join_into_one_sentence() -> None:
    assert join_parts("Set a timer.", "for five minutes.") == "Set a timer for five minutes."
    assert join_parts("What's the weather", "in Paris?") == "What's the weather in Paris?"
    assert join_parts("Tell me about the moon.", "And the sun.") == "Tell me about the moon. And the sun."
    assert join_parts("Wait...", "never mind") == "Wait... never mind"
    assert join_parts("", "in Paris") == "in Paris"


def test_the_next_turn_continues_only_soon_after_and_when_neither_part_is_a_command() -> None:
    first = Unheard("What's the weather", t_end_of_speech=10.0)
    assert continued(first, "in Paris?", 10.8, never) == "What's the weather in Paris?"
    assert continued(first, "in Paris?", 10.0 + CONTINUE_WITHIN_S + 0.1, never) is None  # a new request
    assert continued(first, "in Paris?", 9.5, never) is None  # began before the first part ended
    assert continued(None, "in Paris?", 10.8, never) is None  # the reply was heard, or stopped on purpose
    assert continued(first, " ", 10.8, never) is None
    assert continued(first, "stop", 10.8, lambda t: t == "stop") is None  # a command stands alone
    done = Unheard("What time is it?", t_end_of_speech=10.0)
    assert continued(done, "in Paris?", 10.8, lambda t: t == "What time is it?") is None
