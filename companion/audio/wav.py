"""Reading audio files into the project's format (mono int16, 16 kHz) with clear errors.

libsndfile (through soundfile) reads the file: PCM WAV of 8/16/24/32 bits, float WAV, the
WAVE_FORMAT_EXTENSIBLE header sox writes for 24-bit and multi-channel files, and the other formats it
knows (FLAC, Ogg). The header is checked before any sample is read, so a damaged or absurd file (a
sample rate of 0 or 1 Hz) is an error and never a huge allocation; samples are then read, mixed to mono
and resampled in blocks, so memory stays proportional to the 16 kHz result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000
MIN_RATE = 4000  # below this nothing intelligible survives, and resampling would multiply the size
MAX_RATE = 384000
MAX_CHANNELS = 64
MAX_SECONDS = 4 * 3600  # 4 h of 16 kHz int16 is 460 MB: a bound, not a target
_BLOCK_S = 10


class AudioFileError(ValueError):
    """A file that is not audio we can read; the message says why."""


@dataclass(frozen=True, slots=True)
class AudioFileInfo:
    rate: int
    channels: int
    frames: int
    subtype: str

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def check_wav(path: str | Path) -> AudioFileInfo:
    """The file's header if it is audio we can read; :class:`AudioFileError` saying why not."""
    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if not path.is_file():
        raise AudioFileError(f"{path}: not a file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"{path}: not a readable audio file ({_reason(exc)})") from None
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioFileError(
            f"{path}: sample rate {info.samplerate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz (damaged header?)"
        )
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioFileError(f"{path}: {info.channels} channels (1-{MAX_CHANNELS} supported)")
    if info.frames <= 0:
        raise AudioFileError(f"{path}: contains no audio")
    result = AudioFileInfo(info.samplerate, info.channels, info.frames, info.subtype)
    if result.seconds > MAX_SECONDS:
        hours = result.seconds / 3600
        raise AudioFileError(f"{path}: {hours:.1f} h of audio (at most {MAX_SECONDS // 3600} h)")
    return result


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text


def load_wav(path: str | Path, progress: Callable[[float, float], None] | None = None) -> np.ndarray:
    """An audio file (see the module docstring) as mono int16 at 16 kHz.

    ``progress(seconds_read, seconds_total)`` is called after each block (for long files).
    """
    path = Path(path)
    info = check_wav(path)
    out: list[np.ndarray] = []
    resampler = (
        soxr.ResampleStream(info.rate, SAMPLE_RATE, 1, dtype="float32") if info.rate != SAMPLE_RATE else None
    )
    block = info.rate * _BLOCK_S
    read = 0
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                x = f.read(block, dtype="float32", always_2d=True)
                last = len(x) < block
                mono = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
                if len(mono):
                    out.append(np.clip(np.round(mono * 32768), -32768, 32767).astype(np.int16))
                read += len(x)
                if progress is not None:
                    progress(read / info.rate, info.seconds)
                if last:
                    break
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"{path}: cannot read the samples ({_reason(exc)})") from None
    if not out:
        raise AudioFileError(f"{path}: contains no audio")
    return np.concatenate(out)
