"""What a session says outside the conversation (timers, reminders, `say` requests), queued and bounded.

Why a queue of its own: a timer may fall due while the headset is off or out of range, and it must ring when
the headset returns, not vanish; a burst of 100 `say` commands must not keep the wearer listening for
minutes; and "stop" must silence what is queued as well as what is playing.

- ``say`` requests are refused once :data:`MAX_SAY` wait (the caller gets the reason), and refused at once
  while no speaker is connected (the caller should not wait for a headset that may not return).
- Timer and reminder announcements are kept while the headset is away and played, in order, when it returns;
  one cut short by anything but a stop (a drop, the wearer's next turn) is played again. At most
  :data:`MAX_KEPT` wait; beyond that the oldest is dropped with a warning (a wearer does not set dozens of
  timers, so this only bounds memory).
- :meth:`Announcements.clear` (an explicit stop) drops everything waiting.

The session plays each item (:class:`Speak` callback) as its reply task, so a barge-in stops it as it stops
a reply; the callback says whether the item reached the speaker.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger(__name__)

MAX_SAY = 8
MAX_KEPT = 32

#: "cut": ended early by something other than a stop (a disconnect, the wearer's new turn): a kept item
#: (timer, reminder) is played again; a `say` is not.
Outcome = Literal["played", "stopped", "cut"]


KEPT_INTENT = "announcement"  # timers and reminders: the wearer must hear them, however late


class AnnouncementRefused(ValueError):
    """A `say` request that cannot be queued now (queue full, headset away); the message says why."""


@dataclass(eq=False)
class Announcement:
    text: str
    intent: str  # "say" for requests, "announcement" for timers and reminders
    chime: bool = False
    stopped: bool = False  # an explicit stop came while it played
    done: asyncio.Future[Outcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def kept(self) -> bool:
        """Kept while the headset is away and replayed when cut (timers, reminders), rather than refused
        or dropped. A `say` request or a status line (such as speech recognition being unreachable) is
        about the moment: played late it would answer a turn it does not belong to."""
        return self.intent == KEPT_INTENT


Speak = Callable[[Announcement], Awaitable[Outcome]]


class Announcements:
    """A bounded FIFO of announcements and the worker that plays them when a speaker is connected."""

    def __init__(self, speak: Speak, connected: Callable[[], bool]) -> None:
        self._speak = speak
        self._connected = connected
        self._items: collections.deque[Announcement] = collections.deque()
        self._changed = asyncio.Event()
        self.dropped = 0
        self.current: Announcement | None = None
        self.leftover: list[str] = []  # kept items not played when the worker ended (see carryover.py)

    def __len__(self) -> int:
        return len(self._items)

    def pending(self) -> list[str]:
        return [a.text for a in self._items]

    def put(self, text: str, intent: str, *, chime: bool = False) -> Announcement:
        """Queue ``text``; raises AnnouncementRefused for a `say` that cannot wait."""
        item = Announcement(text, intent, chime)
        if not item.kept:
            if not self._connected():
                raise AnnouncementRefused("the headset is not connected; nothing was said")
            waiting = sum(1 for a in self._items if not a.kept)
            if waiting >= MAX_SAY:
                raise AnnouncementRefused(f"{waiting} announcements are already waiting; try again later")
        elif sum(1 for a in self._items if a.kept) >= MAX_KEPT:
            oldest = next(a for a in self._items if a.kept)
            self._items.remove(oldest)
            self._finish(oldest, "stopped")
            self.dropped += 1
            log.warning("announcement queue full: dropped %r", oldest.text)
        self._items.append(item)
        self._changed.set()
        return item

    def clear(self) -> int:
        """Drop everything waiting (an explicit stop); returns how many were dropped."""
        n = len(self._items)
        if self.current is not None:
            self.current.stopped = True
        while self._items:
            self._finish(self._items.popleft(), "stopped")
        return n

    def link_changed(self) -> None:
        """The headset (or speaker) connected or disconnected: look again."""
        self._changed.set()

    async def run(self) -> None:
        """Play queued items one by one while a speaker is connected; runs until cancelled."""
        try:
            while True:
                if not self._items or not self._connected():
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                item = self.current = self._items.popleft()
                try:
                    outcome = await self._speak(item)
                except asyncio.CancelledError:
                    self._items.appendleft(item)  # cleared (and finished) by the finally below
                    raise
                except Exception:
                    log.exception("announcement %r failed", item.text)
                    outcome = "stopped"
                finally:
                    self.current = None
                if outcome == "cut" and item.kept and not item.stopped:
                    log.info("announcement %r was cut short: it plays again", item.text)
                    self._items.appendleft(item)
                    continue
                self._finish(item, "stopped" if outcome == "cut" else outcome)
        finally:
            self.leftover = [a.text for a in self._items if a.kept]
            self.clear()

    @staticmethod
    def _finish(item: Announcement, outcome: Outcome) -> None:
        if not item.done.done():
            item.done.set_result(outcome)
