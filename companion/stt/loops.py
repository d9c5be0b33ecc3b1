"""Whisper's greedy decoder re-reading its audio: finding the loop in tokens and text.

A short encoder window around a short utterance makes the decoder read it again ("What time is it? What
time is it?", "five" as "5 5 5 5"); `WhisperSTT` cuts such loops and re-reads short clips that still show one.
"""

from __future__ import annotations

import re

__all__ = ["drop_restart", "has_repeat", "trim_loop"]


def trim_loop(ids: list[int], n: int = 4, max_repeats: int = 4) -> list[int]:
    """Cut a token sequence where the decoder starts re-reading the audio.

    A phrase n-gram (at least three distinct tokens) seen before marks a re-read ("What time is it?
    What time is it?"); a short pattern such as "word, word," may recur up to `max_repeats` times,
    because people do repeat words, before it counts as a loop.
    """
    counts: dict[tuple[int, ...], int] = {}
    for i in range(len(ids) - n + 1):
        gram = tuple(ids[i : i + n])
        limit = 1 if len(set(gram)) >= 3 else max_repeats
        if counts.get(gram, 0) >= limit:
            return ids[:i]
        counts[gram] = counts.get(gram, 0) + 1
    return ids


_RESTART = re.compile(r"[.!?]\s+((?:\S+\s*){1,3})$")


def drop_restart(text: str) -> str:
    """Drop the first words of a re-read that `trim_loop` left after the last sentence.

    "in being comparatively modern. In" -> "in being comparatively modern." (the loop's first token
    differs from the text's by case, so the token n-gram match starts a word late).
    """
    m = _RESTART.search(text)
    if m is None:
        return text
    tail = [w.strip(",.?!").lower() for w in m.group(1).split()]
    head = [w.strip(",.?!").lower() for w in text.split()[: len(tail)]]
    return text[: m.start() + 1] if tail == head else text


_WORD = re.compile(r"[a-z0-9']+")


def has_repeat(text: str, longest: int | None = None) -> bool:
    """Whether a word or a phrase (of up to `longest` words; None: of any length) comes twice in a row
    ("5 5", "no, no", "What can you do? What can you do?", the last a 1.1 s clip heard in a benchmark)."""
    words = _WORD.findall(text.lower())
    top = len(words) // 2 if longest is None else min(longest, len(words) // 2)
    for k in range(1, top + 1):
        for i in range(len(words) - 2 * k + 1):
            if words[i : i + k] == words[i + k : i + 2 * k]:
                return True
    return False
