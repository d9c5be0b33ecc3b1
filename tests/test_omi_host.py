"""The host's side of an Omi: battery from BlueZ when the GATT Battery Service is hidden, the device clock
set on connect, identity read, characteristics found by (service, characteristic)."""

from __future__ import annotations

import asyncio
import time

import pytest

from companion.link.base import BatteryEvent
from companion.link.ble import BleHeadsetLink, BleLinkOptions
from companion.link.bluez_battery import read_battery
from companion.link.omi import find_char
from companion.protocol import OmiUUID, Profile, StdUUID
from firmware_sim import BlueZSimClient, HeadsetConfig, SimClient, SimScanner, SimWorld
from tests.fixtures.dbus import BluezStandIn

pytestmark = pytest.mark.usefixtures("fast_backoff")


def _link(headset, backend=SimClient, **options) -> BleHeadsetLink:  # type: ignore[no-untyped-def]
    return BleHeadsetLink(
        headset.address, backend=backend, scanner_backend=SimScanner, options=BleLinkOptions(**options)
    )


async def test_battery_comes_from_bluez_when_its_plugin_hides_the_service(
    sim_world: SimWorld, bluez: BluezStandIn, session_bus: str
) -> None:
    hs = sim_world.add_headset(HeadsetConfig(profile="omi", name="Omi Bat", battery_percent=63))
    bluez.add_device("C0:00:00:00:00:01", 12)  # another device: must not be mistaken for ours
    bluez.add_device(hs.address, hs.battery)
    async with _link(hs, BlueZSimClient, bluez_battery=True, dbus_address=session_bus) as link:
        client = link._client
        assert client is not None
        assert client.services.get_service(StdUUID.BATTERY_SERVICE) is None  # as stock BlueZ shows it
        assert link.info.battery == 63
        events = link.events()
        bluez.set_battery(hs.address, 58)  # BlueZ read a new level from the device: the link follows it
        async with asyncio.timeout(3):
            while not isinstance(event := await anext(events), BatteryEvent):
                pass
        assert event.percent == 58 and link.info.battery == 58
    assert link._bluez_battery is not None and link._bluez_battery._bus is None  # closed with the link


async def test_bluez_battery_absent_or_unreachable_is_none(bluez: BluezStandIn, session_bus: str) -> None:
    bluez.add_device("C0:00:00:00:00:02", None)  # a device without Battery1
    assert await read_battery("C0:00:00:00:00:02", bus_address=session_bus) is None
    assert await read_battery("C0:00:00:00:00:03", bus_address=session_bus) is None
    t0 = time.monotonic()
    assert await read_battery("C0:00:00:00:00:02", bus_address="unix:path=/nonexistent/bus") is None
    assert time.monotonic() - t0 < 2.5


async def test_connect_sets_the_device_clock_and_reads_its_identity(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(HeadsetConfig(profile="omi", name="Omi Clock"))
    assert hs.epoch_time() is None
    async with _link(hs) as link:
        assert link.info.profile is Profile.OMI
        assert link.info.extra["manufacturer"] == "Based Hardware"
        assert link.info.extra["model"] == "Omi CV 1" and link.info.extra["hardware"] == "5.0"
        synced = [e for e in hs.log if e.kind == "time_sync"]
        assert len(synced) == 1
        assert abs(hs.epoch_time() - time.time()) < 2  # type: ignore[operator]
        client = link._client
        assert client is not None
        # found where the firmware puts it, not by UUID alone
        time_char = find_char(client.services, OmiUUID.TIME_SYNC_SERVICE, OmiUUID.TIME_SYNC)
        assert time_char is not None and time_char.service_uuid == OmiUUID.TIME_SYNC_SERVICE
        assert find_char(client.services, OmiUUID.SERVICE, OmiUUID.TIME_SYNC) is None
