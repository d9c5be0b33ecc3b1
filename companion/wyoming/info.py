"""What `describe` answers: one ASR program (companion's Whisper fast path) and one TTS program (its voice).

Home Assistant's Wyoming integration reads this to name the entities it creates and to pick languages.
"""

from __future__ import annotations

from pathlib import Path

from wyoming.info import AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice

from companion import __version__

COMPANION = Attribution(name="companion", url="")  # no public home yet: no invented address
WHISPER = Attribution(
    name="OpenAI Whisper (faster-whisper, CTranslate2)", url="https://github.com/SYSTRAN/faster-whisper"
)
PIPER = Attribution(name="Piper (rhasspy)", url="https://github.com/OHF-Voice/piper1-gpl")
ESPEAK = Attribution(name="eSpeak NG", url="https://github.com/espeak-ng/espeak-ng")

# Whisper's multilingual models: the languages it was trained on that people ask for most. English-only
# models (".en") say so.
_MULTILINGUAL = ["en", "de", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "uk", "zh"]


def stt_languages(model: str) -> list[str]:
    """The languages a Whisper model name transcribes (tiny.en and other ".en" models: English only)."""
    return ["en"] if Path(model).name.endswith(".en") or model == "tiny.en" else list(_MULTILINGUAL)


def voice_name(tts: object) -> str:
    """A stable voice name for the engine: piper's model file stem, espeak's voice, or the engine name."""
    model_path = getattr(tts, "model_path", None)
    if model_path is not None:
        return Path(model_path).stem.removesuffix(".onnx")
    voice = getattr(tts, "voice", None)
    name = str(getattr(tts, "name", "voice"))
    return f"{name}-{voice}" if voice else name


def voice_languages(tts: object, name: str) -> list[str]:
    """Piper names voices lang_REGION-speaker-quality; others speak the default English."""
    head = name.split("-", 1)[0]
    if "_" in head and len(head) == 5:
        return [head, head.split("_")[0]]
    return ["en_US", "en"]


def build_info(stt_model: str, tts: object) -> Info:
    """The `info` event for a server running Whisper `stt_model` and the loaded TTS engine `tts`."""
    voice = voice_name(tts)
    engine = str(getattr(tts, "name", "tts"))
    asr = AsrProgram(
        name="companion-stt",
        description="companion speech recognition: Whisper fast path with end-of-speech from the stream",
        attribution=COMPANION,
        installed=True,
        version=__version__,
        models=[
            AsrModel(
                name=stt_model,
                description=f"Whisper {stt_model}",
                attribution=WHISPER,
                installed=True,
                version=None,
                languages=stt_languages(stt_model),
            )
        ],
        supports_transcript_streaming=False,
        # The server finds the end of speech in the stream itself and answers without waiting for
        # audio-stop; a client's own VAD still works (audio-stop ends the utterance too).
        requires_external_vad=False,
    )
    tts_program = TtsProgram(
        name="companion-tts",
        description=f"companion voice ({engine})",
        attribution=COMPANION,
        installed=True,
        version=__version__,
        voices=[
            TtsVoice(
                name=voice,
                description=f"{engine} voice {voice}",
                attribution=PIPER if engine == "piper" else ESPEAK if engine == "espeak" else COMPANION,
                installed=True,
                version=None,
                languages=voice_languages(tts, voice),
            )
        ],
        supports_synthesize_streaming=True,
    )
    return Info(asr=[asr], tts=[tts_program])
