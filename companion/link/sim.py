"""The simulator link factory: the one place `companion` reaches into `firmware_sim`.

It hands out the simulator's bleak backend classes, so the service's real BLE code path (`link/ble.py`)
runs unchanged against virtual headsets, in this process or served by `python -m firmware_sim`.
"""

from __future__ import annotations

from pathlib import Path

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from .base import LinkError


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


def running_simulator_socket() -> Path | None:
    """The socket of a running `python -m firmware_sim`, if one is listening."""
    path = _firmware_sim().default_socket_path()
    return path if path.exists() and path.is_socket() else None
