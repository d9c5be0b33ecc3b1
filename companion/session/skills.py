"""The SkillContext the offline skills see: this session's headset, volume, memory and timers."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from companion.llm.timers import Timers

if TYPE_CHECKING:
    from companion.session.core import Session


class SessionSkills:
    """Skills act through the session's commands (volume, stop), like the control socket and MQTT do."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self.timers = Timers(on_due=session.announce)

    def battery_percent(self) -> int | None:
        return self._s.link.info.battery

    def set_volume(self, percent: int) -> None:
        self._s.commands.set_volume(percent)

    def volume(self) -> int:
        return self._s.commands.volume

    def stop_speaking(self) -> None:
        self._s.spawn(self._s.commands.stop("stop"), "stop-speaking")

    def last_reply(self) -> str | None:
        return self._s.conversation.last_assistant()

    def now(self) -> datetime:
        return datetime.now().astimezone()
