"""The turn detector's decision table, with scripted VAD, transcripts and audio model (no real time).

Speech here is a block of constant loud samples (a "burst"); the scripted VAD scores a loud window as
speech, the scripted STT names the text by how many bursts the audio holds, the scripted model answers
P(finished) the same way. Frames are fed as fast as the loop runs, the wall clock is frozen, so every
time is on the audio clock and the whole table runs in milliseconds, whatever the machine's load.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from companion.audio.vad import Endpointer
from companion.stt.turn import Hypothesis, SpeechDropped, SpeechStarted, Turn, TurnDetector, text_cue
from companion.stt.turn_jobs import _Failure
from companion.stt.whisper import Transcript

SR = 16000
FRAME = 320
LOUD = 6000


class ScriptedVAD:
    """Scores each 512-sample window: loud -> speech (0.95), quiet -> silence (0.02)."""

    window = 512
    sample_rate = SR

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, np.int16)
        self.windows_done = 0

    @property
    def samples_done(self) -> int:
        return self.windows_done * 512

    def process(self, pcm: np.ndarray) -> np.ndarray:
        buf = np.concatenate((self._buf, pcm))
        n = len(buf) // 512
        self._buf = buf[n * 512 :]
        self.windows_done += n
        peaks = np.abs(buf[: n * 512].reshape(n, 512).astype(np.int32)).max(axis=1)
        return np.where(peaks > LOUD // 2, 0.95, 0.02).astype(np.float32)


def bursts(pcm: np.ndarray) -> int:
    """How many separate loud stretches `pcm` holds."""
    loud = np.abs(pcm.astype(np.int32)) > LOUD // 2
    return int(np.count_nonzero(np.diff(loud.astype(np.int8)) == 1) + loud[0])


class ScriptedSTT:
    """Text by the number of bursts in the audio; `gate` (if set) holds every answer until it opens."""

    def __init__(self, texts: dict[int, str]) -> None:
        self.texts = texts
        self.calls: list[int] = []
        self.gate: asyncio.Event | None = None

    loaded = True  # the rest of the SpeechRecognizer seam: nothing to load or close

    def load(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def atranscribe(self, pcm: np.ndarray) -> Transcript:
        n = bursts(pcm)
        self.calls.append(n)
        if self.gate is not None:
            await self.gate.wait()
        return Transcript(self.texts.get(n, ""), len(pcm) / SR, 1.0, "fast")


class ScriptedModel:
    """P(finished) by the number of bursts; raises for a probability of None; `gate` as above."""

    def __init__(self, probs: dict[int, float | None]) -> None:
        self.probs = probs
        self.calls: list[int] = []
        self.heard_s: list[float] = []  # the length of the audio each call was given
        self.cancelled = 0  # calls stopped before they answered
        self.gate: asyncio.Event | None = None

    async def aprobability(self, pcm: np.ndarray) -> float:
        n = bursts(pcm)
        self.calls.append(n)
        self.heard_s.append(len(pcm) / SR)
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        p = self.probs[n]
        if p is None:
            raise RuntimeError("model broke")
        return p


def speech(seconds: float) -> np.ndarray:
    return np.full(int(seconds * SR), LOUD, np.int16)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.int16)


COMMANDS = {"turn the volume up.", "what time is it?"}


def detector(
    stt, model=None, *, unsure_ms: float = 1000, recognised=True, commit=False, at_pause=True
) -> TurnDetector:
    ep = Endpointer(ScriptedVAD(), speculate_ms=60, end_silence_ms=220, pre_roll_ms=300, tail_ms=60)
    return TurnDetector(
        stt,
        ep,
        fallback_ms=1200,
        unsure_ms=unsure_ms,
        recognised=(lambda t: t.lower() in COMMANDS) if recognised else None,
        end_model=model,
        model_at_pause=at_pause,
        commit=commit,
        clock=lambda: 0.0,  # frozen wall clock: now() is the audio clock
    )


class Run:
    """Feeds audio to a detector frame by frame, letting its tasks run between frames."""

    def __init__(self, det: TurnDetector) -> None:
        self.det = det
        self.t = 0.0
        self.events: list = []

    async def feed(self, pcm: np.ndarray) -> None:
        for i in range(0, len(pcm), FRAME):
            self.det.feed(pcm[i : i + FRAME], self.t)
            self.t += FRAME / SR
            for _ in range(4):
                await asyncio.sleep(0)
            self._drain()

    def _drain(self) -> None:
        while not self.det._queue.empty():
            self.events.append(self.det._queue.get_nowait())

    @property
    def turns(self) -> list[Turn]:
        return [e for e in self.events if isinstance(e, Turn)]

    def wait_ms(self, turn: Turn) -> float:
        return (turn.t_end_of_turn - turn.t_end_of_speech) * 1000


async def run(det: TurnDetector, *parts: np.ndarray) -> Run:
    r = Run(det)
    try:
        for part in parts:
            await r.feed(part)
    finally:
        await det.aclose()
    return r


def test_text_cues():
    known = lambda t: t.lower() in COMMANDS  # noqa: E731
    assert text_cue("", known) == "empty"
    assert text_cue("Set a timer for", known) == "fragment"
    assert text_cue("If the reader will excuse me,", known) == "fragment"
    assert text_cue("Turn the volume up.", known) == "command"
    assert text_cue("What's the capital of France?", known) == "open"
    assert text_cue("Turn the volume up.", None) == "open"


async def test_command_ends_at_the_silence_without_the_model():
    model = ScriptedModel({1: 0.0})
    r = await run(detector(ScriptedSTT({1: "Turn the volume up."}), model), quiet(0.3), speech(1), quiet(1.5))
    [turn] = r.turns
    assert turn.reason == "complete" and turn.text == "Turn the volume up."
    assert 220 <= r.wait_ms(turn) <= 260
    assert model.calls == []  # the words came first and were sure: the call started with them never ran


async def test_speech_without_words_makes_no_turn_and_says_so():
    """A cough the VAD took for speech: no turn, and a `SpeechDropped` so the session stops showing the
    wearer as talking; the next utterance is a turn of its own."""
    stt = ScriptedSTT({2: "What time is it?"})  # the cough (1 burst) has no words, the question 2 bursts
    question = (speech(0.4), quiet(0.1), speech(0.5))
    r = await run(detector(stt), quiet(0.3), speech(0.3), quiet(1.5), *question, quiet(1.5))
    kinds = [type(e) for e in r.events if not isinstance(e, Hypothesis)]
    assert kinds == [SpeechStarted, SpeechDropped, SpeechStarted, Turn]
    dropped = next(e for e in r.events if isinstance(e, SpeechDropped))
    assert dropped.t_end_of_speech == pytest.approx(0.6, abs=0.04)
    assert r.turns[0].text == "What time is it?"


async def test_open_question_the_voice_calls_finished_ends_at_the_silence():
    model = ScriptedModel({1: 0.93})
    stt = ScriptedSTT({1: "What's the capital of France?"})
    r = await run(detector(stt, model), quiet(0.3), speech(1.2), quiet(1.5))
    [turn] = r.turns
    assert turn.reason == "audio" and turn.p_complete == pytest.approx(0.93)
    assert 220 <= r.wait_ms(turn) <= 260
    assert model.calls == [1]  # asked once, at the pause (the speculative transcript was reused)


async def test_open_transcript_the_voice_calls_unfinished_is_held():
    model = ScriptedModel({1: 0.08})
    r = await run(detector(ScriptedSTT({1: "What is that?"}), model), quiet(0.3), speech(0.8), quiet(1.6))
    [turn] = r.turns
    assert turn.reason == "held"
    assert 1000 <= r.wait_ms(turn) <= 1040


async def test_a_pause_the_voice_calls_unfinished_joins_the_rest_into_one_turn():
    model = ScriptedModel({1: 0.08, 2: 0.9})
    stt = ScriptedSTT(
        {1: "If the reader will excuse me.", 2: "If the reader will excuse me, I will say nothing."}
    )
    r = await run(detector(stt, model), quiet(0.3), speech(1.5), quiet(0.7), speech(1.5), quiet(1.5))
    [turn] = r.turns
    assert turn.text.endswith("say nothing.") and turn.reason == "audio"
    hypotheses = [e.text for e in r.events if isinstance(e, Hypothesis)]
    assert "If the reader will excuse me." in hypotheses  # the first half was offered, never answered


async def test_long_open_sentence_the_voice_calls_unfinished_is_held_too():
    model = ScriptedModel({1: 0.2})
    text = "I will say nothing of my antecedents."
    r = await run(detector(ScriptedSTT({1: text}), model), quiet(0.3), speech(2), quiet(1.5))
    assert [t.reason for t in r.turns] == ["held"]


async def test_fragment_waits_the_fallback_and_does_not_ask_the_model():
    model = ScriptedModel({1: 0.99})
    r = await run(detector(ScriptedSTT({1: "Set a timer for"}), model), quiet(0.3), speech(1), quiet(1.8))
    [turn] = r.turns
    assert turn.reason == "fallback" and 1200 <= r.wait_ms(turn) <= 1240
    assert model.calls == []


async def test_model_slower_than_the_silence_ends_the_turn_when_it_answers():
    model = ScriptedModel({1: 0.9})
    model.gate = asyncio.Event()
    det = detector(ScriptedSTT({1: "Call my sister."}), model)
    r = Run(det)
    try:
        await r.feed(np.concatenate([quiet(0.3), speech(1), quiet(0.5)]))
        assert r.turns == []  # the silence ran out, the voice is not in yet
        model.gate.set()
        await r.feed(quiet(0.04))
        [turn] = r.turns
        assert turn.reason == "audio" and 500 <= r.wait_ms(turn) <= 560
    finally:
        await det.aclose()


async def test_model_that_never_answers_in_time_ends_at_the_hold():
    model = ScriptedModel({1: 0.9})
    model.gate = asyncio.Event()  # never opened
    r = await run(detector(ScriptedSTT({1: "Call my sister."}), model), quiet(0.3), speech(1), quiet(1.5))
    [turn] = r.turns
    assert turn.reason == "held" and 1000 <= r.wait_ms(turn) <= 1040


async def test_broken_model_falls_back_to_the_text_rule():
    model = ScriptedModel({1: None})
    stt = ScriptedSTT({1: "Call my sister."})
    r = await run(detector(stt, model), quiet(0.3), speech(1), quiet(1.5))
    assert [t.reason for t in r.turns] == ["held"]  # short and unknown: the text-only hold
    long = ScriptedSTT({1: "Please call my sister when you get home."})
    r = await run(detector(long, ScriptedModel({1: None})), quiet(0.3), speech(2), quiet(1.5))
    [turn] = r.turns
    assert turn.reason == "complete" and r.wait_ms(turn) <= 260


@pytest.mark.parametrize(
    ("text", "reason", "wait_ms"),
    [
        ("What is that?", "held", 1000),  # short and unknown: may be a hesitation's first half
        ("Please call my sister when you get home.", "complete", 220),  # long: ends
        ("What time is it?", "complete", 220),  # a command
    ],
)
async def test_text_only_without_a_model(text, reason, wait_ms):
    r = await run(detector(ScriptedSTT({1: text})), quiet(0.3), speech(1), quiet(1.5))
    [turn] = r.turns
    assert turn.reason == reason and wait_ms <= r.wait_ms(turn) <= wait_ms + 40


def gated_question(*, at_pause: bool = True) -> tuple[ScriptedModel, ScriptedSTT, TurnDetector, Run]:
    """An open question the voice calls finished (0.93), whose words wait until `stt.gate` opens."""
    model = ScriptedModel({1: 0.93})
    stt = ScriptedSTT({1: "What's the capital of France?"})
    stt.gate = asyncio.Event()
    det = detector(stt, model, at_pause=at_pause)
    return model, stt, det, Run(det)


async def test_the_voice_is_asked_at_the_pause_alongside_the_transcript():
    """The model starts with the draft, not after it: an open question waits for the slower of the two."""
    model, stt, det, r = gated_question()
    try:
        await r.feed(np.concatenate([quiet(0.3), speech(1.2), quiet(0.1)]))
        assert stt.calls == [1] and model.calls == [1]  # both asked at the pause; no words yet
        await r.feed(quiet(0.3))
        assert r.turns == []  # the silence ran out: waiting for the words, the voice is in
        stt.gate.set()
        await r.feed(quiet(0.04))
        [turn] = r.turns
        assert turn.reason == "audio" and turn.p_complete == pytest.approx(0.93)
        assert model.calls == [1]  # its early answer was used, not asked again
    finally:
        await det.aclose()


async def test_not_at_the_pause_the_voice_is_asked_only_once_the_words_read_unsure():
    model, stt, det, r = gated_question(at_pause=False)
    try:
        await r.feed(np.concatenate([quiet(0.3), speech(1.2), quiet(0.1)]))
        assert stt.calls == [1] and model.calls == []
        stt.gate.set()
        await r.feed(quiet(0.3))
        [turn] = r.turns
        assert turn.reason == "audio" and model.calls == [1]
    finally:
        await det.aclose()


async def test_the_voice_hears_the_same_silence_however_late_it_is_asked():
    """Smart Turn reads trailing silence as a cue: asked after 220 ms it calls some pauses inside a sentence
    finished that it called unfinished at the pause. So a model asked late (after the words, or after a
    re-read) is given the audio up to the pause, as if asked alongside the draft."""
    heard = []
    for at_pause in (True, False):
        model, stt, det, r = gated_question(at_pause=at_pause)
        try:
            await r.feed(np.concatenate([quiet(0.3), speech(1.2), quiet(0.4)]))  # past the end silence
            stt.gate.set()
            await r.feed(quiet(0.1))
            [turn] = r.turns
            assert turn.reason == "audio" and model.calls == [1]
            heard.append(model.heard_s[0])
        finally:
            await det.aclose()
    asked_alongside, asked_late = heard
    # the turn's audio from its pre-roll, the speech, and the ~60 ms of silence that called the pause
    assert asked_late == pytest.approx(asked_alongside, abs=0.005)
    assert 0.3 + 1.2 + 0.05 <= asked_late <= 0.3 + 1.2 + 0.07


@pytest.mark.parametrize(
    ("text", "reason"), [("Turn the volume up.", "complete"), ("Set a timer for", "fallback")]
)
async def test_words_that_settle_the_end_cancel_the_voice_asked_alongside(text, reason):
    model = ScriptedModel({1: 0.5})
    model.gate = asyncio.Event()  # never answers
    stt = ScriptedSTT({1: text})
    stt.gate = asyncio.Event()
    det = detector(stt, model)
    r = Run(det)
    try:
        await r.feed(np.concatenate([quiet(0.3), speech(1), quiet(0.1)]))
        assert model.calls == [1] and model.cancelled == 0
        stt.gate.set()
        await r.feed(quiet(1.5))
        [turn] = r.turns
        assert turn.reason == reason
        assert model.cancelled == 1  # the core is free for the reply
    finally:
        await det.aclose()


async def test_a_model_that_fails_before_the_words_arrive_leaves_the_text_rule():
    cases = (("Call my sister.", "held"), ("Please call my sister when you get home.", "complete"))
    for text, reason in cases:
        stt = ScriptedSTT({1: text})
        stt.gate = asyncio.Event()
        det = detector(stt, ScriptedModel({1: None}))
        r = Run(det)
        try:
            await r.feed(np.concatenate([quiet(0.3), speech(1), quiet(0.1)]))
            stt.gate.set()
            await r.feed(quiet(1.5))
            assert [t.reason for t in r.turns] == [reason]
        finally:
            await det.aclose()


async def test_hold_off_never_asks_the_model():
    model = ScriptedModel({1: 0.1})
    r = await run(
        detector(ScriptedSTT({1: "What is that?"}), model, unsure_ms=0), quiet(0.3), speech(1), quiet(1)
    )
    [turn] = r.turns
    assert turn.reason == "complete" and model.calls == []


async def test_empty_transcript_is_no_turn_and_end_turn_forces():
    r = await run(detector(ScriptedSTT({})), quiet(0.3), speech(1), quiet(1.5))
    assert r.turns == []
    det = detector(ScriptedSTT({1: "Set a timer for"}), ScriptedModel({1: 0.1}))
    r = Run(det)
    try:
        await r.feed(np.concatenate([quiet(0.3), speech(1), quiet(0.1)]))
        det.end_turn()
        for _ in range(4):
            await asyncio.sleep(0)
        r._drain()
        [turn] = r.turns
        assert turn.reason == "forced"
    finally:
        await det.aclose()


async def test_resumed_speech_cancels_the_speculative_model_call():
    model = ScriptedModel({1: 0.9, 2: 0.9})
    model.gate = asyncio.Event()
    stt = ScriptedSTT({1: "What is that?", 2: "What is the date today?"})
    det = detector(stt, model)
    r = Run(det)
    try:
        await r.feed(np.concatenate([quiet(0.3), speech(0.8), quiet(0.15), speech(0.8)]))
        assert model.calls == [1]
        model.gate.set()
        await r.feed(quiet(1.2))
        [turn] = r.turns
        assert turn.text == "What is the date today?" and turn.reason == "audio"
        assert model.calls == [1, 2]
    finally:
        await det.aclose()
    assert not det._tasks


async def settles(det: TurnDetector) -> bool:
    """Whether `det.settled()` returns once pending callbacks have run (it waits on no real time)."""
    waiter = asyncio.ensure_future(det.settled())
    for _ in range(10):
        await asyncio.sleep(0)
    done = waiter.done()
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    return done


async def test_a_pause_the_voice_calls_finished_settles_the_turn_before_the_silence_runs_out():
    """What waits on `settled()` (a speculative reply's synthesis) may run inside the end-of-turn silence
    once the words and the voice say the turn ends there: not while the model still thinks, and no longer
    once the wearer speaks again."""
    model = ScriptedModel({1: 0.9, 2: 0.9})
    model.gate = asyncio.Event()
    det = detector(ScriptedSTT({1: "Montreal forced aligner.", 2: "What is the date today?"}), model)
    r = Run(det)
    try:
        await r.feed(np.concatenate([quiet(0.3), speech(0.8), quiet(0.12)]))
        assert model.calls == [1] and [e.text for e in r.events if isinstance(e, Hypothesis)]
        assert not await settles(det)  # the words are in, the voice is still thinking
        model.gate.set()
        assert await settles(det)
        assert r.turns == []  # settled, yet the silence has not run out: the wearer may still go on
        await r.feed(speech(0.8))
        assert not await settles(det)  # speech resumed: the pause's verdict is void
        await r.feed(quiet(0.5))
        [turn] = r.turns
        assert turn.text == "What is the date today?" and turn.reason == "audio"
        assert not det._settled.is_set()
    finally:
        await det.aclose()


async def test_a_pause_the_voice_calls_unfinished_settles_only_when_the_turn_is_held():
    model = ScriptedModel({1: 0.2, 2: 0.9})
    det = detector(ScriptedSTT({1: "What is that?", 2: "What is the date today?"}), model)
    r = Run(det)
    try:
        await r.feed(np.concatenate([quiet(0.3), speech(0.8), quiet(0.12)]))
        assert model.calls == [1]
        assert not await settles(det)  # "not finished": the wearer is likely to go on
        await r.feed(quiet(0.2))
        assert await settles(det)  # held for more speech: a reply can be made ready meanwhile
        await r.feed(np.concatenate([speech(0.8), quiet(0.3)]))  # the wearer goes on; this ends the turn
        [turn] = r.turns
        assert turn.reason == "audio"
        assert not det._settled.is_set()
    finally:
        await det.aclose()


class DraftingSTT(ScriptedSTT):
    """As ScriptedSTT, with the local Whisper's kinds of pass (`apass`): a draft of a text in `suspect`
    comes back flagged, a re-read gives `reread[n]`; `after` (committed words) must stay empty here."""

    def __init__(self, texts: dict[int, str], suspect: set[str], reread: dict[int, str]) -> None:
        super().__init__(texts)
        self.suspect = suspect
        self.reread = reread
        self.drafts: list[int] = []
        self.rereads: list[int] = []

    async def apass(self, pcm: np.ndarray, kind: str = "final", *, after: str = "") -> Transcript:
        assert after == ""
        n = bursts(pcm)
        if kind == "reread":
            self.rereads.append(n)
            return Transcript(self.reread.get(n, ""), len(pcm) / SR, 5.0, "short+stock")
        result = await self.atranscribe(pcm)
        if kind == "draft":
            self.drafts.append(n)
        suspect = kind == "draft" and result.text in self.suspect
        return Transcript(result.text, result.audio_s, 1.0, "fast", suspect=suspect)


async def test_a_suspect_draft_is_not_offered_and_only_the_final_pass_re_reads_it():
    # "5 5 5 5" is the fast path looping on "five five": the draft at the pause is not offered, the turn's
    # final pass re-reads the same audio once and the turn carries the re-read.
    stt = DraftingSTT({1: "5 5 5 5"}, suspect={"5 5 5 5"}, reread={1: "5, 5."})
    r = await run(detector(stt, recognised=False), quiet(0.3), speech(0.8), quiet(1.0))
    [turn] = r.turns
    assert turn.text == "5, 5." and stt.drafts == [1] and stt.rereads == [1]
    assert not [e for e in r.events if isinstance(e, Hypothesis)]


async def test_a_suspect_draft_made_stale_by_more_speech_costs_no_re_read():
    stt = DraftingSTT({1: "No no", 2: "No, no, not that one."}, suspect={"No no"}, reread={1: "No no."})
    r = await run(detector(stt), quiet(0.3), speech(0.5), quiet(0.15), speech(1.0), quiet(1.5))
    [turn] = r.turns
    assert turn.text == "No, no, not that one." and 1 in stt.drafts and stt.rereads == []


class PassingSTT(ScriptedSTT):
    """The local Whisper's `apass` scripted: the words for (committed words, bursts in the audio heard)."""

    def __init__(self, texts: dict[tuple[str, int], str]) -> None:
        self.texts = texts
        self.passes: list[tuple[str, str, int]] = []  # (kind, after, bursts)

    async def atranscribe(self, pcm: np.ndarray) -> Transcript:
        raise AssertionError("the detector uses apass when the recogniser has it")

    async def apass(self, pcm: np.ndarray, kind: str = "final", *, after: str = "") -> Transcript:
        n = bursts(pcm)
        self.passes.append((kind, after, n))
        return Transcript(self.texts.get((after, n), ""), len(pcm) / SR, 1.0, "fast")


async def test_words_two_drafts_agree_on_are_committed_and_the_end_decodes_only_the_rest():
    stt = PassingSTT(
        {
            ("", 1): "Set a timer",
            ("", 2): "Set a timer for ten",
            ("Set a timer", 1): "for ten",
            ("Set a timer", 2): "for ten minutes.",
        }
    )
    r = await run(
        detector(stt, commit=True),
        *(quiet(0.3), speech(0.8), quiet(0.15), speech(0.6), quiet(0.15), speech(0.6), quiet(1.5)),
    )
    [turn] = r.turns
    assert turn.text == "Set a timer for ten minutes." and turn.reason == "complete"
    assert len(turn.audio) >= int(2.3 * SR)  # the turn keeps all its audio
    # The second draft agreed with the first: from then on only the audio after the first pause is heard.
    assert stt.passes[:2] == [("draft", "", 1), ("draft", "", 2)]
    assert stt.passes[-1] == ("draft", "Set a timer", 2)  # the pass at the end, reused as the final


async def test_drafts_that_disagree_commit_nothing():
    # A hesitation's first half heard one way alone and another way with more audio: never committed.
    stt = PassingSTT(
        {("", 1): "What is that?", ("", 2): "What is the date", ("", 3): "What is the date today?"}
    )
    r = await run(
        detector(stt, commit=True),
        *(quiet(0.3), speech(0.8), quiet(0.15), speech(0.6), quiet(0.15), speech(0.6), quiet(1.5)),
    )
    [turn] = r.turns
    assert turn.text == "What is the date today?"
    assert all(after == "" for _kind, after, _n in stt.passes) and stt.passes[-1][2] == 3


async def test_committing_is_off_by_default():
    stt = PassingSTT(
        {("", 1): "Set a timer", ("", 2): "Set a timer for ten", ("", 3): "Set a timer for ten minutes."}
    )
    r = await run(
        detector(stt), quiet(0.3), speech(0.8), quiet(0.15), speech(0.6), quiet(0.15), speech(0.6), quiet(1.5)
    )
    assert [t.text for t in r.turns] == ["Set a timer for ten minutes."]
    assert all(after == "" for _kind, after, _n in stt.passes)


class FlakySTT(ScriptedSTT):
    """`ScriptedSTT` whose server is down for the first `failures` calls (refused at once)."""

    def __init__(self, texts: dict[int, str], failures: int) -> None:
        super().__init__(texts)
        self.failures = failures

    async def atranscribe(self, pcm: np.ndarray) -> Transcript:
        if self.failures > 0:
            self.failures -= 1
            self.calls.append(-1)
            raise ConnectionRefusedError("server down")
        return await super().atranscribe(pcm)


def failures(r: Run) -> list[_Failure]:
    return [e for e in r.events if isinstance(e, _Failure)]


async def test_a_draft_that_fails_while_the_wearer_goes_on_loses_nothing():
    """The recogniser fails on the draft made at a pause inside the utterance: nothing is raised while the
    wearer speaks on (the session would talk over them), and the turn's own transcription is heard."""
    stt = FlakySTT({2: "What time is it?"}, failures=1)
    r = await run(detector(stt), quiet(0.3), speech(0.4), quiet(0.12), speech(0.5), quiet(1.5))
    [turn] = r.turns
    assert turn.text == "What time is it?"
    assert stt.calls[0] == -1 and stt.calls[-1] == 2
    assert not failures(r)


async def test_a_failed_draft_at_the_end_is_tried_again_and_a_failed_final_is_raised():
    """A draft at the final pause that failed is transcribed again when the speech ends (a server may be
    back); when that fails too, the failure reaches the consumer of events() once the wearer is silent."""
    stt = FlakySTT({1: "What time is it?"}, failures=1)
    r = await run(detector(stt), quiet(0.3), speech(0.8), quiet(1.5))
    [turn] = r.turns
    assert turn.text == "What time is it?" and stt.calls == [-1, 1] and not failures(r)

    down = FlakySTT({1: "What time is it?"}, failures=5)
    det = detector(down)
    r = Run(det)
    await r.feed(np.concatenate([quiet(0.3), speech(0.8)]))
    await r.feed(quiet(0.1))  # the draft at the pause fails: not surfaced while the end is open
    assert down.calls == [-1] and not failures(r)
    await r.feed(quiet(1.0))
    await det.aclose()
    [failure] = failures(r)
    assert isinstance(failure.error, ConnectionRefusedError)
    assert down.calls == [-1, -1] and not r.turns


async def test_after_a_failed_turn_the_detector_goes_on_with_the_next_alone():
    """The turn whose transcription failed is dropped (the wearer is told and says it again); the same
    detector hears the next utterance, which is transcribed alone, not joined to the lost one."""
    stt = FlakySTT({1: "What time is it?"}, failures=2)
    r = await run(detector(stt), quiet(0.3), speech(0.8), quiet(1.5), speech(0.8), quiet(1.5))
    [failure] = failures(r)
    assert isinstance(failure.error, ConnectionRefusedError)
    [turn] = r.turns
    assert turn.text == "What time is it?"
    assert stt.calls[:2] == [-1, -1] and set(stt.calls[2:]) == {1}  # one burst: the second utterance only
