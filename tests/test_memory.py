"""Conversation memory: bounded history, role alternation, barge-in truncation."""

from __future__ import annotations

import pytest

from companion.llm.base import Message
from companion.llm.memory import Conversation


def roles(conv: Conversation) -> list[str]:
    return [m.role for m in conv.messages()]


def test_messages_start_with_the_system_prompt_then_alternate() -> None:
    conv = Conversation("You are a concise voice assistant.")
    conv.add_user("  Hello there.  ")
    conv.add_assistant("Hi! How can I help?")
    conv.add_user("Tell me a joke.")
    assert conv.messages() == [
        Message("system", "You are a concise voice assistant."),
        Message("user", "Hello there."),
        Message("assistant", "Hi! How can I help?"),
        Message("user", "Tell me a joke."),
    ]
    assert conv.last_assistant() == "Hi! How can I help?"


def test_history_is_bounded_oldest_exchange_first() -> None:
    conv = Conversation("sys", max_turns=2)
    for i in range(5):
        conv.add_user(f"question {i}")
        conv.add_assistant(f"answer {i}")
    msgs = conv.messages()
    assert [m.content for m in msgs] == ["sys", "question 3", "answer 3", "question 4", "answer 4"]
    conv.add_user("question 5")
    assert [m.content for m in conv.messages()][1:] == ["question 4", "answer 4", "question 5"]
    assert len(conv.turns) == 3


def test_truncate_keeps_only_the_played_words() -> None:
    conv = Conversation("sys")
    conv.add_user("Tell me a story.")
    conv.add_assistant("Once upon a time there was a cat. It lived in a lighthouse. The end.")
    conv.truncate_assistant("Once upon a time there was a cat.")
    assert conv.messages()[-1] == Message("assistant", "Once upon a time there was a cat.")
    assert conv.turns[-1].interrupted is True
    assert conv.last_assistant() == "Once upon a time there was a cat."


def test_truncate_records_the_played_part_of_a_reply_that_never_finished() -> None:
    conv = Conversation("sys")
    conv.add_user("Tell me a story.")  # the reply stream was cancelled: nothing recorded yet
    conv.truncate_assistant("Once upon a")
    assert roles(conv) == ["system", "user", "assistant"]
    assert conv.turns[-1].content == "Once upon a" and conv.turns[-1].interrupted


def test_nothing_played_removes_the_reply_and_the_next_question_merges() -> None:
    conv = Conversation("sys")
    conv.add_user("What's the weather like?")
    conv.add_assistant("Let me think about the weather.")
    rev = conv.revision
    conv.truncate_assistant("   ")
    assert conv.revision > rev
    assert roles(conv) == ["system", "user"]
    conv.add_user("Actually, tell me a joke.")
    msgs = conv.messages()
    assert roles(conv) == ["system", "user"]  # still alternating: the two questions merge
    assert msgs[-1].content == "What's the weather like?\nActually, tell me a joke."
    assert len(conv.turns) == 2  # both kept separately underneath


def test_truncate_with_nothing_played_and_no_reply_changes_nothing() -> None:
    conv = Conversation("sys")
    conv.add_user("Hello")
    rev = conv.revision
    conv.truncate_assistant("")
    assert conv.revision == rev and roles(conv) == ["system", "user"]
    empty = Conversation("sys")
    empty.truncate_assistant("stray words")
    assert empty.turns == []


def test_empty_assistant_reply_records_nothing() -> None:
    conv = Conversation("sys")
    conv.add_user("hi")
    conv.add_assistant("")
    assert roles(conv) == ["system", "user"]


def test_pending_user_is_not_recorded() -> None:
    conv = Conversation("sys")
    rev = conv.revision
    assert conv.messages(pending_user="what's up")[-1] == Message("user", "what's up")
    assert conv.turns == [] and conv.revision == rev


def test_a_reply_with_no_question_before_it_is_not_sent_first() -> None:
    conv = Conversation("sys")
    conv.add_assistant("Reminder: call mom.")  # spoken by a timer, no user turn before
    conv.add_user("Thanks, what time is it?")
    assert roles(conv) == ["system", "user"]
    conv2 = Conversation("sys", max_turns=1)
    conv2.add_assistant("Reminder: call mom.")
    conv2.add_user("one")
    conv2.add_assistant("two")
    conv2.add_user("three")
    assert [t.content for t in conv2.turns] == ["three"]


def test_unanswered_questions_count_towards_the_bound() -> None:
    conv = Conversation("sys", max_turns=2)
    for i in range(4):
        conv.add_user(f"q{i}")
    assert [t.content for t in conv.turns] == ["q2", "q3"]


def test_no_system_message_when_the_prompt_is_empty() -> None:
    conv = Conversation("")
    conv.add_user("hi")
    assert conv.messages() == [Message("user", "hi")]


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_turns"):
        Conversation("sys", max_turns=0)
    conv = Conversation("sys")
    with pytest.raises(ValueError, match="empty"):
        conv.add_user("  ")
    with pytest.raises(ValueError, match="role"):
        Message("robot", "beep")  # type: ignore[arg-type]


def test_clear_keeps_the_system_prompt() -> None:
    conv = Conversation("sys")
    conv.add_user("hi")
    conv.clear()
    assert conv.messages() == [Message("system", "sys")]


def test_an_unanswered_user_message_can_be_taken_back() -> None:
    """The wearer went on before hearing a reply: the whole request replaces the first part."""
    conv = Conversation("")
    conv.add_user("Hi.")
    conv.add_assistant("Hello!")
    conv.add_user("What's the weather")
    revision = conv.revision
    assert not conv.retract_user("something else")
    assert conv.retract_user("What's the weather")
    assert conv.revision > revision
    assert [t.content for t in conv.turns] == ["Hi.", "Hello!"]
    assert not conv.retract_user("Hi.")  # answered: it stays
