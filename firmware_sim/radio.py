"""The simulated radio between one headset and one central.

A :class:`Radio` belongs to a headset: it advertises, accepts one connection at a time, and can be powered
off or taken out of range. A :class:`Link` is one connection. Like BLE's link layer it moves packets only
in connection events, every ``interval_ms``, at most ``packets_per_event`` per direction, then adds
``latency_ms``. Audio notifications (the mic stream) pass a lossy channel: random loss, duplicates and
reordering (a packet held back and delivered after the next one). Everything else (control, flow, battery,
buttons, reads and writes with response, the MTU exchange, CCCD writes) is reliable and in order, as the
link layer's retransmissions make it on a real radio. Speaker writes may lose packets (``downlink_loss``).

The headset side queues mic frames in a transmit ring of ``tx_ring_frames`` frames that drops (and
counts) whole frames on overflow. The host side queues writes in a queue of ``host_queue_packets``; a
write without response waits for room, which is the backpressure a real stack applies.

:class:`RadioTruth` is the ground truth of what happened to every audio packet, for tests to compare with
what a host saw. Nothing here knows about bleak; the backend adapts a :class:`Link` to bleak's client API.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from companion.protocol import ATT_HEADER

from .config import MAX_MTU, MIN_MTU, RadioConfig
from .gatt import CCCD, AttError, Characteristic, GattTable
from .tasks import TaskOwner

log = logging.getLogger("firmware_sim.radio")

HOLD_MAX_MS = 100  # a packet held back for reordering waits at most this long for the next one
NotifyCallback = Callable[[bytearray], None]


class LinkLost(ConnectionError):
    """The connection dropped (or was closed) while an operation was pending."""


class NotAdvertising(ConnectionError):
    """The headset is powered off, out of range or already connected to another central."""


class GattServer(Protocol):
    """What the radio needs from the firmware: the table and handlers for the central's requests."""

    table: GattTable

    def on_read(self, char: Characteristic) -> bytes: ...

    def on_write(self, char: Characteristic, data: bytes, response: bool) -> None: ...

    def on_subscribe(self, char: Characteristic, enabled: bool) -> None: ...

    def on_link_up(self, link: Link) -> None: ...

    def on_link_down(self, reason: str) -> None: ...

    def on_mtu(self, mtu: int) -> None: ...


@dataclass(slots=True)
class AudioTruth:
    """What really happened to the packets of one audio characteristic (cumulative)."""

    sent: int = 0  # packets that went on air
    lost: int = 0  # sent but never delivered (random loss, or in flight when the link dropped)
    duplicated: int = 0  # extra copies delivered
    reordered: int = 0  # first deliveries that came after a packet sent later
    delivered: int = 0  # deliveries to the host, copies included: sent - lost + duplicated
    overflow_frames: int = 0  # frames dropped because the transmit ring was full
    overflow_packets: int = 0  # the packets those frames would have taken
    unsent: int = 0  # packets still queued when the link dropped

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class RadioTruth:
    """Ground truth for tests: per audio stream, plus connection counts."""

    mic: AudioTruth = field(default_factory=AudioTruth)
    speaker: AudioTruth = field(default_factory=AudioTruth)
    connects: int = 0
    disconnects: int = 0

    def stream(self, key: str) -> AudioTruth:
        return self.speaker if key == "speaker" else self.mic

    def as_dict(self) -> dict[str, Any]:
        return {
            "mic": self.mic.as_dict(),
            "speaker": self.speaker.as_dict(),
            "connects": self.connects,
            "disconnects": self.disconnects,
        }


@dataclass(slots=True)
class _Request:
    """Host -> headset: a write, a read, a CCCD write or an MTU exchange, in FIFO order."""

    kind: str  # "write" | "read" | "cccd" | "mtu"
    handle: int
    data: bytes
    response: bool
    future: asyncio.Future[Any] | None


@dataclass(slots=True)
class _Up:
    """Headset -> host: a notification or the response to a request."""

    handle: int
    data: bytes
    future: asyncio.Future[Any] | None = None
    result: Any = None
    error: BaseException | None = None
    key: str | None = None  # audio stream key for lossy audio packets
    order: int = 0
    dup: bool = False


class Link:
    """One connection: the central's GATT client view and the headset's notification source."""

    def __init__(self, radio: Radio, central: str) -> None:
        self.radio = radio
        self.central = central
        self.table = radio.server.table
        self.mtu = MIN_MTU
        self.connected = True
        self.reason = ""
        self._loop = asyncio.get_running_loop()
        self._cccd: dict[int, bool] = {}
        self._callbacks: dict[int, NotifyCallback] = {}
        self._down: deque[_Request] = deque()
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self._reserved = 0
        self._up: deque[_Up] = deque()
        self._ring: deque[deque[_Up]] = deque()
        self._order: dict[str, int] = {}
        self._highest: dict[str, int] = {}
        self._held: _Up | None = None
        self._held_age = 0
        self._batches: deque[tuple[asyncio.TimerHandle, list[_Request], list[_Up]]] = deque()
        self._wake = asyncio.Event()
        self._on_disconnect: Callable[[str], None] | None = None
        self._task = radio.owner.spawn(self._run(), f"link-{radio.address}")

    @property
    def config(self) -> RadioConfig:
        return self.radio.config  # read live: impairments may change during a connection

    # -- the central's side ------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return self.radio.address

    @property
    def name(self) -> str:
        return self.radio.name

    @property
    def gatt(self) -> GattTable:
        return self.table

    def set_disconnect_callback(self, callback: Callable[[str], None] | None) -> None:
        """Called once with the reason when the headset drops the link (not on a local disconnect)."""
        self._on_disconnect = callback

    async def read(self, handle: int) -> bytes:
        fut = await self.submit("read", handle, b"", True)
        return await fut  # type: ignore[no-any-return]

    async def write(self, handle: int, data: bytes, response: bool) -> None:
        fut = await self.submit("write", handle, bytes(data), response)
        if fut is not None:
            await fut

    async def subscribe(self, handle: int, callback: NotifyCallback | None) -> None:
        """Enable notifications of a characteristic (``callback`` None: disable them)."""
        await (await self.submit_subscribe(handle, callback))

    async def submit_subscribe(self, handle: int, callback: NotifyCallback | None) -> asyncio.Future[Any]:
        char = self.table.char(handle)
        if char is None or char.cccd is None:
            raise AttError(AttError.INVALID_HANDLE, f"handle {handle} has no notifications")
        self._check_open()
        if callback is None:
            self._callbacks.pop(handle, None)
        else:
            self._callbacks[handle] = callback
        fut = await self.submit("cccd", handle, b"\x01\x00" if callback else b"\x00\x00", True)
        assert fut is not None
        return fut

    async def exchange_mtu(self, mtu: int = MAX_MTU) -> int:
        fut = await self.submit("mtu", 0, mtu.to_bytes(2, "little"), True)
        return await fut  # type: ignore[no-any-return]

    async def disconnect(self) -> None:
        self.close("local disconnect", by_host=True)

    async def submit(self, kind: str, handle: int, data: bytes, response: bool) -> asyncio.Future[Any] | None:
        """Queue a request in FIFO order, waiting for room in the host queue; returns the response future.

        Splitting queueing from waiting lets a server keep the order of many requests while their
        responses are still outstanding.
        """
        self._check_open()
        if kind == "write" and not response and len(data) > self.mtu - ATT_HEADER:
            raise ValueError(f"write without response of {len(data)} bytes exceeds MTU {self.mtu} - 3")
        if len(data) > 512:
            raise ValueError(f"attribute value of {len(data)} bytes exceeds 512")
        await self._wait_room()
        self._check_open()
        fut = self._loop.create_future() if response else None
        self._down.append(_Request(kind, handle, data, response, fut))
        self._wake.set()
        return fut

    def _check_open(self) -> None:
        if not self.connected:
            raise LinkLost(f"not connected ({self.reason})")

    async def _wait_room(self) -> None:
        cap = self.config.host_queue_packets
        if not self._room_waiters and len(self._down) + self._reserved < cap:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._room_waiters.append(fut)
        try:
            await fut
        except BaseException:
            if fut in self._room_waiters:
                self._room_waiters.remove(fut)
            elif fut.done() and not fut.cancelled() and fut.exception() is None:
                self._reserved -= 1
                self._grant_room()
            raise
        self._reserved -= 1

    def _grant_room(self) -> None:
        cap = self.config.host_queue_packets
        while self._room_waiters and len(self._down) + self._reserved < cap:
            fut = self._room_waiters.popleft()
            if not fut.done():
                self._reserved += 1
                fut.set_result(None)

    # -- the headset's side ------------------------------------------------------------------------
    def subscribed(self, handle: int) -> bool:
        return self._cccd.get(handle, False)

    def notify(self, handle: int, data: bytes) -> None:
        """Reliable notification (control, flow, battery, button), truncated to MTU - 3 like a stack does."""
        if not self.connected or not self._cccd.get(handle):
            return
        self._up.append(_Up(handle, bytes(data[: self.mtu - ATT_HEADER])))
        self._wake.set()

    def offer_audio(self, key: str, handle: int, packets: list[bytes]) -> bool:
        """Queue one codec frame's packets in the transmit ring; False (counted) if the ring is full."""
        truth = self.radio.truth.stream(key)
        if len(self._ring) >= self.config.tx_ring_frames:
            truth.overflow_frames += 1
            truth.overflow_packets += len(packets)
            return False
        frame: deque[_Up] = deque()
        for p in packets:
            order = self._order.get(key, 0)
            self._order[key] = order + 1
            frame.append(_Up(handle, p, key=key, order=order))
        self._ring.append(frame)
        self._wake.set()
        return True

    @property
    def ring_frames(self) -> int:
        return len(self._ring)

    # -- connection events -------------------------------------------------------------------------
    def _busy(self) -> bool:
        return bool(self._down or self._up or self._ring or self._held)

    async def _run(self) -> None:
        interval = self.config.interval_ms / 1000.0  # fixed for the life of a connection, as in BLE
        anchor = self._loop.time()
        k = 0
        while True:
            if self._busy():
                k += 1
            else:
                self._wake.clear()
                await self._wake.wait()
                k = max(k + 1, math.ceil((self._loop.time() - anchor) / interval))
            t = anchor + k * interval
            await asyncio.sleep(max(t - self._loop.time(), 0.0))  # yield even when catching up
            if self.radio.in_range:
                self._event(t)

    def _event(self, t: float) -> None:
        cfg = self.config
        budget = cfg.packets_per_event
        requests: list[_Request] = []
        while budget and self._down:
            req = self._down.popleft()
            budget -= 1
            if req.kind == "write" and self._is_audio(req.handle):
                truth = self.radio.truth.speaker
                truth.sent += 1
                if cfg.downlink_loss and self.radio.rng_down.random() < cfg.downlink_loss:
                    truth.lost += 1
                    continue
                truth.delivered += 1
            requests.append(req)
        self._grant_room()
        ups: list[_Up] = []
        budget = cfg.packets_per_event
        while budget and self._up:
            ups.append(self._up.popleft())
            budget -= 1
        while budget and self._ring:
            frame = self._ring[0]
            pkt = frame.popleft()
            if not frame:
                self._ring.popleft()
            budget -= 1
            self._air(pkt, ups, self.radio.rng_up)
        if self._held is not None:
            self._held_age += 1
            if self._held_age * cfg.interval_ms >= HOLD_MAX_MS and not self._ring:
                ups.append(self._held)  # nothing came after it (the stream paused): let it go
                self._held = None
        if not requests and not ups:
            return
        when = t + cfg.latency_ms / 1000.0
        if when <= self._loop.time():
            self._deliver(requests, ups)
        else:
            handle = self._loop.call_at(when, self._deliver_batch)
            self._batches.append((handle, requests, ups))

    def _air(self, pkt: _Up, ups: list[_Up], rng: random.Random) -> None:
        cfg = self.config
        assert pkt.key is not None
        truth = self.radio.truth.stream(pkt.key)
        truth.sent += 1
        if cfg.loss and rng.random() < cfg.loss:
            truth.lost += 1
            return
        if self._held is not None:
            ups.append(pkt)
            ups.append(self._held)
            self._held = None
        elif cfg.reorder and rng.random() < cfg.reorder:
            self._held, self._held_age = pkt, 0
            return
        else:
            ups.append(pkt)
        if cfg.duplicate and rng.random() < cfg.duplicate:
            ups.append(_Up(pkt.handle, pkt.data, key=pkt.key, order=pkt.order, dup=True))

    def _is_audio(self, handle: int) -> bool:
        char = self.table.char(handle)
        return char is not None and char.key == "speaker"

    def _deliver_batch(self) -> None:
        _, requests, ups = self._batches.popleft()
        self._deliver(requests, ups)

    def _deliver(self, requests: list[_Request], ups: list[_Up]) -> None:
        for req in requests:
            if not self.connected:
                return
            self._serve(req)
        for up in ups:
            if not self.connected:
                return
            if up.future is not None:
                if not up.future.done():
                    if up.error is not None:
                        up.future.set_exception(up.error)
                    else:
                        up.future.set_result(up.result)
                continue
            if up.key is not None:
                self._account(up)
            cb = self._callbacks.get(up.handle)
            if cb is not None and self._cccd.get(up.handle):
                cb(bytearray(up.data))

    def _account(self, up: _Up) -> None:
        assert up.key is not None
        truth = self.radio.truth.stream(up.key)
        truth.delivered += 1
        if up.dup:
            truth.duplicated += 1
            return
        highest = self._highest.get(up.key, -1)
        if up.order < highest:
            truth.reordered += 1
        else:
            self._highest[up.key] = up.order

    def _serve(self, req: _Request) -> None:
        """Run one request against the firmware; queue the response for the next connection event."""
        server = self.radio.server
        result: Any = None
        error: BaseException | None = None
        try:
            if req.kind == "mtu":
                requested = int.from_bytes(req.data, "little")
                self.mtu = max(MIN_MTU, min(self.config.max_mtu, requested))
                server.on_mtu(self.mtu)
                result = self.mtu
            elif req.kind == "cccd":
                char = self.table.char(req.handle)
                assert char is not None
                enabled = req.data[0] != 0
                if self._cccd.get(req.handle, False) != enabled:
                    self._cccd[req.handle] = enabled
                    server.on_subscribe(char, enabled)
            else:
                result = self._attribute(req, server)
        except AttError as exc:
            error = exc
        except Exception as exc:  # a firmware bug must not kill the radio; the host sees an ATT error
            log.exception("%s: firmware failed on %s of handle %d", self.radio.name, req.kind, req.handle)
            error = AttError(0x0E, f"unlikely error: {exc}")
        if req.future is not None:
            self._up.append(_Up(0, b"", future=req.future, result=result, error=error))
            self._wake.set()
        elif error is not None:
            log.debug("%s: write without response to %d failed: %s", self.radio.name, req.handle, error)

    def _attribute(self, req: _Request, server: GattServer) -> bytes | None:
        char = self.table.char(req.handle)
        if char is None:
            found = self.table.descriptor(req.handle)
            if found is None:
                raise AttError(AttError.INVALID_HANDLE, f"no attribute at handle {req.handle}")
            desc, owner = found
            if desc.uuid != CCCD:
                raise AttError(AttError.READ_NOT_PERMITTED, f"descriptor {desc.uuid} is not accessible")
            if req.kind == "read":
                return b"\x01\x00" if self._cccd.get(owner.handle) else b"\x00\x00"
            if len(req.data) != 2:
                raise AttError(AttError.INVALID_LENGTH, "a CCCD value is 2 bytes")
            enabled = req.data[0] & 0x03 != 0
            if self._cccd.get(owner.handle, False) != enabled:
                self._cccd[owner.handle] = enabled
                server.on_subscribe(owner, enabled)
            return None
        if req.kind == "read":
            if "read" not in char.properties:
                raise AttError(AttError.READ_NOT_PERMITTED, f"{char.key} is not readable")
            return bytes(server.on_read(char))
        allowed = "write" if req.response else "write-without-response"
        if allowed not in char.properties:
            raise AttError(AttError.WRITE_NOT_PERMITTED, f"{char.key} does not allow {allowed}")
        server.on_write(char, req.data, req.response)
        return None

    # -- teardown ----------------------------------------------------------------------------------
    def close(self, reason: str, by_host: bool = False) -> None:
        """Drop the link now: pending operations fail with :class:`LinkLost`, the headset advertises again."""
        if not self.connected:
            return
        self.connected = False
        self.reason = reason
        self._task.cancel()
        error = LinkLost(f"disconnected: {reason}")
        for handle, _, ups in self._batches:
            handle.cancel()
            for up in ups:
                if up.key is not None and not up.dup:
                    self.radio.truth.stream(up.key).lost += 1
                if up.future is not None and not up.future.done():
                    up.future.set_exception(error)
        self._batches.clear()
        if self._held is not None:
            self.radio.truth.stream(self._held.key or "mic").lost += 1
            self._held = None
        for frame in self._ring:
            for up in frame:
                self.radio.truth.stream(up.key or "mic").unsent += 1
        self._ring.clear()
        for req in self._down:
            if req.future is not None and not req.future.done():
                req.future.set_exception(error)
        self._down.clear()
        for up in self._up:
            if up.future is not None and not up.future.done():
                up.future.set_exception(error)
        self._up.clear()
        while self._room_waiters:
            fut = self._room_waiters.popleft()
            if not fut.done():
                fut.set_exception(error)
        self._callbacks.clear()
        self.radio._link_closed(self, reason)
        if not by_host and self._on_disconnect is not None:
            callback, self._on_disconnect = self._on_disconnect, None
            self._loop.call_soon(callback, reason)


class Radio:
    """A headset's radio: advertising, one connection at a time, power and range."""

    def __init__(
        self, config: RadioConfig, server: GattServer, name: str, address: str, owner: TaskOwner
    ) -> None:
        self.config = config
        self.server = server
        self.name = name
        self.address = address
        self.owner = owner
        # one generator per direction: the outcome of each stream depends on the seed alone, not on how
        # mic and speaker traffic happen to interleave
        self.rng_up = random.Random(None if config.seed is None else f"{config.seed}/up")
        self.rng_down = random.Random(None if config.seed is None else f"{config.seed}/down")
        self.truth = RadioTruth()
        self.powered = True
        self.in_range = config.in_range
        self.link: Link | None = None
        self._adv_waiters: list[asyncio.Future[None]] = []
        self._supervision: asyncio.TimerHandle | None = None

    @property
    def advertising(self) -> bool:
        return self.powered and self.in_range and self.link is None

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected

    @property
    def mtu(self) -> int:
        return self.link.mtu if self.link is not None else MIN_MTU

    async def connect(self, central: str = "host", timeout: float = 10.0) -> Link:
        """Connect when the headset next advertises (like a real stack's pending connect), or time out."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                while not self.advertising:
                    fut = loop.create_future()
                    self._adv_waiters.append(fut)
                    try:
                        await fut
                    finally:
                        if fut in self._adv_waiters:
                            self._adv_waiters.remove(fut)
                await asyncio.sleep((self.config.connect_delay_ms or 0) / 1000.0)
                if self.advertising:
                    break
        link = Link(self, central)
        self.link = link
        self.truth.connects += 1
        log.info("%s (%s): connected to %s", self.name, self.address, central)
        self.server.on_link_up(link)
        if self.config.auto_mtu:
            link.mtu = self.config.max_mtu
            self.server.on_mtu(link.mtu)
        return link

    def impair(self, **changes: Any) -> RadioConfig:
        """Change link impairments (loss, duplicate, reorder, downlink_loss, latency_ms ...) on the fly."""
        self.config = self.config.with_(**changes)
        return self.config

    def disconnect(self, reason: str = "headset disconnected") -> None:
        if self.link is not None:
            self.link.close(reason)

    def _link_closed(self, link: Link, reason: str) -> None:
        if self.link is link:
            self.link = None
            self.truth.disconnects += 1
            if self._supervision is not None:
                self._supervision.cancel()
                self._supervision = None
            log.info("%s (%s): disconnected (%s)", self.name, self.address, reason)
            self.server.on_link_down(reason)
            self._advertising_changed()

    def _advertising_changed(self) -> None:
        if self.advertising:
            waiters, self._adv_waiters = self._adv_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def power_off(self) -> None:
        self.powered = False
        self.disconnect("power off")

    def power_on(self) -> None:
        self.powered = True
        self._advertising_changed()

    def go_out_of_range(self) -> None:
        """Packets stop moving; the link drops after the supervision timeout unless it comes back first."""
        if not self.in_range:
            return
        self.in_range = False
        if self.link is not None:
            loop = asyncio.get_running_loop()
            self._supervision = loop.call_later(
                self.config.supervision_timeout_ms / 1000.0, self.disconnect, "supervision timeout"
            )

    def come_back(self) -> None:
        self.in_range = True
        if self._supervision is not None:
            self._supervision.cancel()
            self._supervision = None
        if self.link is not None:
            self.link._wake.set()
        self._advertising_changed()

    def close(self) -> None:
        self.disconnect("headset closed")
        self.powered = False
        for fut in self._adv_waiters:
            if not fut.done():
                fut.set_exception(NotAdvertising(f"{self.name} was removed"))
        self._adv_waiters.clear()
