"""The host side of the simulator socket: scan and connect to headsets served by ``python -m firmware_sim``.

:class:`RemoteConnection` offers the same methods as an in-process :class:`~firmware_sim.radio.Link`
(read, write, subscribe, exchange_mtu, disconnect), so the bleak backend treats both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .gatt import AttError, GattTable
from .headset import Advertisement
from .radio import LinkLost, NotAdvertising, NotifyCallback
from .rpc import RpcError, b64, encode, read_message, unb64
from .world import UnknownHeadset

log = logging.getLogger("firmware_sim.remote")


def raise_error(error: dict[str, Any]) -> None:
    kind, message = error.get("type"), str(error.get("message", ""))
    if kind == "att":
        raise AttError(int(error.get("code", 0x0E)), message)
    if kind == "link":
        raise LinkLost(message)
    if kind == "not_advertising":
        raise NotAdvertising(message)
    if kind == "not_found":
        raise UnknownHeadset(message)
    if kind == "timeout":
        raise TimeoutError(message)
    if kind == "value":
        raise ValueError(message)
    raise RpcError(f"simulator error: {message}")


class RpcChannel:
    """One socket connection: requests with replies, plus events pushed by the simulator."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: Path) -> None:
        self.path = path
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self.on_closed: Callable[[str], None] | None = None
        self.closed = False
        self._task = asyncio.get_running_loop().create_task(self._read_loop(), name=f"sim-rpc:{path}")

    @classmethod
    async def open(cls, path: str | Path) -> RpcChannel:
        p = Path(path)
        try:
            reader, writer = await asyncio.open_unix_connection(str(p))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ConnectionRefusedError(f"no firmware_sim is serving on {p} ({exc.strerror})") from None
        return cls(reader, writer, p)

    async def request(self, op: str, **fields: Any) -> Any:
        if self.closed:
            raise LinkLost(f"the simulator socket {self.path} is closed")
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._writer.write(encode({"id": rid, "op": op, **fields}))
        try:
            await self._writer.drain()
            return await fut
        finally:
            self._pending.pop(rid, None)
            # When the write itself failed (the socket closed under it), the shutdown may already have
            # failed `fut` too: nobody will await it, so take its error rather than leave it unretrieved.
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()

    async def _read_loop(self) -> None:
        reason = "simulator closed the socket"
        try:
            while True:
                msg = await read_message(self._reader)
                if msg is None:
                    break
                if "ev" in msg:
                    if self.on_event is not None:
                        self.on_event(msg)
                    continue
                rid = msg.get("id")
                fut = self._pending.get(rid) if isinstance(rid, int) else None
                if fut is None or fut.done():
                    continue
                if msg.get("ok"):
                    fut.set_result(msg.get("result"))
                else:
                    try:
                        raise_error(msg.get("error") or {})
                    except Exception as exc:
                        fut.set_exception(exc)
        except (RpcError, ConnectionError) as exc:
            reason = str(exc)
        finally:
            self._shutdown(reason)

    def _shutdown(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(LinkLost(reason))
        self._pending.clear()
        self._writer.close()
        if self.on_closed is not None:
            self.on_closed(reason)

    async def aclose(self) -> None:
        self.on_closed = None
        self._shutdown("closed")
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


async def remote_scan(channel: RpcChannel) -> list[Advertisement]:
    return [Advertisement.from_json(a) for a in await channel.request("scan")]


class RemoteConnection:
    """A BLE connection to a headset in the simulator process, through the socket."""

    def __init__(self, channel: RpcChannel, address: str, info: dict[str, Any]) -> None:
        self._channel = channel
        self.address = address
        self.name = str(info["name"])
        self.mtu = int(info["mtu"])
        self.gatt = GattTable.from_json(info["gatt"])
        self.connected = True
        self.reason = ""
        self._callbacks: dict[int, NotifyCallback] = {}
        self._on_disconnect: Callable[[str], None] | None = None
        channel.on_event = self._event
        channel.on_closed = self._lost

    @classmethod
    async def open(
        cls, path: str | Path, address: str, *, timeout: float = 10.0, central: str = "host"
    ) -> RemoteConnection:
        channel = await RpcChannel.open(path)
        try:
            info = await channel.request("connect", address=address, central=central, timeout=timeout)
        except BaseException:
            await channel.aclose()
            raise
        return cls(channel, address, info)

    def set_disconnect_callback(self, callback: Callable[[str], None] | None) -> None:
        self._on_disconnect = callback

    def _event(self, msg: dict[str, Any]) -> None:
        if msg["ev"] == "notify":
            cb = self._callbacks.get(int(msg["handle"]))
            if cb is not None:
                cb(bytearray(unb64(msg["data"])))
        elif msg["ev"] == "mtu":  # the headset raised the MTU itself
            self.mtu = int(msg["mtu"])
        elif msg["ev"] == "disconnected":
            self._lost(str(msg.get("reason", "disconnected")))

    def _lost(self, reason: str) -> None:
        if not self.connected:
            return
        self.connected = False
        self.reason = reason
        self._callbacks.clear()
        self._channel.on_closed = None
        self._channel._shutdown(reason)
        callback, self._on_disconnect = self._on_disconnect, None
        if callback is not None:
            callback(reason)

    def _check(self) -> None:
        if not self.connected:
            raise LinkLost(f"not connected ({self.reason})")

    async def read(self, handle: int) -> bytes:
        self._check()
        return unb64((await self._channel.request("read", handle=handle))["data"])

    async def write(self, handle: int, data: bytes, response: bool) -> None:
        self._check()
        await self._channel.request("write", handle=handle, data=b64(data), response=response)

    async def subscribe(self, handle: int, callback: NotifyCallback | None) -> None:
        self._check()
        if callback is None:
            self._callbacks.pop(handle, None)
        else:
            self._callbacks[handle] = callback
        await self._channel.request("subscribe", handle=handle, enable=callback is not None)

    async def exchange_mtu(self, mtu: int = 517) -> int:
        self._check()
        self.mtu = int((await self._channel.request("mtu", mtu=mtu))["mtu"])
        return self.mtu

    async def disconnect(self) -> None:
        if self.connected:
            self.connected = False
            self.reason = "local disconnect"
            with contextlib.suppress(ConnectionError, RpcError):
                await self._channel.request("disconnect")
        self._callbacks.clear()
        await self._channel.aclose()


__all__ = ["RemoteConnection", "RpcChannel", "remote_scan"]
