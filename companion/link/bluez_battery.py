"""A headset's battery level from BlueZ over D-Bus, for when its GATT Battery Service is out of reach.

Stock BlueZ loads its ``battery`` plugin, which claims the Battery Service (0x180F) of every LE device:
the service never appears among the GATT services a client such as bleak sees, and the level is published
as the ``Percentage`` property of ``org.bluez.Battery1`` on the device's object instead. This reads it
with dbus-fast (installed with bleak on Linux). No adapter, no bus or no such object: None, never an error,
since the battery level is nice to have and must not fail a connection.
"""

from __future__ import annotations

import asyncio
import logging
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
    try:
        from dbus_fast import BusType, Message, MessageType
        from dbus_fast.aio import MessageBus
    except ImportError:  # not on Linux: bleak did not pull dbus-fast in
        return None
    bus: Any = None
    try:
        async with asyncio.timeout(timeout):
            if bus_address is None:
                bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
            else:
                bus = await MessageBus(bus_address=bus_address).connect()
            reply = await bus.call(
                Message(
                    destination=BLUEZ,
                    path="/",
                    interface="org.freedesktop.DBus.ObjectManager",
                    member="GetManagedObjects",
                )
            )
    except (OSError, TimeoutError, ValueError) as exc:
        log.debug("no BlueZ battery for %s: %s", address, exc)
        return None
    except Exception as exc:  # dbus-fast's errors for a bus that refuses us (auth, policy)
        log.debug("no BlueZ battery for %s: %r", address, exc)
        return None
    finally:
        if bus is not None:
            bus.disconnect()
    if reply.message_type is MessageType.ERROR:
        log.debug("BlueZ did not list its objects: %s %s", reply.error_name, reply.body)
        return None
    return battery_from_objects(reply.body[0], address)


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
