"""The PortAudio side of the local audio link: the options, how each stream is opened, and the two callback
objects that run on PortAudio's threads (:class:`Capture`: mic blocks to the event loop; :class:`Playout`:
the reply queue the speaker drains). Nothing here awaits; the link (local.py) owns the event-loop side.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import soxr

from companion.audio.devices import AudioDevice, Kind
from companion.protocol import PlaybackEvent

from .base import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk, LinkError

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


@dataclass(slots=True)
class LocalAudioOptions:
    """Knobs of the local audio link; the defaults suit a laptop or a PulseAudio/PipeWire desktop."""

    capture: bool = True  # False: a speaker-only link (e.g. replies for an omi pendant)
    playback: bool = True  # False: a microphone-only link
    samplerate: int | None = None  # force the device rate; None: 16 kHz if the device takes it, else its own
    latency: float | str | None = None  # PortAudio's, in seconds or "low"/"high"; None: see latency_for
    max_lead_s: float = 0.3  # reply audio queued ahead of the speaker; play() waits while more is queued
    handoff_limit_frames: int = 50  # 1 s of mic blocks awaiting a stalled event loop, then new ones dropped
    audio_backlog_frames: int = 500  # 10 s waiting for a slow consumer of audio(), then the oldest dropped
    stall_timeout_s: float = 2.0  # the output device took no audio for this long: play() fails


#: Floor under the device's low latency. On the 2-core dev machine through PulseAudio, PortAudio's "low"
#: (8.5 ms) underflowed ~70 times a second with a Python callback; 30 ms ran clean at ordinary load but lost
#: whole stretches of a reply with two CPU-bound processes beside it (as STT/TTS are); 50 ms ran clean there.
MIN_LATENCY_S = 0.05


def latency_for(device: AudioDevice, kind: Kind, wanted: float | str | None) -> float | str:
    """The suggested latency to open ``device`` with: as asked, or its low latency floored at 50 ms."""
    if wanted is not None:
        return wanted
    low = device.low_input_latency if kind == "input" else device.low_output_latency
    return max(low, MIN_LATENCY_S)


def ask_pulse_for(latency: float | str) -> None:
    """Make PulseAudio honour our latency when PortAudio reaches it through ALSA's ``pulse`` plugin.

    That plugin connects without a latency request, so a sink runs at its maximum latency (2 s for a null
    sink, which then swallows whole seconds of a reply at once, and an abort cannot silence what it took).
    libpulse reads ``PULSE_LATENCY_MSEC`` when a stream connects; a value the user set is left alone.
    """
    if isinstance(latency, (int, float)):
        os.environ.setdefault("PULSE_LATENCY_MSEC", str(max(1, round(latency * 1000))))


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """How one stream will be opened on one device."""

    device: AudioDevice
    rate: int
    channels: int


def plan_stream(sd: ModuleType, device: AudioDevice, kind: Kind, forced_rate: int | None) -> StreamPlan:
    """Mono at 16 kHz when the device allows it; else its own rate and/or two channels (the mic's first
    channel is used; the reply goes to both)."""
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    dtype = "int16" if kind == "input" else "float32"
    most = device.max_input_channels if kind == "input" else device.max_output_channels
    rates = [forced_rate] if forced_rate else [SAMPLE_RATE, int(device.default_samplerate)]
    errors = []
    for rate in dict.fromkeys(rates):
        for channels in dict.fromkeys((1, min(2, most))):
            try:
                check(device=device.index, samplerate=rate, channels=channels, dtype=dtype)
            except sd.PortAudioError as exc:
                errors.append(f"{rate} Hz x{channels}: {exc}")
                continue
            return StreamPlan(device, rate, channels)
    raise LinkError(
        f"{kind} device {device.describe()} accepts none of the formats tried ({'; '.join(errors)})"
    )


class Capture:
    """The mic side: PortAudio's callback thread -> 20 ms 16 kHz blocks -> the event loop."""

    def __init__(
        self,
        sd: ModuleType,
        plan: StreamPlan,
        options: LocalAudioOptions,
        post: Callable[..., None],
        sink: Callable[[AudioChunk], None],
        finished: Callable[[], None],
    ) -> None:
        self.plan = plan
        self._post = post
        self._sink = sink
        self._limit = options.handoff_limit_frames
        self._block = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self._fill = 0
        self._resampler = (
            soxr.ResampleStream(plan.rate, SAMPLE_RATE, 1, dtype="int16")
            if plan.rate != SAMPLE_RATE
            else None
        )
        # Each counter is written by one thread only: the callback's, or the loop's (``taken``).
        self.blocks = 0
        self.handed = 0
        self.taken = 0
        self.overflows = 0
        self.dropped = 0
        self.stream = sd.InputStream(
            device=plan.device.index,
            samplerate=plan.rate,
            channels=plan.channels,
            dtype="int16",
            blocksize=0,
            latency=latency_for(plan.device, "input", options.latency),
            callback=self._callback,
            finished_callback=finished,
        )

    def _callback(self, indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        """PortAudio's thread: no waiting, one copy per 20 ms block (plus soxr's output when resampling)."""
        now = time.monotonic()
        if status.input_overflow:
            self.overflows += 1
        mono = indata[:, 0]
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(np.ascontiguousarray(mono))
        pos, n = 0, len(mono)
        while pos < n:
            take = min(FRAME_SAMPLES - self._fill, n - pos)
            self._block[self._fill : self._fill + take] = mono[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == FRAME_SAMPLES:
                self._fill = 0
                index = self.blocks
                self.blocks += 1
                if self.handed - self.taken >= self._limit:
                    self.dropped += 1
                    continue
                self.handed += 1
                self._post(self._deliver, self._block.copy(), index, now)

    def _deliver(self, pcm: np.ndarray, index: int, t_arrival: float) -> None:
        """The event loop's side of the hand-off."""
        self.taken += 1
        self._sink(AudioChunk(pcm, index * FRAME_S, t_arrival))


@dataclass(frozen=True, slots=True)
class Mark:
    """A reply boundary in the playout queue."""

    start: bool
    reply: int


class Playout:
    """The speaker side: a thread-safe queue of reply audio that PortAudio's callback drains.

    The queue holds int16 mono pieces at the device rate and :class:`Mark` boundaries; the loop appends and
    flushes under ``_lock``, the callback takes under it (held for a few microseconds, never while waiting).
    """

    def __init__(
        self,
        sd: ModuleType,
        plan: StreamPlan,
        options: LocalAudioOptions,
        post: Callable[..., None],
        on_event: Callable[[PlaybackEvent, int, float], None],
        on_room: Callable[[], None],
        finished: Callable[[], None],
    ) -> None:
        self.plan = plan
        self.rate = plan.rate
        self.lead = int(options.max_lead_s * plan.rate)
        self._post = post
        self._on_event = on_event
        self._on_room = on_room
        self._lock = threading.Lock()
        self._items: deque[np.ndarray | Mark] = deque()
        self._head = 0  # samples of _items[0] already played
        self.queued = 0  # samples waiting, at the device rate
        self._scale = np.float32(1.0 / 32768.0)  # volume as a float32 gain on int16 samples
        self._starting: int | None = None  # reply whose START mark passed, first sample not yet played
        self._current: int | None = None  # reply being played (first sample handed, END not reached)
        self._starving = False
        self._last_at = 0.0  # when the last sample handed reaches the speaker
        self.want_room = False
        self.last_callback = time.monotonic()
        self.samples_played = 0
        self.underflows = 0  # PortAudio's output-underflow flags
        self.underruns = 0  # times the queue ran dry in the middle of a reply
        self.stream = sd.OutputStream(
            device=plan.device.index,
            samplerate=plan.rate,
            channels=plan.channels,
            dtype="float32",
            blocksize=0,
            latency=latency_for(plan.device, "output", options.latency),
            callback=self._callback,
            finished_callback=finished,
        )
        self._latency = float(self.stream.latency)

    # -- the event loop's side -----------------------------------------------------------------------
    def set_volume(self, percent: int) -> None:
        self._scale = np.float32(percent / 100.0 / 32768.0)

    def push(self, item: np.ndarray | Mark) -> None:
        with self._lock:
            self._items.append(item)
            if not isinstance(item, Mark):
                self.queued += len(item)

    def flush(self) -> int:
        """Drop everything not yet handed to PortAudio; returns the samples dropped."""
        with self._lock:
            dropped = self.queued
            self._items.clear()
            self._head = self.queued = 0
            self._starting = self._current = None
            self._starving = False
        return dropped

    # -- PortAudio's thread --------------------------------------------------------------------------
    def _speaker_delay(self, time_info: Any) -> float:
        """Seconds until the buffer being filled reaches the DAC, as PortAudio estimates it."""
        delay = time_info.outputBufferDacTime - time_info.currentTime
        return delay if time_info.currentTime > 0 and 0 <= delay < 1 else self._latency

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's thread: copies with gain straight into ``outdata``; no allocation, no waiting."""
        now = time.monotonic()
        self.last_callback = now
        if status.output_underflow:
            self.underflows += 1
        out = outdata[:, 0]
        at = now + self._speaker_delay(time_info)
        filled = 0
        with self._lock:
            items = self._items
            while items:
                head = items[0]
                if isinstance(head, Mark):
                    items.popleft()
                    if head.start:
                        self._starting = head.reply
                    else:
                        self._starting = None
                        if self._current == head.reply:
                            self._post(self._on_event, PlaybackEvent.DRAINED, head.reply, self._last_at)
                        self._current = None
                    continue
                if filled == frames:
                    break
                take = min(len(head) - self._head, frames - filled)
                np.multiply(
                    head[self._head : self._head + take], self._scale, out=out[filled : filled + take]
                )
                if self._starting is not None:
                    self._current, self._starting = self._starting, None
                    self._post(self._on_event, PlaybackEvent.STARTED, self._current, at + filled / self.rate)
                filled += take
                self._head += take
                self.queued -= take
                if self._head == len(head):
                    items.popleft()
                    self._head = 0
            if filled:
                self._last_at = at + filled / self.rate
                self.samples_played += filled
            if filled < frames:
                out[filled:] = 0
                if self._current is not None and not self._starving:
                    self.underruns += 1
                self._starving = self._current is not None
            else:
                self._starving = False
            if self.want_room and self.queued <= self.lead:
                self.want_room = False
                self._post(self._on_room)
        if outdata.shape[1] > 1:
            outdata[:, 1:] = outdata[:, :1]
