"""Finding headsets: a BLE scan for either profile, and what a failed scan or connect means for the user."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import BaseBleakScanner

from companion.protocol import (
    ADVERTISED_SERVICE,
    Profile,
    ProtocolError,
    StdUUID,
    parse_battery,
    profile_for_services,
)

from .base import NotConnected


def describe_ble_error(exc: BaseException) -> str:
    """What a failed scan or connect means for the user, and what to do about it."""
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        return (
            "Bluetooth is not reachable: BlueZ's D-Bus system bus is missing (no adapter, or bluetoothd and "
            "dbus are not running). Start them, or use virtual headsets with --sim"
        )
    text = str(exc) or type(exc).__name__
    if "No Bluetooth adapters found" in text or "adapter" in text.lower():
        return f"{text}: plug in a Bluetooth LE adapter, or use virtual headsets with --sim"
    return text


@dataclass(frozen=True, slots=True)
class FoundHeadset:
    """One advertising headset as a scan saw it."""

    device: BLEDevice
    profile: Profile
    rssi: int | None
    battery: int | None  # from Battery Service data in the advertisement, when the headset sends it

    @property
    def address(self) -> str:
        return self.device.address

    @property
    def name(self) -> str:
        return self.device.name or ""

    def as_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "name": self.name,
            "profile": str(self.profile),
            "rssi": self.rssi,
            "battery": self.battery,
        }


async def find_headset(
    address: str, timeout: float, *, backend: type[BaseBleakScanner] | None = None
) -> BLEDevice:
    """The advertising headset at ``address``; NotConnected if it does not advertise within ``timeout``."""
    kwargs: BleakScanner.ExtraArgs = {}
    if backend is not None:
        kwargs["backend"] = backend
    device = await BleakScanner.find_device_by_address(address, timeout=timeout, **kwargs)
    if device is None:
        raise NotConnected(f"headset {address} is not advertising")
    return device


async def scan_headsets(
    timeout: float = 5.0, *, backend: type[BaseBleakScanner] | None = None
) -> list[FoundHeadset]:
    """Advertising headsets of either profile, sorted by name then address."""
    kwargs: BleakScanner.ExtraArgs = {"service_uuids": list(ADVERTISED_SERVICE.values())}
    if backend is not None:
        kwargs["backend"] = backend
    found = await BleakScanner.discover(timeout=timeout, return_adv=True, **kwargs)
    out = []
    for device, adv in found.values():
        profile = profile_for_services(adv.service_uuids)
        if profile is None and adv.local_name and adv.local_name.lower().startswith(("omi", "friend")):
            profile = Profile.OMI  # stock omi firmware advertises its name, not always its service
        if profile is None:
            continue
        battery = None
        data = adv.service_data.get(StdUUID.BATTERY_SERVICE)
        if data is not None:
            with contextlib.suppress(ProtocolError):
                battery = parse_battery(data)
        out.append(FoundHeadset(device, profile, adv.rssi, battery))
    return sorted(out, key=lambda h: (h.name, h.address))
