"""The headset's LED mirrors the session state, without ever delaying audio."""

from __future__ import annotations

import asyncio
import contextlib

from companion.link.base import HeadsetLink, LinkError
from companion.protocol import DeviceState


class LedMirror:
    """States queue here; :meth:`run` writes them to the headset, latest wins."""

    def __init__(self, link: HeadsetLink) -> None:
        self.link = link
        self._queue: asyncio.Queue[DeviceState] = asyncio.Queue()

    def show(self, state: DeviceState) -> None:
        self._queue.put_nowait(state)

    async def run(self) -> None:
        """Write until cancelled; a failed write is dropped (the next state, or a reconnect, rewrites it)."""
        while True:
            state = await self._queue.get()
            while not self._queue.empty():
                state = self._queue.get_nowait()
            with contextlib.suppress(LinkError, OSError, asyncio.TimeoutError):
                await self.link.set_state(state)
