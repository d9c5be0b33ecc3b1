"""Commands addressed to a headset from outside: the control socket and MQTT, through one dispatcher.

Each command ends in the headset's `companion.session.SessionCommands` (the same one the skills use), so
`say`, `listen`, `stop` and `volume` behave the same whichever way they arrive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from companion.control_socket import (
    ListenRequest,
    Request,
    SayRequest,
    StatusRequest,
    StopRequest,
    VolumeRequest,
)

if TYPE_CHECKING:
    from companion.session import SessionCommands


class DeviceCommands:
    """The service's commands; ``device`` is an address, a name, an MQTT device id, or empty (the only
    connected headset). ``find`` raises LookupError (with the reason) when no headset matches."""

    def __init__(self, find: Callable[[str], SessionCommands], status: Callable[[], dict[str, Any]]) -> None:
        self._find = find
        self._status = status

    # -- the MQTT bridge's CommandHandler --------------------------------------------------------
    async def say(self, device: str, text: str) -> None:
        """Speak ``text``; returns once it was played (or stopped)."""
        await self._find(device).say(text)

    async def listen(self, device: str, on: bool) -> None:
        await self._find(device).listen(on)

    async def stop(self, device: str, why: str = "command") -> None:
        await self._find(device).stop(why)

    async def set_volume(self, device: str, percent: int) -> None:
        self._find(device).set_volume(percent)

    # -- the control socket ----------------------------------------------------------------------
    async def handle(self, request: Request) -> dict[str, Any]:
        """Run one checked control-socket request; LookupError/ValueError become the error reply."""
        if isinstance(request, StatusRequest):
            return {"ok": True, **self._status()}
        commands = self._find(request.device)
        reply: dict[str, Any] = {"ok": True, "device": commands.device}
        match request:
            case SayRequest(text=text, wait=wait):
                # Queued at once, so a full queue or an absent headset is this request's error reply.
                spoken = commands.queue_say(text)
                if not wait:
                    return {**reply, "queued": True}
                await spoken
            case StopRequest():
                await commands.stop("command")
            case ListenRequest(on=on):
                await commands.listen(on)
            case VolumeRequest(percent=percent):
                commands.set_volume(int(percent))
        return reply
