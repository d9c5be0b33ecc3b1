"""Build a TTS engine by name, from config or the command line."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from companion.tts.base import TTSEngine, VoiceNotAvailable
from companion.tts.espeak import EspeakTTS
from companion.tts.openai_speech import OpenAISpeechTTS
from companion.tts.piper_tts import PiperTTS

log = logging.getLogger(__name__)

ENGINES: dict[str, type[TTSEngine]] = {"piper": PiperTTS, "espeak": EspeakTTS, "openai": OpenAISpeechTTS}


def _construct(cls: type[TTSEngine], options: dict[str, Any]) -> TTSEngine:
    """Instantiate with a clear error for options the engine does not take."""
    params = inspect.signature(cls).parameters
    unknown = sorted(set(options) - set(params) - {"self"})
    if unknown:
        accepted = ", ".join(p for p in params if p != "self")
        raise ValueError(f"{cls.name} TTS does not take option(s) {', '.join(unknown)}; it takes: {accepted}")
    return cls(**options)


def create_tts(engine: str = "piper", **options: Any) -> TTSEngine:
    """An unloaded engine: "piper", "espeak", "openai", or "auto" (piper, else espeak-ng with a warning).

    Missing voices or binaries raise VoiceNotAvailable naming what to install. With "auto", `options`
    are piper's; the espeak-ng fallback uses its defaults. Call `load()` (blocking) before streaming.
    """
    if engine == "auto":
        try:
            return _construct(PiperTTS, options)
        except VoiceNotAvailable as e:
            log.warning("piper TTS unavailable (%s); falling back to espeak-ng", e)
            try:
                return EspeakTTS()
            except VoiceNotAvailable as fallback_error:
                raise VoiceNotAvailable(
                    f"no TTS engine available: {e}; and {fallback_error}"
                ) from fallback_error
    cls = ENGINES.get(engine)
    if cls is None:
        raise ValueError(f"unknown TTS engine {engine!r}; choose one of: {', '.join([*ENGINES, 'auto'])}")
    return _construct(cls, options)
