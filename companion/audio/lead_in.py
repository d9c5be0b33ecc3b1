"""Where an utterance's audio starts: soft first words that the VAD scored as silence.

Silero scores a quiet start low: "and here's a", said at -27 to -36 dBFS before a sentence the VAD then
hears, scored 0.01-0.12, so the fixed pre-roll cut it and Whisper never heard it. The endpointer walks back
from the onset over windows loud enough to be the same voice and starts the audio there. Such a window
stands within `BELOW_SPEECH_DB` of the speech that confirmed the onset, above `MIN_DB` (room tone and a
quiet mic are far below) and, once the room's noise floor is known, `ABOVE_FLOOR_DB` over it (so babble
around the wearer is not taken for their words). Short dips (the gaps between words) are crossed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ABOVE_FLOOR_DB", "BELOW_SPEECH_DB", "GAP_WINDOWS", "MIN_DB", "lead_windows", "window_levels_db"]

BELOW_SPEECH_DB = 20.0
ABOVE_FLOOR_DB = 10.0
MIN_DB = -55.0
#: Windows in a row quieter than that which still count as a gap between words (5 x 32 ms).
GAP_WINDOWS = 5


def window_levels_db(pcm: np.ndarray, window: int) -> np.ndarray:
    """The power (dBFS) of each whole `window` of int16 `pcm`, the windows aligned to its end, the
    last window first (the walk goes back from the onset)."""
    n = len(pcm) // window
    if n == 0:
        return np.zeros(0)
    rows = pcm[len(pcm) - n * window :].reshape(n, window).astype(np.float64) / 32768.0
    power = (rows * rows).mean(axis=1)
    with np.errstate(divide="ignore"):
        return (10 * np.log10(power))[::-1]


def lead_windows(levels_db: np.ndarray, speech_db: float, floor_db: float | None) -> int:
    """How many windows before the onset lead into the speech (0: none); `levels_db` as from
    `window_levels_db`, nearest the onset first; `floor_db` is None while the room is not known yet."""
    need = max(speech_db - BELOW_SPEECH_DB, MIN_DB)
    if floor_db is not None:
        need = max(need, floor_db + ABOVE_FLOOR_DB)
    lead = misses = 0
    for k, level in enumerate(levels_db):
        if level >= need:
            lead, misses = k + 1, 0
        else:
            misses += 1
            if misses > GAP_WINDOWS:
                break
    return lead
