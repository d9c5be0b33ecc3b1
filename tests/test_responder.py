"""Responder: skills first, the LLM second, memory recorded as heard, speculation cheap to cancel.

The unit tests use a scripted backend (pure orchestration logic); the `slow` ones talk to the real
llama.cpp server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from companion.llm.base import LLMError, LLMTimeout, LLMUnavailable, Message
from companion.llm.memory import Conversation
from companion.llm.openai_backend import OpenAIBackend
from companion.llm.responder import Responder
from companion.llm.skills import SkillsResponder
from tests.fixtures.conditions import until
from tests.test_skills import Session


class ScriptedLLM:
    """A backend that streams fixed deltas (optionally failing or slow) and records how it was used."""

    name = "scripted"

    def __init__(
        self,
        deltas: list[str],
        fail: LLMError | None = None,
        fail_after: int = 0,
        delay_s: float = 0.0,
    ) -> None:
        self.deltas, self.fail, self.fail_after, self.delay_s = deltas, fail, fail_after, delay_s
        self.calls: list[list[Message]] = []
        self.closed = 0
        self.produced = 0

    async def stream(self, messages: list[Message]) -> AsyncGenerator[str, None]:
        self.calls.append(list(messages))
        try:
            for i, delta in enumerate(self.deltas):
                if self.fail is not None and i == self.fail_after:
                    raise self.fail
                await asyncio.sleep(self.delay_s)
                self.produced += 1
                yield delta
            if self.fail is not None and self.fail_after >= len(self.deltas):
                raise self.fail
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    s = Session()
    yield s
    await s.timers.aclose()


def make(session: Session, llm: object | None, max_turns: int = 8) -> Responder:
    return Responder(SkillsResponder(session), llm, Conversation("You are brief.", max_turns))  # type: ignore[arg-type]


async def collect(stream: AsyncGenerator[str, None]) -> list[str]:
    async with contextlib.aclosing(stream) as deltas:
        return [d async for d in deltas]


async def test_skills_answer_first_even_with_an_llm(session: Session) -> None:
    llm = ScriptedLLM(["never"])
    r = make(session, llm)
    assert await collect(r.respond("What time is it?")) == ["It's 3 oh 7 PM."]
    assert llm.calls == [] and r.last_source == "skill"
    assert [(m.role, m.content) for m in r.conversation.messages()[1:]] == [
        ("user", "What time is it?"),
        ("assistant", "It's 3 oh 7 PM."),
    ]


async def test_llm_answers_the_rest_and_the_reply_is_remembered(session: Session) -> None:
    llm = ScriptedLLM(["Once", " upon", " a time."])
    r = make(session, llm)
    await collect(r.respond("what time is it"))
    assert await collect(r.respond("Tell me a story.")) == ["Once", " upon", " a time."]
    assert r.last_source == "llm"
    sent = llm.calls[0]
    assert [m.role for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[-1].content == "Tell me a story."
    assert r.conversation.last_assistant() == "Once upon a time."
    assert llm.closed == 1


async def test_barge_in_records_only_what_was_played(session: Session) -> None:
    llm = ScriptedLLM(["One.", " Two.", " Three.", " Four."])
    r = make(session, llm)
    stream = r.respond("Count to four.")
    assert [m.role for m in r.conversation.messages()] == ["system", "user"]  # committed on call
    assert await anext(stream) == "One."
    assert await anext(stream) == " Two."
    await stream.aclose()  # barge-in
    assert llm.closed == 1 and llm.produced == 2
    assert [m.role for m in r.conversation.messages()] == ["system", "user"]
    r.conversation.truncate_assistant("One.")  # the session: only "One." reached the ear
    assert r.conversation.messages()[-1] == Message("assistant", "One.")
    assert r.conversation.turns[-1].interrupted


async def test_cancelling_the_consumer_closes_the_llm_stream_promptly(session: Session) -> None:
    llm = ScriptedLLM([f" w{i}" for i in range(1000)], delay_s=0.01)
    r = make(session, llm)
    got: list[str] = []

    async def speak() -> None:
        async with contextlib.aclosing(r.respond("Talk for a long time.")) as deltas:
            async for d in deltas:
                got.append(d)

    task = asyncio.create_task(speak())
    async with asyncio.timeout(5):
        while len(got) < 3:  # noqa: ASYNC110 - polling the consumer's progress is the point here
            await asyncio.sleep(0.005)
    t0 = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - t0 < 0.05
    assert llm.closed == 1 and llm.produced < 10
    assert [m.role for m in r.conversation.messages()] == ["system", "user"]


async def test_full_reply_then_interrupted_playback_is_truncated(session: Session) -> None:
    r = make(session, ScriptedLLM(["A long answer.", " With two sentences."]))
    await collect(r.respond("Explain."))
    r.conversation.truncate_assistant("A long answer.")
    assert r.conversation.last_assistant() == "A long answer."
    r.conversation.truncate_assistant("")
    assert r.conversation.last_assistant() is None


async def test_stop_is_a_command_not_a_conversation_turn(session: Session) -> None:
    r = make(session, ScriptedLLM(["never"]))
    rev = r.conversation.revision
    assert await collect(r.respond("Stop!")) == []
    assert session.stopped == 1 and r.conversation.revision == rev
    assert await collect(r.respond("   ")) == []


async def test_skill_side_effects_run_on_commit(session: Session) -> None:
    r = make(session, None)
    assert await collect(r.respond("Set a timer for ten minutes.")) == ["Timer set for 10 minutes."]
    assert len(session.timers.list()) == 1
    assert await collect(r.respond("Volume up")) == ["Volume 60 percent."]
    assert session.volume_percent == 60


async def test_failing_skill_action_is_reported(session: Session) -> None:
    def broken(percent: int) -> None:
        raise RuntimeError("headset gone")

    session.set_volume = broken  # type: ignore[method-assign]
    r = make(session, None)
    assert await collect(r.respond("louder")) == ["Sorry, that didn't work."]


async def test_llm_unavailable_before_any_word_gives_an_apology(session: Session) -> None:
    error = LLMUnavailable("Cannot reach http://127.0.0.1:9/v1", url="http://127.0.0.1:9/v1")
    r = make(session, ScriptedLLM(["x"], fail=error, fail_after=0))
    assert await collect(r.respond("Tell me a joke.")) == [
        "Sorry, I can't reach the language model right now."
    ]
    assert r.last_error is error
    assert [m.role for m in r.conversation.messages()] == ["system", "user"]  # question stays unanswered


async def test_llm_failure_mid_reply_keeps_the_partial_answer(session: Session) -> None:
    r = make(session, ScriptedLLM(["Knock", " knock."], fail=LLMTimeout("slow"), fail_after=2))
    out = await collect(r.respond("Tell me a joke."))
    assert out == ["Knock", " knock.", " Sorry, the language model is taking too long to answer."]
    assert r.conversation.last_assistant() == "Knock knock."


async def test_without_an_llm_the_skills_answer_honestly(session: Session) -> None:
    r = make(session, None)
    text = "".join(await collect(r.respond("What is the capital of France?")))
    assert "don't have a language model configured" in text
    assert r.last_source == "skills"
    assert r.conversation.last_assistant() == text.strip()


async def test_history_stays_bounded_through_the_responder(session: Session) -> None:
    llm = ScriptedLLM(["ok"])
    r = make(session, llm, max_turns=3)
    for i in range(6):
        await collect(r.respond(f"question {i}"))
    sent = llm.calls[-1]
    assert [m.content for m in sent] == [
        "You are brief.",
        "question 3",
        "ok",
        "question 4",
        "ok",
        "question 5",
    ]


# --------------------------------------------------------------------------- speculation


async def test_prepared_skill_has_no_side_effect_until_committed(session: Session) -> None:
    r = make(session, ScriptedLLM(["never"]))
    prepared = r.prepare("Set a timer for five seconds")
    assert prepared.source == "skill" and session.timers.list() == []
    assert r.conversation.turns == []
    assert await collect(r.respond("Set a timer for five seconds", prepared)) == ["Timer set for 5 seconds."]
    assert len(session.timers.list()) == 1


async def test_prepared_llm_reply_is_prefetched_and_reused(session: Session) -> None:
    llm = ScriptedLLM(["Pre", "fetched."])
    r = make(session, llm)
    prepared = r.prepare("Tell me something.")
    assert prepared.source == "llm"
    await until(lambda: llm.produced == 2, 2, "the prefetch to buffer the reply")
    assert llm.produced == 2 and r.conversation.turns == []  # buffered, not remembered
    assert llm.calls[0][-1] == Message("user", "Tell me something.")
    assert await collect(r.respond("Tell me something.", prepared)) == ["Pre", "fetched."]
    assert len(llm.calls) == 1
    assert r.conversation.last_assistant() == "Prefetched."


async def test_peeking_at_a_prepared_reply_consumes_nothing(session: Session) -> None:
    llm = ScriptedLLM(["One", " two.", " Three."], delay_s=0.01)
    r = make(session, llm)
    prepared = r.prepare("Count.")
    assert await collect(prepared.peek()) == ["One", " two.", " Three."]  # waits for the words as they come
    assert prepared.complete
    assert await collect(r.respond("Count.", prepared)) == ["One", " two.", " Three."]


async def test_without_an_llm_the_offline_answer_is_prepared_too(session: Session) -> None:
    r = make(session, None)
    prepared = r.prepare("What's the capital of France?")
    assert prepared.source == "llm"  # the offline engine's answer, buffered like a model's
    early = "".join(await collect(prepared.peek()))
    assert early.startswith("I don't have a language model configured")
    assert "".join(await collect(r.respond("What's the capital of France?", prepared))) == early
    assert r.last_source == "skills" and r.conversation.last_assistant() == early.strip()


async def test_the_offline_engine_prepares_nothing_that_would_act(session: Session) -> None:
    """The offline engine reads the user's words merged with an unanswered question; if that merge is a
    command, preparing it would run the command before the turn is committed."""
    r = make(session, None)
    r.conversation.add_user("Set a timer")  # unanswered (say the reply was cut before a word of it)
    merged = r.conversation.messages(pending_user="for five seconds")[-1].content
    assert r.skills.match(merged) is not None, "the merged text should read as a command"
    prepared = r.prepare("for five seconds")
    assert prepared.source == "none" and session.timers.list() == []
    await prepared.aclose()


async def test_stale_preparation_is_cancelled_and_redone(session: Session) -> None:
    llm = ScriptedLLM([f" w{i}" for i in range(1000)], delay_s=0.01)
    r = make(session, llm)
    prepared = r.prepare("Tell me")  # the wearer had not finished
    await asyncio.sleep(0.05)
    stream = r.respond("Tell me about cats.", prepared)
    assert prepared.closed
    await until(lambda: llm.closed == 1, 2, "the speculative request to close")
    assert await anext(stream) == " w0"
    await stream.aclose()
    assert llm.calls[1][-1].content == "Tell me about cats."


async def test_preparation_without_prefetch_still_answers(session: Session) -> None:
    llm = ScriptedLLM(["late"])
    r = make(session, llm)
    prepared = r.prepare("Hello.", prefetch_llm=False)
    assert prepared.source == "none" and llm.calls == []
    assert await collect(r.respond("Hello.", prepared)) == ["late"]


async def test_prepared_reply_is_cheap_to_cancel(session: Session) -> None:
    llm = ScriptedLLM([f" w{i}" for i in range(1000)], delay_s=0.01)
    r = make(session, llm)
    prepared = r.prepare("Talk.")
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    await prepared.aclose()
    assert time.perf_counter() - t0 < 0.05
    assert llm.closed == 1 and r.conversation.turns == []


async def test_preparation_made_before_the_conversation_changed_is_not_used(session: Session) -> None:
    llm = ScriptedLLM(["fresh"])
    r = make(session, llm)
    prepared = r.prepare("Hello.")
    await until(lambda: llm.produced == 1, 2, "the prefetch to run")
    r.conversation.add_user("something else happened")
    await collect(r.respond("Hello.", prepared))
    assert len(llm.calls) == 2 and prepared.closed
    assert llm.calls[1][-1].content == "something else happened\nHello."


# --------------------------------------------------------------------------- real server


@pytest.mark.slow
async def test_real_llm_behind_skills(llama_server: str, session: Session) -> None:
    llm = OpenAIBackend(llama_server, "gemma-3-270m", max_tokens=8, temperature=0.0)
    r = make(session, llm)
    t0 = time.perf_counter()
    assert await collect(r.respond("What's the time?")) == ["It's 3 oh 7 PM."]
    assert time.perf_counter() - t0 < 0.05  # instant: no request was made
    r.conversation.system_prompt = "You are a helpful assistant that tells long stories."
    deltas = await collect(r.respond("Tell me a long story about a cat who lives in a lighthouse."))
    assert r.last_error is None and r.last_source == "llm"
    assert len(deltas) > 1
    assert r.conversation.last_assistant() == "".join(deltas).strip()
    await llm.aclose()


@pytest.mark.slow
async def test_real_speculation_cancels_and_server_answers_next(llama_server: str, session: Session) -> None:
    llm = OpenAIBackend(llama_server, "gemma-3-270m", max_tokens=400, temperature=0.8)
    r = make(session, llm)
    r.conversation.system_prompt = "You are a helpful assistant that tells long stories."
    prepared = r.prepare("Tell me a long story about a dragon.")
    await asyncio.sleep(1.0)
    t0 = time.perf_counter()
    await prepared.aclose()
    assert time.perf_counter() - t0 < 0.2
    quick = OpenAIBackend(llama_server, "gemma-3-270m", max_tokens=4, temperature=0.0)
    r2 = make(session, quick)
    r2.conversation.system_prompt = r.conversation.system_prompt
    t0 = time.perf_counter()
    assert await collect(r2.respond("Tell me a long story about a cat who lives in a lighthouse."))
    assert time.perf_counter() - t0 < 15
    await llm.aclose()
    await quick.aclose()
