"""Speech recognition: fast local Whisper (`WhisperSTT`) and end-of-turn detection (`TurnDetector`)."""

from companion.stt.whisper import ModelNotAvailable, Transcript, WhisperSTT

__all__ = ["ModelNotAvailable", "Transcript", "WhisperSTT"]
