"""Wake mode in the turn detector: the gate's rule (companion.stt.decision.WAKE_RULE), with the scripted VAD,
STT and clock of tests/test_turn_table.py (no real time, no models).

A bystander's speech must end at its own end of speech, untranscribed beyond its first words, and never
grow into the wearer's next request; an addressed request keeps the ordinary turn rules.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from companion.stt.decision import WAKE_RULE, wake_rule
from companion.stt.turn import Hypothesis, TurnDetector
from companion.stt.whisper import Transcript
from companion.wake import Addressing
from tests.test_turn_table import COMMANDS, LOUD, SR, Run, ScriptedSTT, quiet, run, speech

BYSTANDER = "If the reader will excuse me,"  # a fragment: ordinary rules would wait for more


def addressed(text: str, t_start: float) -> bool:
    """The session's phrase check, without the follow-up window."""
    return Addressing().strip_phrase(text) is not None


def wake_detector(stt, *, gate=addressed) -> TurnDetector:
    from companion.audio.vad import Endpointer
    from tests.test_turn_table import ScriptedVAD

    ep = Endpointer(ScriptedVAD(), speculate_ms=60, end_silence_ms=220, pre_roll_ms=300, tail_ms=60)
    return TurnDetector(
        stt,
        ep,
        fallback_ms=1200,
        unsure_ms=1000,
        recognised=lambda t: t.lower() in COMMANDS,
        gate=gate,
        probe_ms=1500,
        clock=lambda: 0.0,
    )


class ByLengthSTT(ScriptedSTT):
    """Text by how much speech the audio holds: `long` from `seconds` of loud samples on, else `short`."""

    def __init__(self, long: str, short: str, seconds: float = 1.4) -> None:
        super().__init__({})
        self.long, self.short, self.seconds = long, short, seconds
        self.lengths: list[float] = []

    async def atranscribe(self, pcm: np.ndarray) -> Transcript:
        loud = np.count_nonzero(np.abs(pcm.astype(np.int32)) > LOUD // 2) / SR
        self.lengths.append(round(loud, 2))
        if self.gate is not None:
            await self.gate.wait()
        return Transcript(self.long if loud >= self.seconds else self.short, len(pcm) / SR, 1.0, "fast")


def test_the_rule_without_a_gate_is_the_ordinary_one_and_unaddressed_speech_is_never_joined() -> None:
    # Without a gate every utterance counts as addressed: drafts at pauses, joined on resumption, the table.
    assert [wake_rule(e, True) for e in ("long", "pause", "resumed", "end", "restart")] == [
        "none",
        "draft",
        "join",
        "transcribe",
        "join",
    ]
    # Unaddressed: no transcription, split at a resumption, ended at its end of speech, never joined.
    assert [wake_rule(e, False) for e in ("pause", "resumed", "end", "restart")] == [
        "skip",
        "split",
        "end",
        "detach",
    ]
    # Not known yet: its start is transcribed (a probe, or the draft at its first pause).
    assert wake_rule("long", None) == "probe" and wake_rule("restart", None) == "detach"
    assert {k[1] for k in WAKE_RULE} == {True, False, None}
    with pytest.raises(ValueError, match="no wake rule"):
        wake_rule("cough", None)


async def test_bystander_sentences_a_moment_apart_are_separate_unaddressed_turns() -> None:
    parts = (quiet(0.3), speech(1.0), quiet(0.7), speech(1.0), quiet(1.5))
    merged = await run(wake_detector(ScriptedSTT({1: BYSTANDER, 2: BYSTANDER}), gate=None), *parts)
    assert len(merged.turns) == 1  # hands-free: a fragment waits, the next sentence joins it
    stt = ScriptedSTT({1: BYSTANDER})
    r = await run(wake_detector(stt), *parts)
    assert [(t.text, t.addressed, t.reason) for t in r.turns] == [("", False, "unaddressed")] * 2
    assert stt.calls == [1, 1]  # one draft each, at its first pause; no final pass, no re-read
    assert not [e for e in r.events if isinstance(e, Hypothesis)]  # its words go nowhere
    first, second = r.turns
    assert first.t_end_of_turn - first.t_end_of_speech <= 0.26  # ended at its end of speech
    assert second.t_start > first.t_end_of_speech


async def test_an_addressed_fragment_keeps_the_ordinary_rules() -> None:
    whole = "Hey companion, set a timer for five minutes."
    stt = ScriptedSTT({1: "Hey companion, set a timer for", 2: whole})
    r = await run(wake_detector(stt), quiet(0.3), speech(1.0), quiet(0.7), speech(0.8), quiet(1.6))
    [turn] = r.turns
    assert turn.text == whole and turn.addressed is True
    assert "Hey companion, set a timer for" in [e.text for e in r.events if isinstance(e, Hypothesis)]


async def test_long_unaddressed_speech_is_probed_then_only_scanned_for_the_phrase() -> None:
    stt = ByLengthSTT("The law was clear about it.", "The law")
    r = await run(wake_detector(stt), quiet(0.3), speech(4.0), quiet(1.0))
    [turn] = r.turns
    assert turn.addressed is False and turn.text == ""
    # The probe of its first 1.5 s, a scan of its latest 2.5 s, at its end a scan of what no scan heard
    # (with the usual 1 s overlap); no draft, no final pass.
    assert stt.lengths == [
        pytest.approx(1.5, abs=0.05),
        pytest.approx(2.5, abs=0.15),
        pytest.approx(2.0, abs=0.15),
    ]
    assert len(turn.audio) / SR == pytest.approx(4.0 + 0.3 + 0.06, abs=0.05)  # the whole utterance, counted


WEARER = 2 * LOUD  # the wearer's speech, louder than the scripted bystander's, so the STT can tell


class OverlapSTT(ScriptedSTT):
    """Hears the wake phrase where the wearer's samples are, the bystander's words elsewhere."""

    def __init__(self) -> None:
        super().__init__({})
        self.lengths: list[float] = []

    async def atranscribe(self, pcm: np.ndarray) -> Transcript:
        self.lengths.append(round(len(pcm) / SR, 2))
        if self.gate is not None:
            await self.gate.wait()
        wearer = np.count_nonzero(pcm == WEARER) / SR
        text = "The law, hey companion, what time is it?" if wearer >= 0.8 else "The law was clear."
        return Transcript(text, len(pcm) / SR, 1.0, "fast")


async def test_the_phrase_said_over_a_bystander_splits_the_request_off() -> None:
    # No pause between them: one utterance to the endpointer; a scan hears the phrase in it.
    wearer = np.full(int(1.5 * SR), WEARER, np.int16)
    r = await run(wake_detector(OverlapSTT()), quiet(0.3), speech(3.0), wearer, speech(1.0), quiet(1.5))
    assert [(t.addressed, t.text) for t in r.turns] == [
        (False, ""),
        (True, "The law, hey companion, what time is it?"),
    ]
    bystander, request = r.turns
    assert bystander.t_end_of_speech == pytest.approx(request.t_start, abs=0.01)
    assert request.t_start > 0.3 + 1.5  # after the bystander's first words


async def test_a_phrase_found_after_the_speech_ended_is_transcribed_alone() -> None:
    stt = OverlapSTT()
    wearer = np.full(int(1.5 * SR), WEARER, np.int16)
    det = wake_detector(stt)
    r = Run(det)
    try:
        await r.feed(np.concatenate([quiet(0.3), speech(1.9)]))  # the probe: a bystander
        stt.gate = asyncio.Event()  # the scan is still running when the speech ends
        await r.feed(np.concatenate([wearer, quiet(0.5)]))
        assert [t.addressed for t in r.turns] == [False]  # ended, unaddressed, while the scan ran
        stt.gate.set()
        await r.feed(quiet(0.5))
        assert [(t.addressed, t.reason) for t in r.turns] == [(False, "unaddressed"), (True, "forced")]
        assert r.turns[1].text == "The law, hey companion, what time is it?"
    finally:
        await det.aclose()
    assert not det._tasks


async def test_a_request_right_after_a_bystander_is_split_off_and_heard() -> None:
    # The wearer starts 120 ms after the bystander stops: one utterance to the endpointer.
    stt = ByLengthSTT("The law was clear about it.", "Hey companion, what time is it?")
    r = await run(wake_detector(stt), quiet(0.3), speech(2.0), quiet(0.12), speech(1.0), quiet(1.5))
    assert [(t.addressed, t.text) for t in r.turns] == [
        (False, ""),
        (True, "Hey companion, what time is it?"),
    ]
    request = r.turns[1]
    assert request.t_start == pytest.approx(0.3 + 2.0 + 0.12, abs=0.07)
    assert len(request.audio) / SR < 1.3  # the request's own audio, not the bystander's


async def test_an_utterance_not_transcribed_by_its_end_is_decided_alone() -> None:
    parts = (quiet(0.3), speech(1.0), quiet(0.5), speech(1.0))
    stt = ScriptedSTT({1: BYSTANDER})
    stt.gate = asyncio.Event()  # a loaded machine: no transcript before the next sentence starts
    det = wake_detector(stt)
    r = Run(det)
    try:
        await r.feed(np.concatenate(parts))
        assert r.turns == []
        stt.gate.set()
        await r.feed(quiet(1.5))
        assert [(t.addressed, t.reason) for t in r.turns] == [(False, "unaddressed")] * 2
        assert stt.calls == [1, 1]  # each sentence alone: the first was not joined to the second
    finally:
        await det.aclose()
    assert not det._tasks


async def test_phrase_then_request_after_a_pause_is_one_addressed_turn_or_two() -> None:
    # "Hey companion." is addressed: the ordinary table holds a short open transcript for more speech.
    stt = ScriptedSTT({1: "Hey companion.", 2: "Hey companion. What time is it?"})
    r = await run(wake_detector(stt), quiet(0.3), speech(0.7), quiet(0.6), speech(0.8), quiet(1.5))
    [turn] = r.turns
    assert turn.addressed is True and turn.text.endswith("What time is it?")
