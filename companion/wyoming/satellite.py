"""A served headset as a Home Assistant Assist satellite over Wyoming.

Home Assistant connects to the satellite's port (its Wyoming integration, added by host and port) and runs
its own pipeline — wake word, STT, intents or LLM, TTS, home control — while the open-ear headset is the
microphone, the speaker, the button and the state LED:

The button starts a pipeline (or stops a reply: barge-in); Home Assistant's VAD, transcript, TTS audio
and errors drive the state LED; `start = "wake"` streams the mic all the time for Home Assistant's wake
word instead. The full mapping is in docs/home-assistant.md.

One Home Assistant connection at a time: a new one replaces the old (as after a restart of Home Assistant).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from functools import partial

import numpy as np
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, Satellite
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite, StreamingStarted, StreamingStopped
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.snd import Played
from wyoming.vad import VoiceStarted, VoiceStopped
from wyoming.wake import Detection

from companion import __version__
from companion.aio import cancel_and_wait
from companion.link.base import ButtonEvent, HeadsetLink, LinkError, PlaybackStatus
from companion.protocol import Button, DeviceState, PlaybackEvent
from companion.wyoming.audio import CHANNELS, SAMPLE_RATE, WIDTH, InputConverter
from companion.wyoming.server import bound_uri

log = logging.getLogger(__name__)

_START_BUTTONS = {Button.TAP, Button.PRESS, Button.DOUBLE_TAP}


class HeadsetSatellite:
    """Serves one headset's link as a Wyoming satellite on `uri` until cancelled."""

    def __init__(
        self, link: HeadsetLink, uri: str, *, start: str = "button", area: str | None = None
    ) -> None:
        if start not in ("button", "wake"):
            raise ValueError(f"satellite start must be 'button' or 'wake', not {start!r}")
        self.link = link
        self.uri = uri
        self.start_mode = start
        self.area = area
        self.bound_uri = ""
        self.running = False  # Home Assistant said run-satellite
        self.streaming = False
        self.state = DeviceState.IDLE
        self._handler: SatelliteHandler | None = None
        self._playback: asyncio.Queue[np.ndarray | None] | None = None
        self._player: asyncio.Task[None] | None = None
        self._converter = InputConverter()
        self._leds: asyncio.Queue[DeviceState] = asyncio.Queue()
        self._drained = asyncio.Event()  # the headset reported its speaker buffer empty
        self.ready = asyncio.Event()

    def info(self) -> Info:
        name = self.link.info.name or self.link.info.address
        return Info(
            satellite=Satellite(
                name=name,
                description=f"{name} ({self.link.info.address}), an open-ear headset served by companion",
                attribution=Attribution(name="companion", url=""),
                installed=True,
                version=__version__,
                area=self.area,
                has_vad=False,
                active_wake_words=None,
                max_active_wake_words=0,
                supports_trigger=True,
            )
        )

    # -- running

    async def run(self) -> None:
        server = AsyncServer.from_uri(self.uri)
        await server.start(partial(SatelliteHandler, self))
        self.bound_uri = bound_uri(server, self.uri)
        log.info("%s: Wyoming satellite on %s", self.link.info.address, self.bound_uri)
        self.ready.set()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump_mic(), name="satellite-mic")
                tg.create_task(self._watch_buttons(), name="satellite-buttons")
                tg.create_task(self._write_leds(), name="satellite-led")
        finally:
            await self._stop_playback()
            await server.stop()

    def attach(self, handler: SatelliteHandler) -> None:
        old, self._handler = self._handler, handler
        if old is not None and old is not handler:
            log.info("a new Home Assistant connection replaces the old one")
            asyncio.get_running_loop().create_task(old.stop())

    def detach(self, handler: SatelliteHandler) -> None:
        if self._handler is handler:
            self._handler = None
            self.running = False
            self.streaming = False
            self.set_state(DeviceState.IDLE)

    async def send(self, event: Event) -> None:
        handler = self._handler
        if handler is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await handler.write_event(event)

    def set_state(self, state: DeviceState) -> None:
        if state is not self.state:
            self.state = state
            self._leds.put_nowait(state)

    async def _write_leds(self) -> None:
        while True:
            state = await self._leds.get()
            while not self._leds.empty():
                state = self._leds.get_nowait()
            with contextlib.suppress(LinkError, OSError, asyncio.TimeoutError):
                await self.link.set_state(state)

    # -- microphone

    async def start_streaming(self, pipeline: RunPipeline | None) -> None:
        if self.streaming or self._handler is None:
            return
        if pipeline is not None:
            await self.send(pipeline.event())
        self.streaming = True
        await self.send(AudioStart(rate=SAMPLE_RATE, width=WIDTH, channels=CHANNELS).event())
        await self.send(StreamingStarted().event())
        if self.start_mode == "button":
            self.set_state(DeviceState.LISTENING)

    async def stop_streaming(self) -> None:
        if not self.streaming:
            return
        self.streaming = False
        await self.send(AudioStop().event())
        await self.send(StreamingStopped().event())

    async def _pump_mic(self) -> None:
        """Read the mic all the time (the link must not back up); forward it while streaming."""
        async for chunk in self.link.audio():
            if self.streaming and self._handler is not None:
                timestamp = int(chunk.t_stream * 1000)
                await self.send(
                    AudioChunk(
                        rate=SAMPLE_RATE,
                        width=WIDTH,
                        channels=CHANNELS,
                        audio=np.ascontiguousarray(chunk.pcm, dtype="<i2").tobytes(),
                        timestamp=timestamp,
                    ).event()
                )

    # -- button

    async def _watch_buttons(self) -> None:
        async for event in self.link.events():
            if isinstance(event, ButtonEvent) and event.button in _START_BUTTONS:
                await self.on_button()
            elif isinstance(event, PlaybackStatus) and event.event in (
                PlaybackEvent.DRAINED,
                PlaybackEvent.ABORTED,
            ):
                self._drained.set()

    async def on_button(self) -> None:
        if self._player is not None and not self._player.done():
            log.info("%s: barge-in (button)", self.link.info.address)
            await self._stop_playback()
            with contextlib.suppress(LinkError, OSError, asyncio.TimeoutError):
                await self.link.abort()
            self.set_state(DeviceState.IDLE)
            await self.send(Played().event())
            return
        if not self.running:
            log.info("%s: button pressed, but Home Assistant has not asked to run", self.link.info.address)
            return
        await self.start_streaming(RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS))

    # -- speaker

    def begin_playback(self) -> None:
        if self._player is not None and not self._player.done():
            return  # a second audio-start within one reply: keep the same stream
        self._playback = asyncio.Queue()
        self._player = asyncio.create_task(self._play(self._playback), name="satellite-play")

    def push_audio(self, chunk: AudioChunk) -> None:
        if self._playback is None:
            self.begin_playback()
        assert self._playback is not None
        pcm = self._converter.push(chunk.audio, chunk.rate, chunk.width, chunk.channels)
        if len(pcm):
            self._playback.put_nowait(pcm)

    def end_playback(self) -> None:
        if self._playback is not None:
            tail = self._converter.finish()
            if len(tail):
                self._playback.put_nowait(tail)
            self._playback.put_nowait(None)
            self._playback = None

    async def _play(self, queue: asyncio.Queue[np.ndarray | None]) -> None:
        async def chunks() -> AsyncGenerator[np.ndarray, None]:
            while (pcm := await queue.get()) is not None:
                yield pcm

        self.set_state(DeviceState.SPEAKING)
        self._drained.clear()
        try:
            report = await self.link.play(chunks())
            # `played` means heard: wait for the headset to drain its buffer (bounded by the audio's length).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(report.seconds_sent + 1.0):
                    await self._drained.wait()
        except LinkError as exc:
            log.warning("%s: playback failed: %s", self.link.info.address, exc)
        self.set_state(
            DeviceState.LISTENING if self.start_mode == "wake" and self.running else DeviceState.IDLE
        )
        await self.send(Played().event())

    async def _stop_playback(self) -> None:
        player, self._player, self._playback = self._player, None, None
        if player is not None and not player.done():
            await cancel_and_wait(player)


class SatelliteHandler(AsyncEventHandler):
    """Home Assistant's connection to a `HeadsetSatellite`."""

    def __init__(
        self, satellite: HeadsetSatellite, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        super().__init__(reader, writer)
        self.satellite = satellite
        satellite.attach(self)

    async def handle_event(self, event: Event) -> bool:
        sat = self.satellite
        try:
            await self._handle(sat, event)
        except ConnectionError:
            return False
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("bad %s event from Home Assistant: %s", event.type, exc)
            await self.write_event(Error(text=f"{event.type}: {exc}", code="bad-request").event())
        return True

    async def _handle(self, sat: HeadsetSatellite, event: Event) -> None:
        if Describe.is_type(event.type):
            await self.write_event(sat.info().event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif RunSatellite.is_type(event.type):
            sat.running = True
            if sat.start_mode == "wake":
                sat.set_state(DeviceState.IDLE)
                await sat.start_streaming(
                    RunPipeline(
                        start_stage=PipelineStage.WAKE, end_stage=PipelineStage.TTS, restart_on_end=True
                    )
                )
        elif PauseSatellite.is_type(event.type):
            sat.running = False
            await sat.stop_streaming()
            sat.set_state(DeviceState.IDLE)
        elif RunPipeline.is_type(event.type):
            pipeline = RunPipeline.from_event(event)
            if pipeline.start_stage in (PipelineStage.WAKE, PipelineStage.ASR):
                await sat.start_streaming(None)
        elif Detection.is_type(event.type) or VoiceStarted.is_type(event.type):
            sat.set_state(DeviceState.LISTENING)
        elif VoiceStopped.is_type(event.type) or Transcript.is_type(event.type):
            if sat.start_mode == "button":
                await sat.stop_streaming()
            sat.set_state(DeviceState.THINKING)
        elif AudioStart.is_type(event.type):
            sat.begin_playback()
        elif AudioChunk.is_type(event.type):
            sat.push_audio(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            sat.end_playback()
        elif Error.is_type(event.type):
            log.warning("Home Assistant: %s", Error.from_event(event).text)
            if sat.start_mode == "button":
                await sat.stop_streaming()
            sat.set_state(DeviceState.IDLE)
        else:
            log.debug("satellite ignores %s", event.type)

    async def disconnect(self) -> None:
        self.satellite.detach(self)


def satellite_uri(config: object, address: str, index: int) -> str:
    """The URI of a headset's satellite: a fixed port from `satellite.ports`, else base_port + index."""
    ports = {k.upper(): v for k, v in getattr(config, "ports", {}).items()}
    base = int(getattr(config, "base_port", 10800))
    port = ports.get(address.upper(), base + index if base else 0)
    return f"tcp://{getattr(config, 'host', '127.0.0.1')}:{port}"


async def serve_satellite(link: HeadsetLink, config: object, index: int) -> None:
    """Serve `link` as a satellite (config: a `companion.config.SatelliteConfig`) until cancelled."""
    satellite = HeadsetSatellite(
        link,
        satellite_uri(config, link.info.address, index),
        start=str(getattr(config, "start", "button")),
        area=getattr(config, "area", None),
    )
    await satellite.run()
