"""Reading audio files into the project's format (mono int16, 16 kHz) with clear errors."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soxr

SAMPLE_RATE = 16000


class AudioFileError(ValueError):
    """A file that is not audio we can read; the message says why."""


def load_wav(path: str | Path) -> np.ndarray:
    """A PCM WAV file (8/16/24/32-bit, any rate, mono or stereo) as mono int16 at 16 kHz."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except FileNotFoundError:
        raise AudioFileError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise AudioFileError(f"{path}: not a PCM WAV file ({exc})") from None
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        x = (
            (b[:, 0].astype(np.int32) | b[:, 1].astype(np.int32) << 8 | b[:, 2].astype(np.int32) << 16)
            << 8
            >> 8
        )
        x = x.astype(np.float32) / 8388608
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648
    else:
        raise AudioFileError(f"{path}: {8 * width}-bit samples are not supported")
    if len(x) == 0:
        raise AudioFileError(f"{path}: contains no audio")
    x = x.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE:
        x = soxr.resample(x, rate, SAMPLE_RATE)
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)
