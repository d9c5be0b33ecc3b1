"""Serve a :class:`SimWorld` on a Unix socket so a host in another process can scan and connect.

Each socket connection is a session: it may scan, and it may hold one BLE connection. Requests of a
session are queued on the radio in the order they arrive (so speaker writes and an ABORT keep their
order); their replies go out as each completes, so a write with response does not stall the stream.
See :mod:`firmware_sim.rpc` for the message format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Any

from .gatt import AttError
from .radio import Link, LinkLost, NotAdvertising
from .rpc import VERSION, RpcError, b64, encode, read_message, unb64
from .tasks import TaskOwner
from .world import SimWorld, UnknownHeadset

log = logging.getLogger("firmware_sim.server")


class SocketInUse(RuntimeError):
    """Another simulator is already serving on this socket path."""


def error_reply(exc: BaseException) -> dict[str, Any]:
    """How an exception travels to the host process (rebuilt by :func:`firmware_sim.remote.raise_error`)."""
    if isinstance(exc, AttError):
        return {"type": "att", "code": exc.code, "message": str(exc)}
    if isinstance(exc, LinkLost):
        return {"type": "link", "message": str(exc)}
    if isinstance(exc, NotAdvertising):
        return {"type": "not_advertising", "message": str(exc)}
    if isinstance(exc, UnknownHeadset):
        return {"type": "not_found", "message": str(exc)}
    if isinstance(exc, TimeoutError):
        return {"type": "timeout", "message": str(exc) or "timed out"}
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        return {"type": "value", "message": str(exc)}
    return {"type": "internal", "message": f"{type(exc).__name__}: {exc}"}


class SimServer:
    """Listens on ``path``; :meth:`aclose` stops it, drops its sessions and removes the socket file."""

    def __init__(self, world: SimWorld, path: str | Path) -> None:
        self.world = world
        self.path = Path(path)
        self._server: asyncio.AbstractServer | None = None
        self._sessions = TaskOwner("sim-server")

    async def start(self) -> None:
        claim_socket(self.path)
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.path))
        os.chmod(self.path, 0o600)
        log.info("serving simulated headsets on %s", self.path)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self.world, reader, writer)
        # owned by the server so aclose() ends it; the start_unix_server handler task just waits for it
        task = self._sessions.spawn(session.run(), "session")
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._sessions.aclose()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        _remove(self.path)


def claim_socket(path: Path) -> None:
    """Make the socket's directory; refuse a live socket, remove a stale one (quick local checks)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        return
    if not path.is_socket():
        raise SocketInUse(f"{path} exists and is not a socket; remove it or choose another --socket")
    if socket_alive(path):
        raise SocketInUse(f"another firmware_sim is serving on {path}; stop it or pass --socket PATH")
    path.unlink(missing_ok=True)  # stale: nobody listens


class _Session:
    def __init__(self, world: SimWorld, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.world = world
        self.reader = reader
        self.writer = writer
        self.link: Link | None = None
        self.replies = TaskOwner("sim-session")
        self.peer = "host"

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(message))

    async def run(self) -> None:
        try:
            while True:
                msg = await read_message(self.reader)
                if msg is None:
                    break
                await self._handle(msg)
                await self.writer.drain()
        except (RpcError, ConnectionError) as exc:
            log.debug("session ended: %s", exc)
        finally:
            if self.link is not None:
                self.link.set_disconnect_callback(None)
                self.link.close(f"{self.peer} went away", by_host=True)
            await self.replies.aclose()
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _handle(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        try:
            op = msg["op"]
            handler = getattr(self, f"_op_{op}", None)
            if handler is None:
                raise ValueError(f"unknown op {op!r}")
            result = await handler(msg)
        except Exception as exc:
            self.send({"id": rid, "ok": False, "error": error_reply(exc)})
            return
        if isinstance(result, asyncio.Future):
            self.replies.spawn(self._reply_later(rid, result), f"reply-{rid}")
        else:
            self.send({"id": rid, "ok": True, "result": result})

    async def _reply_later(self, rid: Any, fut: asyncio.Future[Any]) -> None:
        try:
            value = await fut
        except Exception as exc:
            self.send({"id": rid, "ok": False, "error": error_reply(exc)})
            return
        if isinstance(value, (bytes, bytearray)):
            value = {"data": b64(value)}
        elif isinstance(value, int):
            value = {"mtu": value}
        self.send({"id": rid, "ok": True, "result": value})

    def _need_link(self) -> Link:
        if self.link is None or not self.link.connected:
            raise LinkLost("not connected")
        return self.link

    # -- ops ---------------------------------------------------------------------------------------
    async def _op_hello(self, msg: dict[str, Any]) -> Any:
        return {"version": VERSION, "pid": os.getpid(), "headsets": len(self.world.headsets)}

    async def _op_scan(self, msg: dict[str, Any]) -> Any:
        return [a.to_json() for a in self.world.advertisements()]

    async def _op_connect(self, msg: dict[str, Any]) -> Any:
        if self.link is not None and self.link.connected:
            raise ValueError("this session is already connected")
        self.peer = str(msg.get("central") or "host")
        link = await self.world.connect(str(msg["address"]), central=self.peer, timeout=float(msg["timeout"]))
        self.link = link
        link.set_disconnect_callback(self._on_lost)
        link.on_mtu = lambda mtu: self.send({"ev": "mtu", "mtu": mtu})
        return {"name": link.name, "mtu": link.mtu, "gatt": link.gatt.to_json()}

    def _on_lost(self, reason: str) -> None:
        self.send({"ev": "disconnected", "reason": reason})

    async def _op_read(self, msg: dict[str, Any]) -> Any:
        return await self._need_link().submit("read", int(msg["handle"]), b"", True)

    async def _op_write(self, msg: dict[str, Any]) -> Any:
        fut = await self._need_link().submit(
            "write", int(msg["handle"]), unb64(msg["data"]), bool(msg["response"])
        )
        return fut

    async def _op_subscribe(self, msg: dict[str, Any]) -> Any:
        handle = int(msg["handle"])
        callback = (
            (lambda data: self.send({"ev": "notify", "handle": handle, "data": b64(data)}))
            if msg["enable"]
            else None
        )
        return await self._need_link().submit_subscribe(handle, callback)

    async def _op_mtu(self, msg: dict[str, Any]) -> Any:
        return await self._need_link().submit("mtu", 0, int(msg.get("mtu", 517)).to_bytes(2, "little"), True)

    async def _op_disconnect(self, msg: dict[str, Any]) -> Any:
        if self.link is not None:
            self.link.close("local disconnect", by_host=True)
            self.link = None
        return None


def socket_alive(path: str | Path) -> bool:
    """True if something accepts connections at ``path`` (a cheap, blocking check for CLIs)."""
    p = Path(path)
    if not p.is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(p))
        except OSError:
            return False
    return True


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
