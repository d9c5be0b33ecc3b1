"""One request to one remote speech server.

Wyoming clients use the `wyoming` package's events and `AsyncClient` (a fresh connection per request, as
Home Assistant does: no state to go stale when a server restarts). The transcription client speaks the
OpenAI audio API (`/v1/audio/transcriptions`) through the `openai` package, so any compatible server
works: faster-whisper-server, speaches, vLLM, OpenAI itself.
"""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize

from companion.wyoming.audio import CHANNELS, SAMPLE_RATE, WIDTH, InputConverter, pcm_chunks


class RemoteError(RuntimeError):
    """A server answered with an error or broke the protocol."""


def check_wyoming_uri(uri: str) -> str:
    """tcp://HOST:PORT or unix://PATH; ValueError otherwise."""
    AsyncClient.from_uri(uri)  # raises ValueError with the accepted schemes
    return uri


class WyomingClient:
    """Requests to one Wyoming server (`tcp://host:port` or `unix://path`)."""

    def __init__(self, uri: str, *, connect_timeout_s: float = 1.0, read_timeout_s: float = 30.0) -> None:
        self.uri = check_wyoming_uri(uri)
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s

    def _connect(self) -> AsyncClient:
        return AsyncClient.from_uri(
            self.uri, connect_timeout=self.connect_timeout_s, read_timeout=self.read_timeout_s
        )

    async def describe(self) -> Info:
        async with self._connect() as client:
            await client.write_event(Describe().event())
            while True:
                event = await client.read_event()
                if event is None:
                    raise RemoteError(f"{self.uri} closed the connection before answering describe")
                if Info.is_type(event.type):
                    return Info.from_event(event)

    async def probe_asr(self) -> None:
        if not (await self.describe()).asr:
            raise RemoteError(f"{self.uri} offers no speech recognition")

    async def probe_tts(self) -> None:
        if not (await self.describe()).tts:
            raise RemoteError(f"{self.uri} offers no text to speech")

    async def transcribe(self, pcm: np.ndarray, language: str | None = "en") -> str:
        """The text of 16 kHz mono int16 `pcm`."""
        async with self._connect() as client:
            await client.write_event(Transcribe(language=language).event())
            await client.write_event(AudioStart(rate=SAMPLE_RATE, width=WIDTH, channels=CHANNELS).event())
            for data in pcm_chunks(pcm):
                await client.write_event(
                    AudioChunk(rate=SAMPLE_RATE, width=WIDTH, channels=CHANNELS, audio=data).event()
                )
            await client.write_event(AudioStop().event())
            while True:
                event = await client.read_event()
                if event is None:
                    raise RemoteError(f"{self.uri} closed the connection before the transcript")
                if Transcript.is_type(event.type):
                    return Transcript.from_event(event).text.strip()
                if Error.is_type(event.type):
                    raise RemoteError(f"{self.uri}: {Error.from_event(event).text}")

    async def open_transcription(self, language: str | None = "en") -> WyomingTranscription:
        """A transcription streamed while the wearer speaks (see `WyomingTranscription`)."""
        stream = WyomingTranscription(self._connect(), self.uri)
        await stream.start(language)
        return stream

    async def synthesize(self, text: str) -> AsyncGenerator[np.ndarray, None]:
        """`text` spoken, as 16 kHz mono int16 chunks in whatever format the server chose converted."""
        converter = InputConverter()
        async with self._connect() as client:
            await client.write_event(Synthesize(text=text).event())
            while True:
                event = await client.read_event()
                if event is None:
                    raise RemoteError(f"{self.uri} closed the connection during synthesis")
                if AudioChunk.is_type(event.type):
                    chunk = AudioChunk.from_event(event)
                    pcm = converter.push(chunk.audio, chunk.rate, chunk.width, chunk.channels)
                    if len(pcm):
                        yield pcm
                elif AudioStop.is_type(event.type):
                    tail = converter.finish()
                    if len(tail):
                        yield tail
                    return
                elif Error.is_type(event.type):
                    raise RemoteError(f"{self.uri}: {Error.from_event(event).text}")


class WyomingTranscription:
    """One transcription streamed as the audio arrives: transcribe + audio-start when speech starts, chunks
    while the wearer talks, audio-stop at the end of the turn; only the stop and the decode remain after it.

    A server that finds the end of speech in the stream itself (`companion serve`) may answer before the
    stop; `finish()` then reads the transcript that is already waiting.
    """

    def __init__(self, client: AsyncClient, uri: str) -> None:
        self._client = client
        self.uri = uri
        self._open = False

    async def start(self, language: str | None) -> None:
        await self._client.connect()
        self._open = True
        # the bridge's turn detector ends the turn: `companion serve` must not cut the stream at a pause
        # (other servers ignore the context)
        request = Transcribe(language=language, context={"endpointing": False})
        await self._client.write_event(request.event())
        await self._client.write_event(AudioStart(rate=SAMPLE_RATE, width=WIDTH, channels=CHANNELS).event())

    async def push(self, pcm: np.ndarray) -> None:
        """Send 16 kHz mono int16 audio (any length)."""
        for data in pcm_chunks(pcm):
            await self._client.write_event(
                AudioChunk(rate=SAMPLE_RATE, width=WIDTH, channels=CHANNELS, audio=data).event()
            )

    async def finish(self) -> str:
        """Send audio-stop and return the transcript; the connection is closed either way."""
        try:
            try:
                await self._client.write_event(AudioStop().event())
            except ConnectionError:
                pass  # it may have answered (end of speech found in the stream) and closed: read on
            while True:
                event = await self._client.read_event()
                if event is None:
                    raise RemoteError(f"{self.uri} closed the connection before the transcript")
                if Transcript.is_type(event.type):
                    return Transcript.from_event(event).text.strip()
                if Error.is_type(event.type):
                    raise RemoteError(f"{self.uri}: {Error.from_event(event).text}")
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            await self._client.disconnect()


def wav_bytes(pcm: np.ndarray) -> bytes:
    """16 kHz mono int16 audio as a WAV file in memory."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(CHANNELS)
        w.setsampwidth(WIDTH)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return buffer.getvalue()


class OpenAITranscriptionClient:
    """`/v1/audio/transcriptions` on an OpenAI-compatible server (`base_url` ends in /v1)."""

    def __init__(self, base_url: str, *, model: str = "whisper-1", api_key: str | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{base_url!r}: an OpenAI-compatible base URL starts with http:// or https://")
        import openai

        self.uri = base_url.rstrip("/")
        self.model = model
        # No client retries: failover to the next endpoint is faster than retrying a dead one.
        self._client = openai.AsyncOpenAI(
            base_url=self.uri, api_key=api_key or "sk-no-key-required", max_retries=0
        )

    async def transcribe(self, pcm: np.ndarray, language: str | None = "en") -> str:
        # only the language may vary; a dict of Any, since `openai.omit` is newer than our oldest openai
        extra: dict[str, Any] = {"language": language} if language else {}
        result = await self._client.audio.transcriptions.create(
            model=self.model,
            file=("speech.wav", wav_bytes(pcm), "audio/wav"),
            response_format="json",
            **extra,
        )
        return str(getattr(result, "text", result)).strip()

    async def probe(self) -> None:
        """The server answers HTTP (any status below 500 on GET /models): it is up and serving."""
        import httpx

        async with httpx.AsyncClient(timeout=2.0) as http:
            reply = await http.get(f"{self.uri}/models")
        if reply.status_code >= 500:
            raise RemoteError(f"{self.uri}/models: HTTP {reply.status_code}")

    async def aclose(self) -> None:
        await self._client.close()
