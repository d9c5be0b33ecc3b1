"""One simulated BLE connection between a headset and a central.

Like BLE's link layer a :class:`Link` moves packets only in connection events, every ``interval_ms``, at
most ``packets_per_event`` per direction, then adds ``latency_ms``. Audio notifications (the mic stream)
pass the lossy :class:`~firmware_sim.air.Uplink`; everything else (control, flow, battery, buttons, reads
and writes with response, the MTU exchange, CCCD writes) is reliable and in order, as the link layer's
retransmissions make it on a real radio. Speaker writes may lose packets (``downlink_loss``).

The headset side queues mic frames in a transmit ring of ``tx_ring_frames`` frames that drops (and
counts) whole frames on overflow. The host side queues writes in a queue of ``host_queue_packets``; a
write without response waits for room, which is the backpressure a real stack applies.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from companion.protocol import ATT_HEADER

from .air import Request, Up, Uplink, downlink_survives
from .gatt import CCCD, AttError, Characteristic, GattTable
from .radio_config import MAX_MTU, MIN_MTU, RadioConfig

if TYPE_CHECKING:
    from .radio import Radio

log = logging.getLogger("firmware_sim.radio")

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
        self._down: deque[Request] = deque()
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self._reserved = 0
        self._up: deque[Up] = deque()
        self._ring: deque[deque[Up]] = deque()
        self._order: dict[str, int] = {}
        self._uplink = Uplink(radio.truth)
        self._batches: deque[tuple[asyncio.TimerHandle, list[Request], list[Up]]] = deque()
        self._wake = asyncio.Event()
        self._on_disconnect: Callable[[str], None] | None = None
        self.on_mtu: Callable[[int], None] | None = None  # the central's view: told when the MTU changes
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
        assert fut is not None
        value: bytes = await fut
        return value

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
        assert fut is not None
        mtu_now: int = await fut
        return mtu_now

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
        self._down.append(Request(kind, handle, data, response, fut))
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
        self._up.append(Up(handle, bytes(data[: self.mtu - ATT_HEADER])))
        self._wake.set()

    def request_mtu(self, mtu: int = MAX_MTU) -> None:
        """The headset starts the ATT MTU exchange itself; it completes at the next connection event."""
        if self.connected:
            self._down.append(Request("mtu", 0, mtu.to_bytes(2, "little"), False, None))
            self._wake.set()

    def offer_audio(self, key: str, handle: int, packets: list[bytes]) -> bool:
        """Queue one codec frame's packets in the transmit ring; False (counted) if the ring is full."""
        truth = self.radio.truth.stream(key)
        if len(self._ring) >= self.config.tx_ring_frames:
            truth.overflow_frames += 1
            truth.overflow_packets += len(packets)
            return False
        frame: deque[Up] = deque()
        for p in packets:
            order = self._order.get(key, 0)
            self._order[key] = order + 1
            frame.append(Up(handle, p, key=key, order=order))
        self._ring.append(frame)
        self._wake.set()
        return True

    @property
    def ring_frames(self) -> int:
        return len(self._ring)

    def offered_packets(self, key: str) -> int:
        """Audio packets of stream ``key`` the headset has handed to this link so far (ground truth)."""
        return self._order.get(key, 0)

    @property
    def held(self) -> Up | None:
        """An audio packet held back for reordering, not yet on its way to the host."""
        return self._uplink.held

    # -- connection events -------------------------------------------------------------------------
    def _busy(self) -> bool:
        return bool(self._down or self._up or self._ring or self._uplink.held)

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
        requests: list[Request] = []
        while budget and self._down:
            req = self._down.popleft()
            budget -= 1
            if req.kind == "write" and self._is_audio(req.handle):
                if not downlink_survives(self.radio.truth.speaker, self.radio.rng_down, cfg):
                    continue
            requests.append(req)
        self._grant_room()
        ups: list[Up] = []
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
            self._uplink.air(pkt, ups, self.radio.rng_up, cfg)
        self._uplink.end_event(ups, cfg, more_coming=bool(self._ring))
        if not requests and not ups:
            return
        when = t + cfg.latency_ms / 1000.0
        if when <= self._loop.time():
            self._deliver(requests, ups)
        else:
            handle = self._loop.call_at(when, self._deliver_batch)
            self._batches.append((handle, requests, ups))

    def _is_audio(self, handle: int) -> bool:
        char = self.table.char(handle)
        return char is not None and char.key == "speaker"

    def _deliver_batch(self) -> None:
        _, requests, ups = self._batches.popleft()
        self._deliver(requests, ups)

    def _deliver(self, requests: list[Request], ups: list[Up]) -> None:
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
                self._uplink.account(up)
            cb = self._callbacks.get(up.handle)
            if cb is not None and self._cccd.get(up.handle):
                cb(bytearray(up.data))

    def _serve(self, req: Request) -> None:
        """Run one request against the firmware; queue the response for the next connection event."""
        server = self.radio.server
        result: Any = None
        error: BaseException | None = None
        try:
            if req.kind == "mtu":
                requested = int.from_bytes(req.data, "little")
                before, self.mtu = self.mtu, max(MIN_MTU, min(self.config.max_mtu, requested))
                server.on_mtu(self.mtu)
                if self.mtu != before and self.on_mtu is not None:
                    self.on_mtu(self.mtu)
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
            self._up.append(Up(0, b"", future=req.future, result=result, error=error))
            self._wake.set()
        elif error is not None:
            log.debug("%s: write without response to %d failed: %s", self.radio.name, req.handle, error)

    def _attribute(self, req: Request, server: GattServer) -> bytes | None:
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
        self._uplink.drop_held()
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
