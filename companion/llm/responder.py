"""One reply per user turn: skills first (instant), else the language model (streamed), into memory.

Who records what in the `Conversation` (the contract the session relies on):

- `Responder.respond(text)` commits the turn **when called**: it records the user message and runs
  the matched skill's side effect (timer, volume, stop) before the first word is produced. Iterating
  it yields the reply's text deltas.
- When the reply has been produced completely, `respond()` records it with `add_assistant`.
- When the consumer stops early (barge-in: it cancels the task iterating, or `aclose()`s the
  generator), `respond()` records nothing more. The **session** then calls
  `conversation.truncate_assistant(played_text)` with the words that reached the wearer. The session
  also calls it when the reply was complete but its playback was cut, so the history only ever holds
  what was heard.
- Skill replies with no words ("stop", "never mind") are commands, not conversation: nothing is recorded.
- If the language model fails, the wearer hears a short apology, the error is logged and kept in
  `last_error`; the apology is not recorded (an unanswered question merges with the next one).

Speculation: `prepare(text)` matches the skills without side effects and, when no skill matches,
starts the LLM request in a background task that buffers deltas without touching memory (with no LLM
configured, the offline engine's answer: it has no side effect when no skill matches). `peek()` lets the
session read the buffered words early, to synthesise the first sentence while the wearer is silent. Pass the
result to `respond(text, prepared=...)` if the transcript did not change, else `await prepared.aclose()`
(cancels the request and releases its connection at once). A prepared reply made before the
conversation changed is discarded by `respond()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from companion.llm.base import LLMBackend, LLMError, LLMResponseError, LLMTimeout, LLMUnavailable
from companion.llm.memory import Conversation
from companion.llm.skills import SkillReply, SkillsResponder

log = logging.getLogger(__name__)

_END = object()


def apology(error: LLMError) -> str:
    """What the wearer hears when the language model fails."""
    if isinstance(error, LLMUnavailable):
        return "Sorry, I can't reach the language model right now."
    if isinstance(error, LLMTimeout):
        return "Sorry, the language model is taking too long to answer."
    if isinstance(error, LLMResponseError):
        return "Sorry, the language model returned an error."
    return "Sorry, something went wrong with the language model."


class PreparedReply:
    """A reply computed before the turn is committed; owns its LLM prefetch task."""

    def __init__(
        self,
        user_text: str,
        skill: SkillReply | None,
        revision: int,
        source: AsyncGenerator[str, None] | None = None,
    ) -> None:
        self.user_text = user_text
        self.skill = skill
        self.revision = revision
        self.closed = False
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._seen: list[str] = []  # every delta so far, for `peek()`
        self._done = False
        self.complete = False  # the whole reply is buffered, without error
        self._grew = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        if source is not None:
            self._task = asyncio.get_running_loop().create_task(self._pump(source), name="llm-prefetch")

    @property
    def source(self) -> str:
        """ "skill", "llm" (prefetching) or "none" (nothing prepared yet)."""
        return "skill" if self.skill is not None else "llm" if self._task is not None else "none"

    async def _pump(self, source: AsyncGenerator[str, None]) -> None:
        try:
            async with contextlib.aclosing(source) as deltas:
                async for delta in deltas:
                    self._queue.put_nowait(delta)
                    self._seen.append(delta)
                    self._grew.set()
        except Exception as e:  # handed to the consumer, which raises it in its own task
            self._queue.put_nowait(e)
        else:
            self._queue.put_nowait(_END)
            self.complete = True
        finally:
            self._done = True
            self._grew.set()

    async def peek(self) -> AsyncGenerator[str, None]:
        """The deltas so far and as they come, without consuming them (`deltas()` still yields them all).
        Ends when the reply is complete, failed or cancelled; a reader that only looks ahead."""
        i = 0
        while True:
            while i < len(self._seen):
                i += 1
                yield self._seen[i - 1]
            if self._done or self._task is None:
                return
            self._grew.clear()
            await self._grew.wait()

    async def deltas(self) -> AsyncGenerator[str, None]:
        """The buffered then live deltas of the prefetched reply."""
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, str)
            yield item

    def cancel(self) -> None:
        """Cancel the prefetch without waiting (safe from synchronous code); `aclose()` also waits."""
        self.closed = True
        if self._task is not None:
            self._task.cancel()

    async def aclose(self) -> None:
        """Cancel the prefetch (closing its HTTP stream) and wait until it has stopped."""
        self.cancel()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class Responder:
    """Turns one user utterance into a streamed reply; see the module docstring for the memory contract.

    `last_source` ("skill", "llm" or "skills" for the offline fallback) and `last_error` describe the
    latest `respond()` for logs and metrics.
    """

    def __init__(self, skills: SkillsResponder, llm: LLMBackend | None, conversation: Conversation) -> None:
        self.skills = skills
        self.llm: LLMBackend = llm if llm is not None else skills
        self.conversation = conversation
        self.last_error: LLMError | None = None
        self.last_source: str | None = None
        self.last_intent: str | None = None  # the skill's intent, "llm", or "fallback" (skills, no match)

    def prepare(self, user_text: str, *, prefetch_llm: bool = True) -> PreparedReply:
        """Speculative reply for `user_text`: no memory change, no skill side effect.

        With `prefetch_llm` (and an LLM configured) the request starts now in a background task;
        this needs a running event loop. Always `aclose()` a prepared reply you do not hand to `respond()`.
        """
        text = user_text.strip()
        skill = self.skills.match(text) if text else None
        source = None
        if text and skill is None and prefetch_llm:
            messages = self.conversation.messages(pending_user=text)
            # The offline engine too, when what it will read (an unanswered question merges with this one)
            # matches no skill: then its answer has no side effect.
            if self.llm is not self.skills or self.skills.match(messages[-1].content) is None:
                source = self.llm.stream(messages)
        return PreparedReply(text, skill, self.conversation.revision, source)

    def respond(self, user_text: str, prepared: PreparedReply | None = None) -> AsyncGenerator[str, None]:
        """Commit the turn now (user message, skill side effect) and return the reply's text deltas.

        `prepared` (from `prepare()`) is used when it was made for the same text and conversation state;
        `respond()` takes ownership of it and closes it either way.
        """
        text = user_text.strip()
        usable = (
            prepared is not None
            and not prepared.closed
            and prepared.user_text == text
            and prepared.revision == self.conversation.revision
        )
        if prepared is not None and not usable:
            prepared.cancel()  # stale: stop its request now, whether or not the reply is iterated
        if usable:
            assert prepared is not None
            skill = prepared.skill
            if prepared.source != "llm":
                prepared = None  # nothing running to hand over
        else:
            prepared = None
            skill = self.skills.match(text) if text else None
        self.last_error = None

        if not text:
            return self._nothing()
        if skill is not None:
            self.last_intent = skill.intent
        else:
            self.last_intent = "llm" if self.llm is not self.skills else "fallback"
        if skill is not None and not skill.text:
            self.last_source = "skill"
            self._run_action(skill)  # a command such as "stop": nothing to say, nothing to remember
            return self._nothing()
        self.conversation.add_user(text)
        if skill is not None:
            self.last_source = "skill"
            failed = self._run_action(skill)
            return self._speak_skill(skill, failed)
        self.last_source = "llm" if self.llm is not self.skills else "skills"
        return self._speak_llm(prepared)

    @staticmethod
    async def _nothing() -> AsyncGenerator[str, None]:
        return
        yield  # makes this an async generator that yields nothing

    async def _speak_skill(self, skill: SkillReply, failed: bool) -> AsyncGenerator[str, None]:
        text = "Sorry, that didn't work." if failed else skill.text
        yield text
        self.conversation.add_assistant(text)

    async def _speak_llm(self, prepared: PreparedReply | None) -> AsyncGenerator[str, None]:
        source = prepared.deltas() if prepared is not None else self.llm.stream(self.conversation.messages())
        parts: list[str] = []
        try:
            try:
                async with contextlib.aclosing(source) as deltas:
                    async for delta in deltas:
                        parts.append(delta)
                        yield delta
            except LLMError as error:
                self.last_error = error
                log.warning("%s failed after %d characters: %s", self.llm.name, len("".join(parts)), error)
                self.conversation.add_assistant("".join(parts))
                yield (" " if parts else "") + apology(error)
                return
        finally:
            if prepared is not None:
                await prepared.aclose()
        self.conversation.add_assistant("".join(parts))

    def _run_action(self, skill: SkillReply) -> bool:
        """Run the skill's side effect; True if it failed (logged)."""
        if skill.action is None:
            return False
        try:
            skill.action()
        except Exception:
            log.exception("skill %s failed", skill.intent)
            return True
        return False
