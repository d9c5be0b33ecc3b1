"""Virtual BLE headsets (`companion` and `omi` profiles) behind a bleak backend, for tests and demos.

Quick start::

    async with SimWorld() as world:
        headset = world.add_headset(HeadsetConfig(name="Sim"))
        device = await BleakScanner.find_device_by_name("Sim", backend=SimScanner)
        async with BleakClient(device, backend=SimClient) as client:
            ...

``python -m firmware_sim`` serves headsets to other processes; see docs/simulator.md.
"""

from .bleak_backend import BlueZSimClient, SimClient, SimDeviceDetails, SimScanner
from .config import ConfigError, HeadsetConfig, OpusSettings, RadioConfig
from .firmware import ErrorCode, MicClosed, VoiceError, VoiceUnavailable
from .gatt import AttError, GattTable
from .headset import Advertisement, VirtualHeadset
from .paths import SOCKET_ENV, default_socket_path
from .radio import AudioTruth, LinkLost, NotAdvertising, RadioTruth
from .recording import Recording, read_recording
from .server import SimServer, SocketInUse
from .world import SimWorld, UnknownHeadset, default_world

__all__ = [
    "SOCKET_ENV",
    "Advertisement",
    "AttError",
    "AudioTruth",
    "BlueZSimClient",
    "ConfigError",
    "ErrorCode",
    "GattTable",
    "HeadsetConfig",
    "LinkLost",
    "MicClosed",
    "NotAdvertising",
    "OpusSettings",
    "RadioConfig",
    "RadioTruth",
    "Recording",
    "SimClient",
    "SimDeviceDetails",
    "SimScanner",
    "SimServer",
    "SimWorld",
    "SocketInUse",
    "UnknownHeadset",
    "VirtualHeadset",
    "VoiceError",
    "VoiceUnavailable",
    "default_socket_path",
    "default_world",
    "read_recording",
]
