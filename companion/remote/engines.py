"""`RemoteSTT` and `RemoteTTS`: speech engines on other machines, used exactly like the local ones.

`RemoteSTT.atranscribe` is what the turn detector calls on `WhisperSTT`; `RemoteTTS.stream` is a
`TTSEngine`. Both spread over an `EndpointPool` (failover in order, background health probes). When every
STT endpoint fails within the deadline, `SpeechServiceUnavailable` reaches the session, which speaks its
fallback line and listens again: the next turn tries every endpoint anew. `RemoteTTS` falls back to a local
voice (espeak-ng or piper) when every TTS endpoint fails, so the fallback line itself is always spoken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np

from companion.remote.clients import OpenAITranscriptionClient, WyomingClient
from companion.remote.errors import SpeechServiceUnavailable
from companion.remote.pool import AllEndpointsFailed, Endpoint, EndpointPool
from companion.remote.streaming import StreamedTranscription
from companion.stt.whisper import Transcript
from companion.tts.base import SAMPLE_RATE, TTSError, check_text

log = logging.getLogger(__name__)

_SILENCE_PEAK = 64  # int16 peak below which audio is silence: no request is sent


class RemoteSTT:
    """Speech recognition on remote servers: `engine` "wyoming" (tcp://host:port URIs) or "openai"
    (OpenAI-compatible base URLs ending in /v1, `/audio/transcriptions`)."""

    def __init__(
        self,
        urls: list[str],
        *,
        engine: str = "wyoming",
        model: str = "whisper-1",
        api_key: str | None = None,
        language: str | None = "en",
        deadline_s: float = 1.5,
        probe_interval_s: float = 2.0,
    ) -> None:
        if engine not in ("wyoming", "openai"):
            raise ValueError(f"remote STT engine must be 'wyoming' or 'openai', not {engine!r}")
        clients: list[Any] = [
            WyomingClient(u, connect_timeout_s=min(1.0, deadline_s))
            if engine == "wyoming"
            else OpenAITranscriptionClient(u, model=model, api_key=api_key)
            for u in urls
        ]
        probe = (lambda c: c.probe_asr()) if engine == "wyoming" else (lambda c: c.probe())
        self.pool: EndpointPool[Any] = EndpointPool(
            f"stt ({engine})",
            [Endpoint(c.uri, c) for c in clients],
            probe,
            deadline_s=deadline_s,
            probe_interval_s=probe_interval_s,
        )
        self.engine = engine
        self.language = language
        self.model_name = f"{engine}:{','.join(urls)}"

    @property
    def loaded(self) -> bool:
        return True

    def load(self) -> None:
        """Nothing to load here; `astart()` checks the servers."""

    async def astart(self) -> list[bool]:
        """Check every endpoint once (a server that is down is not fatal) and start the health prober."""
        healthy = await self.pool.check_all()
        for endpoint, ok in zip(self.pool.endpoints, healthy, strict=True):
            if not ok:
                log.warning(
                    "speech recognition at %s is not reachable yet: %s", endpoint.url, endpoint.last_error
                )
        self.pool.start()
        return healthy

    async def atranscribe(self, pcm: np.ndarray) -> Transcript:
        t0 = time.perf_counter()
        pcm = np.asarray(pcm)
        if pcm.dtype != np.int16:
            pcm = (np.clip(pcm, -1.0, 1.0) * 32767).astype(np.int16)
        audio_s = len(pcm) / SAMPLE_RATE
        if len(pcm) < SAMPLE_RATE // 10 or int(np.abs(pcm).max(initial=0)) < _SILENCE_PEAK:
            return Transcript("", audio_s, (time.perf_counter() - t0) * 1000, "silence", 1.0)
        try:
            text = await self.pool.call(lambda client: client.transcribe(pcm, self.language))
        except AllEndpointsFailed as exc:
            raise SpeechServiceUnavailable(str(exc)) from exc
        return Transcript(text, audio_s, (time.perf_counter() - t0) * 1000, f"remote-{self.engine}")

    def open_stream(self) -> StreamedTranscription:
        """An utterance sent while it is spoken (companion/remote/streaming.py), failover included."""
        return StreamedTranscription(self)

    def status(self) -> list[dict[str, object]]:
        return self.pool.status()

    async def aclose(self) -> None:
        await self.pool.aclose()
        for endpoint in self.pool.endpoints:
            close = getattr(endpoint.client, "aclose", None)
            if close is not None:
                await close()


class RemoteTTS:
    """Text to speech on Wyoming servers (wyoming-piper, `companion serve`), with a local fallback voice.

    Failover happens before the first audio of an utterance: an endpoint that does not start speaking
    within the deadline is skipped. A server that fails mid-utterance ends that utterance with TTSError
    (restarting elsewhere would repeat words the wearer already heard).
    """

    name = "wyoming"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        urls: list[str],
        *,
        fallback: Any | None = None,
        deadline_s: float = 1.5,
        probe_interval_s: float = 2.0,
    ) -> None:
        clients = [WyomingClient(u, connect_timeout_s=min(1.0, deadline_s)) for u in urls]
        self.pool: EndpointPool[WyomingClient] = EndpointPool(
            "tts (wyoming)",
            [Endpoint(c.uri, c) for c in clients],
            lambda c: c.probe_tts(),
            deadline_s=deadline_s,
            probe_interval_s=probe_interval_s,
        )
        self.fallback = fallback
        self.deadline_s = deadline_s

    def load(self) -> None:
        """Load the local fallback voice (blocking); the servers are checked by `astart()`."""
        if self.fallback is not None:
            self.fallback.load()

    async def astart(self) -> list[bool]:
        healthy = await self.pool.check_all()
        self.pool.start()
        return healthy

    async def stream(self, text: str) -> AsyncGenerator[np.ndarray, None]:
        text = check_text(text)
        if not text:
            return
        t_end = time.monotonic() + self.deadline_s
        errors: list[str] = []
        for endpoint in self.pool.order():
            left = t_end - time.monotonic()
            if left <= 0:
                break
            audio = endpoint.client.synthesize(text)
            try:
                async with asyncio.timeout(left):
                    first = await anext(audio)
            except StopAsyncIteration:
                endpoint.mark(True)
                return
            except asyncio.CancelledError:
                await audio.aclose()
                raise
            except Exception as exc:
                await audio.aclose()
                reason = (
                    "no audio in time" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
                )
                endpoint.mark(False, reason)
                errors.append(f"{endpoint.url}: {reason}")
                continue
            endpoint.mark(True)
            async with contextlib.aclosing(audio):
                yield first
                try:
                    async for chunk in audio:
                        yield chunk
                except (OSError, RuntimeError, ValueError) as exc:
                    endpoint.mark(False, str(exc))
                    raise TTSError(f"{endpoint.url} failed mid-utterance: {exc}") from exc
            return
        if self.fallback is None:
            raise TTSError("every TTS endpoint failed: " + "; ".join(errors or ["deadline passed"]))
        log.warning(
            "every TTS endpoint failed (%s): speaking with the local %s voice",
            "; ".join(errors),
            self.fallback.name,
        )
        async with contextlib.aclosing(self.fallback.stream(text)) as local:
            async for chunk in local:
                yield chunk

    def status(self) -> list[dict[str, object]]:
        return self.pool.status()

    async def aclose(self) -> None:
        await self.pool.aclose()
        if self.fallback is not None:
            await self.fallback.aclose()
