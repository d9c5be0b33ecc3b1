"""Addressing: was an utterance meant for the assistant? (wake-phrase mode)

An open-ear headset hears the wearer talking to other people, bystanders, a TV. In wake mode an utterance
is answered only if it is *addressed*: it begins with the wake phrase ("hey companion, what time is it"),
or it is the first utterance begun within the follow-up window after a reply or a tap (no phrase
needed then). The window opens when the reply ends: speech already under way then (a bystander talking
through the reply) is not a follow-up. It cannot tell the wearer from a bystander who starts first in it,
so with `follow_up_ok` (the session: a question, or words a skill understands) a follow-up after a
reply must also read as a request: a bystander's statement in the window is not answered, nor is the
wearer's ("tell me more" needs the phrase then). After the phrase alone or a tap the wearer asked for
the window: what follows needs not read as a request.

Detection is a cheap first pass on the transcript the turn detector makes anyway: the first words are
compared with the phrase word by word, tolerantly (Whisper writes "Hey, Companion!", "Hay companions"),
with :class:`difflib.SequenceMatcher`; "hey" also matches the short words Whisper hears it as.
openWakeWord was not used: it has no model for this phrase, and its pretrained models download from a
hub at run time.

Unaddressed speech is dropped by the session before anything else sees it: never sent to an LLM, never
published or logged as text; only :attr:`Addressing.counters` count it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import SequenceMatcher

DEFAULT_PHRASE = "hey companion"
WORD_RATIO = 0.75  # similarity of each transcribed word to the phrase's word
JOINED_RATIO = 0.9  # similarity of a merged word ("heycompanion") to the whole phrase
# How Whisper writes a spoken "hey" (it is short and often heard as another short word).
HEY_VARIANTS = frozenset({"hey", "hay", "hei", "heh", "hi", "ey", "eh", "hey'", "a"})
# Words the transcript may hold before the phrase: "okay, hey companion", or a bystander's last words when
# the phrase was said over them (the turn detector splits the request off a little before the phrase).
LEAD_WORDS = 4
_WORD = re.compile(r"[a-z0-9']+")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


def command_in(text: str, recognised: Callable[[str], bool]) -> str:
    """The request in an addressed transcript: all of it, unless only one of its sentences is a command
    ``recognised`` understands ("What is the date today? Present concerned." - a bystander's words heard
    with the request, or Whisper repeating it): then that sentence."""
    if recognised(text):
        return text
    for sentence in _SENTENCE_END.split(text.strip()):
        if sentence and recognised(sentence):
            return sentence
    return text


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ratio(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b).ratio()


@dataclass(frozen=True, slots=True)
class Addressed:
    """An addressed utterance: the request without the wake phrase, and why it counts."""

    text: str
    how: str  # "phrase" or "follow_up"


@dataclass(slots=True)
class AddressingCounters:
    heard: int = 0  # utterances with words
    addressed: int = 0
    wake_ups: int = 0  # addressed by the phrase
    follow_ups: int = 0  # addressed by the window
    unaddressed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "heard": self.heard,
            "addressed": self.addressed,
            "wake_ups": self.wake_ups,
            "follow_ups": self.follow_ups,
            "unaddressed": self.unaddressed,
        }


@dataclass
class Addressing:
    """Decides whether transcripts are addressed; keeps the follow-up window."""

    phrase: str = DEFAULT_PHRASE
    follow_up_s: float = 8.0
    clock: Callable[[], float] = time.monotonic
    follow_up_ok: Callable[[str], bool] | None = None
    counters: AddressingCounters = field(default_factory=AddressingCounters)
    _window_until: float = -1.0
    _window_since: float = -1.0
    _window_checked = True  # a follow-up in this window must pass `follow_up_ok`

    def __post_init__(self) -> None:
        self._phrase_words = _words(self.phrase)
        if not self._phrase_words:
            raise ValueError(f"wake phrase {self.phrase!r} has no words")
        self._phrase_letters = "".join(self._phrase_words)  # for a transcript that merged the words

    def open_window(
        self, seconds: float | None = None, since: float | None = None, *, asked: bool = False
    ) -> None:
        """No phrase needed for speech starting from ``since`` (default: now) until ``seconds`` from now
        (default: the follow-up); an open window keeps its start. ``asked``: the wearer opened it (the
        phrase alone, a tap), so what follows needs not read as a request."""
        now = self.clock()
        seconds = self.follow_up_s if seconds is None else seconds
        if not self.in_window(now):
            self._window_since = now if since is None else since
            self._window_checked = not asked
        elif asked:
            self._window_checked = False
        self._window_until = max(self._window_until, now + seconds)

    def close_window(self) -> None:
        self._window_until = self._window_since = -1.0

    def in_window(self, t: float | None = None) -> bool:
        """Whether speech that began at monotonic ``t`` (default: now) began within the window."""
        return self._window_since <= (self.clock() if t is None else t) <= self._window_until

    def strip_phrase(self, text: str) -> str | None:
        """The text after a leading wake phrase, or None if it does not begin with the phrase.

        The phrase may be preceded by up to LEAD_WORDS words ("okay, hey companion", a bystander's last
        words) and its words may be merged or split by the transcriber; the rest keeps its original
        spelling and punctuation.
        """
        spans = [(m.start(), m.end()) for m in _WORD.finditer(text.lower())]
        words = [text[a:b].lower() for a, b in spans]
        n = len(self._phrase_words)
        for skip in range(LEAD_WORDS + 1):
            head = words[skip : skip + n]
            if len(head) == n and all(
                self._word_matches(w, p) for w, p in zip(head, self._phrase_words, strict=True)
            ):
                return text[spans[skip + n - 1][1] :].lstrip(" ,.!?;:-").strip()
            if skip < len(words) and _ratio(words[skip], self._phrase_letters) >= JOINED_RATIO:
                return text[spans[skip][1] :].lstrip(" ,.!?;:-").strip()
        return None

    @staticmethod
    def _word_matches(word: str, want: str) -> bool:
        if want == "hey" and word in HEY_VARIANTS:
            return True
        return _ratio(word, want) >= WORD_RATIO

    def check(self, text: str, t_start: float | None = None) -> Addressed | None:
        """Whether ``text`` (speech that began at monotonic ``t_start``) is addressed; counts it."""
        if not _words(text):
            return None
        self.counters.heard += 1
        rest = self.strip_phrase(text)
        if rest is not None:
            self.counters.addressed += 1
            self.counters.wake_ups += 1
            return Addressed(rest, "phrase")
        if self._follows_up(text, t_start):
            self.counters.addressed += 1
            self.counters.follow_ups += 1
            self.close_window()  # one follow-up per reply (its reply opens the next window)
            return Addressed(text.strip(), "follow_up")
        self.counters.unaddressed += 1
        return None

    def ignore(self) -> None:
        """Count an utterance the turn detector's gate refused on its first words."""
        self.counters.heard += 1
        self.counters.unaddressed += 1

    def peek(self, text: str, t_start: float | None = None) -> str | None:
        """Like :meth:`check` for a partial transcript, without counting: the request text or None."""
        rest = self.strip_phrase(text)
        if rest is not None:
            return rest
        return text.strip() if self._follows_up(text, t_start) else None

    def _follows_up(self, text: str, t_start: float | None) -> bool:
        if not self.in_window(t_start):
            return False
        return not self._window_checked or self.follow_up_ok is None or self.follow_up_ok(text)
