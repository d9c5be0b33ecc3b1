"""Pure text helpers for speech recognition: scoring normalisation, WER, and turn completeness.

Kept free of model imports so the turn logic and the benchmark can use them cheaply and they can be
unit-tested on their own.
"""

from __future__ import annotations

import re

__all__ = ["FILLERS", "looks_complete", "normalize", "number_to_words", "wer", "word_errors"]

FILLERS = frozenset({"uh", "um", "umm", "uhm", "er", "erm", "ah", "hmm", "mm", "mhm"})

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
        if n == 0:
            return words
    if n >= 20:
        words.append(_TENS[n // 10])
        if n % 10:
            words.append(_ONES[n % 10])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """Spell a non-negative integer the way people say it; 1100-1999 read as years ("eighteen thirteen")."""
    if n < 0:
        raise ValueError(f"number_to_words needs a non-negative integer, got {n}")
    if 1100 <= n <= 1999 and n % 100:
        tail = _below_thousand(n % 100)
        return " ".join(_below_thousand(n // 100) + (["oh"] if n % 100 < 10 else []) + tail)
    if n < 1000:
        return " ".join(_below_thousand(n))
    parts: list[str] = []
    for value, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= value:
            parts += [*_below_thousand(n // value), name] if n // value < 1000 else [str(n // value), name]
            n %= value
    if n:
        parts += _below_thousand(n)
    return " ".join(parts)


_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_NUMBER = re.compile(r"\d+")
_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def normalize(text: str) -> str:
    """Normalise a transcript for scoring: case, punctuation, digits, fillers, spelled-out letters.

    "M F A is, um, like 42-line" -> "mfa is like forty two line". Both the reference and the
    hypothesis go through the same function, so the rules only need to be consistent, not perfect.
    """
    text = text.lower().replace("-", " ")
    text = _ORDINAL.sub(r"\1", text)
    text = _NUMBER.sub(lambda m: f" {number_to_words(int(m.group()))} ", text)
    text = _NON_WORD.sub(" ", text).replace("'", "")
    words = [w for w in text.split() if w not in FILLERS]
    # Join runs of two or more single letters ("m f a" -> "mfa"); single "a"/"i" words stay as they are.
    out: list[str] = []
    run: list[str] = []
    for w in [*words, ""]:
        if len(w) == 1:
            run.append(w)
            continue
        if len(run) >= 2:
            out.append("".join(run))
        else:
            out += run
        run = []
        if w:
            out.append(w)
    return " ".join(out)


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference word count) after `normalize`; sums across utterances give WER."""
    ref = normalize(reference).split()
    hyp = normalize(hypothesis).split()
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1], len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of one hypothesis (0.0 = perfect); an empty reference scores 0 or 1."""
    errors, n = word_errors(reference, hypothesis)
    if n == 0:
        return 0.0 if errors == 0 else 1.0
    return errors / n


# Words after which an English sentence cannot end: the speaker paused mid-thought.
_DANGLING = frozenset(
    """
    and but or nor because cause if unless whether although than
    a an the my your our their every
    to for of with from into onto at about toward towards upon via per between without during against
    very
    um uh umm uhm er erm ah hmm
    it's i'm you're we're they're he's she's let's there's that's
    """.split()
)
# Words that open a turn: said alone before a pause, the speaker is taking the floor, not done ("Wait, ...
# what time is it?"). Answers a wearer gives alone ("okay", "yes", "no", "sorry", "mhm") are not among them.
_OPENERS = frozenset("wait so well actually hey oh like".split()) | (FILLERS - {"mm", "mhm"})
_TRAILING_PUNCT = ".!?;:\"')]} "


def looks_complete(text: str) -> bool:
    """Whether a transcript reads like a finished utterance rather than a fragment cut by a pause.

    Fragments: empty text, a trailing comma/dash/ellipsis, a last word that needs a continuation
    (conjunction, article, preposition, filler: "set a timer for", "I think that um"), or nothing but
    words that open a turn ("Wait.", "So, well..."). Words that
    often end real sentences ("turn it on", "I think so", "yes I am") do not count as dangling:
    a wrong "fragment" only costs the fallback wait, a wrong "complete" answers a fragment.
    Whisper often closes fragments with a period, so a final "." alone does not make text complete.
    """
    stripped = text.strip()
    if not stripped:
        return False
    if stripped.endswith(("...", "…", ",", "-", "—", "–")):
        return False
    core = stripped.rstrip(_TRAILING_PUNCT)
    if not core or core.endswith(("...", "…", ",", "-", "—", "–")):
        return False
    words = [w.lower().strip("\"'()[].,!?;:") for w in core.split()]
    if all(w in _OPENERS for w in words):
        return False
    return words[-1] not in _DANGLING
