"""The headset speaker: speaker writes -> reassembly -> decode -> real-time playout buffer at 16 kHz.

Flow control is by cumulative credits (see ``companion.protocol.FlowStatus``): ``credits`` = frames that
left the buffer (played, flushed by an abort, or dropped) + the buffer's capacity in frames, so a host
that never sends more than its credits can never overflow the buffer, and a lost flow notification never
leaks credit. Playout starts once ``playout_start_ms`` is buffered (or the reply has ended, or the stream
stalled); a tick that runs dry while the reply goes on counts as an underrun (counted when the reply
resumes; the tail of a reply is not an underrun). PLAYBACK events: STARTED when the first sample of a
reply plays, DRAINED when it has all played (after TTS STOP, or ``drain_timeout_ms`` of silence), ABORTED
when an ABORT flushed it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soxr

from companion.protocol import (
    CodecId,
    FlowStatus,
    Frame,
    LinkCounters,
    PlaybackEvent,
    Profile,
    Reassembler,
    TtsPhase,
)
from companion.protocol.codecs import StreamDecoder

from ..config import SAMPLE_RATE, TICK_MS, TICK_SAMPLES, HeadsetConfig

log = logging.getLogger("firmware_sim.speaker")

STALL_TICKS = 2  # start playing a short buffer anyway after this many ticks without new frames
FLUSH_TICKS = 3  # give up waiting for a hole in the speaker stream after this many quiet ticks


@dataclass(frozen=True, slots=True)
class SpeakerEvent:
    t: float  # headset clock
    event: PlaybackEvent


class Speaker:
    """Playout buffer with credits; ``tick()`` returns the 20 ms the speaker played (after volume)."""

    def __init__(
        self,
        config: HeadsetConfig,
        clock: Callable[[], float],
        on_event: Callable[[PlaybackEvent], None],
        on_error: Callable[[str], None],
    ) -> None:
        self.config = config
        self._clock = clock
        self._on_event = on_event
        self._on_error = on_error
        self.capacity_frames = config.speaker_capacity_frames
        self._start_samples = config.playout_start_ms * SAMPLE_RATE // 1000
        self._drain_ticks = max(1, config.drain_timeout_ms // TICK_MS)
        self.volume = config.volume
        # lifetime statistics
        self.events: list[SpeakerEvent] = []
        self.underruns = 0
        self.played_samples = 0
        self.frames_received = 0
        self.frames_played = 0
        self.frames_flushed = 0
        self.overflows = 0
        self.rejected = 0
        self.decode_errors = 0
        self.max_buffered_frames = 0
        self.replies = 0
        self.reset()

    def reset(self) -> None:
        """A new connection starts a new stream: fresh reassembly, empty buffer, a full buffer of credit."""
        self._past = LinkCounters()
        self._reassembler = Reassembler(Profile.COMPANION)
        self._decoder: StreamDecoder | None = None
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        self._buffer: deque[np.ndarray] = deque()
        self._head = 0  # samples of the first buffered frame already played
        self._buffered = 0  # samples in the buffer
        self._consumed = 0  # frames that left the buffer this stream (credits = consumed + capacity)
        self._playing = False
        self._reply = False
        self._tts_stopped = False
        self._starving = 0
        self._quiet_ticks = 0
        self._error_sent = False

    # -- state -------------------------------------------------------------------------------------
    @property
    def buffered_ms(self) -> int:
        return self._buffered * 1000 // SAMPLE_RATE

    @property
    def buffered_frames(self) -> int:
        return len(self._buffer)

    @property
    def credits(self) -> int:
        return self._consumed + self.capacity_frames

    @property
    def playing(self) -> bool:
        """True from the first sample of a reply until it drained or was aborted."""
        return self._reply

    @property
    def counters(self) -> LinkCounters:
        """Reassembly counters of the speaker stream since the connection began (lost, duplicate ...)."""
        total = LinkCounters()
        total.add(self._past)
        total.add(self._reassembler.counters)
        return total

    def _new_sequence(self) -> None:
        """Sequence numbers may restart with each reply (TTS START) and after an ABORT."""
        self._accept(self._reassembler.flush())
        self._past.add(self._reassembler.counters)
        self._reassembler = Reassembler(Profile.COMPANION)

    def flow_status(self) -> FlowStatus:
        return FlowStatus(
            credits=self.credits,
            buffered_ms=min(self.buffered_ms, 65535),
            underruns=self.underruns,
            capacity_frames=self.capacity_frames,
        )

    # -- input -------------------------------------------------------------------------------------
    def on_packet(self, data: bytes) -> None:
        self._quiet_ticks = 0
        self._accept(self._reassembler.feed(data))

    def on_tts(self, phase: TtsPhase) -> None:
        if phase is TtsPhase.START:
            self._new_sequence()
            self._tts_stopped = False
        elif phase is TtsPhase.STOP:
            self._accept(self._reassembler.flush())
            self._tts_stopped = True

    def abort(self) -> None:
        """Flush everything at once; the flushed frames are credited back."""
        self._past.add(self._reassembler.counters)
        self._reassembler = Reassembler(Profile.COMPANION)
        flushed = len(self._buffer)
        self._buffer.clear()
        self._head = self._buffered = 0
        self._consumed += flushed
        self.frames_flushed += flushed
        self._playing = self._reply = self._tts_stopped = False
        self._starving = 0
        self._emit(PlaybackEvent.ABORTED)

    def _accept(self, frames: list[Frame]) -> None:
        if not frames:
            return
        # decode runs of the same codec together so a lost frame can use the next one's FEC
        run: list[Frame] = []
        for f in frames:
            if run and f.codec != run[0].codec:
                self._decode_run(run)
                run = []
            run.append(f)
        self._decode_run(run)

    def _decode_run(self, frames: list[Frame]) -> None:
        codec = frames[0].codec
        self.frames_received += len(frames)
        if codec not in (self.config.speaker_codecs or ()):
            self.rejected += len(frames)
            self._consumed += len(frames)
            if not self._error_sent:
                self._error_sent = True
                self._on_error(f"speaker codec {CodecId(codec).name} is not supported")
            return
        if self._decoder is None:
            self._decoder = StreamDecoder(codec)
        errors = self._decoder.errors
        pcms = self._decoder.decode(frames)
        self.decode_errors += self._decoder.errors - errors
        rate = self._decoder.sample_rate
        for pcm in pcms:
            if rate != SAMPLE_RATE:
                rs = self._resamplers.get(rate)
                if rs is None:
                    rs = self._resamplers[rate] = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16")
                pcm = rs.resample_chunk(pcm)
            self._push(pcm)

    def _push(self, pcm: np.ndarray) -> None:
        if len(self._buffer) >= self.capacity_frames:
            self.overflows += 1
            self._consumed += 1
            return
        self._buffer.append(pcm)
        self._buffered += len(pcm)
        self.max_buffered_frames = max(self.max_buffered_frames, len(self._buffer))

    # -- playout -----------------------------------------------------------------------------------
    def tick(self) -> np.ndarray:
        """Play 20 ms: returns the samples that left the speaker (volume applied)."""
        self._quiet_ticks += 1
        if self._quiet_ticks == FLUSH_TICKS:
            self._accept(self._reassembler.flush())
        out = np.zeros(TICK_SAMPLES, dtype=np.int16)
        if (
            not self._playing
            and self._buffered
            and (
                self._buffered >= self._start_samples or self._tts_stopped or self._quiet_ticks >= STALL_TICKS
            )
        ):
            self._playing = True
        got = self._take(out) if self._playing else 0
        if got:
            if not self._reply:
                self._reply = True
                self.replies += 1
                self._emit(PlaybackEvent.STARTED)
            if self._starving:
                self.underruns += self._starving
                self._starving = 0
        if self._buffered == 0:
            self._playing = False
        if self._reply and got < TICK_SAMPLES and not self._buffered:
            if self._tts_stopped:
                self._end_reply()
            else:
                self._starving += 1
                if self._starving >= self._drain_ticks:
                    self._end_reply()
        self.played_samples += got
        if self.volume != 100 and got:
            out = np.clip(np.round(out.astype(np.float32) * (self.volume / 100.0)), -32768, 32767).astype(
                np.int16
            )
        return out

    def _take(self, out: np.ndarray) -> int:
        got = 0
        while got < len(out) and self._buffer:
            frame = self._buffer[0]
            n = min(len(out) - got, len(frame) - self._head)
            out[got : got + n] = frame[self._head : self._head + n]
            got += n
            self._head += n
            self._buffered -= n
            if self._head >= len(frame):
                self._buffer.popleft()
                self._head = 0
                self._consumed += 1
                self.frames_played += 1
        return got

    def _end_reply(self) -> None:
        self._reply = self._tts_stopped = False
        self._starving = 0
        self._error_sent = False
        self._emit(PlaybackEvent.DRAINED)

    def _emit(self, event: PlaybackEvent) -> None:
        self.events.append(SpeakerEvent(self._clock(), event))
        self._on_event(event)
