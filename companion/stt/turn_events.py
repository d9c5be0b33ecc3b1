"""What the turn detector gives out (`Hypothesis`, `Turn`, `SpeechStarted`, `SpeechDropped`) and the audio
end-of-turn model it asks; in their own module so the session and tests can name them without the
detector's machinery."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from companion.audio.vad import SpeechStarted

__all__ = ["EndModel", "Hypothesis", "SpeechDropped", "SpeechStarted", "Turn", "TurnEvent"]


class EndModel(Protocol):
    """An audio end-of-turn model (`companion.stt.smart_turn.SmartTurn`)."""

    async def aprobability(self, pcm: np.ndarray) -> float: ...


@dataclass(frozen=True)
class Hypothesis:
    """A speculative transcript of the turn so far, ready while the wearer is still silent."""

    text: str
    t_end_of_speech: float


@dataclass(frozen=True, eq=False)
class Turn:
    """A finished user turn, times on the audio clock.

    `audio` runs from the pre-roll before the first word to a short tail after the last;
    `t_end_of_turn` is when the turn was decided, `t_stt_done` when its transcript was ready (often
    before the end of the turn: it was made speculatively at the pause); `stt_ms` is the
    transcription's own duration. `reason`: "complete", "held" (short and unrecognised, then
    `unsure_ms` of silence), "unaddressed" (wake mode: the gate refused its first words; `text` is empty
    and `addressed` False), "fallback" (a fragment, then `fallback_ms` of silence), "audio" (unsure
    words, the audio model said finished) or "forced" (`end_turn()`, or the utterance reached its maximum
    length). `p_complete`: the audio model's answer, when it was asked. `t_start`: when its speech began;
    `addressed`: the gate's answer (wake mode), None without a gate.
    """

    text: str
    audio: np.ndarray = field(repr=False)
    t_end_of_speech: float
    t_end_of_turn: float
    stt_ms: float
    t_stt_done: float
    reason: str = "complete"
    p_complete: float | None = None
    t_start: float = 0.0
    addressed: bool | None = None


@dataclass(frozen=True)
class SpeechDropped:
    """Speech began (a `SpeechStarted` went out) but held no words, a cough or a noise: no turn comes of
    it, so whoever showed the wearer as talking can show idle again. `t_end_of_speech`: when it ended."""

    t_end_of_speech: float


TurnEvent = Hypothesis | Turn | SpeechStarted | SpeechDropped
