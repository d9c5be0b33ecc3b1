"""Scanning, connecting and the GATT tables of both profiles, through bleak's real client and
bleak-retry-connector, against in-process virtual headsets."""

from __future__ import annotations

import asyncio
import struct

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDeviceNotFoundError, BleakGATTProtocolError

from companion.protocol import (
    Button,
    ButtonReport,
    Capabilities,
    CodecId,
    CodecsReport,
    CompanionUUID,
    DeviceState,
    ErrorReport,
    OmiUUID,
    Profile,
    SetCodecs,
    SetState,
    SetVolume,
    StateReport,
    StdUUID,
    TimeSync,
    VolumeReport,
    parse_battery,
)
from companion.protocol.control import OmiFeature, parse_omi_features
from firmware_sim import HeadsetConfig, RadioConfig, SimClient, SimDeviceDetails, SimScanner, SimWorld
from firmware_sim.firmware import ErrorCode
from tests.fixtures.sim import caught_up, connect_host, until


async def test_scanner_reports_advertisements(sim_world: SimWorld) -> None:
    a = sim_world.add_headset(name="Sim A")
    b = sim_world.add_headset(HeadsetConfig(profile="omi"), RadioConfig(rssi=-71))
    found = await BleakScanner.discover(timeout=0.3, return_adv=True, backend=SimScanner, sim_socket=False)
    assert set(found) == {a.address, b.address}
    dev, adv = found[b.address]
    assert adv.local_name == "Omi" and adv.rssi == -71
    assert adv.service_uuids == [OmiUUID.SERVICE]
    assert isinstance(dev.details, SimDeviceDetails) and not isinstance(dev.details, dict)
    # the service-UUID filter is honoured
    only = await BleakScanner.discover(
        timeout=0.3, backend=SimScanner, sim_socket=False, service_uuids=[CompanionUUID.SERVICE]
    )
    assert [d.address for d in only] == [a.address]


async def test_connect_reads_capabilities_battery_and_device_info(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(name="Sim Info", battery_percent=87, firmware_version=(1, 4, 2))
    host = await connect_host(sim_world, hs)
    c = host.client
    assert c.is_connected and hs.connected and not hs.advertising
    caps = Capabilities.decode(await c.read_gatt_char(CompanionUUID.CAPABILITIES))
    assert caps.firmware_version == "1.4.2"
    assert caps.has_speaker and caps.has_button and caps.has_battery and not caps.has_aec
    assert caps.mic_codecs[0] is CodecId.OPUS_16K_20MS  # the current mic codec comes first
    assert caps.speaker_codecs[0] is CodecId.PCM16_16K  # at MTU 247 the link carries PCM16
    assert caps.speaker_buffer_ms == 400
    assert parse_battery(await c.read_gatt_char(StdUUID.BATTERY_LEVEL)) == 87
    assert (await c.read_gatt_char(StdUUID.MANUFACTURER)).decode() == "companion-sim"
    assert (await c.read_gatt_char(StdUUID.FIRMWARE_REVISION)).decode() == "1.4.2"
    assert (await c.read_gatt_char(StdUUID.SERIAL_NUMBER)).decode() == hs.address.replace(":", "")
    with pytest.raises(BleakGATTProtocolError):
        await c.write_gatt_char(StdUUID.MANUFACTURER, b"x", response=True)
    await c.disconnect()
    assert host.disconnects == 1  # like BlueZ, a local disconnect also calls the callback
    await until(lambda: hs.advertising, 2, "the headset to advertise again")


async def test_mtu_starts_at_23_and_rises_after_acquire(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(name="Sim MTU", mic_noise_rms=800)  # Opus 20 ms of noise: ~60-byte frames
    host = await connect_host(sim_world, hs, acquire_mtu=False)
    c = host.client
    mic = c.services.get_characteristic(CompanionUUID.MIC)
    assert c.mtu_size == 23 and mic.max_write_without_response_size == 20
    await host.listen()
    await until(lambda: any(p[2] & 0x7F > 0 for p in host.mic_packets), 3, "fragmented mic packets")
    small = list(host.mic_packets)
    assert max(len(p) for p in small) == 20  # MTU 23 - 3: each frame is split into fragments
    assert any(p[2] & 0x7F > 0 for p in small)
    await c._backend._acquire_mtu()  # type: ignore[attr-defined]
    assert c.mtu_size == 247 == hs.mtu and mic.max_write_without_response_size == 244
    await caught_up(hs)  # what was packetized at MTU 23 has landed
    k = len(host.mic_packets)
    await until(lambda: len(host.mic_packets) >= k + 5, 3, "mic packets at the new MTU")
    later = host.mic_packets[k:]
    assert later and all(p[2] == 0x80 for p in later)  # one packet per frame: fragment 0, last
    assert max(len(p) for p in later) > 20
    await c.disconnect()


@pytest.mark.parametrize(
    ("radio", "mtu"), [(RadioConfig(max_mtu=185), 185), (RadioConfig(auto_mtu=True), 247)]
)
async def test_mtu_limits(sim_world: SimWorld, radio: RadioConfig, mtu: int) -> None:
    hs = sim_world.add_headset(None, radio, name="Sim MTU2")
    host = await connect_host(sim_world, hs, acquire_mtu=not radio.auto_mtu)
    assert host.client.mtu_size == mtu
    await host.client.disconnect()


async def test_unknown_address_is_not_found(sim_world: SimWorld) -> None:
    with pytest.raises(BleakDeviceNotFoundError):
        await BleakClient(
            "5A:FF:00:00:00:99", backend=SimClient, sim_world=sim_world, sim_socket=False
        ).connect()


async def test_control_commands_are_acknowledged(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(name="Sim Ctl")
    host = await connect_host(sim_world, hs)
    await host.subscribe_all()
    await host.command(SetState(DeviceState.THINKING))
    await host.command(SetVolume(35))
    await host.command(SetCodecs(CodecId.PCM16_16K, CodecId.OPUS_16K_20MS))
    await host.command(SetCodecs(CodecId.PCM16_16K, CodecId.OPUS_16K_60MS))
    await host.client.write_gatt_char(CompanionUUID.CONTROL, b"\x02\x01\xff", response=True)  # volume 255
    await host.command(TimeSync(1_700_000_000))
    await host.wait_for(ErrorReport)  # notifications come in order: the acks before it are in
    assert hs.state is DeviceState.THINKING and host.events(StateReport) == [
        StateReport(DeviceState.THINKING)
    ]
    assert hs.volume == 35 and host.events(VolumeReport) == [VolumeReport(35)]
    assert host.events(CodecsReport)[0] == CodecsReport(CodecId.PCM16_16K, CodecId.OPUS_16K_20MS)
    assert hs.firmware.mic_codec is CodecId.PCM16_16K
    errors = host.events(ErrorReport)
    assert [e.code for e in errors] == [ErrorCode.BAD_MESSAGE]  # opus60 is a valid speaker codec: acked
    assert abs(hs.epoch_time() - 1_700_000_000) < 1  # type: ignore[operator]
    # a codec the headset does not have is refused with an ERROR, and nothing changes
    narrow = sim_world.add_headset(name="Sim Narrow", speaker_codecs=(CodecId.PCM16_16K,))
    h2 = await connect_host(sim_world, narrow, acquire_mtu=False)
    await h2.subscribe_all()
    await h2.command(SetCodecs(CodecId.OPUS_16K_20MS, CodecId.MULAW_16K))
    await h2.wait_for(ErrorReport)  # at MTU 23 the text is shortened so the message still parses
    error = h2.events(ErrorReport)[0]
    assert error == ErrorReport(ErrorCode.UNSUPPORTED_CODEC, "speaker codec MUL") and not h2.events(
        CodecsReport
    )
    await host.client.disconnect()
    await h2.client.disconnect()


async def test_button_events_companion(sim_world: SimWorld) -> None:
    # Omi gestures (each with a release, and the long-press power-off) are in tests/test_omi_fidelity.py
    comp = sim_world.add_headset(name="Sim Btn")
    h1 = await connect_host(sim_world, comp)
    await h1.subscribe_all()
    for b in (Button.TAP, Button.DOUBLE_TAP, Button.LONG_PRESS):
        comp.press(b)
    await h1.wait_for(ButtonReport(Button.LONG_PRESS))
    assert [m.button for m in h1.events(ButtonReport)] == [Button.TAP, Button.DOUBLE_TAP, Button.LONG_PRESS]
    no_button = sim_world.add_headset(name="Sim NoBtn", has_button=False)
    with pytest.raises(ValueError, match="no button"):
        no_button.press(Button.TAP)
    await h1.client.disconnect()


async def test_omi_gatt_table(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(profile="omi", name="Omi Table")
    host = await connect_host(sim_world, hs)
    c = host.client
    assert host.profile is Profile.OMI
    uuids = {s.uuid for s in c.services}
    assert {OmiUUID.SERVICE, OmiUUID.BUTTON_SERVICE, OmiUUID.HAPTIC_SERVICE, StdUUID.BATTERY_SERVICE} <= uuids
    assert c.services.get_characteristic(CompanionUUID.SPEAKER) is None
    assert (await c.read_gatt_char(OmiUUID.CODEC)) == bytes([CodecId.OPUS_16K_20MS])
    features = parse_omi_features(await c.read_gatt_char(OmiUUID.FEATURES))
    assert features & OmiFeature.BUTTON and features & OmiFeature.BATTERY and features & OmiFeature.HAPTIC
    assert not features & OmiFeature.SPEAKER
    await c.write_gatt_char(OmiUUID.TIME_SYNC, struct.pack("<I", 1_750_000_000), response=True)
    await c.write_gatt_char(OmiUUID.HAPTIC, b"\x02", response=True)
    with pytest.raises(BleakGATTProtocolError):
        await c.write_gatt_char(OmiUUID.HAPTIC, b"\x07", response=True)
    assert hs.haptics == [300]
    assert abs(hs.epoch_time() - 1_750_000_000) < 1  # type: ignore[operator]
    await c.disconnect()


async def test_battery_drains_and_notifies(sim_world: SimWorld) -> None:
    comp = sim_world.add_headset(name="Sim Bat", battery_percent=50, battery_drain_per_min=600)  # 10 %/s
    omi = sim_world.add_headset(profile="omi", name="Omi Bat", battery_notify_s=0.2, battery_drain_per_min=0)
    levels: dict[str, list[int]] = {"c": [], "o": []}
    hosts = []
    for key, hs in (("c", comp), ("o", omi)):
        host = await connect_host(sim_world, hs)
        await host.client.start_notify(
            StdUUID.BATTERY_LEVEL, lambda _, d, k=key: levels[k].append(parse_battery(d))
        )
        hosts.append(host)
    await asyncio.sleep(0.75)  # a measurement window: notifications per period
    c = levels["c"]
    assert c[0] <= 50 and len(c) >= 5 and c == sorted(c, reverse=True) and c[-1] <= 45
    assert len(set(c)) == len(c)  # companion: notified when the level changes
    assert 3 <= len(levels["o"]) <= 5 and set(levels["o"]) == {100}  # omi: every period
    for host in hosts:
        await host.client.disconnect()
