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

from companion.protocol import (
    Button,
    CodecId,
    OmiUUID,
    Profile,
    Reassembler,
    StdUUID,
    parse_omi_button,
    parse_time_sync,
)
from companion.protocol.codecs import StreamDecoder
from companion.protocol.control import parse_omi_codec
from companion.protocol.omi import MTU_FOR_EVERY_FRAME, MTU_REQUEST_DELAY_S
from firmware_sim import HeadsetConfig, RadioConfig, SimClient, SimScanner, SimWorld
from tests.fixtures.sim import caught_up, find_offset, snr_db, until

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


async def _tail_landed(hs, silence_s: float = 0.1) -> None:
    """Silence after the speech on the headset clock (the codec's tail gets out), then every packet the
    headset produced has landed or been lost (the radio's ground truth)."""
    await hs.mic.say(np.zeros(int(16000 * silence_s), dtype=np.int16))
    await caught_up(hs)


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
    await _tail_landed(hs)
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


async def test_frames_that_do_not_fit_use_their_id_and_the_host_conceals_them(
    sim_world: SimWorld, speech_set
) -> None:
    from companion.link.ble import BleHeadsetLink, BleLinkOptions

    # At MTU 150 a notification carries 147 bytes: header + frames up to 144 B; louder speech frames are
    # larger (the encoder allows 160 B), so some never leave the device.
    pcm = speech_set[1].pcm()[: 16000 * 3]
    hs = sim_world.add_headset(HeadsetConfig(profile="omi", name="Omi 150"), RadioConfig(max_mtu=150))
    link = BleHeadsetLink(hs.address, backend=SimClient, scanner_backend=SimScanner, options=BleLinkOptions())
    chunks = []

    async def collect() -> None:
        async for chunk in link.audio():
            chunks.append(chunk)

    async with link:
        assert link.info.mtu == 150
        task = asyncio.create_task(collect())
        await hs.mic.say(pcm)
        await _tail_landed(hs, 0.5)  # quiet frames after the speech fit again and reveal every gap
        counters = link.counters()
        made = counters["frames_decoded"] + counters["frames_concealed"]
        await until(lambda: len(chunks) >= made, 5, "the collector to take every frame")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    omi = hs.firmware.omi
    assert omi is not None
    dropped = omi.packetizer.dropped
    assert 0 < dropped < 0.2 * len(pcm) / 320, dropped
    assert hs.truth.mic.lost == 0 and hs.truth.mic.overflow_frames == 0  # the radio lost nothing
    assert counters["packets_lost"] == dropped  # every id the device used up is a gap the host counts
    assert counters["frames_concealed"] == dropped and counters["frames_incomplete"] == 0
    assert sum(c.concealed for c in chunks) == dropped  # and each is concealed audio, not silence skipped
    assert any(e.kind == "frame_too_big" and e.value > 144 for e in hs.log)


async def test_every_notification_is_one_whole_frame_and_ids_go_on_across_reconnects(
    sim_world: SimWorld,
) -> None:
    sim_world.add_headset(HeadsetConfig(profile="omi", name="Omi Ids", mic_noise_rms=800))
    ids: list[list[int]] = []
    for _ in range(2):
        client = await _plain_client(sim_world, "Omi Ids")
        await client._backend._acquire_mtu()  # type: ignore[attr-defined]  # BlueZ's way; no 1.3 s wait
        got: list[bytes] = []
        await client.start_notify(AUDIO, lambda _, d, got=got: got.append(bytes(d)))
        await until(lambda got=got: len(got) >= 20, 5.0, "20 notifications")
        await client.disconnect()
        assert all(p[2] == 0 for p in got)  # fragment index 0: a frame never spans notifications
        assert all(len(p) - 3 <= 160 for p in got)  # CODEC_OUTPUT_MAX_BYTES
        ids.append([struct.unpack_from("<H", p)[0] for p in got])
    first, second = ids
    assert first == list(range(first[0], first[0] + len(first)))
    assert second[0] > first[-1]  # not restarted at 0 by the reconnect
    assert second == list(range(second[0], second[0] + len(second)))


async def test_buttons_send_gestures_each_with_a_release_and_a_long_press_powers_off(
    sim_world: SimWorld,
) -> None:
    hs = sim_world.add_headset(HeadsetConfig(profile="omi", name="Omi Btn"))
    client = await _plain_client(sim_world, "Omi Btn")
    got: list[tuple[float, Button]] = []
    await client.start_notify(OmiUUID.BUTTON, lambda _, d: got.append((hs.clock(), parse_omi_button(d))))
    hs.press(Button.TAP)
    await until(lambda: len(got) == 2, 2, "the tap and its release")
    hs.press(Button.DOUBLE_TAP)
    await until(lambda: len(got) == 4, 2, "the double tap and its release")
    assert [b for _, b in got] == [Button.TAP, Button.RELEASE, Button.DOUBLE_TAP, Button.RELEASE]
    for (t_gesture, _), (t_release, _) in zip(got[::2], got[1::2], strict=True):
        assert 0.035 <= t_release - t_gesture <= 0.065  # one 40 ms button poll later (20 ms ticks)
    with pytest.raises(ValueError, match="never sends PRESS"):
        hs.press(Button.PRESS)  # push-to-talk that waits for PRESS cannot work on an Omi
    lost = asyncio.Event()
    client._backend._disconnected_callback = lost.set  # type: ignore[attr-defined]
    t0 = time.monotonic()
    hs.press(Button.LONG_PRESS)  # held 3 s
    await asyncio.wait_for(lost.wait(), 3.0)
    assert 1.2 < time.monotonic() - t0 < 2.0  # haptic, then the radio goes off (turnoff_all)
    assert [b for _, b in got[4:]] == [Button.LONG_PRESS, Button.RELEASE]
    assert hs.haptics == [100] and not hs.firmware.powered and not hs.advertising
    hs.power_on()
    assert hs.advertising


async def test_gatt_layout_and_identity_follow_the_firmware(sim_world: SimWorld) -> None:
    sim_world.add_headset(HeadsetConfig(profile="omi", name="Omi Gatt"))
    client = await _plain_client(sim_world, "Omi Gatt")
    services = {s.uuid: s for s in client.services}

    def chars(service: str) -> dict[str, list[str]]:
        return {c.uuid: sorted(c.properties) for c in services[service].characteristics}

    assert chars(OmiUUID.SERVICE) == {AUDIO: ["notify", "read"], OmiUUID.CODEC: ["read"]}
    assert chars(OmiUUID.FEATURES_SERVICE) == {OmiUUID.FEATURES: ["read"]}
    assert chars(OmiUUID.TIME_SYNC_SERVICE) == {OmiUUID.TIME_SYNC: ["write"], OmiUUID.TIME_READ: ["read"]}
    assert chars(OmiUUID.SETTINGS_SERVICE) == {
        OmiUUID.DIM_RATIO: ["read", "write"],
        OmiUUID.MIC_GAIN: ["read", "write"],
        OmiUUID.CHARGING: ["notify", "read"],
    }
    assert set(chars(OmiUUID.DIAGNOSTICS_SERVICE)) == {OmiUUID.DIAGNOSTICS}
    assert set(chars(OmiUUID.STORAGE_SERVICE)) == {OmiUUID.STORAGE_DATA, OmiUUID.STORAGE_READ}
    assert {OmiUUID.BUTTON_SERVICE, OmiUUID.HAPTIC_SERVICE, StdUUID.BATTERY_SERVICE} <= set(services)
    dis = {
        u: (await client.read_gatt_char(u)).decode()
        for u in (
            StdUUID.MANUFACTURER,
            StdUUID.MODEL_NUMBER,
            StdUUID.FIRMWARE_REVISION,
            StdUUID.HARDWARE_REVISION,
        )
    }
    assert dis[StdUUID.MANUFACTURER] == "Based Hardware" and dis[StdUUID.MODEL_NUMBER] == "Omi CV 1"
    assert dis[StdUUID.FIRMWARE_REVISION].startswith("3.0.") and dis[StdUUID.HARDWARE_REVISION] == "5.0"
    assert await client.read_gatt_char(AUDIO) == b""
    assert parse_omi_codec(await client.read_gatt_char(OmiUUID.CODEC)) is CodecId.OPUS_16K_20MS
    await client.write_gatt_char(OmiUUID.MIC_GAIN, b"\x0c", response=True)
    assert await client.read_gatt_char(OmiUUID.MIC_GAIN) == b"\x08"  # capped at level 8, as the firmware does
    assert parse_time_sync(await client.read_gatt_char(OmiUUID.TIME_READ)) == 0  # never synced
    await client.disconnect()
    devkit = sim_world.add_headset(HeadsetConfig(profile="omi", variant="devkit", name="Omi DK"))
    client = await _plain_client(sim_world, "Omi DK")
    assert parse_omi_codec(await client.read_gatt_char(OmiUUID.CODEC)) is CodecId.OPUS_16K_10MS
    assert (await client.read_gatt_char(StdUUID.MODEL_NUMBER)).decode() == devkit.config.model
    await client.disconnect()


def test_every_frame_fits_from_mtu_166() -> None:
    from companion.protocol.omi import OmiPacketizer

    pk = OmiPacketizer(first_id=65535)
    assert MTU_FOR_EVERY_FRAME == 166
    assert pk.packetize(bytes(160), 165) == []  # 160 + 3 > 165 - 3: dropped, id 65535 used
    [packet] = pk.packetize(bytes(160), 166)
    assert packet[:3] == b"\x00\x00\x00" and len(packet) == 166 - 3  # the id wrapped to 0
    assert len(pk.packetize(bytes(94), 100)) == 1 and pk.packetize(bytes(95), 100) == []
    assert (pk.sent, pk.dropped, pk.next_id) == (2, 2, 3)
    devkit = OmiPacketizer(split=True)  # the DevKit's fixed pusher: MTU - 6 bytes a notification
    packets = devkit.packetize(bytes(160), 100)
    assert [len(p) - 3 for p in packets] == [94, 66] and [p[2] for p in packets] == [0, 1]
    assert devkit.next_id == 2 and devkit.dropped == 0


async def test_the_device_raised_mtu_reaches_a_client_through_the_simulator_socket(tmp_path) -> None:
    from firmware_sim import SimServer

    sock = tmp_path / "sim.sock"
    async with SimWorld() as served:
        served.add_headset(HeadsetConfig(profile="omi", name="Omi Far", mic_noise_rms=800))
        server = SimServer(served, sock)
        await server.start()
        try:
            async with SimWorld() as empty:  # nothing in this process: the headset is across the socket
                device = await BleakScanner.find_device_by_name(
                    "Omi Far", timeout=5.0, backend=SimScanner, sim_world=empty, sim_socket=sock
                )
                assert device is not None
                client = BleakClient(device, backend=SimClient, sim_world=empty, sim_socket=sock)
                await client.connect()
                packets: list[bytes] = []
                await client.start_notify(AUDIO, lambda _, d: packets.append(bytes(d)))
                assert client.mtu_size == 23
                await until(lambda: len(packets) >= 10, 5.0, "audio after the device raised the MTU")
                assert client.mtu_size == 247
                await client.disconnect()
        finally:
            await server.aclose()


async def test_the_devkit_streams_codec_20_without_loss_at_mtu_100(sim_world: SimWorld, speech_set) -> None:
    pcm = speech_set[1].pcm()[: 16000 * 2]
    hs = sim_world.add_headset(
        HeadsetConfig(profile="omi", variant="devkit", name="Omi DK100"), RadioConfig(max_mtu=100)
    )
    client = await _plain_client(sim_world, "Omi DK100")
    await client._backend._acquire_mtu()  # type: ignore[attr-defined]
    packets: list[bytes] = []
    await client.start_notify(AUDIO, lambda _, d: packets.append(bytes(d)))
    await hs.mic.say(pcm)
    await _tail_landed(hs)
    await client.disconnect()
    out, reasm = _decode(packets, CodecId.OPUS_16K_10MS)
    assert hs.firmware.omi is not None and hs.firmware.omi.packetizer.dropped == 0
    assert reasm.counters.packets_lost == 0 and reasm.counters.frames_incomplete == 0
    assert reasm.counters.frames_decoded >= 200  # 10 ms frames
    off = find_offset(out, pcm)
    assert snr_db(pcm, out[off : off + len(pcm)]) > 6.0
