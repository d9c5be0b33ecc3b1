"""The in-process hub: a registry of virtual headsets that scanners see and clients connect to.

``async with SimWorld() as world`` makes the world the process's default while it is open, so a bleak
``SimScanner``/``SimClient`` created without a ``sim_world=`` argument (as the companion service does)
finds its headsets. Closing the world cancels and awaits every task its headsets started.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from .config import ConfigError, HeadsetConfig, RadioConfig
from .headset import Advertisement, VirtualHeadset
from .radio import Link

log = logging.getLogger("firmware_sim")

_ids = itertools.count(1)


class UnknownHeadset(LookupError):
    """No simulated headset has this address."""


class SimWorld:
    """Headsets living in this process. Use as an async context manager (or call :meth:`aclose`)."""

    def __init__(self, *, address_prefix: str | None = None, make_default: bool = True) -> None:
        n = next(_ids)
        self.address_prefix = (address_prefix or f"5A:{n % 223 + 1:02X}").upper()  # 5A:E0 is the server's
        parts = self.address_prefix.split(":")
        if len(parts) != 2 or not all(len(p) == 2 for p in parts):
            raise ConfigError(f"address_prefix {address_prefix!r}: two hex bytes like '5A:11'")
        self.make_default = make_default
        self.headsets: dict[str, VirtualHeadset] = {}
        self.closed = False
        self._count = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> SimWorld:
        self._bind()
        if self.make_default:
            _stack.append(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _bind(self) -> asyncio.AbstractEventLoop:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("SimWorld needs a running event loop: use `async with SimWorld()`") from None
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("this SimWorld belongs to another event loop")
        return loop

    def add_headset(
        self, config: HeadsetConfig | None = None, radio: RadioConfig | None = None, **changes: Any
    ) -> VirtualHeadset:
        """Create a headset and start its clock; ``changes`` override fields of ``config``."""
        if self.closed:
            raise RuntimeError("this SimWorld is closed")
        self._bind()
        if config is None:
            config = HeadsetConfig(**changes)
        elif changes:
            config = config.replace(**changes)
        radio = radio or RadioConfig()
        self._count += 1
        address = (
            config.address or f"{self.address_prefix}:00:00:{self._count >> 8:02X}:{self._count & 255:02X}"
        )
        if address in self.headsets:
            raise ConfigError(f"address {address} is already taken in this world")
        if config.serial is None:
            config = config.replace(serial=address.replace(":", ""))
        if config.address != address:
            config = config.replace(address=address)
        hs = VirtualHeadset(self, config, radio, address)
        self.headsets[address] = hs
        log.info("%s (%s): %s headset advertising", hs.name, address, hs.profile.value)
        return hs

    async def remove_headset(self, headset: VirtualHeadset) -> None:
        self.headsets.pop(headset.address, None)
        await headset.aclose()

    def find(self, address: str) -> VirtualHeadset | None:
        return self.headsets.get(address.upper())

    def by_name(self, name: str) -> VirtualHeadset:
        for hs in self.headsets.values():
            if hs.name == name:
                return hs
        raise UnknownHeadset(f"no simulated headset named {name!r}")

    def advertisements(self) -> list[Advertisement]:
        return [a for hs in self.headsets.values() if (a := hs.advertisement()) is not None]

    async def connect(self, address: str, *, central: str = "host", timeout: float = 10.0) -> Link:
        """Connect a central to a headset, waiting (up to ``timeout``) for it to advertise."""
        hs = self.find(address)
        if hs is None:
            raise UnknownHeadset(f"no simulated headset {address} in this world")
        return await hs.radio.connect(central, timeout)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self in _stack:
            _stack.remove(self)
        headsets = list(self.headsets.values())
        self.headsets.clear()
        for hs in headsets:
            await hs.aclose()


_stack: list[SimWorld] = []
_fallback: SimWorld | None = None


def default_world() -> SimWorld:
    """The world a backend uses when none is given: the innermost open ``async with SimWorld()``, else a
    process-wide one created on first use."""
    global _fallback
    for world in reversed(_stack):
        if not world.closed:
            return world
    if _fallback is None or _fallback.closed or _fallback_loop_gone(_fallback):
        _fallback = SimWorld(make_default=False)
    return _fallback


def _fallback_loop_gone(world: SimWorld) -> bool:
    loop = world._loop
    if loop is None:
        return False
    try:
        return loop is not asyncio.get_running_loop() or loop.is_closed()
    except RuntimeError:
        return loop.is_closed()
