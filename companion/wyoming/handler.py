"""One Wyoming client connection to `companion serve`: describe, transcribe and synthesize.

Events are the `wyoming` package's own classes; this module only decides what companion does with them.
A connection may carry several requests one after another (Home Assistant opens one per request; other
clients reuse theirs). A bad request gets a Wyoming `error` event naming the problem, and the connection
stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from companion.tts.chunker import SentenceChunker
from companion.wyoming.audio import CHANNELS, SAMPLE_RATE, WIDTH, AudioFormatError, InputConverter, pcm_chunks
from companion.wyoming.info import stt_languages
from companion.wyoming.transcription import AudioTooLong, StreamTranscription

log = logging.getLogger(__name__)

# Home Assistant's VAD sensitivity for a request -> factor on the end-of-turn silence.
_SENSITIVITY = {"default": 1.0, "relaxed": 2.0, "aggressive": 0.6}


@dataclass
class ServeEngines:
    """What every connection shares: the loaded STT and TTS engines, the info event, the turn settings."""

    stt: Any  # companion.stt.WhisperSTT (atranscribe)
    tts: Any  # companion.tts.TTSEngine (stream)
    info: Info
    turn: Any  # companion.config.TurnConfig
    stt_model: str
    endpointing: bool = True


class CompanionEventHandler(AsyncEventHandler):
    """Serves one connection. Owns its transcription and its answer task; `disconnect` cancels them."""

    def __init__(
        self, engines: ServeEngines, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(reader, writer)
        self.engines = engines
        self._info_event = engines.info.event()
        self._converter = InputConverter()
        self._transcribe: Transcribe | None = None
        self._transcription: StreamTranscription | None = None
        self._answer: asyncio.Task[None] | None = None
        self._synth_text: SentenceChunker | None = None  # a streaming synthesis is open
        self._synth_queue: asyncio.Queue[str | None] | None = None
        self._synth_task: asyncio.Task[None] | None = None

    # -- dispatch

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except ConnectionError as exc:  # the client hung up while we answered: not our error
            log.info("client disconnected during %s: %s", event.type, exc)
            return False
        except (AudioFormatError, AudioTooLong, KeyError, TypeError, ValueError) as exc:
            log.warning("bad %s event: %s", event.type, exc)
            await self._reset_transcription()
            await self.write_event(Error(text=f"{event.type}: {exc}", code="bad-request").event())
        return True

    async def _dispatch(self, event: Event) -> None:
        if Describe.is_type(event.type):
            await self.write_event(self._info_event)
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(event.type):
            await self._on_transcribe(Transcribe.from_event(event))
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            await self._begin_audio()
            self._converter.start(start.rate, start.width, start.channels)
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            if self._transcription is None:
                await self._begin_audio()  # audio without audio-start: accepted, as other servers do
            assert self._transcription is not None
            pcm = self._converter.push(chunk.audio, chunk.rate, chunk.width, chunk.channels)
            self._transcription.feed(pcm)
        elif AudioStop.is_type(event.type):
            await self._on_audio_stop()
        elif SynthesizeStart.is_type(event.type):
            await self._on_synthesize_start()
        elif SynthesizeChunk.is_type(event.type):
            self._on_synthesize_chunk(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type):
            await self._on_synthesize_stop()
        elif Synthesize.is_type(event.type):
            if self._synth_text is not None:
                return  # sent alongside a streaming request for older servers: the stream is spoken
            await self._synthesize(Synthesize.from_event(event).text)
        else:
            log.debug("ignoring %s event", event.type)

    # -- speech recognition

    async def _on_transcribe(self, request: Transcribe) -> None:
        if request.language:
            base = request.language.replace("_", "-").split("-")[0].lower()
            supported = stt_languages(self.engines.stt_model)
            if base not in supported:
                raise ValueError(
                    f"language {request.language!r} is not supported by {self.engines.stt_model} "
                    f"(it transcribes: {', '.join(supported)})"
                )
        await self._reset_transcription()
        self._transcribe = request

    async def _begin_audio(self) -> None:
        """A new audio stream: a fresh transcription with the request's end-of-turn settings."""
        request = self._transcribe
        await self._reset_transcription()
        self._transcribe = request
        turn = self.engines.turn
        sensitivity = request.vad_sensitivity if request is not None else None
        factor = _SENSITIVITY.get(getattr(sensitivity, "value", sensitivity) or "default", 1.0)
        if factor != 1.0:
            silence = int(min(2000, max(100, turn.end_silence_ms * factor)))
            turn = turn.model_copy(
                update={"end_silence_ms": silence, "fallback_ms": max(turn.fallback_ms, silence)}
            )
        # a client that finds the end of the turn itself (a companion bridge streaming during speech) says
        # so in the request's context: its stream must not be cut at a pause
        client_ends = request is not None and (request.context or {}).get("endpointing") is False
        endpointing = self.engines.endpointing and not client_ends
        transcription = StreamTranscription(self.engines.stt, turn, endpointing=endpointing)
        self._transcription = transcription
        self._answer = asyncio.create_task(self._send_transcript(transcription), name="wyoming-answer")

    async def _on_audio_stop(self) -> None:
        transcription = self._transcription
        if transcription is None:
            await self.write_event(Transcript(text="").event())  # audio-stop with no audio: nothing said
            return
        tail = self._converter.finish()
        if len(tail):
            transcription.feed(tail)
        transcription.finish()
        if self._answer is not None:
            await asyncio.shield(self._answer)  # the transcript goes out before the next request is read
        await self._reset_transcription()

    async def _send_transcript(self, transcription: StreamTranscription) -> None:
        t0 = time.monotonic()
        try:
            text = await transcription.result()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("transcription failed: %r", exc)
            await self.write_event(Error(text=f"transcription failed: {exc}", code="stt-failed").event())
            return
        language = "en" if stt_languages(self.engines.stt_model) == ["en"] else None
        if self._transcribe is not None and self._transcribe.language:
            language = self._transcribe.language
        log.info(
            "transcript (%.1f s of audio, %s, %.0f ms after the last wait): %r",
            transcription.audio_s,
            "end of speech in the stream" if transcription.early else "at audio-stop",
            (time.monotonic() - t0) * 1000,
            text,
        )
        await self.write_event(Transcript(text=text, language=language).event())

    async def _reset_transcription(self) -> None:
        transcription, answer = self._transcription, self._answer
        self._transcription, self._answer, self._transcribe = None, None, None
        if answer is not None and not answer.done():
            answer.cancel()
        if transcription is not None:
            await transcription.aclose()
        if answer is not None:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await answer

    # -- speech synthesis

    async def _synthesize(self, text: str) -> None:
        """One utterance: audio-start, chunks as each sentence is synthesised, audio-stop."""
        await self.write_event(AudioStart(rate=SAMPLE_RATE, width=WIDTH, channels=CHANNELS).event())
        samples = 0
        try:
            async with contextlib.aclosing(self.engines.tts.stream(text)) as audio:
                async for pcm in audio:
                    for data in pcm_chunks(pcm):
                        await self.write_event(
                            AudioChunk(rate=SAMPLE_RATE, width=WIDTH, channels=CHANNELS, audio=data).event()
                        )
                    samples += len(pcm)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:
            log.error("synthesis failed: %r", exc)
            await self.write_event(AudioStop().event())
            await self.write_event(Error(text=f"synthesis failed: {exc}", code="tts-failed").event())
            return
        await self.write_event(AudioStop(timestamp=samples * 1000 // SAMPLE_RATE).event())

    async def _on_synthesize_start(self) -> None:
        await self._close_synthesis()
        self._synth_text = SentenceChunker()
        self._synth_queue = asyncio.Queue()
        self._synth_task = asyncio.create_task(self._speak_stream(self._synth_queue), name="wyoming-tts")

    def _on_synthesize_chunk(self, text: str) -> None:
        if self._synth_text is None or self._synth_queue is None:
            raise ValueError("synthesize-chunk without synthesize-start")
        for sentence in self._synth_text.feed(text):
            self._synth_queue.put_nowait(sentence)

    async def _on_synthesize_stop(self) -> None:
        if self._synth_text is None or self._synth_queue is None or self._synth_task is None:
            raise ValueError("synthesize-stop without synthesize-start")
        for sentence in self._synth_text.flush():
            self._synth_queue.put_nowait(sentence)
        self._synth_queue.put_nowait(None)
        await asyncio.shield(self._synth_task)
        self._synth_text = self._synth_queue = self._synth_task = None
        await self.write_event(SynthesizeStopped().event())

    async def _speak_stream(self, sentences: asyncio.Queue[str | None]) -> None:
        """Speak sentences as the client's text completes them, one audio-start/stop per sentence."""
        while (sentence := await sentences.get()) is not None:
            if sentence.strip():
                await self._synthesize(sentence)

    async def _close_synthesis(self) -> None:
        task = self._synth_task
        self._synth_text = self._synth_queue = self._synth_task = None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task

    # -- lifetime

    async def disconnect(self) -> None:
        """The client left: cancel its transcription and synthesis."""
        await self._reset_transcription()
        await self._close_synthesis()
