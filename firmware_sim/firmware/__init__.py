"""The firmware model of a virtual headset, separate from the radio that carries its packets."""

from .clock import TICK_S, TickClock
from .core import ErrorCode, Firmware, LogEntry
from .encoder import MicEncoder
from .mic import Mic, MicClosed
from .speaker import Speaker, SpeakerEvent
from .storage import Storage
from .voice import VoiceError, VoiceUnavailable, load_wav, synthesize

__all__ = [
    "TICK_S",
    "ErrorCode",
    "Firmware",
    "LogEntry",
    "Mic",
    "MicClosed",
    "MicEncoder",
    "Speaker",
    "SpeakerEvent",
    "Storage",
    "TickClock",
    "VoiceError",
    "VoiceUnavailable",
    "load_wav",
    "synthesize",
]
