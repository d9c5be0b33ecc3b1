"""The virtual Omi against the real one: MTU exchange, packetisation, GATT layout, identity, buttons, time.

Every test talks to the headset through bleak's real client with the simulator's backend; the facts each
checks are those of the Omi firmware collected in companion/protocol/omi.py.
"""

from __future__ import annotations

import asyncio
import struct
import time

import numpy as np
import pytest
from bleak import BleakClient, BleakScanner

from companion.protocol import Button, CodecId, OmiUUID, Profile, Reassembler, StdUUID, parse_omi_button
from companion.protocol.codecs import StreamDecoder
from companion.protocol.control import parse_omi_codec
from companion.protocol.omi import MTU_FOR_EVERY_FRAME, MTU_REQUEST_DELAY_S, decode_time
from firmware_sim import HeadsetConfig, RadioConfig, SimClient, SimScanner, SimWorld
from tests.fixtures.sim import find_offset, snr_db, until

AUDIO = OmiUUID.AUDIO


async def _plain_client(world: SimWorld, name: str) -> BleakClient:
    """A third-party client: bleak's public API only, no MTU call (the simulator is just the backend)."""
    device = await BleakScanner.find_device_by_name(name, timeout=5.0, backend=SimScanner, sim_world=world)
    assert device is not None
    client = BleakClient(device.address, backend=SimClient, sim_world=world)
    await client.connect()
    return client


def _decode(packets: list[bytes], codec: CodecId) -> tuple[np.ndarray, Reassembler]:
    reasm = Reassembler(Profile.OMI, codec)
    frames = [f for p in packets for f in reasm.feed(p)] + reasm.flush()
    pcm = StreamDecoder(codec).decode(frames)
    return (np.concatenate(pcm) if pcm else np.zeros(0, dtype=np.int16)), reasm


async def test_a_plain_bleak_client_gets_audio_once_the_device_raises_the_mtu(
    sim_world: SimWorld, speech_set
) -> None:
    pcm = speech_set[1].pcm()[: 16000 * 2]
    hs = sim_world.add_headset(HeadsetConfig(profile="omi"))  # the default virtual Omi, as shipped
    client = await _plain_client(sim_world, "Omi")
    packets: list[bytes] = []
    t0 = time.monotonic()
    await client.start_notify(AUDIO, lambda _, d: packets.append(bytes(d)))
    assert client.mtu_size == 23  # BlueZ never raised it; the device will
    await until(lambda: packets, 5.0, "audio after the device's own MTU exchange")
    waited = time.monotonic() - t0
    assert MTU_REQUEST_DELAY_S - 0.2 < waited < MTU_REQUEST_DELAY_S + 1.0, waited
    assert client.mtu_size == 247 and hs.mtu == 247
    assert hs.firmware.omi is not None and hs.firmware.omi.mtu_requests == 1
    packets.clear()
    await hs.mic.say(pcm)
    await asyncio.sleep(0.3)
    codec = parse_omi_codec(await client.read_gatt_char(OmiUUID.CODEC))
    await client.disconnect()
    assert codec is CodecId.OPUS_16K_20MS
    out, reasm = _decode(packets, codec)
    assert reasm.counters.packets_lost == 0 and reasm.counters.frames_decoded >= 100
    off = find_offset(out, pcm)
    assert snr_db(pcm, out[off : off + len(pcm)]) > 9.0  # CELT low delay at 32 kbit/s


async def test_a_host_that_never_raises_the_mtu_gets_nothing(sim_world: SimWorld) -> None:
    # a central whose stack answers the exchange with 23: the firmware asks seven times, then gives up
    hs = sim_world.add_headset(HeadsetConfig(profile="omi", name="Omi 23"), RadioConfig(max_mtu=23))
    client = await _plain_client(sim_world, "Omi 23")
    packets: list[bytes] = []
    await client.start_notify(AUDIO, lambda _, d: packets.append(bytes(d)))
    await hs.mic.say(np.full(16000, 3000, dtype=np.int16))
    await asyncio.sleep(MTU_REQUEST_DELAY_S + 0.3)
    assert packets == [] and not hs.streaming and hs.mtu == 23
    await client.disconnect()
    # and a device built not to ask leaves it to the host
    hs2 = sim_world.add_headset(HeadsetConfig(profile="omi", name="Omi Quiet", requests_mtu=False))
    client = await _plain_client(sim_world, "Omi Quiet")
    await client.start_notify(AUDIO, lambda _, d: packets.append(bytes(d)))
    await asyncio.sleep(MTU_REQUEST_DELAY_S + 0.3)
    assert packets == [] and hs2.mtu == 23 and hs2.firmware.omi.mtu_requests == 0  # type: ignore[union-attr]
    await client.disconnect()
