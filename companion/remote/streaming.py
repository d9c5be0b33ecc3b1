"""Remote speech recognition streamed during speech, with the same failover as a whole-utterance request.

`RemoteSTT.open_stream()` gives a `StreamedTranscription`: `push()` each frame while the wearer speaks,
`finish()` at the end of the turn. On a Wyoming pool the audio goes to the preferred healthy server as it
arrives (audio-start on the first push), so after the end of speech only the audio-stop, the server's
decode and the transcript remain: the upload and the connection set-up are off the critical path. The audio
is also kept here: if the streaming server fails (at connect, mid-stream or at the end), `finish()` sends
the whole utterance through the pool (`RemoteSTT.atranscribe`), which tries the other servers within the
deadline, so no turn is lost to a server that dies mid-sentence. OpenAI-compatible servers take a finished
file only; their streams buffer and upload at `finish()`.

What a caller must do (the turn detector, `companion/stt/turn.py`, does not yet): open a stream at speech
start (with the pre-roll), push every frame, `finish()` at end of turn, `aclose()` a stream it abandons.
A speculative transcript at a pause cannot reuse the stream (a Wyoming transcription ends at its stop);
the detector would keep the whole-utterance request for speculation and stream the final one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from companion.stt.whisper import Transcript
from companion.tts.base import SAMPLE_RATE

if TYPE_CHECKING:
    from companion.remote.clients import WyomingTranscription
    from companion.remote.engines import RemoteSTT
    from companion.remote.pool import Endpoint

log = logging.getLogger(__name__)


class StreamedTranscription:
    """One utterance sent while it is spoken; see the module docstring."""

    def __init__(self, stt: RemoteSTT) -> None:
        self._stt = stt
        self._parts: list[np.ndarray] = []
        self._endpoint: Endpoint | None = None
        self._stream: WyomingTranscription | None = None
        self._failed = stt.engine != "wyoming"  # nothing to stream to: buffer, upload at the end
        self.streamed_to: str | None = None

    async def push(self, pcm: np.ndarray) -> None:
        """Keep `pcm` (16 kHz mono int16) and send it to the streaming server; a failure is remembered, not
        raised (the utterance then goes through the pool at `finish()`). One push at a time, in order."""
        pcm = np.asarray(pcm, dtype=np.int16)
        self._parts.append(pcm)
        if self._failed:
            return
        try:
            stream = self._stream
            if stream is None:
                healthy = [e for e in self._stt.pool.order() if e.healthy]
                if not healthy:
                    self._failed = True
                    return
                self._endpoint = healthy[0]
                async with asyncio.timeout(self._stt.pool.deadline_s):
                    opened: WyomingTranscription = await self._endpoint.client.open_transcription(
                        self._stt.language
                    )
                stream = self._stream = opened
                self.streamed_to = self._endpoint.url
                pcm = np.concatenate(self._parts)
            await stream.push(pcm)
        except asyncio.CancelledError:
            await self.aclose()
            raise
        except Exception as exc:
            await self._drop(exc)

    async def finish(self) -> Transcript:
        """The transcript of everything pushed."""
        t0 = time.perf_counter()
        audio = np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.int16)
        if self._stream is not None and not self._failed:
            stream, self._stream = self._stream, None
            try:
                async with asyncio.timeout(self._stt.pool.deadline_s):
                    text = await stream.finish()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._drop(exc, stream)
            else:
                assert self._endpoint is not None
                self._endpoint.mark(True)
                ms = (time.perf_counter() - t0) * 1000
                return Transcript(text, len(audio) / SAMPLE_RATE, ms, f"remote-{self._stt.engine}-streamed")
        return await self._stt.atranscribe(audio)

    async def _drop(self, exc: BaseException, stream: WyomingTranscription | None = None) -> None:
        self._failed = True
        if self._endpoint is not None:
            reason = "no answer in time" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            self._endpoint.mark(False, reason)
            log.warning(
                "streaming to %s failed (%s): the utterance goes to the pool", self._endpoint.url, reason
            )
        stream = stream or self._stream
        self._stream = None
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.aclose()

    async def aclose(self) -> None:
        """Abandon the stream (speech resumed elsewhere, the session ended)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.aclose()
