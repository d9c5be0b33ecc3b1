"""Conversation recording on the headset's own clock.

A stereo 16 kHz int16 WAV: left = the wearer's voice as it entered the mic (no echo, no mic noise),
right = what the speaker played (after volume). Both channels are written in the same 20 ms clock tick,
so they are sample-aligned by construction; sample ``i`` of the file is headset time ``t0 + i / 16000``.
Voice-to-voice latency is read straight off the file: from the last voiced sample of the left channel to
the first sample of the reply on the right.

When the headset's acoustic world is on (echo, bystanders, noise: :mod:`firmware_sim.firmware.acoustics`),
the ground truth goes into two sidecar files next to the recording, on the same samples:
``NAME.acoustics.wav`` (3 channels: echo, bystanders, noise, as they reached the mic) and
``NAME.acoustics.json`` (the settings, and who spoke when: wearer and bystander segments on the headset
clock).
"""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import SAMPLE_RATE

if TYPE_CHECKING:
    from .firmware.acoustics import Acoustics, MicParts

WORLD_CHANNELS = ("echo", "bystander", "noise")


class Recording:
    """One recording: the two channels in memory, and the WAV file while it is open."""

    def __init__(self, path: str | Path | None, t0: float, acoustics: Acoustics | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.t0 = t0  # headset clock at the first sample
        self.acoustics = acoustics
        self._left: list[np.ndarray] = []
        self._right: list[np.ndarray] = []
        self._world: list[np.ndarray] = []  # (n, 3) int16 blocks: echo, bystander, noise
        self._samples = 0  # kept as the blocks come: the headset asks for the length every 20 ms tick
        self._wav: wave.Wave_write | None = None
        self._world_wav: wave.Wave_write | None = None
        self.closed = False
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._wav = _open_wav(self.path, 2)
            if acoustics is not None:
                self._world_wav = _open_wav(self.sidecar(".wav"), len(WORLD_CHANNELS))

    def sidecar(self, suffix: str) -> Path:
        """``NAME.acoustics.wav`` / ``NAME.acoustics.json`` next to the recording."""
        assert self.path is not None
        return self.path.with_name(f"{self.path.stem}.acoustics{suffix}")

    def write(self, left: np.ndarray, right: np.ndarray, parts: MicParts | None = None) -> None:
        if self.closed:
            return
        self._left.append(left)
        self._right.append(right)
        self._samples += len(left)
        if self._wav is not None:
            stereo = np.empty(2 * len(left), dtype="<i2")
            stereo[0::2] = left
            stereo[1::2] = right
            self._wav.writeframesraw(stereo.tobytes())  # the header is patched once, on close
        if self.acoustics is not None:
            world = np.zeros((len(left), len(WORLD_CHANNELS)), dtype=np.int16)
            if parts is not None:
                for i, name in enumerate(WORLD_CHANNELS):
                    world[:, i] = np.clip(np.round(getattr(parts, name)), -32768, 32767)
            self._world.append(world)
            if self._world_wav is not None:
                self._world_wav.writeframesraw(world.astype("<i2").tobytes())

    def truth(self) -> dict[str, object]:
        """Ground truth of the acoustic world: settings and segments (empty without acoustics)."""
        if self.acoustics is None:
            return {}
        t_end = self.t0 + self.seconds
        truth = self.acoustics.truth(t_end)
        segments = truth["segments"]
        assert isinstance(segments, list)  # AcousticWorld.truth's JSON-ready segment dicts
        truth["segments"] = [s for s in segments if s["end"] is None or s["end"] > self.t0]
        truth["t0"] = round(self.t0, 4)
        return truth

    def close(self) -> None:
        if self.closed:
            return
        if self._wav is not None:
            self._wav.close()
            self._wav = None
        if self._world_wav is not None:
            self._world_wav.close()
            self._world_wav = None
            self.sidecar(".json").write_text(json.dumps(self.truth(), indent=1) + "\n")
        self.closed = True

    def world(self, source: str) -> np.ndarray:
        """One ground-truth channel as it reached the mic: ``echo``, ``bystander`` or ``noise``."""
        i = WORLD_CHANNELS.index(source)
        if not self._world:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._world)[:, i]

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
        return self._samples / SAMPLE_RATE

    def time_of(self, sample: int) -> float:
        """Headset-clock time of a sample index."""
        return self.t0 + sample / SAMPLE_RATE


def _open_wav(path: Path, channels: int) -> wave.Wave_write:
    w = wave.open(str(path), "wb")
    w.setnchannels(channels)
    w.setsampwidth(2)
    w.setframerate(SAMPLE_RATE)
    return w


def read_recording(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) int16 arrays of a conversation recording file."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 2 or w.getsampwidth() != 2 or w.getframerate() != SAMPLE_RATE:
            raise ValueError(f"{path}: not a companion conversation recording (stereo 16-bit 16 kHz)")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data[0::2].astype(np.int16), data[1::2].astype(np.int16)
