"""The one command surface of a session: say, listen, stop, volume, status.

The control socket, MQTT and the skills all act on a session through this class, so a command means the
same thing whichever way it arrives (and is tested once).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from companion.announcements import Outcome

if TYPE_CHECKING:
    from companion.session.core import Session


class SessionCommands:
    """What may be asked of one running session from outside its conversation."""

    def __init__(self, session: Session) -> None:
        self._s = session

    @property
    def device(self) -> str:
        return self._s.device

    def queue_say(self, text: str, intent: str = "say") -> asyncio.Future[Outcome]:
        """Queue ``text`` to be spoken now, outside the conversation; raises AnnouncementRefused at once
        when it cannot be queued. The future resolves with the outcome once it was played or stopped."""
        return self._s.announcements.put(text, intent).done

    async def say(self, text: str, intent: str = "say") -> Outcome:
        """Speak ``text`` and wait until it was played (or stopped)."""
        return await self.queue_say(text, intent)

    async def listen(self, on: bool) -> None:
        """Open the mic for one turn, or close it (in hands-free and wake modes it stays open)."""
        await (self._s.start_listening() if on else self._s.stop_listening())

    async def stop(self, why: str = "command") -> None:
        """Stop the reply now and drop the announcements waiting."""
        await self._s.barge_in(why)

    def set_volume(self, percent: int) -> int:
        """Set the speaker volume (clamped to 0-100); the headset is told in the background. Returns it."""
        s = self._s
        s.volume = max(0, min(100, int(percent)))
        s.spawn(s.link.set_volume(s.volume), "set-volume")
        return s.volume

    @property
    def volume(self) -> int:
        return self._s.volume

    def status(self) -> dict[str, object]:
        s = self._s
        return {"state": s.state.name.lower(), "turns": s.turns, "volume": s.volume, "mode": s.mode}
