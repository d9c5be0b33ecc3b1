"""Conversation recording on the headset's own clock.

A stereo 16 kHz int16 WAV: left = the wearer's voice as it entered the mic (no echo, no mic noise),
right = what the speaker played (after volume). Both channels are written in the same 20 ms clock tick,
so they are sample-aligned by construction; sample ``i`` of the file is headset time ``t0 + i / 16000``.
Voice-to-voice latency is read straight off the file: from the last voiced sample of the left channel to
the first sample of the reply on the right.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from .config import SAMPLE_RATE


class Recording:
    """One recording: the two channels in memory, and the WAV file while it is open."""

    def __init__(self, path: str | Path | None, t0: float) -> None:
        self.path = Path(path) if path is not None else None
        self.t0 = t0  # headset clock at the first sample
        self._left: list[np.ndarray] = []
        self._right: list[np.ndarray] = []
        self._wav: wave.Wave_write | None = None
        self.closed = False
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._wav = wave.open(str(self.path), "wb")
            self._wav.setnchannels(2)
            self._wav.setsampwidth(2)
            self._wav.setframerate(SAMPLE_RATE)

    def write(self, left: np.ndarray, right: np.ndarray) -> None:
        if self.closed:
            return
        self._left.append(left)
        self._right.append(right)
        if self._wav is not None:
            stereo = np.empty(2 * len(left), dtype="<i2")
            stereo[0::2] = left
            stereo[1::2] = right
            self._wav.writeframesraw(stereo.tobytes())  # the header is patched once, on close

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None
        self.closed = True

    @property
    def left(self) -> np.ndarray:
        return np.concatenate(self._left) if self._left else np.zeros(0, dtype=np.int16)

    @property
    def right(self) -> np.ndarray:
        return np.concatenate(self._right) if self._right else np.zeros(0, dtype=np.int16)

    @property
    def stereo(self) -> np.ndarray:
        """(n, 2) int16: column 0 the wearer, column 1 the speaker."""
        return np.stack((self.left, self.right), axis=1)

    @property
    def seconds(self) -> float:
        return sum(len(c) for c in self._left) / SAMPLE_RATE

    def time_of(self, sample: int) -> float:
        """Headset-clock time of a sample index."""
        return self.t0 + sample / SAMPLE_RATE


def read_recording(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) int16 arrays of a conversation recording file."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 2 or w.getsampwidth() != 2 or w.getframerate() != SAMPLE_RATE:
            raise ValueError(f"{path}: not a companion conversation recording (stereo 16-bit 16 kHz)")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data[0::2].astype(np.int16), data[1::2].astype(np.int16)
