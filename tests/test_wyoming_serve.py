"""`companion serve` driven by the `wyoming` package's own client, as Home Assistant drives it.

Describe, transcribe real recordings (as a file upload, as a live microphone stream whose end of speech
the server finds itself, and in other audio formats), synthesize (one request and streamed text), and
bad requests that get an error while the connection stays usable.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soxr
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from companion.stt.text import normalize, wer
from tests.fixtures.speech import Utterance
from tests.fixtures.wyoming import ServerProcess, synthesize, transcribe

pytestmark = pytest.mark.slow


def _pick(speech_set: list[Utterance], names: list[str]) -> list[Utterance]:
    by_name = {u.path.name: u for u in speech_set}
    return [by_name[n] for n in names]


async def test_describe_lists_speech_recognition_and_voice(companion_serve: ServerProcess) -> None:
    async with AsyncTcpClient(*companion_serve.host_port, connect_timeout=10, read_timeout=10) as client:
        await client.write_event(Describe().event())
        event = await client.read_event()
    assert event is not None and Info.is_type(event.type)
    info = Info.from_event(event)
    assert [p.name for p in info.asr] == ["companion-stt"]
    asr_model = info.asr[0].models[0]
    assert asr_model.name == "tiny.en" and asr_model.languages == ["en"] and asr_model.installed
    assert info.asr[0].requires_external_vad is False
    assert [p.name for p in info.tts] == ["companion-tts"]
    voice = info.tts[0].voices[0]
    assert voice.name == "en_US-joe-medium" and "en_US" in voice.languages
    assert info.tts[0].supports_synthesize_streaming


async def test_transcribes_real_recordings(
    companion_serve: ServerProcess, speech_set: list[Utterance]
) -> None:
    """Uploaded as fast as the socket takes it: transcribed whole at audio-stop."""
    for u in _pick(speech_set, ["coquitts_2.wav", "mfa_12.wav", "speechbrain_1.wav"]):
        text, early, _latency = await transcribe(companion_serve.host_port, u.pcm(), chunk_ms=100)
        assert early is None
        assert wer(u.transcript, text) <= 0.25, (u.path.name, u.transcript, text)


async def test_live_stream_ends_at_end_of_speech(
    companion_serve: ServerProcess, speech_set: list[Utterance]
) -> None:
    """A microphone stream paced at real time gets its transcript from the stream's own end of speech,
    while the client is still sending (silence), long before any audio-stop."""
    (u,) = _pick(speech_set, ["mfa_12.wav"])
    pcm = np.concatenate([u.pcm(), np.zeros(16000 * 3, dtype=np.int16)])
    text, early, _latency = await transcribe(companion_serve.host_port, pcm, realtime=True, send_stop=False)
    assert early is not None, "the transcript waited for audio-stop"
    # A complete sentence ends after turn.end_silence_ms (220 ms) of silence; one that reads as a fragment
    # waits up to turn.fallback_ms (1200 ms). Either way well before the 3 s of trailing silence run out.
    print(f"transcript after {early - u.seconds:.2f} s of audio past the recording")
    assert early < u.seconds + 1.8, early
    assert normalize(text) == normalize(u.transcript), text


@pytest.mark.parametrize(("rate", "channels", "width"), [(48000, 2, 2), (22050, 1, 4), (8000, 1, 1)])
async def test_other_audio_formats_are_converted(
    companion_serve: ServerProcess, speech_set: list[Utterance], rate: int, channels: int, width: int
) -> None:
    (u,) = _pick(speech_set, ["mfa_12.wav"])
    audio = soxr.resample(u.pcm().astype(np.float32) / 32768, 16000, rate)
    audio = np.repeat(audio[:, None], channels, axis=1).reshape(-1)  # interleaved
    if width == 1:
        data = (np.clip(audio, -1, 0.99) * 128 + 128).astype(np.uint8)
    elif width == 2:
        data = (np.clip(audio, -1, 0.99) * 32768).astype("<i2")
    else:
        data = (np.clip(audio, -1, 0.99) * 2**31).astype("<i4")
    text, _, _ = await transcribe(companion_serve.host_port, data, rate=rate, width=width, channels=channels)
    # 8-bit, 8 kHz telephone audio is worse; the others should be as good as the original.
    assert wer(u.transcript, text) <= (0.35 if width == 1 else 0.2), (rate, channels, width, text)


async def test_synthesize_speaks_the_text(companion_serve: ServerProcess) -> None:
    text = "The kitchen lights are now switched off."
    audio, fmt = await synthesize(companion_serve.host_port, text)
    assert fmt == {"rate": 16000, "width": 2, "channels": 1}
    seconds = len(audio) / 16000
    assert 1.2 < seconds < 6.0, seconds  # seven words
    assert np.abs(audio).max() > 3000  # speech, not silence
    heard, _, _ = await transcribe(companion_serve.host_port, audio)
    assert wer(text, heard) <= 1 / 7, heard  # piper + tiny.en: one word of seven may be misheard


async def test_streamed_text_is_spoken_sentence_by_sentence(companion_serve: ServerProcess) -> None:
    """Home Assistant streams an LLM's reply as synthesize-chunk events: audio starts after the first
    sentence, one audio-start/stop per sentence, then synthesize-stopped."""
    async with AsyncTcpClient(*companion_serve.host_port, connect_timeout=10, read_timeout=30) as client:
        await client.write_event(SynthesizeStart().event())
        for piece in ["It is sunny", " today. Tomorrow", " it will rain", " in the afternoon."]:
            await client.write_event(SynthesizeChunk(text=piece).event())
        await client.write_event(SynthesizeStop().event())
        starts = stops = 0
        samples = 0
        while True:
            event = await client.read_event()
            assert event is not None
            if AudioStart.is_type(event.type):
                starts += 1
            elif AudioChunk.is_type(event.type):
                samples += len(AudioChunk.from_event(event).audio) // 2
            elif AudioStop.is_type(event.type):
                stops += 1
            elif SynthesizeStopped.is_type(event.type):
                break
    assert starts == stops >= 2
    assert 2.0 < samples / 16000 < 9.0


async def test_bad_requests_get_errors_and_the_connection_survives(
    companion_serve: ServerProcess, speech_set: list[Utterance]
) -> None:
    (u,) = _pick(speech_set, ["coquitts_2.wav"])
    async with AsyncTcpClient(*companion_serve.host_port, connect_timeout=10, read_timeout=30) as client:
        await client.write_event(Transcribe(language="de").event())
        event = await client.read_event()
        assert event is not None and Error.is_type(event.type)
        assert "'de' is not supported" in Error.from_event(event).text

        await client.write_event(AudioStart(rate=16000, width=5, channels=1).event())
        event = await client.read_event()
        assert event is not None and Error.is_type(event.type)
        assert "width" in Error.from_event(event).text

        # The same connection still transcribes.
        await client.write_event(Transcribe(language="en-US").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=u.pcm().tobytes()).event())
        await client.write_event(AudioStop().event())
        event = await client.read_event()
        assert event is not None and Transcript.is_type(event.type)
        assert normalize(Transcript.from_event(event).text) == normalize(u.transcript)


async def test_concurrent_clients_share_the_engines(
    companion_serve: ServerProcess, speech_set: list[Utterance]
) -> None:
    utterances = _pick(speech_set, ["coquitts_2.wav", "mfa_12.wav", "coquitts_8.wav"])
    results = await asyncio.gather(
        *(transcribe(companion_serve.host_port, u.pcm(), chunk_ms=100) for u in utterances),
        synthesize(companion_serve.host_port, "One moment please."),
    )
    for u, (text, _, _) in zip(utterances, results[:3], strict=True):
        assert wer(u.transcript, text) <= 0.25, (u.path.name, text)
    assert len(results[3][0]) > 8000
