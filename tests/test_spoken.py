"""The sans-IO spoken-text helpers on their own: number words, ordinals, pronouns (no event loop)."""

from __future__ import annotations

import pytest

from companion.llm.spoken import ordinal, parse_duration, parse_number, second_person


@pytest.mark.parametrize(
    ("text", "value", "end"),
    [
        ("7", 7.0, 1),
        ("2.5 minutes", 2.5, 1),
        ("seven", 7.0, 1),
        ("twenty five seconds", 25.0, 2),
        ("one hundred and ten", 110.0, 4),
        ("ninety", 90.0, 1),
    ],
)
def test_parse_number_reads_digits_and_words(text: str, value: float, end: int) -> None:
    assert parse_number(text.split(), 0) == (value, end)


@pytest.mark.parametrize("text", ["", "minutes", "several"])
def test_parse_number_rejects_non_numbers(text: str) -> None:
    assert parse_number(text.split(), 0) is None


def test_parse_duration_rejects_units_in_rising_order() -> None:
    assert parse_duration("5 minutes 2 hours") is None
    assert parse_duration("one hour twenty minutes") == 4800


@pytest.mark.parametrize(
    ("n", "word"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (23, "23rd")]
)
def test_ordinal(n: int, word: str) -> None:
    assert ordinal(n) == word


def test_second_person_swaps_pronouns() -> None:
    assert second_person("call my mom and tell me") == "call your mom and tell you"
