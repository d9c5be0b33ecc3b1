"""The headset link over this machine's own sound devices (laptop mic and speaker, or a headset that shows up
as a system audio device), through sounddevice / PortAudio.

Capture: a PortAudio callback thread cuts the device's audio into 20 ms blocks of 16 kHz int16 (resampling
with a ``soxr.ResampleStream`` when the device will not run at 16 kHz) and hands each block to the event
loop with ``call_soon_threadsafe``. The callback never blocks: when the loop falls more than
``handoff_limit_frames`` behind, new blocks are dropped and counted (``dropped_blocks``); ``t_stream`` still
advances for them, so it stays on the device's sample clock.

Playback: :meth:`LocalAudioLink.play` appends the reply to a thread-safe playout queue that the output
callback drains. At most ``max_lead_s`` (300 ms) is queued ahead of the speaker, so replies are paced to
real time and :meth:`~LocalAudioLink.abort` silences the speaker within the device latency (the queue is
flushed at once; what PortAudio already holds, about one device latency, still plays). ``STARTED`` and
``DRAINED`` are published when the reply's first / last sample reaches the speaker: the callback knows
when it hands a sample to PortAudio and PortAudio says how long until that buffer is at the DAC.
Volume is a software gain applied in the callback, so it acts on the reply already queued.

Latency the device adds: both streams use ``blocksize=0`` (the host API picks its period, so nothing waits
to fill a fixed block) and the device's low latency floored at 50 ms (:data:`MIN_LATENCY_S`; ``latency``
overrides it). Through PulseAudio (ALSA's ``pulse`` device) the same figure is passed on as
``PULSE_LATENCY_MSEC`` unless the user set it, because that plugin asks the server for no latency at all.
Measured on the 2-core dev machine through PulseAudio's null sink, with other jobs running: 45-60 ms from
``play()`` to the first sample on the sink's monitor at 16 kHz, 57-75 ms when both streams run at 48 kHz
and soxr resamples; abort() to a silent monitor 40-70 ms. Underflows show in
:meth:`~LocalAudioLink.counters` (``output_underflows``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np
import soxr

from companion.aio import DropOldestQueue
from companion.audio.devices import (
    AudioDeviceError,
    Kind,
    format_devices,
    list_devices,
    resolve_device,
    sounddevice_module,
)
from companion.protocol import Capabilities, CodecId, DeviceState, PlaybackEvent, Profile

from .base import (
    SAMPLE_RATE,
    AudioChunk,
    ConnectionEvent,
    HeadsetInfo,
    HeadsetLink,
    LinkError,
    LinkErrorEvent,
    LinkEvent,
    NotConnected,
    PlaybackReport,
    PlaybackStatus,
    until_closed,
)
from .local_streams import (
    FRAME_S,
    MIN_LATENCY_S,
    Capture,
    LocalAudioOptions,
    Mark,
    Playout,
    StreamPlan,
    ask_pulse_for,
    plan_stream,
)

log = logging.getLogger(__name__)

__all__ = ["MIN_LATENCY_S", "LocalAudioLink", "LocalAudioOptions"]


class LocalAudioLink(HeadsetLink):
    """The machine's own microphone and speaker as a headset (profile ``companion``, speaker, no AEC).

    ``input_device`` / ``output_device`` name a PortAudio device by index or name substring (``None``: the
    system default); ``companion devices`` lists them.
    """

    def __init__(
        self,
        input_device: str | int | None = None,
        output_device: str | int | None = None,
        *,
        name: str = "local",
        options: LocalAudioOptions | None = None,
    ) -> None:
        self.options = options or LocalAudioOptions()
        if not (self.options.capture or self.options.playback):
            raise ValueError("a local audio link needs capture, playback or both")
        if self.options.max_lead_s < 0.05:
            raise ValueError(f"max_lead_s={self.options.max_lead_s}: at least 0.05 s, or playback stutters")
        self._input_spec = input_device
        self._output_spec = output_device
        self.info = HeadsetInfo(
            address=f"local:{name}",
            name=name,
            profile=Profile.COMPANION,
            capabilities=Capabilities(
                firmware=(0, 0, 0),
                has_speaker=self.options.playback,
                has_aec=False,
                has_button=False,
                has_battery=False,
                mic_codecs=(CodecId.PCM16_16K,) if self.options.capture else (),
                speaker_codecs=(CodecId.PCM16_16K,) if self.options.playback else (),
                speaker_buffer_ms=round(self.options.max_lead_s * 1000),
            ),
            mtu=0,
            mic_codec="pcm16-16k" if self.options.capture else "",
            speaker_codec="pcm16-16k" if self.options.playback else "",
        )
        self._capture: Capture | None = None
        self._playout: Playout | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._connected = False
        self._closed = False
        # the item type `until_closed` reads (None: closed, an exception: failed), as the BLE link's
        self._audio_q: DropOldestQueue[AudioChunk | BaseException | None] = DropOldestQueue(
            self.options.audio_backlog_frames
        )
        self._event_q: asyncio.Queue[LinkEvent | None] = asyncio.Queue()
        self._volume = 100
        self._play_lock = asyncio.Lock()
        self._room = asyncio.Event()
        self._replies = 0  # ids of replies begun
        self._dead_upto = 0  # replies up to this id were aborted: late events of theirs are dropped
        self._keys = itertools.count()
        self._pending: dict[int, tuple[asyncio.TimerHandle, PlaybackEvent, float]] = {}

    # -- lifecycle ---------------------------------------------------------------------------------
    async def __aenter__(self) -> LocalAudioLink:
        if self._closed or self._loop is not None:
            raise LinkError("a LocalAudioLink opens once; make a new one")
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"local-audio-{self.info.name}")
        try:
            await self._loop.run_in_executor(self._executor, self._open)
        except BaseException:
            await self.aclose()
            raise
        self._connected = True
        self._event_q.put_nowait(ConnectionEvent(True, time.monotonic()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _open(self) -> None:
        """The link's worker thread: resolve devices, open and start the streams (PortAudio blocks here)."""
        try:
            sd = sounddevice_module()
        except AudioDeviceError as exc:
            raise LinkError(str(exc)) from exc
        try:
            ask_pulse_for(self.options.latency if self.options.latency is not None else MIN_LATENCY_S)
            if self.options.capture:
                plan = self._plan(sd, self._input_spec, "input")
                self._capture = Capture(sd, plan, self.options, self._post, self._on_chunk, self._on_finished)
            if self.options.playback:
                plan = self._plan(sd, self._output_spec, "output")
                self._playout = Playout(
                    sd, plan, self.options, self._post, self._on_playback, self._room.set, self._on_finished
                )
                self._playout.set_volume(self._volume)
            for part in (self._capture, self._playout):
                if part is not None:
                    part.stream.start()
        except AudioDeviceError as exc:
            raise LinkError(str(exc)) from exc
        except sd.PortAudioError as exc:
            raise LinkError(
                f"cannot open the sound device: {exc}; devices:\n{format_devices(list_devices())}"
            ) from exc
        extra = self.info.extra
        if self._capture is not None:
            s, p = self._capture.stream, self._capture.plan
            extra.update(input_device=p.device.name, input_rate=p.rate, input_latency_s=float(s.latency))
        if self._playout is not None:
            s, p = self._playout.stream, self._playout.plan
            extra.update(output_device=p.device.name, output_rate=p.rate, output_latency_s=float(s.latency))
        log.info(
            "local audio open: mic %s at %s Hz, speaker %s at %s Hz",
            extra.get("input_device", "-"),
            extra.get("input_rate", "-"),
            extra.get("output_device", "-"),
            extra.get("output_rate", "-"),
        )

    def _plan(self, sd: ModuleType, spec: str | int | None, kind: Kind) -> StreamPlan:
        return plan_stream(sd, resolve_device(spec, kind), kind, self.options.samplerate)

    def _close_streams(self) -> None:
        """The link's worker thread: stop the callbacks (PortAudio joins its threads) and release devices."""
        for part in (self._capture, self._playout):
            if part is not None:
                part.stream.abort(ignore_errors=True)
                part.stream.close(ignore_errors=True)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._connected = False
        try:
            if self._executor is not None and self._loop is not None:
                await asyncio.shield(self._loop.run_in_executor(self._executor, self._close_streams))
        finally:
            for handle, _event, _t in self._pending.values():
                handle.cancel()
            self._pending.clear()
            self._room.set()
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._audio_q.put_nowait(None, force=True)
            self._event_q.put_nowait(None)

    @property
    def connected(self) -> bool:
        return self._connected

    # -- hand-off from PortAudio's threads ----------------------------------------------------------
    def _post(self, fn: Callable[..., None], *args: object) -> None:
        """Run ``fn(*args)`` on the event loop; called from PortAudio's threads, never blocks."""
        loop = self._loop
        if loop is None or self._closed:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under a late callback
            loop.call_soon_threadsafe(fn, *args)

    def _on_finished(self) -> None:
        """PortAudio says a stream ended; unless we closed it, the device went away."""
        self._post(self._device_lost)

    def _device_lost(self) -> None:
        if self._closed or not self._connected:
            return
        self._connected = False
        now = time.monotonic()
        log.warning("local audio device %s stopped", self.info.name)
        self._event_q.put_nowait(LinkErrorEvent("the sound device stopped (unplugged or taken away?)", now))
        self._event_q.put_nowait(ConnectionEvent(False, now, "sound device stopped"))
        self._room.set()

    def _on_chunk(self, chunk: AudioChunk) -> None:
        if self._closed:
            return
        self._audio_q.put_nowait(chunk)

    def _on_playback(self, event: PlaybackEvent, reply: int, t: float) -> None:
        """Publish a playback event when its sample reaches the speaker (``t``), in order."""
        if self._closed or reply <= self._dead_upto:
            return
        assert self._loop is not None
        delay = t - time.monotonic()
        if delay <= 0:
            self._fire_due(t)
            self._event_q.put_nowait(PlaybackStatus(event, t))
            return
        key = next(self._keys)
        handle = self._loop.call_later(delay, self._fire, key)
        self._pending[key] = (handle, event, t)

    def _fire(self, key: int) -> None:
        entry = self._pending.pop(key, None)
        if entry is not None:
            self._fire_due(entry[2])
            self._event_q.put_nowait(PlaybackStatus(entry[1], entry[2]))

    def _fire_due(self, t: float) -> None:
        """Publish earlier-scheduled events due by ``t`` first, so STARTED always precedes DRAINED."""
        for key, (handle, event, at) in sorted(self._pending.items(), key=lambda kv: kv[1][2]):
            if at <= t:
                handle.cancel()
                del self._pending[key]
                self._event_q.put_nowait(PlaybackStatus(event, at))

    # -- HeadsetLink ---------------------------------------------------------------------------------
    async def listen(self, on: bool) -> None:
        """A sound device's mic is always open: the session ignores its audio between turns."""

    def audio(self) -> AsyncIterator[AudioChunk]:
        if not self.options.capture:
            raise LinkError(f"local link {self.info.name} was opened without capture")
        return until_closed(self._audio_q)

    async def events(self) -> AsyncIterator[LinkEvent]:
        while (item := await self._event_q.get()) is not None:  # until_closed, for a union item type
            yield item

    def counters(self) -> dict[str, int]:
        c, p = self._capture, self._playout
        return {
            "frames_captured": c.blocks if c else 0,
            "input_overflows": c.overflows if c else 0,
            "dropped_blocks": c.dropped if c else 0,
            "frames_dropped_backlog": self._audio_q.dropped,
            "samples_played": p.samples_played if p else 0,
            "output_underflows": p.underflows if p else 0,
            "underruns": p.underruns if p else 0,
        }

    async def set_state(self, state: DeviceState) -> None:
        self.info.extra["state"] = state.name.lower()  # a sound device has no LED to show it

    async def set_volume(self, percent: int) -> None:
        self._volume = max(0, min(100, int(percent)))
        if self._playout is not None:
            self._playout.set_volume(self._volume)
        self.info.extra["volume"] = self._volume

    async def abort(self) -> None:
        """Flush the playout queue now; publishes ABORTED (also when nothing was playing)."""
        self._dead_upto = self._replies
        if self._playout is not None:
            flushed = self._playout.flush()
            log.debug("abort flushed %.0f ms of reply audio", 1000 * flushed / self._playout.rate)
        now = time.monotonic()
        for key, (handle, event, at) in sorted(self._pending.items(), key=lambda kv: kv[1][2]):
            handle.cancel()
            del self._pending[key]
            if event is PlaybackEvent.STARTED:  # it was handed to PortAudio: it sounds
                self._event_q.put_nowait(PlaybackStatus(event, at))
        self._event_q.put_nowait(PlaybackStatus(PlaybackEvent.ABORTED, now))
        self._room.set()

    async def play(self, chunks: AsyncIterable[np.ndarray]) -> PlaybackReport:
        playout = self._playout
        if playout is None:
            raise NotConnected(f"local link {self.info.name} was opened without playback")
        if not self._connected:
            raise NotConnected(f"local link {self.info.name} is not open")
        async with self._play_lock:
            self._replies += 1
            reply = self._replies
            report = PlaybackReport()
            resampler = (
                soxr.ResampleStream(SAMPLE_RATE, playout.rate, 1, dtype="int16")
                if playout.rate != SAMPLE_RATE
                else None
            )
            piece = playout.rate // 50  # queue in 20 ms pieces so the lead bound holds for long chunks
            pushed = 0  # device-rate samples queued
            playout.push(Mark(True, reply))
            try:
                async for chunk in chunks:
                    pcm = np.array(chunk, dtype=np.int16, copy=True).reshape(-1)
                    if resampler is not None:
                        pcm = resampler.resample_chunk(pcm)
                    for start in range(0, len(pcm), piece):
                        if not await self._room_for(reply):
                            break
                        playout.push(pcm[start : start + piece])
                        pushed += len(pcm[start : start + piece])
                        now = time.monotonic()
                        report.t_first_sent = report.t_first_sent or now
                        report.t_last_sent = now
                    if reply <= self._dead_upto:
                        report.aborted = True
                        break
                else:
                    if resampler is not None and pushed:
                        tail = resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
                        playout.push(tail)
                        pushed += len(tail)
            except asyncio.CancelledError:
                report.aborted = True
                raise
            finally:
                playout.push(Mark(False, reply))
                report.seconds_sent = pushed / playout.rate
                report.frames_sent = math.ceil(round(report.seconds_sent / FRAME_S, 6))
            return report

    async def _room_for(self, reply: int) -> bool:
        """Wait until the queue is below the lead; False if the reply was aborted meanwhile."""
        playout = self._playout
        assert playout is not None
        while playout.queued > playout.lead:
            if reply <= self._dead_upto:
                return False
            if not self._connected:
                raise NotConnected(f"local link {self.info.name} closed during playback")
            self._room.clear()
            playout.want_room = True
            if playout.queued <= playout.lead:  # the callback drained it before it saw want_room
                break
            try:
                async with asyncio.timeout(self.options.stall_timeout_s):  # not wait_for: see aio.py
                    await self._room.wait()
            except TimeoutError:
                if time.monotonic() - playout.last_callback >= self.options.stall_timeout_s:
                    raise LinkError(
                        f"the output device {playout.plan.device.name} took no audio for "
                        f"{self.options.stall_timeout_s:.1f} s"
                    ) from None
        return reply > self._dead_upto
