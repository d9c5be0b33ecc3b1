"""The language side: streaming LLM backends, offline skills, timers, conversation memory, the responder.

`OpenAIBackend` is imported lazily (it needs the `llm` extra, `openai`); everything else is pure Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from companion.llm.base import (
    LLMBackend,
    LLMError,
    LLMResponseError,
    LLMTimeout,
    LLMUnavailable,
    Message,
)
from companion.llm.memory import Conversation
from companion.llm.responder import PreparedReply, Responder
from companion.llm.skills import SkillContext, SkillReply, SkillsResponder
from companion.llm.timers import Timer, Timers

if TYPE_CHECKING:
    from companion.llm.openai_backend import OpenAIBackend

__all__ = [
    "Conversation",
    "LLMBackend",
    "LLMError",
    "LLMResponseError",
    "LLMTimeout",
    "LLMUnavailable",
    "Message",
    "OpenAIBackend",
    "PreparedReply",
    "Responder",
    "SkillContext",
    "SkillReply",
    "SkillsResponder",
    "Timer",
    "Timers",
]


def __getattr__(name: str) -> Any:
    if name == "OpenAIBackend":
        try:
            from companion.llm.openai_backend import OpenAIBackend
        except ImportError as e:  # pragma: no cover - depends on the installed extras
            raise ImportError("OpenAIBackend needs the `openai` package: pip install 'companion[llm]'") from e
        return OpenAIBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
