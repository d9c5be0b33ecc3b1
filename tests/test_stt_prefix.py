"""The commit rule of transcribing while the wearer speaks (companion/stt/prefix.py): no audio, no model."""

from __future__ import annotations

from companion.stt.prefix import Prefix, join_text


def test_a_later_draft_that_agrees_commits_the_earlier_one():
    p = Prefix(100)
    assert not p.offer(100, 1000, "Set a timer")  # nothing to agree with yet
    assert p.offer(100, 2000, "set a timer, for ten")  # case and punctuation do not matter
    assert (p.start, p.text, p.commits) == (1000, "Set a timer", 1)
    # What the later draft said after the commit is what the next draft (from the new start) must agree with.
    assert p.offer(1000, 3000, "for ten minutes and")
    assert (p.start, p.text) == (2000, "Set a timer for ten")


def test_disagreement_short_agreement_and_stale_drafts_commit_nothing():
    p = Prefix(0)
    p.offer(0, 1000, "What is that?")
    assert not p.offer(0, 2000, "What is the date today?")  # heard differently with more audio
    assert not p.offer(0, 3000, "What is the date today?")  # the same words, nothing new after them
    assert p.text == "" and p.start == 0
    one = Prefix(0)
    one.offer(0, 1000, "Hello")
    assert not one.offer(0, 2000, "Hello there, how are you")  # one word alone is not committed
    stale = Prefix(0)
    stale.offer(0, 1000, "Set a timer")
    assert stale.offer(0, 2000, "Set a timer for ten")
    assert not stale.offer(0, 2500, "Set a timer for ten minutes")  # from before the commit: ignored
    assert not stale.offer(1000, 900, "x y z")  # an empty or backwards range


def test_join_text():
    assert join_text("Set a timer", "for ten minutes.") == "Set a timer for ten minutes."
    assert join_text("", " Yes. ") == "Yes." and join_text("Stop.", "") == "Stop." and join_text("", "") == ""
