"""The simulated radio of one headset: advertising, one connection at a time, power and range.

A :class:`Radio` belongs to a headset: it advertises, accepts one connection at a time (a
:class:`~firmware_sim.link.Link`, where connection events, the reliable channel and the queues live), and
can be powered off or taken out of range. The lossy channel and the ground truth of every audio packet
(:class:`RadioTruth`, for tests to compare with what a host saw) are sans-IO in :mod:`firmware_sim.air`.
Nothing here knows about bleak; the backend adapts a :class:`Link` to bleak's client API. The names of the
split modules stay importable from here.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from companion.protocol import ATT_HEADER

from .air import HOLD_MAX_MS, AudioTruth, RadioTruth
from .link import GattServer, Link, LinkLost, NotAdvertising, NotifyCallback
from .radio_config import MAX_MTU, MIN_MTU, RadioConfig
from .tasks import TaskOwner

log = logging.getLogger("firmware_sim.radio")

__all__ = [
    "ATT_HEADER",
    "HOLD_MAX_MS",
    "MAX_MTU",
    "MIN_MTU",
    "AudioTruth",
    "GattServer",
    "Link",
    "LinkLost",
    "NotAdvertising",
    "NotifyCallback",
    "Radio",
    "RadioTruth",
]


class Radio:
    """A headset's radio: advertising, one connection at a time, power and range."""

    def __init__(
        self, config: RadioConfig, server: GattServer, name: str, address: str, owner: TaskOwner
    ) -> None:
        self.config = config
        self.server = server
        self.name = name
        self.address = address
        self.owner = owner
        # one generator per direction: the outcome of each stream depends on the seed alone, not on how
        # mic and speaker traffic happen to interleave
        self.rng_up = random.Random(None if config.seed is None else f"{config.seed}/up")
        self.rng_down = random.Random(None if config.seed is None else f"{config.seed}/down")
        self.truth = RadioTruth()
        self.powered = True
        self.in_range = config.in_range
        self.link: Link | None = None
        self._adv_waiters: list[asyncio.Future[None]] = []
        self._supervision: asyncio.TimerHandle | None = None

    @property
    def advertising(self) -> bool:
        return self.powered and self.in_range and self.link is None

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected

    @property
    def mtu(self) -> int:
        return self.link.mtu if self.link is not None else MIN_MTU

    async def connect(self, central: str = "host", timeout: float = 10.0) -> Link:
        """Connect when the headset next advertises (like a real stack's pending connect), or time out."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                while not self.advertising:
                    fut = loop.create_future()
                    self._adv_waiters.append(fut)
                    try:
                        await fut
                    finally:
                        if fut in self._adv_waiters:
                            self._adv_waiters.remove(fut)
                await asyncio.sleep((self.config.connect_delay_ms or 0) / 1000.0)
                if self.advertising:
                    break
        link = Link(self, central)
        self.link = link
        self.truth.connects += 1
        log.info("%s (%s): connected to %s", self.name, self.address, central)
        self.server.on_link_up(link)
        if self.config.auto_mtu:
            link.mtu = self.config.max_mtu
            self.server.on_mtu(link.mtu)
        return link

    def impair(self, **changes: Any) -> RadioConfig:
        """Change link impairments (loss, duplicate, reorder, downlink_loss, latency_ms ...) on the fly."""
        self.config = self.config.replace(**changes)
        return self.config

    def disconnect(self, reason: str = "headset disconnected") -> None:
        if self.link is not None:
            self.link.close(reason)

    def _link_closed(self, link: Link, reason: str) -> None:
        if self.link is link:
            self.link = None
            self.truth.disconnects += 1
            if self._supervision is not None:
                self._supervision.cancel()
                self._supervision = None
            log.info("%s (%s): disconnected (%s)", self.name, self.address, reason)
            self.server.on_link_down(reason)
            self._advertising_changed()

    def _advertising_changed(self) -> None:
        if self.advertising:
            waiters, self._adv_waiters = self._adv_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def power_off(self) -> None:
        self.powered = False
        self.disconnect("power off")

    def power_on(self) -> None:
        self.powered = True
        self._advertising_changed()

    def go_out_of_range(self) -> None:
        """Packets stop moving; the link drops after the supervision timeout unless it comes back first."""
        if not self.in_range:
            return
        self.in_range = False
        if self.link is not None:
            loop = asyncio.get_running_loop()
            self._supervision = loop.call_later(
                self.config.supervision_timeout_ms / 1000.0, self.disconnect, "supervision timeout"
            )

    def come_back(self) -> None:
        self.in_range = True
        if self._supervision is not None:
            self._supervision.cancel()
            self._supervision = None
        if self.link is not None:
            self.link._wake.set()
        self._advertising_changed()

    def close(self) -> None:
        self.disconnect("headset closed")
        self.powered = False
        for fut in self._adv_waiters:
            if not fut.done():
                fut.set_exception(NotAdvertising(f"{self.name} was removed"))
        self._adv_waiters.clear()
