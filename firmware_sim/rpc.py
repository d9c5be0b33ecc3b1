"""The simulator's socket protocol: length-prefixed JSON messages over a Unix socket.

Every message is ``[length u32 BE][UTF-8 JSON object]``; bytes travel as base64 strings.

Requests (host process -> simulator) carry ``id`` and ``op``; each gets one reply
``{"id", "ok": true, "result"}`` or ``{"id", "ok": false, "error": {"type", "message", "code"?}}``:

==========  ==========================================  ============================================
op          fields                                      result
==========  ==========================================  ============================================
hello       -                                           ``{"version", "pid", "headsets"}``
scan        -                                           list of advertisements
connect     ``address``, ``central``, ``timeout``       ``{"name", "mtu", "gatt"}`` (the GATT table)
read        ``handle``                                  ``{"data"}``
write       ``handle``, ``data``, ``response``          null (a write without response is answered
                                                        once queued: the reply is the backpressure)
subscribe   ``handle``, ``enable``                      null
mtu         ``mtu``                                     ``{"mtu"}``
disconnect  -                                           null
==========  ==========================================  ============================================

Events (simulator -> host, no ``id``): ``{"ev": "notify", "handle", "data"}`` and
``{"ev": "disconnected", "reason"}`` (the headset dropped the link). One socket connection carries at
most one BLE connection; scanning uses its own socket connection.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

VERSION = 1
MAX_MESSAGE = 1 << 20
_LEN = struct.Struct(">I")


class RpcError(ConnectionError):
    """The socket peer broke the protocol or went away."""


def b64(data: bytes | bytearray) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _LEN.pack(len(body)) + body


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at a clean end of stream."""
    try:
        head = await reader.readexactly(_LEN.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise RpcError("connection closed inside a message header") from None
        return None
    (length,) = _LEN.unpack(head)
    if length > MAX_MESSAGE:
        raise RpcError(f"message of {length} bytes exceeds the {MAX_MESSAGE}-byte limit")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise RpcError("connection closed inside a message") from None
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise RpcError(f"bad JSON message: {exc}") from None
    if not isinstance(message, dict):
        raise RpcError("a message must be a JSON object")
    return message
