"""The headset link over Bluetooth LE, through bleak.

The same code drives a real adapter and the virtual headset: the bleak backend class is the only difference
(``backend=None`` picks the platform's, ``firmware_sim``'s SimClient plugs the simulator in). It connects
through bleak-retry-connector, raises the MTU where the stack allows, reads capabilities, negotiates codecs,
subscribes, turns notifications into 20 ms PCM frames with every loss counted and concealed, sends replies
under the headset's credit-based flow control, and reconnects with backoff after a drop.

The parts that need no radio live beside it, sans-IO: codec choice (``ble_codec``), the mic pipeline from
notification bytes to frames (``mic_stream``), the credit-paced speaker sender (``speaker_sender``); finding
headsets is ``scan``. This module keeps the connection: setup, notifications, reconnects, writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from bleak import BleakClient
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import BaseBleakScanner
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from companion.aio import DropOldestQueue, cancel_and_wait, reconnect_policy
from companion.protocol import (
    Abort,
    Capabilities,
    CodecId,
    CompanionUUID,
    ControlMsg,
    DeviceState,
    FlowStatus,
    Listen,
    Profile,
    ProtocolError,
    SetCodecs,
    SetState,
    SetVolume,
    StdUUID,
    Tts,
    TtsPhase,
    codec_spec,
    parse_battery,
    parse_omi_codec,
    profile_for_services,
)

from . import omi
from .base import (
    AudioChunk,
    ConnectionEvent,
    HeadsetInfo,
    HeadsetLink,
    LinkErrorEvent,
    LinkEvent,
    NotConnected,
    PlaybackReport,
    until_closed,
)
from .ble_codec import MIC_PREFERENCE, SPEAKER_PREFERENCE, choose_codec, codec_fits
from .bluez_battery import BlueZBatteryWatch
from .errors import LinkFailed, ReconnectPolicy, as_link_errors
from .mic_stream import MicStream
from .notices import HeadsetNotices
from .playout import PlayoutTrack
from .scan import FoundHeadset, describe_ble_error, find_headset, scan_headsets
from .speaker_sender import SpeakerSender

__all__ = [  # the link, and the names callers have always imported from here
    "MIC_PREFERENCE",
    "SPEAKER_PREFERENCE",
    "BleHeadsetLink",
    "BleLinkOptions",
    "FoundHeadset",
    "choose_codec",
    "codec_fits",
    "describe_ble_error",
    "scan_headsets",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BleLinkOptions:
    """Knobs of one BLE link; defaults suit real headsets and the simulator alike."""

    mic_codec: CodecId | None = None  # None: the best the headset and the radio allow
    speaker_codec: CodecId | None = None
    hands_free: bool = True  # ask the headset to stream its mic as soon as we are subscribed
    reorder_window: int = 8  # packets we wait for a late one before counting it lost
    connect_attempts: int = 3
    reconnect: bool = True
    reconnect_backoff_max_s: float = 0.5
    scan_timeout_s: float = 1.0
    packet_budget_per_s: int = 400  # what we assume a BLE link carries when choosing codecs
    audio_backlog_frames: int = 500  # 10 s of mic audio waiting for a slow consumer, then oldest dropped
    # Without a GATT Battery Service (stock BlueZ hides it), ask BlueZ's Battery1 over D-Bus. None: on Linux
    # with the platform's own backend. ``dbus_address`` None is the system bus.
    bluez_battery: bool | None = None
    dbus_address: str | None = None


class BleHeadsetLink(HeadsetLink):
    """One headset over BLE; reconnects by itself until closed."""

    def __init__(
        self,
        device: BLEDevice | str,
        *,
        backend: type[BaseBleakClient] | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
        options: BleLinkOptions | None = None,
    ) -> None:
        self._device = device if isinstance(device, BLEDevice) else None
        address = device.address if isinstance(device, BLEDevice) else device
        name = (device.name or address) if isinstance(device, BLEDevice) else address
        self.info = HeadsetInfo(address=address, name=name, profile=Profile.COMPANION)
        self.options = options or BleLinkOptions()
        self._backend = backend
        self._scanner_backend = scanner_backend
        self._client: BleakClient | None = None
        self._closing = False
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._failure: LinkFailed | None = None
        # Mic audio waiting for a slow consumer: the oldest frames go first (counted).
        self._audio_q: DropOldestQueue[AudioChunk | BaseException | None] = DropOldestQueue(
            self.options.audio_backlog_frames
        )
        self._event_q: asyncio.Queue[LinkEvent | BaseException | None] = asyncio.Queue()
        self._mic = MicStream(self.options.reorder_window)
        self._notices = HeadsetNotices(self.info)
        self._extra = {
            "connects": 0,
            "reconnects": 0,
            "disconnects": 0,
        }
        self._speaker: SpeakerSender | None = None  # this connection's speaker side, if the headset has one
        self._play_lock = asyncio.Lock()
        self._bluez_battery: BlueZBatteryWatch | None = None  # the level from BlueZ when 0x180F is hidden

    # -- lifecycle ---------------------------------------------------------------------------------
    async def __aenter__(self) -> BleHeadsetLink:
        await self._connect()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"ble-supervisor-{self.info.address}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            await cancel_and_wait(self._supervisor)
            self._supervisor = None
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(BleakError, asyncio.TimeoutError, OSError):
                if client.is_connected and self.info.profile is Profile.COMPANION:
                    await self._write_control(Listen(False), client)
                await client.disconnect()
        if self._bluez_battery is not None:
            await self._bluez_battery.aclose()
        self._connected.clear()
        self._audio_q.put_nowait(None, force=True)
        self._event_q.put_nowait(None)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    # -- connecting --------------------------------------------------------------------------------
    async def _connect(self) -> None:
        device = self._device
        if device is None:
            device = await find_headset(
                self.info.address, self.options.scan_timeout_s, backend=self._scanner_backend
            )
        if device.name:
            self.info.name = device.name
        kwargs: dict[str, Any] = {} if self._backend is None else {"backend": self._backend}
        client = await establish_connection(
            BleakClient,
            device,
            self.info.name,
            disconnected_callback=self._on_disconnected,
            max_attempts=self.options.connect_attempts,
            **kwargs,
        )
        try:
            await self._setup(client)
        except BaseException:
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise
        self._client = client
        self._extra["connects"] += 1
        self._connected.set()
        self._lost.clear()
        log.info(
            "connected to %s (%s, %s profile, MTU %d, mic %s, speaker %s)",
            self.info.name,
            self.info.address,
            self.info.profile,
            self.info.mtu,
            self.info.mic_codec,
            self.info.speaker_codec or "none",
        )
        self._event_q.put_nowait(ConnectionEvent(True, time.monotonic()))

    async def _setup(self, client: BleakClient) -> None:
        acquire = getattr(client._backend, "_acquire_mtu", None)
        if acquire is not None:
            with contextlib.suppress(BleakError, NotImplementedError, OSError):
                await acquire()
        mtu = client.mtu_size
        self.info.mtu = mtu
        services = [s.uuid for s in client.services]
        profile = profile_for_services(services)
        if profile is None:
            raise NotConnected(f"{self.info.address} offers neither the companion nor the omi service")
        self.info.profile = profile
        battery = omi.find_char(client.services, StdUUID.BATTERY_SERVICE, StdUUID.BATTERY_LEVEL)
        if battery is not None:
            self.info.battery = parse_battery(await client.read_gatt_char(battery))
            await client.start_notify(battery, self._on_battery)
        elif self._use_bluez_battery():
            if self._bluez_battery is None:
                self._bluez_battery = BlueZBatteryWatch(
                    self.info.address, self._on_level, bus_address=self.options.dbus_address
                )
            level = await self._bluez_battery.start()
            self.info.battery = level if level is not None else self.info.battery
        if profile is Profile.COMPANION:
            await self._setup_companion(client, mtu)
        else:
            await self._setup_omi(client)

    async def _setup_companion(self, client: BleakClient, mtu: int) -> None:
        caps = Capabilities.decode(await client.read_gatt_char(CompanionUUID.CAPABILITIES))
        self.info.capabilities = caps
        budget = self.options.packet_budget_per_s
        mic = choose_codec(caps.mic_codecs, MIC_PREFERENCE, self.options.mic_codec, mtu, budget)
        speaker = (
            choose_codec(caps.speaker_codecs, SPEAKER_PREFERENCE, self.options.speaker_codec, mtu, budget)
            if caps.has_speaker and caps.speaker_codecs
            else None
        )
        await client.start_notify(CompanionUUID.CONTROL, self._on_control)
        await self._write_control(SetCodecs(mic, speaker or mic), client)
        self._new_stream(Profile.COMPANION, mic)
        self._speaker = None
        if speaker is not None:
            status = FlowStatus.decode(await client.read_gatt_char(CompanionUUID.FLOW))
            self._speaker = SpeakerSender(speaker, mtu, status, self.info.address)
            await client.start_notify(CompanionUUID.FLOW, self._on_flow)
        self.info.speaker_codec = codec_spec(speaker).name if speaker is not None else ""
        await client.start_notify(CompanionUUID.MIC, self._on_mic)
        if self.options.hands_free:
            await self._write_control(Listen(True), client)

    def _use_bluez_battery(self) -> bool:
        if self.options.bluez_battery is not None:
            return self.options.bluez_battery
        return self._backend is None and sys.platform.startswith("linux")

    async def _setup_omi(self, client: BleakClient) -> None:
        chars = omi.OmiChars.find(client.services, self.info.address)
        codec = parse_omi_codec(await client.read_gatt_char(chars.codec))
        self.info.capabilities = None
        self._speaker = None
        self._new_stream(Profile.OMI, codec)
        self.info.extra.update(await omi.read_identity(client))
        await omi.sync_time(client, chars)  # the device clock stamps what it stores offline
        if chars.button is not None:
            await client.start_notify(chars.button, self._on_omi_button)
        await client.start_notify(chars.audio, self._on_mic)

    def _new_stream(self, profile: Profile, codec: CodecId) -> None:
        self._mic.start(profile, codec)
        self.info.mic_codec = self._mic.codec_name

    def _on_disconnected(self, _client: BleakClient) -> None:
        if self._closing:
            return
        was = self._connected.is_set()
        self._connected.clear()
        if self._speaker is not None:
            self._speaker.disconnected()  # wakes a writer waiting for credits
        if was:
            self._extra["disconnects"] += 1
            log.warning("headset %s disconnected", self.info.address)
            self._event_q.put_nowait(ConnectionEvent(False, time.monotonic(), "link lost"))
        self._lost.set()

    async def _supervise(self) -> None:
        """Run the reconnect loop; an error it cannot retry (or too many unreadable answers in a row) never
        ends it silently: the error is logged, sent as a LinkErrorEvent, and raised from :meth:`audio` and
        :meth:`events`, so the session ends and the service restarts the device."""
        try:
            await self._reconnect_forever()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    async def _reconnect_forever(self) -> None:
        """Reconnect after every drop, with capped exponential backoff, until the link is closed."""
        policy = ReconnectPolicy(self.info.address)
        while True:
            await self._lost.wait()
            if not self.options.reconnect:
                return
            self._deliver(self._mic.flush(time.monotonic()))  # what the old connection left half-done
            retrying = reconnect_policy(ReconnectPolicy.TRANSIENT, max_s=self.options.reconnect_backoff_max_s)
            async for attempt in retrying:
                with attempt:
                    await self._reconnect_once(policy)
            self._extra["reconnects"] += 1

    async def _reconnect_once(self, policy: ReconnectPolicy) -> None:
        try:
            await self._connect()
        except ProtocolError as exc:
            error = policy.protocol_error(exc)
            self._extra["reconnect_protocol_errors"] = policy.protocol_failures
            log.warning("%s", error)
            self._event_q.put_nowait(LinkErrorEvent(str(error), time.monotonic()))
            raise error from exc
        policy.connected()

    def _fail(self, exc: BaseException) -> None:
        """The link cannot go on: say so, and end audio() and events() with the error."""
        error = exc if isinstance(exc, LinkFailed) else LinkFailed(f"headset {self.info.address}: {exc!r}")
        if error is not exc:
            error.__cause__ = exc
        log.error("%s", error)
        self._failure = error
        self._connected.clear()
        if not isinstance(exc, LinkFailed):  # a LinkFailed was already reported as it happened
            self._event_q.put_nowait(LinkErrorEvent(str(error), time.monotonic()))
        self._audio_q.put_nowait(error)
        self._event_q.put_nowait(error)

    # -- incoming ----------------------------------------------------------------------------------
    def _on_mic(self, _char: object, data: bytearray) -> None:
        self._deliver(self._mic.feed(data, time.monotonic()))

    def _deliver(self, chunks: list[AudioChunk]) -> None:
        for chunk in chunks:
            self._audio_q.put_nowait(chunk)

    def _on_control(self, _char: object, data: bytearray) -> None:
        self._emit(self._notices.control(data, time.monotonic()))

    def _on_flow(self, _char: object, data: bytearray) -> None:
        status = self._notices.flow(data)
        if status is not None and self._speaker is not None:
            stamp = self._mic.stamp(status.mic_samples) if self._mic.codec is not None else None
            self._speaker.on_flow(status, stamp)  # the speaker's progress, on the mic's clock

    def _on_battery(self, _char: object, data: bytearray) -> None:
        self._emit(self._notices.battery(data, time.monotonic()))

    def _on_level(self, percent: int) -> None:
        self._emit(self._notices.level(percent, time.monotonic()))

    def _on_omi_button(self, _char: object, data: bytearray) -> None:
        self._emit(self._notices.omi_button(data, time.monotonic()))

    def _emit(self, event: LinkEvent | None) -> None:
        if event is not None:
            self._event_q.put_nowait(event)

    def audio(self) -> AsyncIterator[AudioChunk]:
        return until_closed(self._audio_q)

    def events(self) -> AsyncIterator[LinkEvent]:
        return until_closed(self._event_q)

    def counters(self) -> dict[str, int]:
        return {
            **self._mic.counters().as_dict(),
            "frames_dropped_backlog": self._audio_q.dropped,
            "decode_errors": self._mic.decode_errors,
            "control_malformed": self._notices.malformed,
            **self._extra,
        }

    # -- outgoing ----------------------------------------------------------------------------------
    def _require(self) -> BleakClient:
        if self._client is None or not self._connected.is_set():
            raise NotConnected(f"headset {self.info.address} is not connected")
        return self._client

    async def _write_control(
        self, msg: ControlMsg, client: BleakClient | None = None, *, response: bool = True
    ) -> None:
        """Write a command. ``response=False`` (where CONTROL allows it) skips the round trip: ATT keeps
        commands and writes in order on the link, so a reply's TTS start still precedes its audio."""
        client = client or self._require()
        if not response:
            char = client.services.get_characteristic(CompanionUUID.CONTROL)
            response = char is None or "write-without-response" not in char.properties
        with as_link_errors(self.info.address):
            await client.write_gatt_char(CompanionUUID.CONTROL, msg.encode(), response=response)

    async def set_state(self, state: DeviceState) -> None:
        if self.info.profile is Profile.COMPANION and self.connected:
            await self._write_control(SetState(state))
        self.info.extra["state"] = state.name.lower()

    async def set_volume(self, percent: int) -> None:
        percent = max(0, min(100, int(percent)))
        if self.info.profile is Profile.COMPANION and self.connected:
            await self._write_control(SetVolume(percent))
        self.info.extra["volume"] = percent

    async def listen(self, on: bool) -> None:
        """Start or stop the headset's mic stream (tap-to-talk, push-to-talk)."""
        if self.info.profile is Profile.COMPANION and self.connected:
            await self._write_control(Listen(on))

    async def abort(self) -> None:
        if self.info.profile is Profile.COMPANION and self.connected:
            await self._write_control(Abort())

    def playout_track(self) -> PlayoutTrack | None:
        return self._speaker.track if self._speaker is not None else None

    async def play(self, chunks: AsyncIterable[np.ndarray]) -> PlaybackReport:
        client = self._require()
        sender = self._speaker
        if sender is None:
            raise NotConnected(f"headset {self.info.address} has no speaker; play replies on a local device")

        async def write(packets: list[bytes]) -> None:
            with as_link_errors(self.info.address):
                for packet in packets:
                    await client.write_gatt_char(CompanionUUID.SPEAKER, packet, response=False)

        async with self._play_lock:
            await self._write_control(Tts(TtsPhase.START), client, response=False)
            report = await sender.play(chunks, write)
            await self._write_control(Tts(TtsPhase.STOP), client, response=False)
            return report
