"""Audio between Wyoming clients and companion's engines: any PCM format in, 16 kHz mono int16 inside.

Wyoming chunks carry their own rate, sample width and channel count; a client may send 44.1 kHz stereo
or 8-bit audio. `InputConverter` turns one stream into the 16 kHz mono int16 the engines take, keeping
soxr's filter state between chunks so no samples are lost at chunk edges.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import soxr

SAMPLE_RATE = 16000
WIDTH = 2
CHANNELS = 1
SAMPLES_PER_CHUNK = 1024  # what wyoming-piper sends: 64 ms at 16 kHz


class AudioFormatError(ValueError):
    """A chunk's format cannot be converted (unknown width, no channels, absurd rate, ragged bytes)."""


def _to_float_mono(audio: bytes, width: int, channels: int) -> np.ndarray:
    frame_bytes = width * channels
    if len(audio) % frame_bytes:
        raise AudioFormatError(
            f"{len(audio)} bytes is not a whole number of frames ({width} bytes x {channels} channels)"
        )
    if width == 1:  # unsigned 8-bit, as in WAV
        samples = (np.frombuffer(audio, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        samples = np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        raw = np.frombuffer(audio, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        samples = value.astype(np.float32) / float(1 << 23)
    else:  # width == 4: 32-bit signed
        samples = np.frombuffer(audio, dtype="<i4").astype(np.float32) / float(1 << 31)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples


class InputConverter:
    """Converts one Wyoming audio stream to 16 kHz mono int16, chunk by chunk.

    The format is fixed by the first chunk (or `AudioStart`); a chunk in another format restarts the
    resampler, since a client may legitimately change format between streams on one connection.
    """

    def __init__(self) -> None:
        self._format: tuple[int, int, int] | None = None
        self._resampler: soxr.ResampleStream | None = None

    @staticmethod
    def check(rate: int, width: int, channels: int) -> None:
        """Raise `AudioFormatError` naming the bad field."""
        if width not in (1, 2, 3, 4):
            raise AudioFormatError(f"audio width must be 1, 2, 3 or 4 bytes per sample, got {width}")
        if not 1 <= channels <= 32:
            raise AudioFormatError(f"audio channels must be 1..32, got {channels}")
        if not 4000 <= rate <= 384000:
            raise AudioFormatError(f"audio rate must be 4000..384000 Hz, got {rate}")

    def start(self, rate: int, width: int, channels: int) -> None:
        self.check(rate, width, channels)
        self._format = (rate, width, channels)
        self._resampler = (
            None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
        )

    def push(self, audio: bytes, rate: int, width: int, channels: int) -> np.ndarray:
        """The chunk as 16 kHz mono int16 (possibly empty while the resampler fills)."""
        if self._format != (rate, width, channels):
            self.start(rate, width, channels)
        if rate == SAMPLE_RATE and width == WIDTH and channels == CHANNELS:
            if len(audio) % 2:
                raise AudioFormatError(f"{len(audio)} bytes is not a whole number of 16-bit samples")
            return np.frombuffer(audio, dtype="<i2").astype(np.int16)
        mono = _to_float_mono(audio, width, channels)
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono)
        return _float_to_int16(mono)

    def finish(self) -> np.ndarray:
        """The resampler's tail at the end of the stream."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.int16)
        tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._format, self._resampler = None, None
        return _float_to_int16(tail)


def _float_to_int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)


def pcm_chunks(pcm: np.ndarray, samples: int = SAMPLES_PER_CHUNK) -> Iterator[bytes]:
    """int16 16 kHz mono audio as little-endian byte chunks of at most `samples` samples."""
    data = np.ascontiguousarray(pcm, dtype="<i2")
    for start in range(0, len(data), samples):
        yield data[start : start + samples].tobytes()
