"""The simulator link factory: the one place `companion` reaches into `firmware_sim`.

It hands out the simulator's bleak backend classes, so the service's real BLE code path (`link/ble.py`)
runs unchanged against virtual headsets, in this process or served by `python -m firmware_sim`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from .base import LinkError

if TYPE_CHECKING:
    from .ble import BleHeadsetLink, BleLinkOptions


def _firmware_sim():
    try:
        import firmware_sim
    except ImportError as exc:  # pragma: no cover - installed with the package
        raise LinkError(
            "virtual headsets need the firmware_sim package (pip install -e . in the source tree)"
        ) from exc
    return firmware_sim


def sim_backends() -> tuple[type[BaseBleakScanner], type[BaseBleakClient]]:
    """(scanner, client) backend classes that talk to virtual headsets."""
    sim = _firmware_sim()
    return sim.SimScanner, sim.SimClient


def sim_link(address: str, options: BleLinkOptions | None = None) -> BleHeadsetLink:
    """The BLE link to a virtual headset: the real link code with the simulator's bleak backend."""
    from .ble import BleHeadsetLink

    scanner, client = sim_backends()
    return BleHeadsetLink(address, backend=client, scanner_backend=scanner, options=options)


def running_simulator_socket() -> Path | None:
    """The socket of a running `python -m firmware_sim`, if one is listening."""
    path = _firmware_sim().default_socket_path()
    return path if path.exists() and path.is_socket() else None
