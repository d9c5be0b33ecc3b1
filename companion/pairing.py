"""`companion pair ADDRESS`: find the headset, bond with it, remember it."""

from __future__ import annotations

import contextlib
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError

from companion.link.base import NotConnected
from companion.protocol import profile_for_services
from companion.registry import KnownHeadset, remember


async def pair_headset(address: str, *, sim: bool, timeout: float) -> KnownHeadset:
    scanner_kw: dict[str, Any] = {}
    client_kw: dict[str, Any] = {}
    if sim:
        from companion.link.sim import sim_backends

        scanner_kw["backend"], client_kw["backend"] = sim_backends()
    try:
        device = await BleakScanner.find_device_by_address(address, timeout=timeout, **scanner_kw)
    except BleakError as exc:
        raise NotConnected(
            f"cannot scan: {exc} (no Bluetooth adapter? use --sim for virtual headsets)"
        ) from exc
    if device is None:
        raise NotConnected(f"no headset {address} advertising within {timeout:.0f} s: is it on and in range?")
    try:
        async with BleakClient(device, timeout=timeout, **client_kw) as client:
            profile = profile_for_services([s.uuid for s in client.services or ()])
            if profile is None:
                raise NotConnected(f"{address} is not a companion or omi headset")
            with contextlib.suppress(NotImplementedError):
                await client.pair()
    except BleakError as exc:
        raise NotConnected(f"could not bond with {address}: {exc}") from exc
    return remember(device.address, device.name or device.address, str(profile))
