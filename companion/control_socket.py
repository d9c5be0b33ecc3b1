"""The running service's local control socket: `companion devices` and `companion say` talk to it.

(Not the headset's BLE control characteristic: that is `companion.protocol.control`.)

One JSON object per line each way over a Unix socket in the platform runtime directory. Requests:
``{"cmd": "status"}``, ``{"cmd": "say", "device": D, "text": T, "wait": false}``, ``{"cmd": "stop",
"device": D}``, ``{"cmd": "listen", "device": D, "on": true}``, ``{"cmd": "volume", "device": D,
"percent": 50}``. Replies: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. ``device`` may be
an address, a name or empty (the only connected headset). ``say`` replies once the text is queued, or
with ``"wait": true`` once it has been spoken.

Only the user who runs the service (or root) may talk to it: the socket is created mode 0600 whatever
the umask, and each peer's uid is checked (SO_PEERCRED). A request is at most 64 KiB; anything that is
not a valid request gets an error reply, never a traceback; idle clients are closed. What a request does is
`companion.commands.DeviceCommands.handle`, the same commands MQTT and the skills use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import struct
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from companion.bus.topics import MAX_SAY_CHARS

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
IDLE_TIMEOUT_S = 60.0
MAX_CLIENTS = 32


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


class ControlSocketError(RuntimeError):
    """The control socket cannot be created (its path is taken by something else)."""


class RequestError(ValueError):
    """A request line that is not a valid request; the message says why."""


# ----- requests


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    device: Annotated[str, Field(max_length=256)] = ""


class StatusRequest(_Request):
    cmd: Literal["status"]


class SayRequest(_Request):
    cmd: Literal["say"]
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SAY_CHARS)]
    wait: bool = False


class StopRequest(_Request):
    cmd: Literal["stop"]


class ListenRequest(_Request):
    cmd: Literal["listen"]
    on: bool = True


class VolumeRequest(_Request):
    cmd: Literal["volume"]
    # Any JSON number in range, rounded to the whole percent the headset takes.
    percent: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False), AfterValidator(round)]


Request = StatusRequest | SayRequest | StopRequest | ListenRequest | VolumeRequest
_REQUEST: TypeAdapter[Request] = TypeAdapter(Annotated[Request, Field(discriminator="cmd")])
COMMANDS = ("status", "say", "stop", "listen", "volume")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_request(line: bytes | str) -> Request:
    """One request line as a checked, typed request; :class:`RequestError` (saying why) if it is not one."""
    if len(line) > MAX_LINE:
        raise RequestError(f"request longer than {MAX_LINE} bytes")
    try:
        data = json.loads(line, parse_constant=_no_constants)
    except RecursionError:
        raise RequestError("request nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, bad UTF-8, huge integers
        raise RequestError(f"not a JSON object: {str(exc)[:120]}") from None
    if not isinstance(data, dict):
        raise RequestError("a request is a JSON object")
    cmd = data.get("cmd")
    if cmd not in COMMANDS:  # named here: pydantic's discriminator error does not list the commands
        shown = repr(cmd)[:40] if isinstance(cmd, str | int | float | bool | None) else type(cmd).__name__
        raise RequestError(f"unknown command {shown} (known: {', '.join(COMMANDS)})")
    try:
        return _REQUEST.validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"][1:]) or "request"
        raise RequestError(f"{cmd}: {key}: {err['msg']}") from None


# ----- the socket


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket (None where SO_PEERCRED is missing)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    return uid


def _bind_private(path: Path) -> socket.socket:
    """A listening Unix socket at ``path`` with mode 0600 from the moment it exists."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


Handler = Callable[[Request], Awaitable[dict[str, Any]]]


class ControlServer:
    """Serves requests to ``handler`` until closed; removes its socket on exit."""

    def __init__(
        self,
        handler: Handler,
        path: Path | None = None,
        *,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.handler = handler
        self.path = path or control_socket_path()
        self.idle_timeout_s = idle_timeout_s
        self.max_clients = max_clients
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.rejected_peers = 0

    async def __aenter__(self) -> ControlServer:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        await self._clear_stale()
        sock = _bind_private(self.path)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE)
        return self

    async def _clear_stale(self) -> None:
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise ControlSocketError(
                f"{self.path} exists and is not a socket: move it away, or set COMPANION_CONTROL_SOCKET"
            )
        try:
            await request({"cmd": "status"}, self.path, timeout=1.0)
        except ServiceNotRunning:
            self.path.unlink()  # left behind by a crash
        else:
            raise ControlSocketError(f"another companion service is running ({self.path})")

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        clients = list(self._clients)
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            refusal = self._refusal(writer)
            if refusal is not None:
                await _send(writer, {"ok": False, "error": refusal})
            else:
                await self._conversation(reader, writer)
            await _linger(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _refusal(self, writer: asyncio.StreamWriter) -> str | None:
        """Why this client may not talk to us (None: it may)."""
        if len(self._clients) > self.max_clients:
            return f"busy: {self.max_clients} clients connected"
        uid = peer_uid(writer.get_extra_info("socket"))
        if uid is not None and uid not in (os.getuid(), 0):
            self.rejected_peers += 1
            log.warning("control socket: refused uid %d (only uid %d or root)", uid, os.getuid())
            return "permission denied"
        return None

    async def _conversation(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), self.idle_timeout_s)
            except TimeoutError:
                await _send(writer, {"ok": False, "error": f"idle for {self.idle_timeout_s:g} s: closing"})
                return
            except ValueError:  # the line outgrew the stream's limit: no way to find the next one
                await _send(writer, {"ok": False, "error": f"request longer than {MAX_LINE} bytes"})
                return
            if not line:
                return
            if not line.strip():
                continue
            await _send(writer, await self._reply(line))

    async def _reply(self, line: bytes) -> dict[str, Any]:
        try:
            req = parse_request(line)
        except RequestError as exc:
            return {"ok": False, "error": str(exc)}
        try:
            return await self.handler(req)
        except (ValueError, LookupError) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug must not end the connection with a traceback on the client
            log.exception("control socket: %s failed", req.cmd)
            return {"ok": False, "error": f"internal error: {type(exc).__name__}"}


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close and let the client read our last reply: closing with its request still unread
    would reset the connection and lose the reply (a refused peer would see no reason)."""
    with contextlib.suppress(OSError, RuntimeError, ValueError, TimeoutError, asyncio.IncompleteReadError):
        if not writer.is_closing() and writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(1.0):
            while await reader.read(MAX_LINE):
                pass


async def _send(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
    writer.write((json.dumps(reply) + "\n").encode())
    await writer.drain()


def say_timeout_s(text: str) -> float:
    """How long `say --wait` waits: speech runs ~15 characters a second; generous for queued speech."""
    return 30.0 + 0.2 * len(text)


async def request(req: dict[str, Any], path: Path | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """Send one request and return the reply; :class:`ServiceNotRunning` when nothing listens,
    ``TimeoutError`` when no reply comes within ``timeout``."""
    path = path or control_socket_path()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=MAX_LINE), 2.0)
    except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as exc:
        raise ServiceNotRunning(
            f"no companion service is running ({path}): start it with `companion run`"
        ) from exc
    except PermissionError as exc:
        raise ServiceNotRunning(f"{path}: permission denied (the service runs as another user)") from exc
    try:
        writer.write((json.dumps(req) + "\n").encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ServiceNotRunning("the companion service closed the connection")
        try:
            reply = json.loads(line)
        except ValueError:
            raise ServiceNotRunning("the companion service sent a reply that is not JSON") from None
        return reply if isinstance(reply, dict) else {"ok": False, "error": "malformed reply"}
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
