"""Speaking queued items (`say` requests, timer rings) as the session's reply, one at a time.

`companion.announcements.Announcements` keeps the queue and decides what a cut item becomes; this plays
one item after any reply in progress, so a barge-in stops it as it stops a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

import numpy as np

from companion.announcements import Announcement, Outcome
from companion.audio import earcons
from companion.events import ErrorEvent, ReplyEvent
from companion.link.base import LinkError
from companion.protocol import DeviceState
from companion.session.reply import Milestones, Spoken

if TYPE_CHECKING:
    from companion.session.core import Session

log = logging.getLogger(__name__)


class AnnouncementPlayer:
    """The `Announcements` queue's speak callback for one session."""

    def __init__(self, session: Session) -> None:
        self._s = session

    async def play(self, item: Announcement) -> Outcome:
        """Play one queued announcement as the reply task, after any reply in progress."""
        s = self._s
        while s.reply_task is not None and not s.reply_task.done():
            await asyncio.wait({s.reply_task})  # a barge-in may cancel it; only our own cancel raises
        marks = Milestones(end_of_speech=time.monotonic())
        task = s.reply_task = s.spawn(self._speak(item, marks), item.intent)
        await asyncio.wait({task})
        if task.cancelled():  # a stop, a disconnect or the wearer's next turn: Announcements decides
            return "cut"
        outcome: Outcome = task.result() if task.exception() is None else "stopped"
        return outcome

    async def _speak(self, item: Announcement, marks: Milestones) -> Outcome:
        s = self._s

        async def text() -> AsyncGenerator[str, None]:
            yield item.text

        async def with_chime() -> AsyncGenerator[np.ndarray, None]:
            if item.chime:
                yield earcons.timer_ring()
            async with contextlib.aclosing(s.player.speak(text(), marks, Spoken(), [])) as speech:
                async for chunk in speech:
                    yield chunk

        s.set_state(DeviceState.SPEAKING)
        outcome: Outcome = "cut"
        try:
            await s.player.play(with_chime(), marks, Spoken())
            outcome = "played"
        except LinkError as exc:
            log.warning("%s: announcement %r not delivered: %s", s.device, item.text, exc)
            s.hub.publish(ErrorEvent(s.device, str(exc)))
        finally:
            s.hub.publish(ReplyEvent(s.device, item.text, item.intent, outcome != "played"))
            s.set_state(DeviceState.IDLE)
        return outcome
