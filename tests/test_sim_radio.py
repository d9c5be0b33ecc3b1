"""The simulated radio: its ground truth (lost, duplicated, reordered, overflowed packets) matches what a
plain host counts; throughput, latency and write backpressure behave like a BLE link."""

from __future__ import annotations

import time

import pytest
from bleak.exc import BleakError

from companion.protocol import CompanionUUID, Listen, Profile
from firmware_sim import AudioTruth, RadioConfig, SimWorld
from tests.fixtures.sim import air_settled, connect_host, until


async def _quiesce(host, hs) -> tuple[list[bytes], AudioTruth]:  # type: ignore[no-untyped-def]
    """Let the stream settle (companion: stop it and drain the ring; omi streams while subscribed, so wait
    for a clean stretch), then snapshot what the host received and the radio's truth at the same instant."""
    if host.profile is Profile.COMPANION:
        await host.command(Listen(False))
        await until(lambda: not (hs.radio.link.ring_frames or hs.radio.link.held), 5, "the ring to drain")
    else:
        await _more_on_air(hs, 15)  # a clean stretch reveals every hole the lossy one left
    await air_settled(hs)  # nothing in flight: the snapshot below is of one instant (no await between)
    return list(host.mic_packets), AudioTruth(**hs.truth.mic.as_dict())


async def _more_on_air(hs, n: int, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until the headset has sent ``n`` more mic packets on air (the radio's ground truth)."""
    start = hs.truth.mic.sent
    await until(lambda: hs.truth.mic.sent >= start + n, timeout, f"{n} more mic packets on air")


@pytest.mark.parametrize("profile", ["companion", "omi"])
async def test_ground_truth_matches_what_the_host_counts(sim_world: SimWorld, profile: str) -> None:
    hs = sim_world.add_headset(
        None, RadioConfig(seed=7), profile=profile, name=f"Lossy {profile}", mic_noise_rms=600
    )
    # omi needs MTU >= 100 to stream; the companion link stays at 23 so frames span several packets
    host = await connect_host(sim_world, hs, acquire_mtu=profile == "omi")
    await host.listen()
    # a clean start, so the host's first packet is the stream's first
    await until(lambda: len(host.mic_packets) >= 5, 5, "a clean start")
    hs.radio.impair(loss=0.08, duplicate=0.08, reorder=0.08)
    await _more_on_air(hs, 200)
    hs.radio.impair(loss=0.0, duplicate=0.0, reorder=0.0)
    packets, t = await _quiesce(host, hs)
    _, r = await host.decode_mic(packets)
    c = r.counters
    assert t.sent > 100 and t.lost > 3 and t.duplicated > 3 and t.reordered > 3
    # the radio's own books balance, and agree with a plain count of notifications
    assert t.delivered == t.sent - t.lost + t.duplicated == len(packets)
    # and with the host's reassembler, packet for packet
    assert c.packets_lost == t.lost
    assert c.packets_duplicate == t.duplicated
    assert c.packets_reordered == t.reordered
    assert c.packets_received == t.sent - t.lost
    assert t.overflow_frames == 0
    await host.client.disconnect()


@pytest.mark.parametrize("profile", ["companion", "omi"])
async def test_transmit_ring_overflow_is_counted(sim_world: SimWorld, profile: str) -> None:
    if profile == "companion":
        # PCM16 needs 32 kB/s; 2 packets per 15 ms event at MTU 185 carry ~24 kB/s: the ring must overflow
        radio = RadioConfig(max_mtu=185, packets_per_event=2, tx_ring_frames=8)
        hs = sim_world.add_headset(None, radio, name="Ring companion", mic_codec="pcm16")
    else:
        # Omi sends one notification per 20 ms Opus frame (50/s); one packet per 40 ms event carries 25/s
        radio = RadioConfig(interval_ms=40, packets_per_event=1, tx_ring_frames=8)
        hs = sim_world.add_headset(None, radio, profile="omi", name="Ring omi", mic_noise_rms=600)
    host = await connect_host(sim_world, hs)
    await host.listen()
    await until(lambda: hs.truth.mic.overflow_frames >= 10, 5, "the ring to overflow")
    hs.radio.impair(packets_per_event=6)  # enough throughput again: later packets reveal every gap
    await _more_on_air(hs, 20)
    packets, t = await _quiesce(host, hs)
    _, r = await host.decode_mic(packets)
    per_frame = 4 if profile == "companion" else 1  # 640 B in 182-B pieces; omi: a whole frame each
    assert t.overflow_frames > 5 and t.overflow_packets == per_frame * t.overflow_frames
    assert t.lost == 0 and len(packets) == t.sent
    if profile == "companion":
        # the companion headset numbers the dropped packets: the host sees every gap
        assert r.counters.packets_lost == t.overflow_packets
        assert r.counters.frames_concealed == t.overflow_frames
    else:
        # Omi firmware numbers packets as it sends them: the overflow is silent on the wire
        assert r.counters.packets_lost == 0
    await host.client.disconnect()


async def test_latency_and_connection_events(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(None, RadioConfig(latency_ms=100, interval_ms=30), name="Slow Link")
    host = await connect_host(sim_world, hs)
    t0 = time.perf_counter()
    await host.client.read_gatt_char(CompanionUUID.CAPABILITIES)
    rtt = time.perf_counter() - t0
    assert 0.2 <= rtt < 0.35  # two latencies plus up to two connection intervals
    await host.client.disconnect()


async def test_write_without_response_waits_when_the_host_queue_is_full(sim_world: SimWorld) -> None:
    radio = RadioConfig(host_queue_packets=4, packets_per_event=1, interval_ms=10)
    hs = sim_world.add_headset(None, radio, name="Backpressure")
    host = await connect_host(sim_world, hs, acquire_mtu=False)
    packet = bytes([0, 0, 0x80, 0]) + bytes(16)  # a valid companion speaker packet (PCM16, 8 samples)
    t0 = time.perf_counter()
    for i in range(40):
        await host.client.write_gatt_char(CompanionUUID.SPEAKER, bytes([i]) + packet[1:], response=False)
    elapsed = time.perf_counter() - t0
    assert elapsed >= 0.3  # 36 writes had to wait for a connection event each (10 ms)
    await until(lambda: hs.speaker.frames_received == 40, 2, "every write to reach the speaker")
    assert hs.truth.speaker.sent == 40 and hs.truth.speaker.lost == 0
    assert hs.speaker.frames_received == 40
    await host.client.disconnect()


async def test_oversized_write_is_refused(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(name="Big Write")
    host = await connect_host(sim_world, hs, acquire_mtu=False)
    with pytest.raises(BleakError, match="exceeds MTU"):
        await host.client.write_gatt_char(CompanionUUID.SPEAKER, bytes(40), response=False)
    await host.client.disconnect()
