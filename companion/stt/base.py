"""What a session, the turn detector and the Wyoming server need from speech recognition.

Local Whisper (`companion.stt.whisper.WhisperSTT`) and the remote pools (`companion.remote.RemoteSTT`)
both satisfy it, so everything above them is written once against this seam (and tested with a fake).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from companion.stt.whisper import Transcript

__all__ = ["PassRecognizer", "SpeechRecognizer", "Transcript"]


@runtime_checkable
class SpeechRecognizer(Protocol):
    """Turns a finished stretch of 16 kHz mono audio into text, off the event loop."""

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` has run (remote engines have nothing to load: always True)."""
        ...

    def load(self) -> None:
        """Do the slow part (blocking, idempotent): call it from a worker thread."""
        ...

    async def atranscribe(self, pcm: np.ndarray) -> Transcript:
        """The transcript of ``pcm`` (int16 or float in [-1, 1]); inference runs in a worker thread.

        Remote engines raise `companion.remote.errors.SpeechServiceUnavailable` when every server failed.
        """
        ...

    async def aclose(self) -> None:
        """Release worker threads and connections."""
        ...


@runtime_checkable
class PassRecognizer(SpeechRecognizer, Protocol):
    """A recogniser that also knows the turn detector's kinds of pass (local Whisper only).

    Drafts at pauses skip the costly short-clip re-read, and `after` carries the turn's words already
    committed so only the audio after them is decoded. Remote engines transcribe whole turns instead.
    """

    async def apass(self, pcm: np.ndarray, kind: str = "final", *, after: str = "") -> Transcript:
        """One pass of kind "draft", "final" or "reread" over ``pcm``; the result holds only new words."""
        ...


if TYPE_CHECKING:  # both engines satisfy the seam: mypy checks this, nothing runs it
    from companion.remote.engines import RemoteSTT
    from companion.stt.whisper import WhisperSTT

    def _both_are_recognisers(local: WhisperSTT, remote: RemoteSTT) -> list[SpeechRecognizer]:
        return [local, remote]

    def _whisper_takes_passes(local: WhisperSTT) -> PassRecognizer:
        return local
