"""Playing a reply: LLM deltas -> sentences -> TTS audio -> the speaker, with its milestones.

The first sentence plays while later ones are still being written and synthesised. Sentences prepared
during speculation (or the LLM time-out apology, synthesised while a slow reply is pending) are taken from
the prefetch table instead of being synthesised again. What was sent is the echo canceller's reference;
the speaker's playback events say when the reply started playing and when it drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from companion.aio import cancel_and_wait
from companion.audio import earcons
from companion.audio.silence import trim_leading_silence
from companion.events import TurnTimings
from companion.link.base import SAMPLE_RATE, HeadsetLink, PlaybackReport, PlaybackStatus
from companion.llm.base import LLMTimeout
from companion.llm.responder import PreparedReply, apology
from companion.protocol import PlaybackEvent
from companion.session.mic import MicPath
from companion.tts.base import TTSEngine
from companion.tts.chunker import SentenceChunker

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


@dataclass(slots=True)
class Milestones:
    """Monotonic times of one turn's milestones; turned into a TurnTimings event at the end."""

    end_of_speech: float
    end_of_turn: float | None = None
    stt_done: float | None = None
    llm_first_token: float | None = None
    first_sentence: float | None = None
    tts_first_audio: float | None = None
    first_audio_sent: float | None = None
    first_audio_played: float | None = None
    stt_ms: float | None = None
    speculative: bool = False

    def event(self, device: str, turn: int) -> TurnTimings:
        def rel(t: float | None) -> float | None:
            return None if t is None else round((t - self.end_of_speech) * 1000, 1)

        return TurnTimings(
            device=device,
            turn=turn,
            end_of_turn_ms=rel(self.end_of_turn),
            stt_done_ms=rel(self.stt_done),
            llm_first_token_ms=rel(self.llm_first_token),
            first_sentence_ms=rel(self.first_sentence),
            tts_first_audio_ms=rel(self.tts_first_audio),
            first_audio_sent_ms=rel(self.first_audio_sent),
            first_audio_played_ms=rel(self.first_audio_played),
            stt_ms=None if self.stt_ms is None else round(self.stt_ms, 1),
            speculative=self.speculative,
        )


@dataclass(slots=True)
class Spoken:
    """What one reply sent to the headset, sentence by sentence, to know what was heard at a barge-in."""

    sentences: list[tuple[str, float]] = field(default_factory=list)  # (text, seconds of audio)
    t_play_start: float | None = None

    def heard(self, now: float) -> str:
        if self.t_play_start is None:
            return ""
        left = now - self.t_play_start
        words: list[str] = []
        for text, seconds in self.sentences:
            if left >= seconds:
                words.append(text)
                left -= seconds
                continue
            parts = text.split()
            if seconds > 0 and left > 0:
                words.append(" ".join(parts[: int(len(parts) * left / seconds)]))
            break
        return " ".join(w for w in words if w)


class ReplyPlayer:
    """Synthesises and plays replies on one speaker; the session owns the tasks it spawns."""

    def __init__(
        self,
        tts: TTSEngine,
        speaker: HeadsetLink,
        mic: MicPath,
        *,
        spawn: Spawn,
        on_speaking: Callable[[], None],
        device: str,
    ) -> None:
        self.tts = tts
        self.speaker = speaker
        self.mic = mic
        self._spawn = spawn
        self._on_speaking = on_speaking
        self.device = device
        self.prefetch: dict[str, asyncio.Task[list[np.ndarray]]] = {}
        self._watcher: asyncio.Task[None] | None = None  # reads a prepared LLM reply for its first sentence
        self._drained = asyncio.Event()
        self._played_started = asyncio.Event()
        self._t_played: float | None = None

    # -- synthesis ---------------------------------------------------------------------------------
    async def synthesise(self, sentence: str) -> list[np.ndarray]:
        async with contextlib.aclosing(self.tts.stream(sentence)) as chunks:
            return [chunk async for chunk in chunks]

    def prefetch_sentence(self, sentence: str, why: str) -> None:
        """Start synthesising ``sentence`` now, for a reply that may say it soon."""
        if sentence not in self.prefetch:
            self.prefetch[sentence] = self._spawn(self.synthesise(sentence), why)

    def prefetch_first(self, text: str) -> None:
        """Synthesise the first sentence of a prepared skill reply while the wearer is silent."""
        first = SentenceChunker().feed(text + " ")
        if first:
            self.prefetch[first[0]] = self._spawn(self.synthesise(first[0]), "tts-prefetch")

    def prefetch_first_of(
        self, prepared: PreparedReply, *, when_free: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Synthesise the first sentence of a prepared LLM reply once its words are in and `when_free`
        has returned: the turn detector has settled the turn (`TurnDetector.settled`: it ends when the
        silence runs out, or it is held), so the reply's first audio is ready when the turn ends. Started
        at every pause instead, the synthesis competed with the transcript and the audio model on two
        cores and delayed the end of the turn it prepared for."""
        self.stop_watching()
        self._watcher = self._spawn(self._first_sentence_of(prepared, when_free), "tts-prefetch-llm")

    async def _first_sentence_of(
        self, prepared: PreparedReply, when_free: Callable[[], Awaitable[None]] | None
    ) -> None:
        chunker = SentenceChunker()  # cuts as speak() will: the same deltas give the same first sentence
        first: str | None = None
        async with contextlib.aclosing(prepared.peek()) as deltas:
            async for delta in deltas:
                if sentences := chunker.feed(delta):
                    first = sentences[0]
                    break
        if first is None and prepared.complete and (sentences := chunker.flush()):
            first = sentences[0]  # a reply of one unfinished sentence
        if first is None:
            return
        if when_free is not None:
            await when_free()
        self.prefetch_sentence(first, "tts-prefetch")

    def stop_watching(self) -> None:
        """The turn has ended (its reply reads the words itself) or the speculation is dropped."""
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    def prefetch_apology(self) -> None:
        """The LLM is slow: synthesise its time-out apology now, so it plays at once if the limit passes."""
        chunker = SentenceChunker()
        for sentence in [*chunker.feed(apology(LLMTimeout("")) + " "), *chunker.flush()]:
            self.prefetch_sentence(sentence, "tts-fallback")

    def drop_prefetch(self) -> None:
        self.stop_watching()
        for task in self.prefetch.values():
            task.cancel()
        self.prefetch.clear()

    async def speak(
        self, deltas: AsyncGenerator[str, None], marks: Milestones, spoken: Spoken, reply_parts: list[str]
    ) -> AsyncGenerator[np.ndarray, None]:
        """LLM deltas -> sentences -> TTS audio, noting each milestone once."""
        chunker = SentenceChunker()
        queue: asyncio.Queue[tuple[str, list[np.ndarray]] | None] = asyncio.Queue(maxsize=2)

        async def produce() -> None:
            async with contextlib.aclosing(deltas) as stream:
                async for delta in stream:
                    marks.llm_first_token = marks.llm_first_token or time.monotonic()
                    reply_parts.append(delta)
                    for sentence in chunker.feed(delta):
                        await queue.put((sentence, await self._audio_for(sentence, marks)))
            for sentence in chunker.flush():
                await queue.put((sentence, await self._audio_for(sentence, marks)))
            await queue.put(None)

        producer = asyncio.create_task(produce(), name=f"tts-producer-{self.device}")
        try:
            while (item := await queue.get()) is not None:
                sentence, pcm = item
                spoken.sentences.append((sentence, sum(len(p) for p in pcm) / SAMPLE_RATE))
                for chunk in pcm:
                    yield chunk
            await producer  # surface its errors
        finally:
            await cancel_and_wait(producer)

    async def _audio_for(self, sentence: str, marks: Milestones) -> list[np.ndarray]:
        marks.first_sentence = marks.first_sentence or time.monotonic()
        task = self.prefetch.pop(sentence, None)
        log.debug("%s: speaking %r (%s)", self.device, sentence, "prepared" if task else "synthesising now")
        pcm = await task if task is not None else await self.synthesise(sentence)
        if marks.tts_first_audio is None and pcm:
            marks.tts_first_audio = time.monotonic()
            pcm = [trim_leading_silence(pcm[0]), *pcm[1:]]  # the reply starts with its first sound
        return pcm

    # -- playing -----------------------------------------------------------------------------------
    async def play(self, audio: AsyncGenerator[np.ndarray, None], marks: Milestones, spoken: Spoken) -> None:
        """Send the reply; mark first audio sent and played; wait until the headset has played it out."""
        first = True
        t_reply: float | None = None  # when the reply's own first chunk came, if a thinking cue preceded it

        async def tracked() -> AsyncGenerator[np.ndarray, None]:
            nonlocal first, t_reply
            async with contextlib.aclosing(audio) as chunks:
                async for chunk in chunks:
                    if chunk is earcons.thinking():  # the cue is not the reply: still thinking
                        t_reply = math.inf
                    elif first:
                        first = False
                        t_reply = time.monotonic() if t_reply is not None else None
                        self._on_speaking()
                    yield chunk

        self._drained.clear()
        self._played_started.clear()
        # Closed here, not left to the link: a cancel that lands while the link waits (for flow credit)
        # leaves the generators suspended, and their TTS producer would run on past the reply.
        async with contextlib.aclosing(tracked()) as stream:
            report = await self.send(stream)
        marks.first_audio_sent = report.t_first_sent
        if t_reply is not None and report.t_first_sent is not None:
            marks.first_audio_sent = max(report.t_first_sent, t_reply) if t_reply < math.inf else None
        if report.frames_sent == 0:
            return
        # The reply is sent; the headset plays the last ~buffer of it now. Wait for it to say so.
        try:
            async with asyncio.timeout(report.seconds_sent + 2.0):
                await self._played_started.wait()
                marks.first_audio_played = self._t_played
                if t_reply is not None and self._t_played is not None:  # approximate: after the cue
                    marks.first_audio_played = max(self._t_played, marks.first_audio_sent or 0.0)
                spoken.t_play_start = marks.first_audio_played
                await self._drained.wait()
        except TimeoutError:
            log.debug("%s: no playback report from the headset", self.device)
        self.mic.reply_ended()

    async def send(self, audio: AsyncGenerator[np.ndarray, None]) -> PlaybackReport:
        """Play audio on the speaker; what is sent is also the echo canceller's reference (kept here only
        for links without a playout track)."""
        aec = self.mic.canceller()
        if aec is None or self.speaker.playout_track() is not None:  # a link that records what it sent
            return await self.speaker.play(audio)

        async def teed() -> AsyncGenerator[np.ndarray, None]:
            async with contextlib.aclosing(audio) as chunks:
                async for chunk in chunks:
                    aec.sent(chunk)
                    yield chunk

        aec.begin()
        try:
            async with contextlib.aclosing(teed()) as stream:
                return await self.speaker.play(stream)
        finally:
            aec.end()

    def playback(self, event: PlaybackStatus, *, from_mic_link: bool) -> None:
        """A playback report from the speaker (or the headset whose mic hears it: the echo reference)."""
        if event.event is PlaybackEvent.STARTED:
            if not self._played_started.is_set():  # a restart after a gap is not the first audio
                self._t_played = event.t
            self._played_started.set()
        elif event.event in (PlaybackEvent.DRAINED, PlaybackEvent.ABORTED):
            self._drained.set()
        if from_mic_link:
            self.mic.playout(event)


async def once(pcm: np.ndarray) -> AsyncGenerator[np.ndarray, None]:
    yield pcm
