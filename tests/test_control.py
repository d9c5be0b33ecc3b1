"""The control socket under bad input and other users: error replies, no tracebacks, bounded, private."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from companion.control_socket import (
    MAX_LINE,
    ControlServer,
    ControlSocketError,
    ListenRequest,
    Request,
    RequestError,
    SayRequest,
    ServiceNotRunning,
    StatusRequest,
    VolumeRequest,
    parse_request,
    request,
)
from tests.fixtures.conditions import until

# ----- parsing


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"cmd": "volume", "percent": [1]}', "percent"),
        (b'{"cmd": "volume", "percent": 1e400}', "percent"),
        (b'{"cmd": "volume", "percent": NaN}', "not a JSON"),
        (b'{"cmd": "volume", "percent": true}', "percent"),
        (b'{"cmd": "volume", "percent": 101}', "percent"),
        (b'{"cmd": "volume", "percent": ' + b"9" * 5000 + b"}", "not a JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "longer than"),
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
        (b'{"cmd": "listen", "on": "yes"}', "on"),
        (b'{"cmd": "say", "text": ""}', "text"),
        (b'{"cmd": "say", "text": "' + b"a" * 2001 + b'"}', "text"),
        (b'{"cmd": "say", "text": 5}', "text"),
        (b'{"cmd": "say", "text": "hi", "extra": 1}', "extra"),
        (b'{"cmd": ["say"]}', "unknown command"),
        (b'{"cmd": "reboot"}', "unknown command"),
        (b'"status"', "JSON object"),
        (b"\xff\xfe", "not a JSON"),
        (b"{", "not a JSON"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(line: bytes, reason: str) -> None:
    with pytest.raises(RequestError, match=reason):
        parse_request(line)


def test_good_requests_are_normalised() -> None:
    assert parse_request(b'{"cmd": "status"}') == StatusRequest(cmd="status", device="")
    volume = parse_request(b'{"cmd": "volume", "device": "K", "percent": 49.6}')
    assert isinstance(volume, VolumeRequest) and volume.percent == 50 and volume.device == "K"
    assert parse_request(b'{"cmd": "say", "text": "  hello  "}') == SayRequest(cmd="say", text="hello")
    listen = parse_request('{"cmd": "listen", "on": false}')
    assert isinstance(listen, ListenRequest) and listen.on is False


# ----- the server


@pytest.fixture
def sock_path() -> AsyncIterator[Path]:
    # Short, and in a directory other users may enter (for the peer-credential test).
    with tempfile.TemporaryDirectory(prefix="ctl", dir="/tmp") as d:
        os.chmod(d, 0o755)
        yield Path(d) / "c.sock"


async def _echo(req: Request) -> dict[str, Any]:
    if req.cmd == "stop":
        raise RuntimeError("a bug in the handler")
    if req.cmd == "listen":
        raise LookupError("no connected headset 'x'")
    return {"ok": True, "echo": req.model_dump()}


async def _exchange(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=4 * MAX_LINE)
    replies = []
    try:
        for line in lines:
            writer.write(line + b"\n")
            await writer.drain()
            replies.append(json.loads(await asyncio.wait_for(reader.readline(), 5)))
    finally:
        writer.close()
        await writer.wait_closed()
    return replies


async def test_malformed_requests_get_errors_and_the_connection_stays(sock_path: Path) -> None:
    async with ControlServer(_echo, sock_path):
        replies = await _exchange(
            sock_path,
            b'{"cmd": "volume", "percent": [1]}',
            b'{"cmd": "volume", "percent": 1e400}',
            b"[" * 30_000 + b"]" * 30_000,
            b'{"cmd": "stop"}',  # the handler fails: an error reply, not a dropped connection
            b'{"cmd": "listen"}',
            b'{"cmd": "status"}',
        )
    assert [r["ok"] for r in replies] == [False, False, False, False, False, True]
    assert "internal error: RuntimeError" in replies[3]["error"]
    assert "no connected headset" in replies[4]["error"]


async def test_an_over_long_line_is_refused_and_the_connection_closed(sock_path: Path) -> None:
    async with ControlServer(_echo, sock_path):
        reader, writer = await asyncio.open_unix_connection(str(sock_path))
        writer.write(b'{"cmd": "say", "text": "' + b"a" * (MAX_LINE + 10) + b'"}\n')
        await writer.drain()
        reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
        assert reply == {"ok": False, "error": f"request longer than {MAX_LINE} bytes"}
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed cleanly
        writer.close()
        # the server is still there for the next client
        assert (await request({"cmd": "status"}, sock_path, timeout=5))["ok"]


async def test_idle_clients_are_closed(sock_path: Path) -> None:
    async with ControlServer(_echo, sock_path, idle_timeout_s=0.3) as server:
        reader, writer = await asyncio.open_unix_connection(str(sock_path))
        reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
        assert "idle" in reply["error"]
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await until(lambda: not server._clients, 2, "the server to let the client go")


async def test_too_many_clients_are_turned_away(sock_path: Path) -> None:
    async with ControlServer(_echo, sock_path, max_clients=2) as server:
        held = [await asyncio.open_unix_connection(str(sock_path)) for _ in range(2)]
        await until(lambda: len(server._clients) == 2, 2, "both clients to be served")
        reply = await request({"cmd": "status"}, sock_path, timeout=5)
        assert reply["ok"] is False and "busy" in reply["error"]
        for _, w in held:
            w.close()


async def test_the_socket_is_private_whatever_the_umask(sock_path: Path) -> None:
    old = os.umask(0)
    try:
        async with ControlServer(_echo, sock_path):
            assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert not sock_path.exists()


async def test_a_regular_file_at_the_socket_path_is_not_deleted(sock_path: Path) -> None:
    sock_path.write_text("precious")
    with pytest.raises(ControlSocketError, match="not a socket"):
        async with ControlServer(_echo, sock_path):
            pass
    assert sock_path.read_text() == "precious"


async def test_a_stale_socket_is_replaced_and_a_live_one_is_not(sock_path: Path) -> None:
    import socket

    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock_path))
    stale.close()  # left behind by a crash: nothing listens
    async with ControlServer(_echo, sock_path):
        with pytest.raises(ControlSocketError, match="another companion service"):
            async with ControlServer(_echo, sock_path):
                pass
        assert (await request({"cmd": "status"}, sock_path))["ok"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
async def test_other_users_are_refused_even_if_the_mode_lets_them_in(sock_path: Path) -> None:
    client = (  # imports first: after setuid the interpreter's own files may be out of reach
        "import os, socket, sys; os.setgid(65534); os.setuid(65534); s = socket.socket(socket.AF_UNIX);"
        's.connect(sys.argv[1]); s.sendall(b\'{"cmd": "status"}\\n\'); print(s.makefile().readline())'
    )
    async with ControlServer(_echo, sock_path) as server:
        os.chmod(sock_path, 0o666)  # as if someone loosened it: the peer check still holds
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-c", client, str(sock_path), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert json.loads(out) == {"ok": False, "error": "permission denied"}
        assert server.rejected_peers == 1
        assert (await request({"cmd": "status"}, sock_path))["ok"]  # the owner still gets in


async def test_request_without_a_service(sock_path: Path) -> None:
    with pytest.raises(ServiceNotRunning):
        await request({"cmd": "status"}, sock_path)


# ----- `say`: queued at once, or waited for properly


class _SlowSession:
    """Stands in for a Session (and its SessionCommands) whose `say` takes as long as a long announcement."""

    device = "AA:BB"

    def __init__(self) -> None:
        self.spoken: list[str] = []
        self.started = asyncio.Event()

        self.tasks: set[asyncio.Task[None]] = set()

    async def _say(self, text: str) -> None:
        self.started.set()
        await asyncio.sleep(120)
        self.spoken.append(text)

    @property
    def commands(self) -> _SlowSession:
        return self

    def queue_say(self, text: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(self._say(text))
        self.tasks.add(task)
        return task


async def test_say_replies_when_queued_and_the_service_owns_the_speech() -> None:
    from bleak.backends.device import BLEDevice

    from companion.config import Config
    from companion.link.ble import FoundHeadset
    from companion.protocol import Profile
    from companion.service import Service, _Device

    service = Service(Config())
    session = _SlowSession()
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    found = FoundHeadset(BLEDevice("AA:BB", "Kitchen", None), Profile.COMPANION, -40, None)
    service.devices["AA:BB"] = _Device(found, done, session=session)  # type: ignore[arg-type]
    reply = await asyncio.wait_for(service.commands.handle(parse_request(b'{"cmd":"say","text":"hi"}')), 1)
    assert reply == {"ok": True, "device": "AA:BB", "queued": True}
    await asyncio.wait_for(session.started.wait(), 1)
    waiting = asyncio.ensure_future(
        service.commands.handle(parse_request(b'{"cmd":"say","text":"hi","wait":true}'))
    )
    await asyncio.sleep(0.2)  # a window in which the reply must not come
    assert not waiting.done()  # still speaking: the reply waits for it
    waiting.cancel()
    for task in session.tasks:
        task.cancel()
    await asyncio.gather(*session.tasks, return_exceptions=True)


def test_say_cli_checks_the_text_length(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "companion.cli", "say", "a" * 2001],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COMPANION_CONTROL_SOCKET": str(tmp_path / "none.sock")},
    )
    assert result.returncode == 2 and "1-2000 characters" in result.stderr
