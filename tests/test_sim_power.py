"""Link faults: power cycles, walking out of range, headset-side disconnects, and reconnecting."""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError

from companion.protocol import SetVolume
from firmware_sim import RadioConfig, SimClient, SimScanner, SimWorld
from tests.fixtures.sim import air_settled, connect_host, until


async def _visible(world: SimWorld, address: str) -> bool:
    found = await BleakScanner.discover(timeout=0.25, backend=SimScanner, sim_world=world, sim_socket=False)
    return address in {d.address for d in found}


async def test_power_cycle_disconnects_and_advertises_again_after_off_s(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(name="Sim Power", mic_noise_rms=300)
    host = await connect_host(sim_world, hs)
    await host.listen()
    await until(lambda: host.mic_packets, 2, "the mic stream")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    cycle = asyncio.create_task(hs.power_cycle(1.0))
    await until(lambda: host.disconnects == 1, 2, "the host to see the disconnect")
    assert not host.client.is_connected and host.disconnects == 1  # the host's callback ran
    assert not hs.connected and not hs.advertising
    assert not await _visible(sim_world, hs.address)
    await cycle
    assert loop.time() - t0 >= 1.0 and hs.advertising
    assert await _visible(sim_world, hs.address)
    # a fresh connection works and streams again; the reboot reset the mic stream
    host2 = await connect_host(sim_world, hs)
    await host2.listen()
    await until(lambda: host2.mic_packets, 2, "the mic stream after the reboot")
    assert host2.mic_packets and int.from_bytes(host2.mic_packets[0][:2], "little") == 0
    assert hs.truth.connects == 2 and hs.truth.disconnects == 1
    await host2.client.disconnect()


async def test_connect_waits_for_a_headset_that_is_off(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(name="Sim Late")
    device = None
    async with BleakScanner(backend=SimScanner, sim_world=sim_world, sim_socket=False) as scanner:
        await until(lambda: any(d.address == hs.address for d in scanner.discovered_devices), 3, "the scan")
        device = next(d for d in scanner.discovered_devices if d.address == hs.address)
    hs.power_off()
    loop = asyncio.get_running_loop()
    loop.call_later(0.4, hs.power_on)
    t0 = loop.time()
    async with BleakClient(device, backend=SimClient, timeout=5) as client:
        assert client.is_connected and loop.time() - t0 >= 0.4


async def test_out_of_range_drops_after_the_supervision_timeout(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(
        None, RadioConfig(supervision_timeout_ms=300), name="Sim Range", mic_noise_rms=300
    )
    host = await connect_host(sim_world, hs)
    await host.listen()
    await until(lambda: host.mic_packets, 2, "the mic stream")
    # a short walk away: nothing gets through, then the queued audio follows
    hs.go_out_of_range()
    await air_settled(hs)
    n, sent = len(host.mic_packets), hs.truth.mic.sent
    await asyncio.sleep(0.15)  # a window in which nothing may get through
    assert len(host.mic_packets) == n and hs.truth.mic.sent == sent and hs.connected
    hs.come_back()
    await until(lambda: len(host.mic_packets) > n + 5, 2, "the queued audio to follow")
    assert hs.connected
    # a long one: the link drops, the headset is not seen until it is back
    hs.go_out_of_range()
    await until(lambda: not hs.connected and host.disconnects == 1, 2, "the supervision timeout")
    assert not hs.connected and host.disconnects == 1 and not host.client.is_connected
    assert not await _visible(sim_world, hs.address)
    hs.come_back()
    assert await _visible(sim_world, hs.address)


async def test_headset_side_disconnect_and_retry_connector_reconnect(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(name="Sim Drop")
    host = await connect_host(sim_world, hs)
    await host.subscribe_all()
    hs.disconnect("user turned it off")
    await until(lambda: host.disconnects == 1, 2, "the host to see the disconnect")
    assert host.disconnects == 1
    with pytest.raises(BleakError, match="Not connected"):
        await host.command(SetVolume(10))
    host2 = await connect_host(sim_world, hs)
    assert host2.client.is_connected
    await host2.client.disconnect()
