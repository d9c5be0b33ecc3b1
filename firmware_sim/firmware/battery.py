"""The headset's battery: it drains by the minute and says when a level notification is due."""

from __future__ import annotations

import math

from ..config import HeadsetConfig
from .clock import TICK_S

TICKS_PER_S = round(1 / TICK_S)  # 50


class Battery:
    """A level that drains every 20 ms tick. Notifications go out every ``battery_notify_s`` (Omi: 5 s),
    or, when that is 0, whenever the whole-percent level changes."""

    def __init__(self, config: HeadsetConfig) -> None:
        self.config = config
        self.level = float(config.battery_percent)
        self._ticks = 0
        self._notified: int | None = None

    @property
    def percent(self) -> int:
        return max(0, min(100, math.ceil(self.level - 1e-9)))

    def renotify(self) -> None:
        """A new subscriber or connection: the next tick notifies the current level."""
        self._notified = None

    def tick(self) -> tuple[bool, bool]:
        """One tick of drain: (the battery just ran empty, a notification is due now)."""
        cfg = self.config
        before = self.percent
        self.level = max(0.0, self.level - cfg.battery_drain_per_min / (60 * TICKS_PER_S))
        if self.level <= 0 and before > 0:
            return True, False
        self._ticks += 1
        period = cfg.battery_notify_s or 0
        due = self._ticks >= round(period * TICKS_PER_S) if period else self.percent != self._notified
        if due:
            self._ticks = 0
            self._notified = self.percent
        return False, due
