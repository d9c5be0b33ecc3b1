"""Whisper's greedy decoder re-reading its audio: finding the loop in tokens and text.

A short encoder window around a short utterance makes the decoder read it again ("What time is it? What
time is it?", "five" as "5 5 5 5"); `WhisperSTT` cuts such loops and re-reads short clips that still show one.
"""

from __future__ import annotations

import re

__all__ = ["drop_repeated_tail", "drop_restart", "has_repeat", "trim_loop"]


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


def drop_repeated_tail(text: str, min_words: int = 2, times: int = 3) -> str:
    """Keep one copy of a phrase the text ends with `times` or more times in a row.

    "... probably good. Alright, thanks. Alright, thanks. Alright, thanks." -> "... probably good. Alright,
    thanks." The decoder can read a phrase again and again and still end the text by itself, under the cap
    that makes `trim_loop` look. A phrase of `min_words` or more said three times over to end a request is
    rare; a single word is not ("no, no, no"), so single words are kept.
    """
    words = text.split()
    bare = [w.strip(",.?!;:").lower() for w in words]
    n = len(bare)
    for k in range(min_words, n // times + 1):
        tail = bare[n - k :]
        if len(set(tail)) == 1:
            continue  # one word said over and over, not a phrase
        reps = 1
        while n - (reps + 1) * k >= 0 and bare[n - (reps + 1) * k : n - reps * k] == tail:
            reps += 1
        if reps >= times:
            return " ".join(words[: n - (reps - 1) * k])
    return text


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
