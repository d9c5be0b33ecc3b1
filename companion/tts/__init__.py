"""Text-to-speech: engines that stream 16 kHz int16 audio sentence by sentence, and the sentence chunker.

Use `create_tts("piper" | "espeak" | "openai" | "auto", ...)`, call its blocking `load()` in a worker
thread, then `async for chunk in engine.stream(text)`; feed LLM tokens through `SentenceChunker` /
`speakable_chunks` so the first sentence is spoken while the rest is still being generated.
"""

from companion.tts.base import SAMPLE_RATE, TTSEngine, TTSError, VoiceNotAvailable, synthesize
from companion.tts.chunker import SentenceChunker, speakable_chunks
from companion.tts.espeak import EspeakTTS
from companion.tts.factory import ENGINES, create_tts
from companion.tts.openai_speech import OpenAISpeechTTS
from companion.tts.piper_tts import PiperTTS

__all__ = [
    "ENGINES",
    "SAMPLE_RATE",
    "EspeakTTS",
    "OpenAISpeechTTS",
    "PiperTTS",
    "SentenceChunker",
    "TTSEngine",
    "TTSError",
    "VoiceNotAvailable",
    "create_tts",
    "speakable_chunks",
    "synthesize",
]
