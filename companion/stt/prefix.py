"""Transcribe while the wearer speaks: commit the start of a turn that two passes agree on.

The turn detector transcribes at every pause (a draft). When a later draft, which has heard more of the
turn, begins with exactly the words of an earlier one, those words are settled (the LocalAgreement rule of
whisper_streaming, at the granularity of the pauses): they are committed with the audio up to the earlier
pause, and every later pass decodes only the audio after that pause, with the committed words as Whisper's
previous-text prompt. A pause is at least the endpointer's `speculate_ms` of silence, so the cut never falls
inside a word, and no word timestamps are needed. A hesitation's first half that the longer pass hears
differently ("What is that?" then "What is the date today?") is not committed.

No I/O here: the detector feeds finished drafts in and asks where the next pass starts.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Prefix", "join_text"]

_PUNCT = ",.?!;:\"'()-…"


def _words(text: str) -> list[str]:
    """Whitespace words without case and surrounding punctuation: "Yes." and "yes," agree."""
    return [w.strip(_PUNCT).lower() for w in text.split()]


def join_text(head: str, tail: str) -> str:
    """The committed words followed by the words decoded after them."""
    head, tail = head.strip(), tail.strip()
    return f"{head} {tail}" if head and tail else head or tail


@dataclass
class _Draft:
    end: int  # the sample the draft's audio ended at (a pause)
    text: str  # its words after the committed text


class Prefix:
    """The committed text of one turn and the sample where the audio not yet committed begins."""

    def __init__(self, start: int, *, min_words: int = 2) -> None:
        """`start`: the turn's first sample. `min_words`: commit no fewer words at once (a single word
        agreed on is often a greeting or a filler Whisper drops in the longer pass)."""
        self.start = start
        self.text = ""
        self.min_words = min_words
        self.commits = 0
        self._last: _Draft | None = None

    def offer(self, start: int, end: int, text: str) -> bool:
        """A draft of the audio [start, end) finished with `text` (decoded after `self.text`); returns
        whether it moved the commit point. Drafts from before the latest commit are ignored."""
        if start != self.start or end <= start:
            return False
        last, self._last = self._last, _Draft(end, text)
        if last is None or last.end >= end:
            return False
        settled, now = _words(last.text), _words(text)
        if len(settled) < self.min_words or now[: len(settled)] != settled or len(now) == len(settled):
            return False
        # The later draft agrees with the earlier one and says more: the earlier is settled. What the later
        # one said after it becomes the draft to agree with next, from the new start.
        self.text = join_text(self.text, last.text)
        self.start = last.end
        self.commits += 1
        self._last = _Draft(end, " ".join(text.split()[len(settled) :]))
        return True
