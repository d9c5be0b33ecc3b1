"""Spoken text, sans-IO: normalising recogniser text, number words, spoken durations, clock times.

Pure functions with no state, used by the skills (llm/skills.py) and tested on their own
(tests/test_spoken.py). Number words are parsed here rather than with a library because the available ones
either do not parse words ("ten") or do not understand spoken durations ("two and a half minutes",
"1 minute 30").
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

# --------------------------------------------------------------------------- text normalisation

_CONTRACTIONS = {
    "what's": "what is",
    "whats": "what is",
    "it's": "it is",
    "that's": "that is",
    "how's": "how is",
    "there's": "there is",
    "i'd": "i would",
    "i'm": "i am",
    "what're": "what are",
    "cannot": "can not",
    "can't": "can not",
    "couldn't": "could not",
    "didn't": "did not",
    "don't": "do not",
    "nevermind": "never mind",
    "todays": "today's",
    "o'clock": "oclock",
}
_LEADING_FILLER = re.compile(
    r"^(?:(?:hey|hi|hello|ok|okay|so|um|uh|uhm|er|erm|hmm|well|oh|and|alright|all right|just|please"
    r"|wait|sorry|actually|excuse me"  # how a wearer starts an interruption
    r"|(?:can|could|would|will) you(?: please)?)\s+)+"
)
_TRAILING_FILLER = re.compile(r"(?:\s+(?:please|thanks|thank you|for me))+$")


def normalize(text: str) -> str:
    """Lower-case recogniser text without punctuation, contractions expanded, polite fillers removed."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = t.replace("\u2019", "'").replace("\u2018", "'").replace("%", " percent ")
    t = re.sub(r"(?<=[a-z0-9])-(?=[a-z])", " ", t)  # twenty-five, 10-minute
    t = re.sub(r"(?<!\d)[.:]|[.:](?!\d)", " ", t)  # keep 1.5 and 1:30, drop sentence dots
    t = re.sub(r"[^a-z0-9'.: ]+", " ", t)
    t = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", t)  # quotes, not apostrophes
    words = [_CONTRACTIONS.get(w, w) for w in t.split()]
    t = " ".join(words)
    t = _LEADING_FILLER.sub("", t)
    t = _TRAILING_FILLER.sub("", t)
    return t.strip()


# --------------------------------------------------------------------------- numbers and durations

_ONES = {w: i for i, w in enumerate("zero one two three four five six seven eight nine".split())}
_TEENS = {
    w: i + 10
    for i, w in enumerate(
        "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    w: (i + 2) * 10 for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())
}
_UNITS = {
    **dict.fromkeys(("second", "seconds", "sec", "secs"), 1),
    **dict.fromkeys(("minute", "minutes", "min", "mins"), 60),
    **dict.fromkeys(("hour", "hours", "hr", "hrs"), 3600),
}


def parse_number(words: list[str], i: int) -> tuple[float, int] | None:
    """A number at `words[i]` ("7", "2.5", "seven", "twenty five", "one hundred and ten").

    Returns (value, index after it) or None.
    """
    if i >= len(words):
        return None
    w = words[i]
    if re.fullmatch(r"\d+(?:\.\d+)?", w):
        return float(w), i + 1
    value, j = _small_number(words, i)
    if value is None:
        return None
    if j < len(words) and words[j] == "hundred":
        value *= 100
        j += 1
        k = j + 1 if j < len(words) and words[j] == "and" else j
        rest, after = _small_number(words, k)
        if rest is not None:
            value, j = value + rest, after
    return float(value), j


def _small_number(words: list[str], i: int) -> tuple[int | None, int]:
    """0..99 in words at `words[i]`."""
    if i >= len(words):
        return None, i
    w = words[i]
    if w in _TENS:
        if i + 1 < len(words) and words[i + 1] in _ONES and words[i + 1] != "zero":
            return _TENS[w] + _ONES[words[i + 1]], i + 2
        return _TENS[w], i + 1
    if w in _TEENS:
        return _TEENS[w], i + 1
    if w in _ONES:
        return _ONES[w], i + 1
    return None, i


def _parse_quantity(words: list[str], i: int) -> tuple[float, int] | None:
    """A number of units: "two", "2.5", "two and a half", "a", "an", "half an", "a couple of"."""
    rest = words[i:]
    if rest[:3] in (["a", "couple", "of"], ["a", "couple", "a"]) or rest[:2] == ["couple", "of"]:
        return 2.0, i + (3 if rest[0] == "a" else 2)
    if rest[:2] in (["half", "an"], ["half", "a"]):
        return 0.5, i + 2
    for phrase in (["a", "quarter", "of", "an"], ["quarter", "of", "an"], ["a", "quarter"]):
        if rest[: len(phrase)] == phrase:
            return 0.25, i + len(phrase)
    if rest[:1] in (["a"], ["an"]):
        return 1.0, i + 1
    parsed = parse_number(words, i)
    if parsed is None:
        return None
    value, j = parsed
    if words[j : j + 3] == ["and", "a", "half"]:
        return value + 0.5, j + 3
    return value, j


def parse_duration(text: str) -> float | None:
    """Seconds in a spoken duration, or None if `text` is not entirely a duration.

    "ten seconds", "two and a half minutes", "1 minute 30", "an hour and a half", "90 sec",
    "half an hour", "1:30" (minutes:seconds), "one hour twenty minutes", "5 minutes from now".
    """
    words = normalize(text).split() if text else []
    if words[-2:] == ["from", "now"]:
        words = words[:-2]
    if len(words) == 1 and (m := re.fullmatch(r"(\d+):(\d{2})", words[0])):
        return float(int(m[1]) * 60 + int(m[2])) or None
    total, last_unit, i = 0.0, None, 0
    while i < len(words):
        if words[i] == "and" and last_unit is not None:
            i += 1
            continue
        quantity = _parse_quantity(words, i)
        if quantity is None:
            return None
        value, i = quantity
        unit = _UNITS.get(words[i]) if i < len(words) else None
        if unit is not None:
            if last_unit is not None and unit >= last_unit:
                return None  # "5 minutes 2 hours" is not a duration anyone says
            total += value * unit
            last_unit, i = unit, i + 1
            if words[i : i + 3] == ["and", "a", "half"]:
                total, i = total + unit / 2, i + 3
        elif i == len(words) and last_unit in (60, 3600) and value == int(value):
            total += value * last_unit / 60  # "1 minute 30", "2 hours 15"
        else:
            return None
    return total if total > 0 else None


def format_duration(seconds: float) -> str:
    """Speakable duration: "10 seconds", "2 minutes and 30 seconds", "1 hour, 5 minutes and 3 seconds"."""
    s = max(1, round(seconds))
    parts = []
    for size, name in ((3600, "hour"), (60, "minute"), (1, "second")):
        n, s = divmod(s, size)
        if n:
            parts.append(f"{n} {name}{'' if n == 1 else 's'}")
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def format_time(now: datetime) -> str:
    """A clock time the way it is said ("3 oh 7 PM"), since TTS reads "3:07" as "three zero seven"."""
    if now.minute == 0 and now.hour in (0, 12):
        return "midnight" if now.hour == 0 else "noon"
    hour = now.hour % 12 or 12
    suffix = "AM" if now.hour < 12 else "PM"
    if now.minute == 0:
        return f"{hour} {suffix}"
    minute = f"oh {now.minute}" if now.minute < 10 else str(now.minute)
    return f"{hour} {minute} {suffix}"


def ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_PRONOUNS = {
    "my": "your",
    "me": "you",
    "i": "you",
    "mine": "yours",
    "myself": "yourself",
    "am": "are",
    "your": "my",
    "you": "me",
}


def second_person(task: str) -> str:
    """ "call my mom" -> "call your mom" (what the reminder says back to the wearer)."""
    return " ".join(_PRONOUNS.get(w, w) for w in task.split())
