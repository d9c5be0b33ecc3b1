"""A headset's battery level from BlueZ over D-Bus, for when its GATT Battery Service is out of reach.

Stock BlueZ loads its ``battery`` plugin, which claims the Battery Service (0x180F) of every LE device:
the service never appears among the GATT services a client such as bleak sees, and the level is published
as the ``Percentage`` property of ``org.bluez.Battery1`` on the device's object instead. This reads it
with dbus-fast (installed with bleak on Linux), once (:func:`read_battery`) or followed by its changes
(:class:`BlueZBatteryWatch`). No adapter, no bus or no such object: None, never an error, since the battery
level is nice to have and must not fail a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

BLUEZ = "org.bluez"
DEVICE_IFACE = "org.bluez.Device1"
BATTERY_IFACE = "org.bluez.Battery1"
TIMEOUT_S = 2.0


async def read_battery(
    address: str, *, bus_address: str | None = None, timeout: float = TIMEOUT_S
) -> int | None:
    """The percentage BlueZ publishes for the device with this address; None if it publishes none.

    ``bus_address`` None means the system bus (where bluetoothd lives); tests pass a private bus.
    """
    watch = BlueZBatteryWatch(address, lambda _: None, bus_address=bus_address)
    try:
        return await watch.start(timeout)
    finally:
        await watch.aclose()


def battery_from_objects(objects: dict[str, dict[str, dict[str, Any]]], address: str) -> int | None:
    """Find ``address`` among BlueZ's managed objects and return its Battery1 percentage, if any."""
    wanted = address.upper()
    for ifaces in objects.values():
        device = ifaces.get(DEVICE_IFACE)
        battery = ifaces.get(BATTERY_IFACE)
        if device is None or battery is None:
            continue
        addr = device.get("Address")
        if addr is None or str(_value(addr)).upper() != wanted:
            continue
        level = battery.get("Percentage")
        if level is None:
            return None
        percent = int(_value(level))
        return percent if 0 <= percent <= 100 else None
    return None


def _value(v: Any) -> Any:
    return getattr(v, "value", v)  # dbus-fast Variant


class BlueZBatteryWatch:
    """Follows one device's ``Battery1.Percentage``: :meth:`start` reads it and subscribes to its changes
    (``on_level`` is called with each new value); :meth:`aclose` ends that. Start again after a reconnect."""

    def __init__(
        self, address: str, on_level: Callable[[int], None], *, bus_address: str | None = None
    ) -> None:
        self.address = address.upper()
        self.on_level = on_level
        self.bus_address = bus_address
        self.path: str | None = None
        self._bus: Any = None

    async def start(self, timeout: float = TIMEOUT_S) -> int | None:
        await self.aclose()
        try:
            from dbus_fast import BusType, Message, MessageType
            from dbus_fast.aio import MessageBus
        except ImportError:
            return None
        try:
            async with asyncio.timeout(timeout):
                if self.bus_address is None:
                    self._bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
                else:
                    self._bus = await MessageBus(bus_address=self.bus_address).connect()
                reply = await self._bus.call(
                    Message(
                        destination=BLUEZ,
                        path="/",
                        interface="org.freedesktop.DBus.ObjectManager",
                        member="GetManagedObjects",
                    )
                )
                if reply.message_type is MessageType.ERROR:
                    raise ValueError(f"{reply.error_name}: {reply.body}")
                objects = reply.body[0]
                self.path = _device_path(objects, self.address)
                if self.path is None:
                    raise ValueError("BlueZ publishes no battery for it")
                rule = (
                    "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                    f"path='{self.path}',arg0='{BATTERY_IFACE}'"
                )
                self._bus.add_message_handler(self._on_message)
                await self._bus.call(
                    Message(
                        destination="org.freedesktop.DBus",
                        path="/org/freedesktop/DBus",
                        interface="org.freedesktop.DBus",
                        member="AddMatch",
                        signature="s",
                        body=[rule],
                    )
                )
        except Exception as exc:  # no bus, no BlueZ, refused, timed out: no battery, never a failure
            log.debug("no BlueZ battery for %s: %r", self.address, exc)
            await self.aclose()
            return None
        return battery_from_objects(objects, self.address)

    def _on_message(self, msg: Any) -> None:
        if msg.member != "PropertiesChanged" or msg.path != self.path or not msg.body:
            return
        iface, changed = msg.body[0], msg.body[1]
        if iface != BATTERY_IFACE or "Percentage" not in changed:
            return
        percent = int(_value(changed["Percentage"]))
        if 0 <= percent <= 100:
            self.on_level(percent)

    async def aclose(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            with contextlib.suppress(Exception):
                bus.disconnect()


def _device_path(objects: dict[str, dict[str, dict[str, Any]]], address: str) -> str | None:
    for path, ifaces in objects.items():
        device = ifaces.get(DEVICE_IFACE)
        if (
            device is not None
            and BATTERY_IFACE in ifaces
            and str(_value(device.get("Address", ""))).upper() == address
        ):
            return path
    return None
