"""The acoustic world around an open-ear headset: what its mic hears besides the wearer.

Three sources are mixed onto the wearer's voice, each 20 ms tick, on the headset clock:

- **echo**: the headset's own speaker reaches the mic through an echo path: a delay, a short impulse
  response and a level ``echo_db`` relative to the playback (-6 means an echo return loss of 6 dB).
  The impulse response is generated here, deterministically from the seed: a direct tap followed by
  an exponentially decaying Gaussian noise tail (the usual synthetic model of a reverberant path,
  Polack's), the tail 10 dB below the direct sound with an RT60 of ``echo_rt60_ms``. It is scaled so
  that its energy gain is ``echo_db``: white playback comes back exactly that many dB lower.
- **bystanders**: other people talking, from WAV files played one after another in a loop with random
  gaps (``bystander_gap_s``), independently of the wearer, so they fall between and over the wearer's
  turns (or once each, without ``bystander_loop``). Each clip is scaled to ``bystander_db`` relative
  to the wearer's speech level.
- **noise**: Gaussian noise at ``noise_snr_db`` below the wearer's speech level.

The wearer's speech level is the active level of the utterances spoken so far (RMS over the samples of
voiced 20 ms blocks); before the first one, a nominal -26 dBFS (ITU-T P.56's usual speech level).

Every part is kept separately (:class:`MicParts`) for the ground truth: the conversation recording's
left channel stays the wearer alone, and the sidecar files say what was echo, bystander and noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE, TICK_SAMPLES, HeadsetConfig

NOMINAL_SPEECH_RMS = 32768 * 10 ** (-26 / 20)  # -26 dBFS
ACTIVE_BLOCK_RMS = 32768 * 10 ** (-50 / 20)  # a 20 ms block louder than this counts as voiced
TAIL_DB = -10.0  # reverberant tail energy relative to the direct sound


def echo_impulse_response(
    level_db: float, delay_ms: float, rt60_ms: float, seed: int | None = 0, length_ms: float | None = None
) -> np.ndarray:
    """The echo path: ``delay`` of silence, a direct tap, an exponentially decaying noise tail.

    Scaled so that sum(h**2) = 10**(level_db/10): white playback returns at ``level_db`` dB.
    """
    delay = round(delay_ms * SAMPLE_RATE / 1000)
    length_ms = length_ms if length_ms is not None else min(rt60_ms, 250.0)
    n_tail = max(1, round(length_ms * SAMPLE_RATE / 1000))
    rng = np.random.default_rng(0 if seed is None else seed)
    t = np.arange(1, n_tail + 1) / SAMPLE_RATE
    decay = np.exp(-6.9078 * t / max(rt60_ms / 1000, 1e-3))  # -60 dB at rt60
    tail = rng.standard_normal(n_tail) * decay
    tail *= math.sqrt(10 ** (TAIL_DB / 10) / float(np.sum(tail**2)))
    h = np.zeros(delay + 1 + n_tail)
    h[delay] = 1.0
    h[delay + 1 :] = tail
    h *= math.sqrt(10 ** (level_db / 10) / float(np.sum(h**2)))
    return h


@dataclass(slots=True)
class MicParts:
    """One tick of what reached the mic, source by source (float samples, int16 scale)."""

    echo: np.ndarray
    bystander: np.ndarray
    noise: np.ndarray


@dataclass(frozen=True, slots=True)
class Segment:
    """Ground truth: who spoke (or what played) from ``start`` to ``end``, on the headset clock."""

    source: str  # "wearer" or "bystander"
    label: str
    start: float
    end: float
    gain_db: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "label": self.label,
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "gain_db": round(self.gain_db, 2),
        }


class Acoustics:
    """Mixes echo, bystanders and noise onto the wearer's voice, one tick at a time."""

    def __init__(self, config: HeadsetConfig, bystanders: list[tuple[str, np.ndarray]] | None = None) -> None:
        self.config = config
        seed = config.seed
        self._rng = np.random.default_rng(None if seed is None else seed + 7919)
        level = config.echo_db
        if level is None and config.echo_gain > 0:
            level = 20 * math.log10(config.echo_gain)  # the old linear knob: a pure gain, no delay
        self.echo_db = None if config.has_aec else level
        self._ir: np.ndarray | None = None
        if self.echo_db is not None:
            if config.echo_db is None:  # --echo-gain: instantaneous leak, kept for compatibility
                self._ir = np.array([config.echo_gain])
            else:
                self._ir = echo_impulse_response(
                    self.echo_db, config.echo_delay_ms, config.echo_rt60_ms, seed=seed
                )
        self._echo_tail = np.zeros(0 if self._ir is None else len(self._ir) - 1)
        self._clips = bystanders or []
        self._clip_index = 0
        self._clip: tuple[str, np.ndarray, float] | None = None  # label, scaled samples, gain dB
        self._clip_pos = 0
        self._open_segment = -1
        self._gap = self._next_gap() if self._clips else 0
        self.segments: list[Segment] = []
        self._wearer_start: float | None = None
        self._wearer_label = ""
        self._active_sq = 0.0
        self._active_n = 0

    # -- levels ------------------------------------------------------------------------------------
    @property
    def speech_rms(self) -> float:
        """The wearer's active speech level so far (int16 RMS), nominal before the first word."""
        if self._active_n == 0:
            return NOMINAL_SPEECH_RMS
        return math.sqrt(self._active_sq / self._active_n)

    def _track_wearer(self, voice: np.ndarray, t: float, label: str | None) -> None:
        v = voice.astype(np.float64)
        sq = float(np.dot(v, v))
        if sq / len(v) > ACTIVE_BLOCK_RMS**2:
            self._active_sq += sq
            self._active_n += len(v)
        if label is not None and self._wearer_start is None:
            self._wearer_start, self._wearer_label = t, label
        elif label is None and self._wearer_start is not None:
            self.segments.append(Segment("wearer", self._wearer_label, self._wearer_start, t))
            self._wearer_start = None
        elif label is not None and label != self._wearer_label:
            self.segments.append(Segment("wearer", self._wearer_label, self._wearer_start or t, t))
            self._wearer_start, self._wearer_label = t, label

    # -- sources -----------------------------------------------------------------------------------
    def _next_gap(self) -> int:
        lo, hi = self.config.bystander_gap_s
        return int(self._rng.uniform(lo, hi) * SAMPLE_RATE)

    def _echo(self, played: np.ndarray) -> np.ndarray:
        if self._ir is None:
            return np.zeros(TICK_SAMPLES)
        if not played.any() and not self._echo_tail.any():
            return np.zeros(TICK_SAMPLES)
        full = np.convolve(played.astype(np.float64), self._ir)  # len = tick + len(ir) - 1
        full[: len(self._echo_tail)] += self._echo_tail
        self._echo_tail = full[TICK_SAMPLES:].copy()  # what later ticks still hear
        return full[:TICK_SAMPLES]

    def _bystander(self, t: float) -> np.ndarray:
        out = np.zeros(TICK_SAMPLES)
        if not self._clips:
            return out
        filled = 0
        while filled < TICK_SAMPLES:
            if self._clip is None:
                if not self.config.bystander_loop and self._clip_index >= len(self._clips):
                    break
                if self._gap > 0:
                    n = min(self._gap, TICK_SAMPLES - filled)
                    self._gap -= n
                    filled += n
                    continue
                label, pcm = self._clips[self._clip_index % len(self._clips)]
                self._clip_index += 1
                gain_db, scaled = self._scale(pcm)
                self._clip = (label, scaled, gain_db)
                self._clip_pos = 0
                self._open_segment = len(self.segments)
                self.segments.append(Segment("bystander", label, t + filled / SAMPLE_RATE, math.nan, gain_db))
            label, pcm, gain_db = self._clip
            n = min(len(pcm) - self._clip_pos, TICK_SAMPLES - filled)
            out[filled : filled + n] = pcm[self._clip_pos : self._clip_pos + n]
            self._clip_pos += n
            filled += n
            if self._clip_pos >= len(pcm):
                seg = self.segments[self._open_segment]
                self.segments[self._open_segment] = Segment(
                    "bystander", label, seg.start, t + filled / SAMPLE_RATE, gain_db
                )
                self._clip = None
                self._gap = self._next_gap()
        return out

    def _scale(self, pcm: np.ndarray) -> tuple[float, np.ndarray]:
        """The clip scaled to ``bystander_db`` relative to the wearer; returns (gain dB applied, samples)."""
        x = pcm.astype(np.float64)
        blocks = x[: len(x) // TICK_SAMPLES * TICK_SAMPLES].reshape(-1, TICK_SAMPLES)
        energy = (blocks**2).mean(axis=1) if len(blocks) else np.array([float(np.mean(x**2))])
        active = energy[energy > ACTIVE_BLOCK_RMS**2]
        rms = math.sqrt(float(active.mean())) if len(active) else math.sqrt(float(np.mean(x**2)) or 1.0)
        target = self.speech_rms * 10 ** (self.config.bystander_db / 20)
        gain = target / max(rms, 1e-9)
        return 20 * math.log10(gain), x * gain

    def _noise(self) -> np.ndarray:
        snr = self.config.noise_snr_db
        if snr is None:
            return np.zeros(TICK_SAMPLES)
        sigma = self.speech_rms * 10 ** (-snr / 20)
        return self._rng.normal(0.0, sigma, TICK_SAMPLES)

    # -- the tick ----------------------------------------------------------------------------------
    def mix(
        self, voice: np.ndarray, played: np.ndarray, t: float, label: str | None = None
    ) -> tuple[np.ndarray, MicParts]:
        """The mic signal of one tick (int16) and its parts; ``label`` names the wearer's utterance."""
        self._track_wearer(voice, t, label)
        parts = MicParts(self._echo(played), self._bystander(t), self._noise())
        if self.config.mic_noise_rms:
            parts.noise = parts.noise + self._rng.normal(0.0, self.config.mic_noise_rms, TICK_SAMPLES)
        if not (parts.echo.any() or parts.bystander.any() or parts.noise.any()):
            return voice, parts
        sig = voice.astype(np.float64) + parts.echo + parts.bystander + parts.noise
        return np.clip(np.round(sig), -32768, 32767).astype(np.int16), parts

    @property
    def active(self) -> bool:
        """Whether anything but the wearer reaches the mic."""
        cfg = self.config
        return bool(self._ir is not None or self._clips or cfg.noise_snr_db is not None or cfg.mic_noise_rms)

    def truth(self, t_end: float | None = None) -> dict[str, object]:
        """The settings and the segments so far, JSON-ready (open segments end at ``t_end``)."""
        cfg = self.config
        segments = list(self.segments)
        if self._wearer_start is not None and t_end is not None:
            segments.append(Segment("wearer", self._wearer_label, self._wearer_start, t_end))
        return {
            "echo_db": self.echo_db,
            "echo_delay_ms": cfg.echo_delay_ms if cfg.echo_db is not None else 0.0,
            "echo_rt60_ms": cfg.echo_rt60_ms if cfg.echo_db is not None else 0.0,
            "echo_ir": "synthetic: direct tap + exponentially decaying Gaussian tail (seeded)",
            "bystander_db": cfg.bystander_db if self._clips else None,
            "bystanders": [label for label, _ in self._clips],
            "noise_snr_db": cfg.noise_snr_db,
            "speech_rms": round(self.speech_rms, 1),
            "segments": [
                {**s.to_json(), "end": None if math.isnan(s.end) else round(s.end, 4)}
                if s.source == "bystander"
                else s.to_json()
                for s in segments
            ],
        }


def load_bystanders(
    paths: tuple[str, ...], loader: Callable[[str], np.ndarray]
) -> list[tuple[str, np.ndarray]]:
    """(name, samples) for each bystander WAV, loaded with the mic's WAV loader."""
    return [(Path(p).name, loader(p)) for p in paths]
