"""The host's side of an Omi device: its characteristics, looked up by (service, characteristic), the
clock set on connect, and what its Device Information service says.

Lookups name the service as well as the characteristic: a UUID alone finds the first match anywhere in
the table, which goes wrong as soon as two services share a characteristic UUID or a device adds one.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.service import BleakGATTServiceCollection
from bleak.exc import BleakError

from companion.protocol import OmiUUID, StdUUID, encode_time_sync

from .base import NotConnected

log = logging.getLogger(__name__)


def find_char(
    services: BleakGATTServiceCollection, service: str, char: str
) -> BleakGATTCharacteristic | None:
    """The characteristic ``char`` of the service ``service``, or None if either is absent."""
    svc = services.get_service(service)
    return svc.get_characteristic(char) if svc is not None else None


@dataclass(frozen=True, slots=True)
class OmiChars:
    """The characteristics the host uses, found where the firmware puts them."""

    audio: BleakGATTCharacteristic
    codec: BleakGATTCharacteristic
    button: BleakGATTCharacteristic | None
    time_sync: BleakGATTCharacteristic | None
    features: BleakGATTCharacteristic | None

    @classmethod
    def find(cls, services: BleakGATTServiceCollection, address: str) -> OmiChars:
        audio = find_char(services, OmiUUID.SERVICE, OmiUUID.AUDIO)
        codec = find_char(services, OmiUUID.SERVICE, OmiUUID.CODEC)
        if audio is None or codec is None:
            raise NotConnected(f"{address} has the omi service without its audio and codec characteristics")
        return cls(
            audio=audio,
            codec=codec,
            button=find_char(services, OmiUUID.BUTTON_SERVICE, OmiUUID.BUTTON),
            time_sync=find_char(services, OmiUUID.TIME_SYNC_SERVICE, OmiUUID.TIME_SYNC),
            features=find_char(services, OmiUUID.FEATURES_SERVICE, OmiUUID.FEATURES),
        )


async def sync_time(client: BleakClient, chars: OmiChars, now: Callable[[], float] = time.time) -> bool:
    """Set the device clock (it stamps what it stores offline with it); False if it has no time sync."""
    if chars.time_sync is None:
        return False
    try:
        await client.write_gatt_char(chars.time_sync, encode_time_sync(int(now())), response=True)
    except BleakError as exc:  # an old firmware that refuses it: audio still works
        log.warning("%s: time sync failed: %s", client.address, exc)
        return False
    return True


async def read_identity(client: BleakClient) -> dict[str, str]:
    """Manufacturer, model, firmware and hardware revision from Device Information, as far as present."""
    out: dict[str, str] = {}
    for key, uuid in (
        ("manufacturer", StdUUID.MANUFACTURER),
        ("model", StdUUID.MODEL_NUMBER),
        ("firmware", StdUUID.FIRMWARE_REVISION),
        ("hardware", StdUUID.HARDWARE_REVISION),
    ):
        char = find_char(client.services, StdUUID.DEVICE_INFO_SERVICE, uuid)
        if char is None:
            continue
        with contextlib.suppress(BleakError):
            out[key] = bytes(await client.read_gatt_char(char)).decode("utf-8", "replace").strip("\x00 ")
    return out
