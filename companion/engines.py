"""The heavy parts, loaded once and shared by every session: speech recognition, the voice, the LLM client.

Loading runs in worker threads (the event loop stays free) and reports progress, since it takes a second
or two. Each engine serialises its own inference in one worker thread, so sessions share it fairly (FIFO).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from companion.config import Config

if TYPE_CHECKING:
    from companion.llm.base import LLMBackend
    from companion.stt.base import SpeechRecognizer
    from companion.tts.base import TTSEngine

log = logging.getLogger(__name__)


class EngineUnavailable(RuntimeError):
    """A model, voice or library is missing; the message says what to install or start."""


@dataclass
class Engines:
    """The loaded engines every session shares."""

    stt: SpeechRecognizer
    tts: TTSEngine
    llm: LLMBackend | None  # None: the built-in skills answer everything

    @classmethod
    async def load(cls, config: Config, progress: Callable[[str], None] | None = None) -> Engines:
        """Load STT and TTS concurrently in threads, warm both up, and make the LLM client."""
        report = progress or (lambda message: log.info("%s", message))
        try:
            from companion.stt import ModelNotAvailable, WhisperSTT
            from companion.tts import VoiceNotAvailable, create_tts
        except ImportError as exc:
            raise EngineUnavailable(f"{exc.name} is missing: pip install 'companion[stt,tts]'") from exc

        from companion.remote.factory import remote_stt, remote_tts

        t0 = time.monotonic()
        report(f"loading speech recognition ({config.stt.model}) and voice ({config.tts.engine})...")
        try:
            stt: SpeechRecognizer = remote_stt(config) or WhisperSTT(
                config.stt.model, compute_type=config.stt.compute_type, cpu_threads=config.stt.threads
            )
            tts_options: dict[str, object] = {}
            if config.tts.voice:
                tts_options["voice"] = config.tts.voice
            if config.tts.engine == "openai":
                tts_options.update(base_url=config.tts.base_url, model=config.tts.model)
            tts = remote_tts(config) or create_tts(config.tts.engine, **tts_options)
            await asyncio.gather(asyncio.to_thread(stt.load), asyncio.to_thread(tts.load))
        except (ModelNotAvailable, VoiceNotAvailable) as exc:
            raise EngineUnavailable(str(exc)) from exc
        remote = [engine for engine in (stt, tts) if hasattr(engine, "astart")]
        # remote servers: check them (one that is down is retried, not fatal); they keep themselves warm
        await asyncio.gather(*(engine.astart() for engine in remote))
        # Warm the local ones up on real speech, so the first turn does not pay for lazy initialisation (the
        # first decode of a real utterance costs ~3x a warm one).
        speech = [chunk async for chunk in tts.stream("Hello, what time is it?")] if tts not in remote else []
        if stt not in remote:
            await stt.atranscribe(np.concatenate(speech) if speech else np.zeros(16000, dtype=np.int16))
        report(f"models ready in {time.monotonic() - t0:.1f} s")
        return cls(stt=stt, tts=tts, llm=make_llm(config))

    async def aclose(self) -> None:
        if self.llm is not None:
            close = getattr(self.llm, "aclose", None)  # LLMBackend does not require one
            if close is not None:
                await close()
        await self.tts.aclose()
        await self.stt.aclose()


def make_llm(config: Config) -> LLMBackend | None:
    """The configured LLM backend, or None for the offline skills."""
    if config.llm.backend == "skills":
        return None
    if not config.llm.base_url:
        raise EngineUnavailable("llm.backend is 'openai' but llm.base_url is not set")
    try:
        from companion.llm.openai_backend import OpenAIBackend
    except ImportError as exc:
        raise EngineUnavailable("the OpenAI client is missing: pip install 'companion[llm]'") from exc
    return OpenAIBackend(
        base_url=config.llm.base_url,
        model=config.llm.model,
        api_key=config.llm.api_key,
        timeout_s=config.llm.timeout_s,
        first_token_timeout_s=min(config.llm.first_token_timeout_s, config.llm.timeout_s),
        max_retries=config.llm.max_retries,
        temperature=config.llm.temperature,
        max_tokens=config.llm.max_tokens,
    )
