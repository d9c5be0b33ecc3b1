"""The headset's clock: a 20 ms tick on absolute deadlines, so it never drifts from real time.

A late wake-up (a busy event loop) is caught up by running the missed ticks back to back, as a real
device's audio clock would have kept running. ``samples`` is the authoritative time: the clock reads
``samples / 16000`` seconds, the same time base the conversation recording is written on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..config import SAMPLE_RATE, TICK_SAMPLES

TICK_S = TICK_SAMPLES / SAMPLE_RATE


class TickClock:
    """Calls ``on_tick()`` every 20 ms of real time; :meth:`now` is the sample clock in seconds."""

    def __init__(self, on_tick: Callable[[], None]) -> None:
        self._on_tick = on_tick
        self.samples = 0
        self.ticks = 0
        self._t0: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> float:
        return self.samples / SAMPLE_RATE

    def to_loop_time(self, t: float) -> float:
        """The event-loop time at which the headset clock read ``t`` (or will read it)."""
        if self._t0 is None:
            raise RuntimeError("the headset clock has not started")
        return self._t0 + t

    def from_loop_time(self, when: float) -> float:
        if self._t0 is None:
            raise RuntimeError("the headset clock has not started")
        return when - self._t0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._t0 = loop.time()
        while True:
            deadline = self._t0 + (self.ticks + 1) * TICK_S
            delay = deadline - loop.time()
            # catching up after a stall: still yield between ticks, so the radio and the host catch up
            # alongside instead of the speaker draining its whole buffer in one burst
            await asyncio.sleep(max(delay, 0.0))
            self._on_tick()
            self.ticks += 1
            self.samples += TICK_SAMPLES
