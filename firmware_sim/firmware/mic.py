"""The wearer's voice reaching the microphone: a queue of utterances played in real time on the headset clock.

``say*`` queue an utterance and return when its last sample has entered the mic, with the headset-clock
time of that sample's end. Utterances queued back to back follow each other without a gap; between them
the wearer is silent. The headset adds its own noise and the speaker's echo on top (see the firmware).
"""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE, TICK_SAMPLES
from .voice import check_pcm, load_wav, synthesize


class MicClosed(RuntimeError):
    """The headset was closed before an utterance finished."""


class Mic:
    """The acoustic input: utterances in, one 20 ms block of voice samples per tick out."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: deque[tuple[np.ndarray, asyncio.Future[float], str]] = deque()
        self._pos = 0
        self.utterances = 0
        self.spoken_samples = 0
        self.current: str | None = None  # label of the utterance being spoken
        self.block_label: str | None = None  # label of the utterance heard in the latest block

    @property
    def speaking(self) -> bool:
        return bool(self._queue)

    @property
    def queued_s(self) -> float:
        """Seconds of voice still to be spoken."""
        return (sum(len(p) for p, _, _ in self._queue) - self._pos) / SAMPLE_RATE

    async def say(self, pcm: np.ndarray, label: str = "pcm") -> float:
        """Speak mono int16 16 kHz samples; returns the headset-clock time at which the last one ended."""
        pcm = check_pcm(pcm)
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if len(pcm) == 0:
            raise ValueError("say() got an empty utterance")
        self._queue.append((pcm.copy(), fut, label))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            self._drop(fut)
            raise

    async def say_wav(self, path: str | Path) -> float:
        """Speak a WAV file (any rate, mono or stereo; resampled to 16 kHz)."""
        pcm = await asyncio.to_thread(load_wav, path)
        return await self.say(pcm, label=Path(path).name)

    async def say_text(self, text: str) -> float:
        """Speak ``text`` in the bundled piper voice (synthesised in a worker thread)."""
        pcm = await asyncio.to_thread(synthesize, text)
        return await self.say(pcm, label=repr(text[:60]))

    def _drop(self, fut: asyncio.Future[float]) -> None:
        for i, (_, f, _) in enumerate(self._queue):
            if f is fut:
                if i == 0:
                    self._pos = 0
                del self._queue[i]
                return

    def next_block(self, t_start: float) -> np.ndarray:
        """The voice samples of the tick starting at headset time ``t_start`` (zeros when silent)."""
        out = np.zeros(TICK_SAMPLES, dtype=np.int16)
        filled = 0
        self.block_label = self._queue[0][2] if self._queue else None
        while filled < TICK_SAMPLES and self._queue:
            pcm, fut, label = self._queue[0]
            self.current = label
            n = min(TICK_SAMPLES - filled, len(pcm) - self._pos)
            out[filled : filled + n] = pcm[self._pos : self._pos + n]
            filled += n
            self._pos += n
            if self._pos >= len(pcm):
                self._queue.popleft()
                self._pos = 0
                self.utterances += 1
                self.current = None
                if not fut.done():
                    fut.set_result(t_start + filled / SAMPLE_RATE)
        self.spoken_samples += filled
        return out

    def close(self) -> None:
        while self._queue:
            _, fut, _ = self._queue.popleft()
            if not fut.done():
                fut.set_exception(MicClosed(f"{self.name} was closed before the utterance ended"))
                fut.exception()  # retrieved here, so an abandoned future does not log a warning
        self._pos = 0
