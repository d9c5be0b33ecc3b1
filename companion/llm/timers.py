"""Timers and reminders owned by one object, so that none outlives the session that set it.

Each pending timer is one asyncio task sleeping until it is due; it then awaits the `on_due(message)`
callback the session gave at construction (the session speaks the message). `cancel()` and `aclose()`
cancel those tasks and `aclose()` awaits them, so no task leaks past the owner.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

TimerKind = Literal["timer", "reminder"]
MAX_DELAY_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Timer:
    """A pending timer or reminder. `due_at` is on the `time.monotonic()` clock."""

    id: int
    label: str
    message: str
    kind: TimerKind
    duration_s: float
    due_at: float

    def remaining_s(self) -> float:
        """Seconds until the timer fires (0 once due)."""
        return max(0.0, self.due_at - time.monotonic())


class Timers:
    """Asyncio timers/reminders; `on_due(message)` is awaited when one fires."""

    def __init__(self, on_due: Callable[[str], Awaitable[None]]) -> None:
        self._on_due = on_due
        self._ids = itertools.count(1)
        self._pending: dict[int, Timer] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._closed = False

    def add(self, delay_s: float, label: str, message: str, *, kind: TimerKind = "timer") -> Timer:
        """Start a timer that fires after `delay_s` seconds. Must be called from the event loop."""
        if self._closed:
            raise RuntimeError("Timers is closed")
        if not isinstance(delay_s, int | float) or not math.isfinite(delay_s) or delay_s <= 0:
            raise ValueError(f"timer delay must be a positive number of seconds, got {delay_s!r}")
        if delay_s > MAX_DELAY_S:
            raise ValueError(f"timer delay must be at most {MAX_DELAY_S:.0f} s (24 hours), got {delay_s}")
        if kind not in ("timer", "reminder"):
            raise ValueError(f"timer kind must be 'timer' or 'reminder', got {kind!r}")
        timer = Timer(
            id=next(self._ids),
            label=label,
            message=message,
            kind=kind,
            duration_s=float(delay_s),
            due_at=time.monotonic() + delay_s,
        )
        self._pending[timer.id] = timer
        task = asyncio.get_running_loop().create_task(self._run(timer), name=f"timer-{timer.id}")
        self._tasks[timer.id] = task
        task.add_done_callback(functools.partial(self._forget, timer.id))
        return timer

    def _forget(self, timer_id: int, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(timer_id, None)

    def cancel(self, timer_id: int) -> bool:
        """Cancel a pending timer; False when no such timer is pending (already fired or unknown)."""
        if self._pending.pop(timer_id, None) is None:
            return False
        task = self._tasks.get(timer_id)
        if task is not None:
            task.cancel()
        return True

    def list(self, kind: TimerKind | None = None) -> builtins.list[Timer]:
        """Pending timers, soonest first; only those of `kind` when given."""
        timers = [t for t in self._pending.values() if kind is None or t.kind == kind]
        return sorted(timers, key=lambda t: t.due_at)

    async def aclose(self) -> None:
        """Cancel every timer (and any `on_due` callback still running) and wait for them to end."""
        self._closed = True
        self._pending.clear()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, timer: Timer) -> None:
        await asyncio.sleep(max(0.0, timer.due_at - time.monotonic()))
        if self._pending.pop(timer.id, None) is None:
            return  # cancelled in the same loop iteration it became due
        try:
            await self._on_due(timer.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("on_due callback failed for %s %d (%s)", timer.kind, timer.id, timer.label)
