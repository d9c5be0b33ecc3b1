"""GATT tables of the two device profiles: the open `companion` profile and Omi/Friend compatibility.

UUIDs only; no I/O. docs/protocol.md documents every characteristic byte by byte.
"""

from __future__ import annotations

from enum import StrEnum


def _companion(short: int) -> str:
    return f"c0a1{short:04x}-5d1e-4b8a-9c7e-0f1e2d3c4b5a"


def _omi(short: int) -> str:
    return f"19b1{short:04x}-e8f2-537e-4f6c-d104768a1214"


def sig_uuid(short: int) -> str:
    """A Bluetooth SIG 16-bit UUID in the 128-bit form bleak reports."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


class Profile(StrEnum):
    COMPANION = "companion"
    OMI = "omi"


class CompanionUUID:
    """The `companion` profile: audio both ways, control, flow credits and capabilities."""

    SERVICE = _companion(0x0001)
    MIC = _companion(0x0002)  # notify: audio packets, headset -> host
    SPEAKER = _companion(0x0003)  # write without response: audio packets, host -> headset
    CONTROL = _companion(0x0004)  # write (commands) + notify (events)
    FLOW = _companion(0x0005)  # notify + read: speaker flow status (credits)
    CAPABILITIES = _companion(0x0006)  # read


class OmiUUID:
    """Omi/Friend devices as they ship (see docs/protocol.md, section omi).

    The firmware registers each group as a service of its own (transport.c): audio, settings, features, time
    sync, diagnostics; button, haptic and offline storage come from their own modules.
    """

    SERVICE = _omi(0x0000)
    AUDIO = _omi(0x0001)  # read + notify
    CODEC = _omi(0x0002)  # read, 1 byte
    SPEAKER = _omi(0x0003)  # optional build: chimes, not speech
    SETTINGS_SERVICE = _omi(0x0010)
    DIM_RATIO = _omi(0x0011)  # read/write u8 0-100
    MIC_GAIN = _omi(0x0012)  # read/write u8 level 0-8
    CHARGING = _omi(0x0013)  # read + notify u8 0/1
    FEATURES_SERVICE = _omi(0x0020)
    FEATURES = _omi(0x0021)  # read u32 bits
    TIME_SYNC_SERVICE = _omi(0x0030)
    TIME_SYNC = _omi(0x0031)  # write u32 LE epoch seconds
    TIME_READ = _omi(0x0032)  # read u32 LE epoch seconds (the device clock)
    DIAGNOSTICS_SERVICE = _omi(0x0040)
    DIAGNOSTICS = _omi(0x0041)  # read: a snapshot of counters
    STORAGE_SERVICE = "30295780-4301-eabd-2904-2849adfeae43"
    STORAGE_DATA = "30295781-4301-eabd-2904-2849adfeae43"  # write (commands) + notify (stored audio)
    STORAGE_READ = "30295782-4301-eabd-2904-2849adfeae43"  # read: stored sizes
    BUTTON_SERVICE = "23ba7924-0000-1000-7450-346eac492e92"
    BUTTON = "23ba7925-0000-1000-7450-346eac492e92"  # notify int32[2] LE
    HAPTIC_SERVICE = "cab1ab95-2ea5-4f4d-bb56-874b72cfc984"
    HAPTIC = "cab1ab96-2ea5-4f4d-bb56-874b72cfc984"


class StdUUID:
    """Standard SIG services both profiles carry."""

    BATTERY_SERVICE = sig_uuid(0x180F)
    BATTERY_LEVEL = sig_uuid(0x2A19)  # read + notify, u8 percent
    DEVICE_INFO_SERVICE = sig_uuid(0x180A)
    MANUFACTURER = sig_uuid(0x2A29)
    MODEL_NUMBER = sig_uuid(0x2A24)
    SERIAL_NUMBER = sig_uuid(0x2A25)
    FIRMWARE_REVISION = sig_uuid(0x2A26)
    HARDWARE_REVISION = sig_uuid(0x2A27)


#: The service UUID each profile advertises; scanners filter on these.
ADVERTISED_SERVICE: dict[Profile, str] = {
    Profile.COMPANION: CompanionUUID.SERVICE,
    Profile.OMI: OmiUUID.SERVICE,
}


def profile_for_services(uuids: list[str] | tuple[str, ...] | set[str]) -> Profile | None:
    """Which profile a device speaks, judged from its advertised or discovered service UUIDs."""
    lowered = {u.lower() for u in uuids}
    for profile, service in ADVERTISED_SERVICE.items():
        if service in lowered:
            return profile
    return None


#: ATT header bytes taken out of every notification/write (opcode + handle).
ATT_HEADER = 3
#: The MTU every link starts with, and what BlueZ reports unless the MTU is acquired.
DEFAULT_MTU = 23
MAX_MTU = 517
