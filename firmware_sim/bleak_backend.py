"""A bleak backend for virtual headsets: ``BleakScanner(backend=SimScanner)``, ``BleakClient(device,
backend=SimClient)`` and ``bleak_retry_connector.establish_connection(BleakClient, device, name,
backend=SimClient)`` run bleak's real code path against the simulator.

Both find headsets in this process (the default :class:`SimWorld`, or ``sim_world=``) and headsets served
by a separately started ``python -m firmware_sim`` on its socket (``sim_socket=``; default
:func:`firmware_sim.paths.default_socket_path`; ``sim_socket=False`` to skip it). Like BlueZ, the link
starts at MTU 23; ``await client._backend._acquire_mtu()`` (BlueZ's private method name) exchanges it, and
a headset that asks for the exchange itself (omi, 1.3 s after connecting) raises it for any client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError

from companion.protocol.gatt import ATT_HEADER, sig_uuid

from .gatt import AttError, GattTable
from .headset import Advertisement
from .paths import default_socket_path
from .radio import MIN_MTU, LinkLost, NotAdvertising
from .remote import RemoteConnection, RpcChannel, remote_scan
from .rpc import RpcError
from .world import SimWorld, UnknownHeadset, default_world

log = logging.getLogger("firmware_sim.bleak")

SocketArg = str | Path | bool | None


@dataclass(frozen=True)
class SimDeviceDetails:
    """``BLEDevice.details`` of a simulated headset: where it lives. Deliberately not a dict with a
    ``"path"`` key (that is how bleak-retry-connector recognises BlueZ devices)."""

    address: str
    profile: str
    world: SimWorld | None = None
    socket: Path | None = None

    @property
    def remote(self) -> bool:
        return self.socket is not None


def _socket_path(arg: SocketArg) -> Path | None:
    if arg is False:
        return None
    if arg is None or arg is True:
        return default_socket_path()
    return Path(arg)


class _Connection(Protocol):
    mtu: int
    connected: bool

    @property
    def address(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def gatt(self) -> GattTable: ...

    def set_disconnect_callback(self, callback: Any) -> None: ...

    async def read(self, handle: int) -> bytes: ...

    async def write(self, handle: int, data: bytes, response: bool) -> None: ...

    async def subscribe(self, handle: int, callback: NotifyCallback | None) -> None: ...

    async def exchange_mtu(self, mtu: int = 517) -> int: ...

    async def disconnect(self) -> None: ...


class SimScanner(BaseBleakScanner):
    """Hears the advertisements of simulated headsets, from a periodic task (every ``scan_interval``)."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None = None,
        service_uuids: list[str] | None = None,
        scanning_mode: str = "active",
        *,
        sim_world: SimWorld | None = None,
        sim_socket: SocketArg = None,
        scan_interval: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._world = sim_world
        self._socket = _socket_path(sim_socket)
        self._interval = scan_interval
        self._task: asyncio.Task[None] | None = None
        self._channel: RpcChannel | None = None
        self._retry_at = 0.0

    async def start(self, **kwargs: Any) -> None:
        self.seen_devices = {}
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="SimScanner")

    async def stop(self, **kwargs: Any) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.aclose()

    async def _run(self) -> None:
        await asyncio.sleep(0.01)  # advertise after start() has returned and callbacks are registered
        while True:
            world = self._world or default_world()
            for adv in world.advertisements():
                self._report(adv, SimDeviceDetails(adv.address, adv.profile, world=world))
            for adv in await self._remote_adverts():
                self._report(adv, SimDeviceDetails(adv.address, adv.profile, socket=self._socket))
            await asyncio.sleep(self._interval)

    async def _remote_adverts(self) -> list[Advertisement]:
        path = self._socket
        if path is None:
            return []
        loop = asyncio.get_running_loop()
        if self._channel is None or self._channel.closed:
            if self._channel is not None:
                await self._channel.aclose()
                self._channel = None
            if loop.time() < self._retry_at or not path.exists():
                return []
            try:
                self._channel = await RpcChannel.open(path)
            except OSError as exc:
                log.debug("no simulator on %s: %s", path, exc)
                self._retry_at = loop.time() + 1.0
                return []
        try:
            return await remote_scan(self._channel)
        except (ConnectionError, RpcError) as exc:
            log.debug("simulator scan failed: %s", exc)
            return []

    def _report(self, adv: Advertisement, details: SimDeviceDetails) -> None:
        if not self.is_allowed_uuid(adv.service_uuids):
            return
        data = AdvertisementData(
            local_name=adv.name,
            manufacturer_data=dict(adv.manufacturer_data),
            service_data={},
            service_uuids=list(adv.service_uuids),
            tx_power=adv.tx_power,
            rssi=adv.rssi,
            platform_data=(details,),
        )
        device = self.create_or_update_device(adv.address, adv.address, adv.name, details, data)
        self.call_detection_callbacks(device, data)


class SimClient(BaseBleakClient):
    """bleak client backend over a simulated link (in-process, or through the simulator's socket)."""

    #: Services the host's stack keeps to itself, so a bleak client never sees them.
    hidden_services: frozenset[str] = frozenset()

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Any = None,
        services: set[str] | None = None,
        timeout: float = 10.0,
        sim_world: SimWorld | None = None,
        sim_socket: SocketArg = None,
        sim_central: str = "host",
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self.address = self.address.upper()
        device = address_or_ble_device if isinstance(address_or_ble_device, BLEDevice) else None
        details = device.details if device is not None else None
        self._details = details if isinstance(details, SimDeviceDetails) else None
        self._adv_name = device.name if device is not None else None
        self._world = sim_world
        self._socket_arg = sim_socket
        self._central = sim_central
        self._services_filter = {s.lower() for s in services} if services else None
        self._conn: _Connection | None = None

    # -- connection --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        if self._conn is not None:
            return self._conn.name
        return self._adv_name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._conn.mtu if self._conn is not None and self._conn.connected else MIN_MTU

    @property
    def is_connected(self) -> bool:
        return self._conn is not None and self._conn.connected

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        if self.is_connected:
            return
        timeout = float(kwargs.get("timeout") or self._timeout)
        try:
            conn = await self._open(timeout)
        except (UnknownHeadset, FileNotFoundError, ConnectionRefusedError) as exc:
            raise BleakDeviceNotFoundError(
                self.address, f"simulated headset {self.address} not found: {exc}"
            ) from exc
        except (LinkLost, NotAdvertising, RpcError) as exc:
            raise BleakError(f"{self.address}: connection failed: {exc}") from exc
        self._conn = conn
        self.services = self._collection(conn.gatt)
        conn.set_disconnect_callback(self._on_link_lost)
        log.debug("connected to %s (%s)", conn.name, self.address)

    async def _open(self, timeout: float) -> _Connection:
        d = self._details
        if d is not None and d.socket is not None:
            return await RemoteConnection.open(d.socket, self.address, timeout=timeout, central=self._central)
        if d is not None and d.world is not None and not d.world.closed:
            return await d.world.connect(self.address, central=self._central, timeout=timeout)
        world = self._world or default_world()
        if world.find(self.address) is not None:
            return await world.connect(self.address, central=self._central, timeout=timeout)
        path = _socket_path(self._socket_arg)
        if path is not None and path.exists():
            return await RemoteConnection.open(path, self.address, timeout=timeout, central=self._central)
        raise UnknownHeadset(f"no simulated headset {self.address} in this process or on a simulator socket")

    def _collection(self, table: GattTable) -> BleakGATTServiceCollection:
        coll = BleakGATTServiceCollection()
        for s in table.services:
            if self._services_filter is not None and s.uuid not in self._services_filter:
                continue
            if s.uuid in self.hidden_services:
                continue
            service = BleakGATTService(s, s.handle, s.uuid)
            coll.add_service(service)
            for c in s.characteristics:
                char = BleakGATTCharacteristic(
                    c,
                    c.handle,
                    c.uuid,
                    cast("list[CharacteristicPropertyName]", list(c.properties)),
                    self._max_write_size,
                    service,
                )
                coll.add_characteristic(char)
                for d in c.descriptors:
                    coll.add_descriptor(BleakGATTDescriptor(d, d.handle, d.uuid, char))
        return coll

    def _max_write_size(self) -> int:
        return self.mtu_size - ATT_HEADER

    def _on_link_lost(self, reason: str) -> None:
        log.debug("%s: link lost (%s)", self.address, reason)
        self._conn = None
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self, **kwargs: Any) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.set_disconnect_callback(None)
        await conn.disconnect()
        if self._disconnected_callback is not None:
            self._disconnected_callback()  # BlueZ calls it on a local disconnect too

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        log.debug("%s: pairing is not simulated (the link is open)", self.address)

    async def unpair(self, **kwargs: Any) -> None:
        log.debug("%s: unpairing is not simulated", self.address)

    async def _acquire_mtu(self, **kwargs: Any) -> None:
        """Exchange the ATT MTU (BlueZ's private method of the same name)."""
        conn = self._require()
        await self._call(conn.exchange_mtu())

    # -- GATT --------------------------------------------------------------------------------------
    def _require(self) -> _Connection:
        if self._conn is None or not self._conn.connected:
            raise BleakError("Not connected")
        return self._conn

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except AttError as exc:
            raise BleakGATTProtocolError(exc.code) from exc
        except (LinkLost, RpcError) as exc:
            raise BleakError(f"Not connected: {exc}") from exc
        except ValueError as exc:
            raise BleakError(str(exc)) from exc

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        conn = self._require()
        return bytearray(await self._call(conn.read(characteristic.handle)))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        conn = self._require()
        return bytearray(await self._call(conn.read(descriptor.handle)))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool, **kwargs: Any
    ) -> None:
        conn = self._require()
        await self._call(conn.write(characteristic.handle, bytes(data), response))

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer, **kwargs: Any
    ) -> None:
        conn = self._require()
        await self._call(conn.write(descriptor.handle, bytes(data), True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        conn = self._require()
        await self._call(conn.subscribe(characteristic.handle, callback))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> None:
        conn = self._require()
        await self._call(conn.subscribe(characteristic.handle, None))


class BlueZSimClient(SimClient):
    """A host with stock BlueZ: its battery plugin claims the Battery Service (0x180F), so GATT clients
    never see it and read the level from ``org.bluez.Battery1`` on D-Bus instead."""

    hidden_services = frozenset({sig_uuid(0x180F)})
