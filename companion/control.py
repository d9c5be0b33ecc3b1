"""The running service's local control socket: `companion devices` and `companion say` talk to it.

One JSON object per line each way over a Unix socket in the platform runtime directory. Requests:
``{"cmd": "status"}``, ``{"cmd": "say", "device": D, "text": T}``, ``{"cmd": "stop", "device": D}``,
``{"cmd": "listen", "device": D, "on": true}``, ``{"cmd": "volume", "device": D, "percent": 50}``.
Replies: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. ``device`` may be an address, a name or
empty (the only connected headset).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def control_socket_path() -> Path:
    env = os.environ.get("COMPANION_CONTROL_SOCKET")
    if env:
        return Path(env)
    import platformdirs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir("companion")) / "control.sock"


class ServiceNotRunning(RuntimeError):
    """No `companion run` is listening on the control socket."""


class ControlServer:
    """Serves requests to ``handler`` until closed; removes its socket on exit."""

    def __init__(self, handler: Handler, path: Path | None = None) -> None:
        self.handler = handler
        self.path = path or control_socket_path()
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> ControlServer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            try:
                await request({"cmd": "status"}, self.path, timeout=1.0)
            except ServiceNotRunning:
                self.path.unlink()  # left behind by a crash
            else:
                raise RuntimeError(f"another companion service is running ({self.path})")
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise ValueError("a request is a JSON object")
                    reply = await self.handler(req)
                except (ValueError, KeyError, LookupError) as exc:
                    reply = {"ok": False, "error": str(exc)}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def request(req: dict[str, Any], path: Path | None = None, timeout: float = 30.0) -> dict[str, Any]:
    path = path or control_socket_path()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 2.0)
    except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as exc:
        raise ServiceNotRunning(
            f"no companion service is running ({path}): start it with `companion run`"
        ) from exc
    try:
        writer.write((json.dumps(req) + "\n").encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ServiceNotRunning("the companion service closed the connection")
        return json.loads(line)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
