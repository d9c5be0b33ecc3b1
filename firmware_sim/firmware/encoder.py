"""The headset's mic encoder: 16 kHz mic signal in, codec frames out, idle silence almost free."""

from __future__ import annotations

import numpy as np
import soxr

from companion.protocol import CodecId, codec_spec
from companion.protocol.codecs import make_encoder

from ..config import SAMPLE_RATE, OpusSettings

SILENCE_STEADY_FRAMES = 25  # after this many identical frames of digital silence, reuse the bytes


class MicEncoder:
    """16 kHz mic signal -> codec frames (resampled to 8 kHz for the 8 kHz codecs).

    A real headset encodes on its own chip; here the encoder runs on the host's CPU. Once digital silence
    has been encoded to the same bytes many frames in a row (the encoder is in its steady state), those
    bytes are reused instead of running the encoder again, so an idle headset costs next to nothing.
    """

    def __init__(self, codec: CodecId, opus: OpusSettings) -> None:
        spec = codec_spec(codec)
        self.codec = spec.id
        opts = opus.encoder_options() if spec.family == "opus" else {}
        self._enc = make_encoder(spec.id, **opts)
        self._rs = (
            soxr.ResampleStream(SAMPLE_RATE, spec.sample_rate, 1, dtype="int16")
            if spec.sample_rate != SAMPLE_RATE
            else None
        )
        self._rate = spec.sample_rate
        self._pending = np.zeros(0, dtype=np.int16)
        self._silent_bytes: bytes | None = None
        self._silent_run = 0

    @property
    def frame_samples_16k(self) -> int:
        """One frame's length in 16 kHz samples (the mic stream's clock)."""
        return self._enc.frame_samples * SAMPLE_RATE // self._rate

    @property
    def pending_16k(self) -> int:
        """Samples pushed but not yet in a frame, in 16 kHz samples."""
        return len(self._pending) * SAMPLE_RATE // self._rate

    def push(self, pcm: np.ndarray) -> list[bytes]:
        if self._rs is not None:
            pcm = self._rs.resample_chunk(pcm)
        buf = np.concatenate((self._pending, pcm)) if len(self._pending) else pcm
        n = self._enc.frame_samples
        frames = []
        while len(buf) >= n:
            frames.append(self._encode(np.ascontiguousarray(buf[:n])))
            buf = buf[n:]
        self._pending = buf
        return frames

    def _encode(self, frame: np.ndarray) -> bytes:
        if frame.any():
            self._silent_run = 0
            return self._enc.encode(frame)
        if self._silent_run >= SILENCE_STEADY_FRAMES and self._silent_bytes is not None:
            return self._silent_bytes
        data = self._enc.encode(frame)
        self._silent_run = self._silent_run + 1 if data == self._silent_bytes else 1
        self._silent_bytes = data
        return data
