"""A turn the wearer went on speaking after, before hearing a word of its reply: one request, not two.

The turn detector ends a turn at a pause that sounds finished, and some are not: "Set a timer." [pause]
"for five minutes", "What's the weather" [pause] "in Paris". The second part used to be answered alone,
after the first part's reply was cut. When the wearer goes on within `CONTINUE_WITHIN_S` of the first
part's end and its reply was stopped before any of it played, the session answers the two parts as one
request, and the first part leaves the conversation history (the whole takes its place).

Not joined: a first part the skills understood outright (a command already carried out), a second part
they understand alone ("stop"), and any reply the wearer stopped on purpose (a tap): see `Session`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CONTINUE_WITHIN_S", "Unheard", "continued", "join_parts"]

#: The longest gap between the first part's end of speech and the second part's start that still reads
#: as one request. A pause inside a sentence rarely reaches it; the reply's first audio comes well inside it.
CONTINUE_WITHIN_S = 2.0


@dataclass(frozen=True)
class Unheard:
    """A turn whose reply was stopped before the wearer heard any of it."""

    text: str
    t_end_of_speech: float  # on the headset's audio clock, as the next turn's start


def join_parts(head: str, tail: str) -> str:
    """The two parts as one sentence: "Set a timer." + "for five minutes." -> "Set a timer for five
    minutes." (Whisper closes each part with a period; a tail that starts in lower case continues it)."""
    head, tail = head.strip(), tail.strip()
    if head.endswith(".") and not head.endswith("..") and tail[:1].islower():
        head = head[:-1]
    return f"{head} {tail}" if head and tail else head or tail


def continued(
    unheard: Unheard | None, text: str, t_start: float, recognised: Callable[[str], bool]
) -> str | None:
    """The whole request when the turn `text`, which began at `t_start` (the audio clock), continues
    `unheard`; None when it stands alone."""
    if unheard is None or not text.strip() or not unheard.text.strip():
        return None
    if not 0.0 <= t_start - unheard.t_end_of_speech <= CONTINUE_WITHIN_S:
        return None
    if recognised(unheard.text) or recognised(text):
        return None
    return join_parts(unheard.text, text)
