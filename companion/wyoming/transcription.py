"""One Wyoming `transcribe` request: audio in, one transcript out, as soon as the speech has ended.

A live stream (a microphone, paced at real time) goes through companion's `TurnDetector`: the end of
speech is found in the stream itself and, thanks to the speculative transcript made at the pause, the
text is usually ready the moment the end-of-turn silence runs out — before the client's own VAD sends
`audio-stop`. A stream that arrives faster than real time is a file being uploaded: cutting it at its
first pause would lose the rest, so it is transcribed whole at `audio-stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import numpy as np

from companion.stt.turn import Turn, TurnDetector

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
AHEAD_OF_REAL_TIME_S = 0.75  # a stream this far ahead of the wall clock is a file upload, not a microphone
MAX_AUDIO_S = 600.0  # what one request may carry; longer streams get an error instead of eating memory


class AudioTooLong(ValueError):
    """The client sent more audio than one request may carry."""


class StreamTranscription:
    """Collects one request's 16 kHz mono audio and produces its transcript once.

    `feed()` is synchronous (called from the connection's event handler); `result()` waits for the text:
    early, when the detector ends the turn in a live stream, or after `finish()` (the client's
    `audio-stop`). `aclose()` cancels whatever is still running.
    """

    def __init__(self, stt: Any, turn_config: Any, *, endpointing: bool = True) -> None:
        self.stt = stt
        self._parts: list[np.ndarray] = []
        self._samples = 0
        self._t_start: float | None = None
        self._detector: TurnDetector | None = (
            TurnDetector.from_config(stt, turn_config) if endpointing else None
        )
        self._done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._watcher: asyncio.Task[None] | None = None
        self._final: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.early = False  # the transcript came from the stream's own end of speech
        if self._detector is not None:
            self._watcher = asyncio.create_task(self._watch(self._detector), name="wyoming-turn")

    @property
    def audio_s(self) -> float:
        return self._samples / SAMPLE_RATE

    @property
    def done(self) -> bool:
        return self._done.done()

    def feed(self, pcm: np.ndarray) -> None:
        """Add 16 kHz mono int16 audio; ignored once the transcript is decided."""
        if self._done.done() or not len(pcm):
            return
        if self._samples + len(pcm) > MAX_AUDIO_S * SAMPLE_RATE:
            raise AudioTooLong(f"one transcribe request may carry at most {MAX_AUDIO_S:.0f} s of audio")
        now = time.monotonic()
        if self._t_start is None:
            self._t_start = now
        t = self._samples / SAMPLE_RATE
        self._parts.append(pcm)
        self._samples += len(pcm)
        detector = self._detector
        if detector is None:
            return
        if self.audio_s - (now - self._t_start) > AHEAD_OF_REAL_TIME_S:
            log.debug("audio arrives faster than real time: transcribing it whole at audio-stop")
            self._stop_detector()
            return
        detector.feed(pcm, t)

    def finish(self) -> None:
        """The client's audio-stop: transcribe what came, unless the stream has already been answered."""
        if self._done.done() or self._final is not None:
            return
        self._stop_detector()
        audio = np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.int16)
        self._final = asyncio.create_task(self._transcribe_all(audio), name="wyoming-transcribe")

    async def result(self) -> str:
        return await asyncio.shield(self._done)

    async def _transcribe_all(self, audio: np.ndarray) -> None:
        try:
            transcript = await self.stt.atranscribe(audio)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._settle(exc)
            return
        self._settle(transcript.text)

    async def _watch(self, detector: TurnDetector) -> None:
        try:
            async with contextlib.aclosing(detector.events()) as events:
                async for event in events:
                    if not isinstance(event, Turn):
                        continue
                    log.debug("end of speech found in the stream (%s): %r", event.reason, event.text)
                    self.early = True
                    self._settle(event.text)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an STT failure: the request fails with it
            self._settle(exc)

    def _settle(self, outcome: str | BaseException) -> None:
        if self._done.done():
            return
        if isinstance(outcome, BaseException):
            self._done.set_exception(outcome)
        else:
            self._done.set_result(outcome.strip())
        self._stop_detector()

    def _stop_detector(self) -> None:
        """Stop end-of-speech detection (its task ends; aclose() awaits it)."""
        watcher = self._watcher
        if watcher is not None and not watcher.done() and watcher is not asyncio.current_task():
            watcher.cancel()
        if self._detector is not None:
            detector, self._detector = self._detector, None
            task = asyncio.get_running_loop().create_task(detector.aclose(), name="wyoming-turn-close")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Cancel detection and transcription still running; the transcript, if not ready, is dropped."""
        self._stop_detector()
        tasks = [t for t in (self._watcher, self._final) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *list(self._closing), return_exceptions=True)
        if not self._done.done():
            self._done.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            self._done.exception()
