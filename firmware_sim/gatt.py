"""The headset's GATT table: services, characteristics (with handles and properties) and descriptors.

Only the layout lives here; values come from the firmware when a central reads. The table is plain data
so it can cross the simulator's socket (:meth:`GattTable.to_json`) and be turned into bleak's service
collection on the host side. Handles are numbered like a real server's attribute table: a service, then
each characteristic's value handle followed by its descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from companion.protocol import CompanionUUID, OmiUUID, Profile, StdUUID
from companion.protocol.gatt import sig_uuid

from .config import HeadsetConfig

CCCD = sig_uuid(0x2902)

READ = "read"
WRITE = "write"
WRITE_NR = "write-without-response"
NOTIFY = "notify"


class AttError(Exception):
    """An ATT error response (the code is the Bluetooth Core spec's ATT error code)."""

    INVALID_HANDLE = 0x01
    READ_NOT_PERMITTED = 0x02
    WRITE_NOT_PERMITTED = 0x03
    INVALID_LENGTH = 0x0D
    VALUE_NOT_ALLOWED = 0x13

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"ATT error 0x{code:02x}: {message}")
        self.code = code


@dataclass(slots=True)
class Descriptor:
    handle: int
    uuid: str


@dataclass(slots=True)
class Characteristic:
    """``key`` is the firmware's own name for it (``"mic"``, ``"battery"`` ...)."""

    handle: int
    uuid: str
    key: str
    properties: tuple[str, ...]
    descriptors: list[Descriptor] = field(default_factory=list)

    @property
    def cccd(self) -> Descriptor | None:
        return next((d for d in self.descriptors if d.uuid == CCCD), None)


@dataclass(slots=True)
class Service:
    handle: int
    uuid: str
    characteristics: list[Characteristic] = field(default_factory=list)


class GattTable:
    """An ordered attribute table with lookups by handle, uuid and firmware key."""

    def __init__(self, services: list[Service]) -> None:
        self.services = services
        self._chars = {c.handle: c for s in services for c in s.characteristics}
        self._descs = {d.handle: (d, c) for c in self._chars.values() for d in c.descriptors}
        self._keys = {c.key: c for c in self._chars.values()}

    def char(self, handle: int) -> Characteristic | None:
        return self._chars.get(handle)

    def descriptor(self, handle: int) -> tuple[Descriptor, Characteristic] | None:
        return self._descs.get(handle)

    def by_key(self, key: str) -> Characteristic | None:
        return self._keys.get(key)

    def handle_of(self, key: str) -> int:
        c = self._keys.get(key)
        if c is None:
            raise KeyError(f"this headset has no {key!r} characteristic")
        return c.handle

    def by_uuid(self, uuid: str) -> Characteristic | None:
        uuid = uuid.lower()
        return next((c for c in self._chars.values() if c.uuid == uuid), None)

    @property
    def service_uuids(self) -> list[str]:
        return [s.uuid for s in self.services]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "handle": s.handle,
                "uuid": s.uuid,
                "chars": [
                    {
                        "handle": c.handle,
                        "uuid": c.uuid,
                        "key": c.key,
                        "props": list(c.properties),
                        "descs": [[d.handle, d.uuid] for d in c.descriptors],
                    }
                    for c in s.characteristics
                ],
            }
            for s in self.services
        ]

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> GattTable:
        return cls(
            [
                Service(
                    int(s["handle"]),
                    str(s["uuid"]),
                    [
                        Characteristic(
                            int(c["handle"]),
                            str(c["uuid"]),
                            str(c["key"]),
                            tuple(c["props"]),
                            [Descriptor(int(h), str(u)) for h, u in c["descs"]],
                        )
                        for c in s["chars"]
                    ],
                )
                for s in data
            ]
        )


class _Builder:
    def __init__(self) -> None:
        self.handle = 0
        self.services: list[Service] = []

    def _next(self) -> int:
        self.handle += 1
        return self.handle

    def service(self, uuid: str) -> None:
        self.services.append(Service(self._next(), uuid))

    def char(self, key: str, uuid: str, *props: str) -> None:
        self._next()  # the characteristic declaration attribute
        c = Characteristic(self._next(), uuid, key, props)
        if NOTIFY in props:
            c.descriptors.append(Descriptor(self._next(), CCCD))
        self.services[-1].characteristics.append(c)


def build_table(config: HeadsetConfig) -> GattTable:
    """The attribute table of a headset with this configuration."""
    b = _Builder()
    if config.profile is Profile.COMPANION:
        b.service(CompanionUUID.SERVICE)
        b.char("mic", CompanionUUID.MIC, NOTIFY)
        if config.has_speaker:
            b.char("speaker", CompanionUUID.SPEAKER, WRITE_NR)
        b.char("control", CompanionUUID.CONTROL, WRITE, WRITE_NR, NOTIFY)
        if config.has_speaker:
            b.char("flow", CompanionUUID.FLOW, READ, NOTIFY)
        b.char("capabilities", CompanionUUID.CAPABILITIES, READ)
    else:
        _omi_services(b, config)
    if config.has_battery:
        b.service(StdUUID.BATTERY_SERVICE)
        b.char("battery", StdUUID.BATTERY_LEVEL, READ, NOTIFY)
    b.service(StdUUID.DEVICE_INFO_SERVICE)
    b.char("manufacturer", StdUUID.MANUFACTURER, READ)
    b.char("model", StdUUID.MODEL_NUMBER, READ)
    b.char("serial", StdUUID.SERIAL_NUMBER, READ)
    b.char("firmware_revision", StdUUID.FIRMWARE_REVISION, READ)
    b.char("hardware_revision", StdUUID.HARDWARE_REVISION, READ)
    return GattTable(b.services)


def _omi_services(b: _Builder, config: HeadsetConfig) -> None:
    """Omi's services in the firmware's registration order (transport.c, button.c, haptic.c, storage.c)."""
    if config.has_button:
        b.service(OmiUUID.BUTTON_SERVICE)
        b.char("button", OmiUUID.BUTTON, READ, NOTIFY)
    if config.has_haptic:
        b.service(OmiUUID.HAPTIC_SERVICE)
        b.char("haptic", OmiUUID.HAPTIC, WRITE)
    b.service(OmiUUID.SERVICE)
    b.char("mic", OmiUUID.AUDIO, READ, NOTIFY)
    b.char("codec", OmiUUID.CODEC, READ)
    b.service(OmiUUID.SETTINGS_SERVICE)
    b.char("dim_ratio", OmiUUID.DIM_RATIO, READ, WRITE)
    b.char("mic_gain", OmiUUID.MIC_GAIN, READ, WRITE)
    b.char("charging", OmiUUID.CHARGING, READ, NOTIFY)
    b.service(OmiUUID.FEATURES_SERVICE)
    b.char("features", OmiUUID.FEATURES, READ)
    b.service(OmiUUID.TIME_SYNC_SERVICE)
    b.char("time_sync", OmiUUID.TIME_SYNC, WRITE)
    b.char("time_read", OmiUUID.TIME_READ, READ)
    b.service(OmiUUID.DIAGNOSTICS_SERVICE)
    b.char("diagnostics", OmiUUID.DIAGNOSTICS, READ)
    # CV1 builds always carry the SD-card storage service; has_storage decides whether audio is kept
    b.service(OmiUUID.STORAGE_SERVICE)
    b.char("storage_data", OmiUUID.STORAGE_DATA, WRITE, NOTIFY)
    b.char("storage_read", OmiUUID.STORAGE_READ, READ)
