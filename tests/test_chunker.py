"""SentenceChunker: pure logic, so plain unit tests plus a property test over random token splits."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.tts.chunker import SentenceChunker, speakable_chunks


def chunk_all(tokens: Iterable[str], **options) -> list[str]:
    chunker = SentenceChunker(**options)
    out = [c for t in tokens for c in chunker.feed(t)]
    return out + chunker.flush()


def by_char(text: str, **options) -> list[str]:
    return chunk_all(list(text), **options)


def test_splits_on_sentence_ends_followed_by_space():
    text = "It's three fifteen. Want a timer? Sure! Done."
    assert by_char(text) == ["It's three fifteen.", "Want a timer?", "Sure!", "Done."]


def test_a_sentence_is_released_as_soon_as_the_next_token_starts():
    chunker = SentenceChunker()
    assert chunker.feed("It's three fifteen") == []
    assert chunker.feed(".") == []  # could still be "fifteen.5" or "fifteen.com"
    assert chunker.feed(" ") == ["It's three fifteen."]
    assert chunker.feed("Anything") == []
    assert chunker.flush() == ["Anything"]


def test_newlines_end_chunks_even_without_punctuation():
    assert by_char("Here is the plan\nFirst we eat\n\nThen we sleep") == [
        "Here is the plan",
        "First we eat",
        "Then we sleep",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Smith and Dr. Jones met Prof. Lee at St. Paul's.",
        "Bring fruit, e.g. apples, and tools, i.e. a knife and a fork.",
        "The U.S. economy grew while John F. Kennedy was president.",
        "It costs 3.5 dollars, or about 3.25 euros.",
        "The train leaves at 3:15 and arrives at 4:40.",
        "Version 2.0.1 is out; see example.com for details.",
    ],
)
def test_no_split_inside_abbreviations_decimals_and_times(text):
    assert by_char(text, first_max_chars=100) == [text]


def test_sentences_after_abbreviations_still_split():
    assert by_char("Ask Dr. Jones. She knows. It is 3.5 km away! Go.") == [
        "Ask Dr. Jones.",
        "She knows.",
        "It is 3.5 km away!",
        "Go.",
    ]


def test_list_numbers_are_not_sentences():
    assert by_char("1. Preheat the oven.\n2. Mix the flour.") == ["1. Preheat the oven.", "2. Mix the flour."]


def test_quotes_and_brackets_stay_with_their_sentence():
    assert by_char('He said "stop." Then (quietly) he left.) Bye') == [
        'He said "stop."',
        "Then (quietly) he left.)",
        "Bye",
    ]


def test_ellipsis_and_cjk_punctuation():
    assert by_char("Well… let me see. 你好。今天很好！") == ["Well…", "let me see.", "你好。", "今天很好！"]


def test_long_first_sentence_is_cut_at_a_clause_boundary():
    text = (
        "When you get to the station, walk past the ticket machines and the flower stall, "
        "then take the second exit on your left and follow the signs to the river."
    )
    chunks = by_char(text, first_max_chars=60, max_chars=100)
    assert chunks[0] == "When you get to the station,"
    assert all(len(c) <= 100 for c in chunks)
    assert " ".join(chunks) == text


@pytest.mark.parametrize("split", [by_char, lambda text, **o: chunk_all([text], **o)])
def test_a_complete_first_sentence_over_the_first_limit_is_cut_too(split):
    """The first audio waits for the whole first chunk: a long first sentence goes out clause by clause."""
    text = "Today is Saturday, November 28th, 2026. Later sentences, however long, stay whole."
    assert split(text, first_max_chars=30) == [
        "Today is Saturday,",
        "November 28th, 2026.",
        "Later sentences, however long, stay whole.",
    ]
    # within the limit, or with no clause boundary to cut at: the sentence stays whole
    assert split("Yes, it is. Fine.", first_max_chars=30) == ["Yes, it is.", "Fine."]
    text = "The headset battery is at eighty percent right now."
    assert split(text, first_max_chars=30) == [text]


def test_clause_cut_prefers_the_last_boundary_within_the_limit():
    text = "Yes, the museum opens at nine, the café at ten, and the garden at noon on most days of the week"
    chunks = by_char(text, first_max_chars=50, max_chars=100)
    assert chunks[0] == "Yes, the museum opens at nine, the café at ten,"
    assert " ".join(chunks) == text


def test_later_chunks_use_the_larger_limit():
    text = (
        "Okay. " + "The first part of this long sentence, with a comma in the middle, keeps going on and on."
    )
    chunks = by_char(text, first_max_chars=20, max_chars=120)
    assert chunks == ["Okay.", text[6:]]  # 86 chars < 120: no clause cut once audio is playing


def test_unpunctuated_run_on_is_cut_at_a_space():
    text = " ".join(["word"] * 80)  # 399 chars, no punctuation at all
    chunks = by_char(text, first_max_chars=40, max_chars=60, hard_max_chars=100)
    assert all(len(c) <= 100 for c in chunks) and len(chunks) >= 4
    assert " ".join(chunks) == text
    assert all(set(c.split()) == {"word"} for c in chunks)  # never cut mid-word


def test_times_and_ratios_are_not_clause_boundaries():
    text = "The meeting is at 10:30 with the team from the Paris office, and the ratio is 3:1 in our favour"
    chunks = by_char(text, first_max_chars=20, max_chars=40)
    assert chunks == [
        "The meeting is at 10:30 with the team from the Paris office,",
        "and the ratio is 3:1 in our favour",
    ]


def test_markdown_is_stripped_and_unspeakable_pieces_dropped():
    text = "## Weather\n**Sunny** and `warm`.\n- Bring water.\n---\n> Have fun!"
    assert by_char(text) == ["Weather", "Sunny and warm.", "Bring water.", "Have fun!"]
    assert by_char("**Bold**", strip_markdown=False) == ["**Bold**"]


def test_flush_resets_for_the_next_reply():
    chunker = SentenceChunker(first_max_chars=20, max_chars=40)
    assert chunker.feed("First reply. And") == ["First reply."]
    assert chunker.flush() == ["And"]
    assert chunker.pending == ""
    assert chunker.flush() == []
    # After a flush the small first-chunk limit applies again.
    assert chunker.feed("Second reply here, with a clause that runs long") == ["Second reply here,"]


def test_whitespace_is_normalised():
    assert by_char("  Hello   there.\t\tHow   are\tyou?  ") == ["Hello there.", "How are you?"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_chars": 3}, "max_chars"),
        ({"first_max_chars": 200, "max_chars": 100}, "first_max_chars <= max_chars"),
        ({"max_chars": 100, "hard_max_chars": 50}, "hard_max_chars"),
        ({"max_chars": 100.5}, "max_chars"),
    ],
)
def test_bad_options_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        SentenceChunker(**options)


def test_feed_rejects_non_text():
    with pytest.raises(TypeError, match="str"):
        SentenceChunker().feed(None)  # type: ignore[arg-type]


async def test_speakable_chunks_streams_tokens():
    async def tokens() -> AsyncIterator[str]:
        for token in ["Hel", "lo", " Mr", ".", " Smi", "th.", " It", "'s 3", ".", "5", " de", "grees", "."]:
            yield token

    assert [c async for c in speakable_chunks(tokens())] == ["Hello Mr. Smith.", "It's 3.5 degrees."]


async def test_speakable_chunks_yields_before_the_stream_ends():
    seen: list[str] = []

    async def tokens() -> AsyncIterator[str]:
        yield "First sentence."
        yield " Second"
        assert seen == ["First sentence."], "the first chunk must be out before later tokens are read"
        yield " sentence."

    async for chunk in speakable_chunks(tokens(), first_max_chars=30):
        seen.append(chunk)
    assert seen == ["First sentence.", "Second sentence."]


_WORDS = st.sampled_from(
    ["hello", "Mr.", "Dr.", "e.g.", "3.5", "3:15", "it's", "the", "time", "U.S.", "1,000", "ok", "a", "x"]
)
_PUNCT = st.sampled_from(["", "", "", ".", ",", "!", "?", ";", ":", "\n"])


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(st.tuples(_WORDS, _PUNCT), min_size=1, max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=40),
)
def test_any_token_split_keeps_every_word_in_order(words, cuts):
    text = " ".join(w + p for w, p in words)
    bounds = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    tokens = [text[a:b] for a, b in itertools.pairwise(bounds)]
    chunks = chunk_all(tokens, first_max_chars=20, max_chars=40, hard_max_chars=80)
    assert " ".join(chunks).split() == [w for w in text.split() if any(ch.isalnum() for ch in w)]
    assert all(c == c.strip() and c for c in chunks)
    # Splits do not depend on how the text was tokenised when no long-sentence cut is involved.
    whole = chunk_all([text], first_max_chars=20, max_chars=40, hard_max_chars=80)
    if all(len(c) <= 20 for c in whole):
        assert chunks == whole
