"""The contract every text-to-speech engine keeps, its errors, and small shared helpers.

Engines stream: `stream(text)` yields mono int16 16 kHz chunks as soon as each is synthesised, so the
first reply audio can play while later sentences are still being made.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Protocol, runtime_checkable

import numpy as np
import soxr

SAMPLE_RATE = 16000
"""The project's audio rate; every engine resamples its output to it."""


class TTSError(RuntimeError):
    """Synthesis failed (engine crashed, server refused, bad output)."""


class VoiceNotAvailable(TTSError):
    """The voice, binary or package an engine needs is missing; the message says what to install."""


@runtime_checkable
class TTSEngine(Protocol):
    """A speech synthesiser.

    Construction is cheap and checks that the engine's files/binaries exist (raising
    `VoiceNotAvailable`); `load()` does the slow part and blocks, so call it from a worker thread.
    """

    name: str
    sample_rate: int

    def load(self) -> None:
        """Load the voice (blocking, idempotent)."""
        ...

    def stream(self, text: str) -> AsyncGenerator[np.ndarray, None]:
        """Yield mono int16 16 kHz chunks of `text` as they are synthesised.

        Cancelling the consumer (or closing the iterator) stops further synthesis promptly. Consume it
        inside `contextlib.aclosing(...)`: a consumer cancelled between chunks then closes it at once
        instead of when the garbage collector finalises the generator.
        """
        ...

    async def aclose(self) -> None:
        """Release worker threads, processes and connections."""
        ...


def check_text(text: object) -> str:
    """Validate what callers pass to `stream()`: it must be a string (empty means no audio)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    return text.strip()


class StreamResampler:
    """Converts one utterance's int16 stream from `in_rate` to 16 kHz without losing samples.

    One instance per utterance: soxr keeps filter state across chunks, and `finish()` flushes the tail
    that the filter still holds.
    """

    def __init__(self, in_rate: int) -> None:
        self._stream = (
            None if in_rate == SAMPLE_RATE else soxr.ResampleStream(in_rate, SAMPLE_RATE, 1, dtype="int16")
        )

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples)

    def finish(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)


async def synthesize(engine: TTSEngine, text: str) -> np.ndarray:
    """The whole utterance as one int16 16 kHz array (for `say`, fixtures and tests, not for replies)."""
    async with aclosing(engine.stream(text)) as chunks:
        parts = [chunk async for chunk in chunks]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
