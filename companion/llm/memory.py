"""Conversation memory: the system prompt plus a bounded history that holds only what was really said.

Choices (documented because the session and the LLM rely on them):

- A *turn* is one exchange: a user message and the assistant's reply to it. `max_turns` bounds the
  number of exchanges kept; the oldest exchange is dropped first, whole, so the history always starts
  with a user message (chat templates such as Gemma's require user/assistant alternation starting with
  the user).
- After a barge-in the session calls `truncate_assistant(played_text)` with the words that actually
  reached the wearer's ear. A non-empty `played_text` replaces the reply (marked `interrupted`); an empty
  one **removes** the assistant turn. The unanswered user message then stays, and `messages()` merges
  consecutive messages of the same role (joined by a newline), so the model sees both things the wearer
  said as one user turn and the roles still alternate.
- `revision` grows on every change; a speculative reply prepared against an older revision is stale.
"""

from __future__ import annotations

from dataclasses import dataclass

from companion.llm.base import Message, Role


@dataclass(slots=True)
class Turn:
    """One stored message; `interrupted` marks an assistant reply cut short by a barge-in."""

    role: Role
    content: str
    interrupted: bool = False


class Conversation:
    """System prompt + the last `max_turns` exchanges."""

    def __init__(self, system_prompt: str, max_turns: int = 8) -> None:
        if not isinstance(max_turns, int) or isinstance(max_turns, bool) or max_turns < 1:
            raise ValueError(f"max_turns must be an integer >= 1, got {max_turns!r}")
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        self._turns: list[Turn] = []
        self.revision = 0

    @property
    def turns(self) -> list[Turn]:
        """A copy of the stored history (no system prompt), oldest first."""
        return [Turn(t.role, t.content, t.interrupted) for t in self._turns]

    def add_user(self, text: str) -> None:
        """Record what the wearer said."""
        self._append("user", text)

    def add_assistant(self, text: str) -> None:
        """Record a complete assistant reply (an empty reply records nothing)."""
        if text.strip():
            self._append("assistant", text)

    def truncate_assistant(self, played_text: str) -> None:
        """Keep only the words actually played of the current reply (see the module docstring).

        If the reply was never recorded (the stream was cancelled before it finished), a non-empty
        `played_text` is recorded as the interrupted reply; an empty one leaves the user turn unanswered.
        """
        played = played_text.strip()
        last = self._turns[-1] if self._turns else None
        if last is not None and last.role == "assistant":
            if played:
                last.content, last.interrupted = played, True
            else:
                self._turns.pop()
        elif last is not None and played:
            self._turns.append(Turn("assistant", played, interrupted=True))
        else:
            return
        self.revision += 1

    def retract_user(self, text: str) -> bool:
        """Take back the latest message if it is the user's `text` with no reply after it (the wearer went
        on speaking before hearing one: the whole request replaces it). Returns whether it was taken."""
        last = self._turns[-1] if self._turns else None
        if last is None or last.role != "user" or last.content != text.strip():
            return False
        self._turns.pop()
        self.revision += 1
        return True

    def last_assistant(self) -> str | None:
        """The latest assistant reply as heard (what "say that again" repeats), or None."""
        return next((t.content for t in reversed(self._turns) if t.role == "assistant"), None)

    def clear(self) -> None:
        """Forget the history (the system prompt stays)."""
        self._turns.clear()
        self.revision += 1

    def messages(self, pending_user: str | None = None) -> list[Message]:
        """System prompt + history, roles alternating, starting with a user message.

        `pending_user` appends a user message without recording it (for speculative replies).
        """
        turns = [*self._turns]
        if pending_user is not None and pending_user.strip():
            turns.append(Turn("user", pending_user.strip()))
        while turns and turns[0].role != "user":
            turns.pop(0)
        merged: list[Message] = []
        for turn in turns:
            if merged and merged[-1].role == turn.role:
                merged[-1] = Message(turn.role, f"{merged[-1].content}\n{turn.content}")
            else:
                merged.append(Message(turn.role, turn.content))
        system = [Message("system", self.system_prompt)] if self.system_prompt.strip() else []
        return system + merged

    def _append(self, role: Role, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"{role} text must be str, got {type(text).__name__}")
        text = text.strip()
        if not text:
            raise ValueError(f"{role} text is empty")
        self._turns.append(Turn(role, text))
        self._trim()
        self.revision += 1

    def _trim(self) -> None:
        """Drop whole exchanges from the front until at most `max_turns` user messages remain."""
        users = sum(1 for t in self._turns if t.role == "user")
        while users > self.max_turns:
            while self._turns[0].role != "user":  # a reply with no question before it
                self._turns.pop(0)
            self._turns.pop(0)
            users -= 1
            while self._turns and self._turns[0].role != "user":
                self._turns.pop(0)
