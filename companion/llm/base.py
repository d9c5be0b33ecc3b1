"""The language-side contract: chat messages, the streaming backend protocol and its typed errors.

Every backend (an OpenAI-compatible server, the built-in offline skills) streams a reply as text deltas
so that the sentence chunker and TTS can start speaking before the reply is complete. A barge-in must
stop the reply at once, so a stream is an async generator the consumer can `aclose()` (or cancel the
task iterating it); a backend releases its HTTP connection when that happens.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message in the OpenAI sense (role + plain text content)."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Message role must be one of {ROLES}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise TypeError(f"Message content must be str, got {type(self.content).__name__}")

    def as_dict(self) -> dict[str, str]:
        """The wire form used by `/chat/completions`."""
        return {"role": self.role, "content": self.content}


class LLMError(Exception):
    """Base of every error a language backend raises.

    `attempts` is how many requests were made before giving up (set by backends that retry).
    """

    attempts: int | None = None


class LLMUnavailable(LLMError):
    """The server could not be reached; the message says which URL and what to start or configure."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class LLMTimeout(LLMError):
    """The server did not connect, produce a first token, or finish in the configured time."""


class LLMResponseError(LLMError):
    """The server answered with an error (HTTP status and the server's own message, when it sent one)."""

    def __init__(self, message: str, *, status: int | None = None, server_message: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


@runtime_checkable
class LLMBackend(Protocol):
    """A streaming chat backend.

    `stream()` returns an async generator of text deltas. Consumers iterate it inside
    `contextlib.aclosing(...)` (or cancel the iterating task): the backend then stops promptly and
    releases its connection. `aclose()` releases the backend's own resources (HTTP client).
    """

    name: str

    def stream(self, messages: list[Message]) -> AsyncGenerator[str, None]:
        """Stream the assistant's reply to `messages` as text deltas."""
        ...

    async def aclose(self) -> None:
        """Release the backend's resources; the backend must not be used afterwards."""
        ...
