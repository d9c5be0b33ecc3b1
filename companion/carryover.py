"""What outlives one session of a headset: its conversation, pending timers and unplayed announcements.

The service restarts a device from scratch when its link fails for good (for example a headset that answers
every reconnect with data this host cannot read). The wearer should not notice more than the gap: the next
session of the same headset continues the conversation, and timers set before the restart still ring (one
that fell due in between rings as soon as the new session runs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from companion.llm.memory import Conversation
from companion.llm.timers import Timer

if TYPE_CHECKING:
    from companion.session import Session


@dataclass
class Carryover:
    conversation: Conversation | None = None
    timers: list[Timer] = field(default_factory=list)
    announcements: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, session: Session) -> Carryover:
        """Take what a finished session left (call after its run() returned)."""
        return cls(session.conversation, list(session.pending_timers), list(session.announcements.leftover))

    def restore(self, session: Session) -> None:
        """Hand it to a new session of the same headset, before its run() starts."""
        if self.conversation is not None:
            session.conversation = self.conversation
            session.responder.conversation = self.conversation
        timers = session.skills_context.timers
        for timer in self.timers:
            left = timer.due_at - time.monotonic()
            if left > 0:
                timers.add(left, timer.label, timer.message, kind=timer.kind)
            else:
                session.announcements.put(timer.message, "announcement", chime=session.earcons)
        for text in self.announcements:
            session.announcements.put(text, "announcement", chime=session.earcons)
