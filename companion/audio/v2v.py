"""Voice-to-voice latency read off a conversation recording, independently of the service's own clocks.

The recording is the simulator's (or any device's) stereo 16 kHz WAV on the headset's clock: left = the
wearer's voice as it entered the mic, right = what the headset played. For each utterance on the left, the
latency is from the end of its speech to the first reply audio on the right, measured in 10 ms windows.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WINDOW_S = 0.01


@dataclass(frozen=True, slots=True)
class TurnLatency:
    speech_start_s: float
    speech_end_s: float
    reply_start_s: float | None  # None: no reply before the next utterance (or the end)

    @property
    def latency_ms(self) -> float | None:
        if self.reply_start_s is None:
            return None
        return round((self.reply_start_s - self.speech_end_s) * 1000, 1)

    @property
    def answered_early(self) -> bool:
        """A reply that began before the wearer had finished: the assistant cut in on a fragment."""
        return self.reply_start_s is not None and self.reply_start_s < self.speech_end_s


def _active(pcm: np.ndarray, rate: int, threshold_dbfs: float) -> np.ndarray:
    n = int(rate * WINDOW_S)
    frames = len(pcm) // n
    x = pcm[: frames * n].astype(np.float64).reshape(frames, n) / 32768.0
    rms = np.sqrt(np.mean(x * x, axis=1) + 1e-20)
    return 20 * np.log10(rms) > threshold_dbfs


def _without_clicks(runs: list[tuple[int, int]], click_s: float, apart_s: float) -> list[tuple[int, int]]:
    """Drop bursts of sound lasting under `click_s` (first to last active window) with no other sound within
    `apart_s`: a click or a knock in the room, not a word (a word said alone lasts longer, and a short sound
    inside speech, such as a consonant's release, has speech close by). Without this, a knock 0.9 s after
    the last word (two blips 30 ms apart) moved the end of the speech there."""
    short, apart = click_s / WINDOW_S, apart_s / WINDOW_S
    bursts: list[list[tuple[int, int]]] = []
    for run in runs:
        if bursts and run[0] - bursts[-1][-1][1] < apart:
            bursts[-1].append(run)
        else:
            bursts.append([run])
    return [run for burst in bursts if burst[-1][1] - burst[0][0] >= short for run in burst]


def _segments(
    active: np.ndarray, merge_gap_s: float, min_len_s: float, click_s: float = 0.0, apart_s: float = 0.3
) -> list[tuple[int, int]]:
    """[start, end) window indices of active runs, merging gaps shorter than ``merge_gap_s``, after dropping
    isolated bursts shorter than ``click_s``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], active.astype(np.int8), [0]))))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    if click_s > 0:
        runs = _without_clicks(runs, click_s, apart_s)
    merged: list[list[int]] = []
    gap = int(merge_gap_s / WINDOW_S)
    for a, b in runs:
        if merged and a - merged[-1][1] < gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged if (b - a) * WINDOW_S >= min_len_s]


def voice_to_voice(
    left: np.ndarray,
    right: np.ndarray,
    rate: int = 16000,
    *,
    threshold_dbfs: float = -45.0,
    merge_gap_s: float = 0.8,
    min_speech_s: float = 0.2,
    click_s: float = 0.1,
) -> list[TurnLatency]:
    """One entry per utterance of the wearer, in order. A burst of sound under `click_s` with no other sound
    within 0.3 s is not speech (see `_without_clicks`)."""
    speech = _segments(_active(left, rate, threshold_dbfs), merge_gap_s, min_speech_s, click_s)
    reply_active = _active(right, rate, threshold_dbfs)
    out = []
    for i, (a, b) in enumerate(speech):
        limit = speech[i + 1][0] if i + 1 < len(speech) else len(reply_active)
        # A reply that started during the utterance counts from its first sound (an early answer).
        onset = np.flatnonzero(reply_active[a:limit])
        reply = (a + int(onset[0])) * WINDOW_S if len(onset) else None
        start, end = float(a * WINDOW_S), float(b * WINDOW_S)
        out.append(TurnLatency(start, end, None if reply is None else float(reply)))
    return out


def read_stereo(path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(left, right, rate) of a 16-bit stereo WAV."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 2 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected a 16-bit stereo WAV (left mic, right playback)")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
        return data[:, 0].copy(), data[:, 1].copy(), w.getframerate()
