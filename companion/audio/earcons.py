"""Short synthesised cues (earcons) for the headset: listening start/stop, error, timer ring.

Pure numpy synthesis at 16 kHz int16, no sound files. Each cue is generated once and cached as a
read-only array. Levels stay well below full scale: open-ear speakers sit close to the ear.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

SAMPLE_RATE = 16000
_PEAK = 0.35  # of full scale, about -9 dBFS


def _note(
    freq: float,
    seconds: float,
    *,
    partials: Sequence[tuple[float, float]] = ((1.0, 1.0),),
    decay: float = 0.0,
    attack: float = 0.005,
    release: float = 0.02,
) -> np.ndarray:
    """One note as float32 in [-1, 1]: summed partials (ratio, gain), exponential decay, click-free edges."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = np.zeros_like(t)
    for ratio, gain in partials:
        wave += gain * np.sin(2 * np.pi * freq * ratio * t)
    wave = wave / sum(gain for _, gain in partials)
    if decay:
        wave = wave * np.exp(-t / decay)
    envelope = np.ones_like(t)
    a, r = round(attack * SAMPLE_RATE), round(release * SAMPLE_RATE)
    envelope[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    envelope[len(t) - r :] = np.minimum(envelope[len(t) - r :], np.linspace(1.0, 0.0, r))
    return (wave * envelope).astype(np.float32)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


def _finish(parts: Sequence[np.ndarray]) -> np.ndarray:
    audio = np.concatenate(parts)
    audio = audio / max(float(np.max(np.abs(audio))), 1e-9) * _PEAK
    pcm = np.round(audio * 32767).astype(np.int16)
    pcm.setflags(write=False)
    return pcm


_SOFT = ((1.0, 1.0), (2.0, 0.15))  # mostly sine, a little warmth
_BELL = ((1.0, 1.0), (2.0, 0.5), (3.0, 0.2), (4.2, 0.1))  # bright, slightly inharmonic top


@cache
def listening_start() -> np.ndarray:
    """Rising two-note blip (E5 -> A5, ~130 ms): "I'm listening"."""
    return _finish([_note(659.3, 0.06, partials=_SOFT), _note(880.0, 0.07, partials=_SOFT)])


@cache
def listening_stop() -> np.ndarray:
    """Falling two-note blip (A5 -> E5, ~130 ms): "got it"."""
    return _finish([_note(880.0, 0.06, partials=_SOFT), _note(659.3, 0.07, partials=_SOFT)])


@cache
def error() -> np.ndarray:
    """Two low, buzzy notes (a falling minor third around 250 Hz, ~330 ms): something went wrong."""
    buzz = ((1.0, 1.0), (3.0, 0.33), (5.0, 0.2))
    return _finish([_note(293.7, 0.14, partials=buzz), _silence(0.05), _note(246.9, 0.14, partials=buzz)])


@cache
def timer_ring() -> np.ndarray:
    """A bell arpeggio C6-E6-G6-C7 (~700 ms); repeat it to ring longer."""
    notes = [(1046.5, 0.0), (1318.5, 0.11), (1568.0, 0.22), (2093.0, 0.33)]
    total = round(0.7 * SAMPLE_RATE)
    out = np.zeros(total, dtype=np.float32)
    for freq, start in notes:  # notes overlap and ring out, like a chime
        tone = _note(freq, 0.7 - start, partials=_BELL, decay=0.12, release=0.05)
        begin = round(start * SAMPLE_RATE)
        out[begin : begin + len(tone)] += tone
    return _finish([out])


@cache
def thinking() -> np.ndarray:
    """Two soft, level notes (C5, C5, ~190 ms): "still working on it" (neither rising nor falling, so it is
    not mistaken for listening or done)."""
    return _finish([_note(523.3, 0.07, partials=_SOFT), _silence(0.05), _note(523.3, 0.07, partials=_SOFT)])


EARCONS: dict[str, Callable[[], np.ndarray]] = {
    "listening_start": listening_start,
    "listening_stop": listening_stop,
    "error": error,
    "timer_ring": timer_ring,
    "thinking": thinking,
}


def earcon(name: str) -> np.ndarray:
    """An earcon by name (read-only int16 at 16 kHz)."""
    try:
        return EARCONS[name]()
    except KeyError:
        raise ValueError(f"unknown earcon {name!r}; choose one of: {', '.join(EARCONS)}") from None
