"""The turn detector's records of its work in progress (private to companion/stt/turn.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from companion.stt.whisper import Transcript


@dataclass(eq=False)
class _Job:
    """One transcription of the turn audio [start, end) in the STT worker; a `draft` (made at a pause,
    before the endpointer's decision) skips the short-clip re-read, which a final pass then does."""

    start: int
    end: int
    t_end_of_speech: float
    audio: np.ndarray
    draft: bool = False
    reread: bool = False  # the final pass of a suspect draft: the re-read alone
    offset: int = 0  # the pass hears [offset, end): the turn's audio after the committed words
    after: str = ""  # the committed words, before the audio at `offset`
    tail: str = ""  # the words this pass heard after `after`
    result: Transcript | None = None
    error: Exception | None = None  # the recogniser failed on a draft nobody waited on yet
    t_done: float = 0.0
    offered: bool = False  # a Hypothesis went out for it
    task: asyncio.Task[None] | None = None
    cue: str = ""  # text_cue() of the result
    p_complete: float | None = None  # the audio model's answer, if asked
    t_model_done: float = 0.0
    model_task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Ending:
    """The endpointer said the speech ended; waiting for the transcript, or for more speech.

    `wait_s`: the silence after which the turn ends anyway (`fallback_ms` for a fragment, `unsure_ms`
    for a held transcript); `reason` is the Turn's reason when it does.
    """

    job: _Job
    t_decided: float
    forced: bool
    wait_s: float = 0.0
    reason: str = "fallback"
    t_start: float = 0.0  # when its speech began (a detached ending, wake mode)


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class _Closed:
    """The end of `events()` (a class, so the queue's item type names it)."""


_CLOSED = _Closed()
