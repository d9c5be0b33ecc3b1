"""companion/link/ble.py against virtual headsets, through bleak's real client and bleak-retry-connector."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from companion.link.base import ButtonEvent, ConnectionEvent, LinkBandwidthError, PlaybackStatus
from companion.link.ble import BleHeadsetLink, BleLinkOptions, scan_headsets
from companion.protocol import Button, CodecId, PlaybackEvent, Profile
from firmware_sim import AudioTruth, HeadsetConfig, RadioConfig, SimClient, SimScanner, SimWorld
from tests.fixtures.sim import caught_up, until

pytestmark = pytest.mark.usefixtures("fast_backoff")


def _link(headset, **options) -> BleHeadsetLink:
    return BleHeadsetLink(
        headset.address, backend=SimClient, scanner_backend=SimScanner, options=BleLinkOptions(**options)
    )


class _Collector:
    """Gathers a link's mic audio in the background."""

    def __init__(self, link: BleHeadsetLink) -> None:
        self.chunks = []
        self._task = asyncio.create_task(self._run(link))

    async def _run(self, link) -> None:
        async for chunk in link.audio():
            self.chunks.append(chunk)

    def pcm(self) -> np.ndarray:
        return np.concatenate([c.pcm for c in self.chunks]) if self.chunks else np.zeros(0, np.int16)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _heard_all(link: BleHeadsetLink, hs, got: _Collector) -> None:
    """Let the utterance's tail out of the codec (100 ms of silence on the headset clock), then wait until
    every mic packet the headset produced has landed or been lost (the radio's ground truth) and the
    collector holds every 20 ms frame the link made of them."""
    await hs.mic.say(np.zeros(1600, dtype=np.int16))
    await caught_up(hs)
    c = link.counters()
    made = c["frames_decoded"] + c["frames_concealed"]
    await until(lambda: len(got.chunks) >= made, 5, "the collector to take every frame")


def _align(out: np.ndarray, ref: np.ndarray, search: int) -> int:
    """Offset of ``ref`` in ``out`` by cross-correlation over the first ``search`` samples."""
    a = out[: search + len(ref)].astype(float)
    corr = np.correlate(a, ref[:8000].astype(float), mode="valid")
    return int(np.argmax(corr))


def _snr(ref: np.ndarray, out: np.ndarray) -> float:
    n = min(len(ref), len(out))
    noise = ref[:n].astype(float) - out[:n].astype(float)
    return 10 * np.log10(np.sum(ref[:n].astype(float) ** 2) / max(np.sum(noise**2), 1e-9))


@pytest.mark.parametrize(
    "radio",
    [
        RadioConfig(max_mtu=247),
        # MTU 23 carries 16 codec bytes a packet: raw PCM needs 2000 packets/s, so give the radio room.
        RadioConfig(max_mtu=23, interval_ms=7.5, packets_per_event=20),
    ],
    ids=["mtu247", "mtu23"],
)
async def test_pcm16_mic_round_trip_is_bit_exact(sim_world: SimWorld, speech_set, radio: RadioConfig) -> None:
    pcm = speech_set[1].pcm()[: 16000 * 2]
    hs = sim_world.add_headset(HeadsetConfig(name="PCM"), radio)
    async with _link(hs, mic_codec=CodecId.PCM16_16K, packet_budget_per_s=3000) as link:
        assert link.info.mtu == radio.max_mtu
        assert link.info.mic_codec == "pcm16-16k"
        got = _Collector(link)
        await hs.mic.say(pcm)
        await _heard_all(link, hs, got)
        await got.stop()
    out = got.pcm()
    start = int(np.flatnonzero(out)[0]) - int(np.flatnonzero(pcm)[0])
    assert np.array_equal(out[start : start + len(pcm)], pcm)
    assert link.counters()["packets_lost"] == 0


async def test_opus_mic_round_trip_snr(sim_world: SimWorld, speech_set) -> None:
    pcm = speech_set[1].pcm()[: 16000 * 2]
    hs = sim_world.add_headset(HeadsetConfig(name="Opus"))
    async with _link(hs) as link:
        assert link.info.mic_codec == "opus-16k-20ms"
        got = _Collector(link)
        await hs.mic.say(pcm)
        await _heard_all(link, hs, got)
        await got.stop()
    out = got.pcm()
    off = _align(out, pcm, len(out) - len(pcm))
    # SILK (voip, with FEC) scores ~7-8 dB on waveform SNR at 24 kbit/s; see tests/test_protocol.py.
    assert _snr(pcm, out[off:]) > 5.0


async def test_omi_stream_decodes(sim_world: SimWorld, speech_set) -> None:
    pcm = speech_set[1].pcm()[: 16000 * 2]
    hs = sim_world.add_headset(HeadsetConfig(profile="omi", name="Omi"))
    async with _link(hs) as link:
        assert link.info.profile is Profile.OMI
        assert link.info.mic_codec == "opus-16k-20ms"
        assert link.info.mtu >= 100  # omi firmware does not stream below MTU 100: the link must raise it
        got = _Collector(link)
        await hs.mic.say(pcm)
        await _heard_all(link, hs, got)
        await got.stop()
    out = got.pcm()
    off = _align(out, pcm, len(out) - len(pcm))
    assert _snr(pcm, out[off:]) > 9.0  # CELT low delay at 32 kbit/s


@pytest.mark.parametrize("loss", [0.0, 0.02, 0.05, 0.10])
@pytest.mark.parametrize("profile", ["companion", "omi"])
async def test_counted_impairments_equal_radio_truth(sim_world: SimWorld, speech_set, loss, profile) -> None:
    radio = RadioConfig(loss=loss, duplicate=0.02, reorder=0.02, seed=7)
    hs = sim_world.add_headset(HeadsetConfig(profile=profile, name=f"Lossy {profile}"), radio)
    async with _link(hs) as link:
        got = _Collector(link)
        await hs.mic.say(speech_set[2].pcm())
        # A clean tail lets the receiver decide every hole (a loss after the last packet is invisible).
        hs.radio.impair(loss=0.0, duplicate=0.0, reorder=0.0)
        clean_from = hs.truth.mic.sent
        await until(lambda: hs.truth.mic.sent >= clean_from + 25, 5, "25 clean packets on air")
        await link.listen(False)  # stop the stream so both sides count the same packets
        if profile == "companion":
            await until(lambda: not hs.firmware.streaming, 2, "the headset to stop streaming")
        # an Omi streams for as long as the host is subscribed: take both snapshots at one instant with
        # nothing in flight between the radio's books and the host's
        radio_link = hs.radio.link
        await until(lambda: not radio_link._batches and radio_link.held is None, 5, "a quiet instant")
        counters = link.counters()
        truth = AudioTruth(**hs.truth.mic.as_dict())
        await got.stop()
    assert counters["packets_lost"] == truth.lost
    assert counters["packets_duplicate"] == truth.duplicated
    assert counters["packets_reordered"] == truth.reordered
    assert counters["packets_malformed"] == 0
    # Every packet the receiver took is accounted for, and lost audio was concealed, not skipped.
    assert counters["packets_received"] + counters["packets_late"] == truth.sent - truth.lost
    if truth.lost:
        assert counters["frames_concealed"] >= 1


async def _tone(seconds: float):
    t = np.arange(int(16000 * seconds)) / 16000
    pcm = (np.sin(2 * np.pi * 330 * t) * 9000).astype(np.int16)
    for i in range(0, len(pcm), 1600):  # 100 ms at a time, as a TTS would hand them over
        yield pcm[i : i + 1600]


@pytest.mark.parametrize(
    ("radio", "speaker_codec"),
    [
        (RadioConfig(max_mtu=247, interval_ms=15, packets_per_event=6), None),
        (RadioConfig(max_mtu=100, interval_ms=7.5, packets_per_event=4), None),
        (RadioConfig(max_mtu=23, interval_ms=30, packets_per_event=6), CodecId.OPUS_16K_20MS),
        (RadioConfig(max_mtu=247, interval_ms=45, packets_per_event=3), CodecId.OPUS_16K_60MS),
    ],
    ids=["mtu247-15ms", "mtu100-7.5ms", "mtu23-30ms-opus", "mtu247-45ms-opus60"],
)
async def test_downlink_never_overflows_nor_underruns(sim_world: SimWorld, radio, speaker_codec) -> None:
    hs = sim_world.add_headset(HeadsetConfig(name="Spk"), radio)
    async with _link(hs, speaker_codec=speaker_codec) as link:
        report = await link.play(_tone(3.0))
        async with asyncio.timeout(5.0):  # the headset says when its buffer has played out
            async for event in link.events():
                if isinstance(event, PlaybackStatus) and event.event is PlaybackEvent.DRAINED:
                    break
    assert report.frames_sent > 0 and not report.aborted
    assert hs.speaker.overflows == 0
    assert hs.speaker.underruns == 0
    played_s = hs.speaker.played_samples / 16000
    assert played_s == pytest.approx(3.0, abs=0.1)


async def test_too_little_bandwidth_is_a_clear_error(sim_world: SimWorld) -> None:
    # PCM16 at MTU 23 needs ~2000 packets/s; this radio carries 400.
    hs = sim_world.add_headset(HeadsetConfig(name="Slow"), RadioConfig(max_mtu=23))
    async with _link(hs, speaker_codec=CodecId.PCM16_16K, packet_budget_per_s=5000) as link:
        with pytest.raises(LinkBandwidthError, match=r"kbit/s.*MTU 23"):
            await link.play(_tone(3.0))


async def test_reconnects_within_two_seconds_of_a_power_cycle(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(HeadsetConfig(name="Cycle"))
    async with _link(hs) as link:
        events = []

        async def watch():
            async for event in link.events():
                events.append(event)

        watcher = asyncio.create_task(watch())
        got = _Collector(link)
        cycle = asyncio.create_task(hs.power_cycle(off_s=1.0))
        await until(lambda: not link.connected, 2, "the link to notice the power-off")
        await cycle
        back = time.monotonic()
        await link.wait_connected(timeout=2.0)
        reconnect_s = time.monotonic() - back
        n_before = len(got.chunks)
        await until(lambda: len(got.chunks) > n_before, 2, "audio after the reconnect")  # resubscribed
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await got.stop()
    assert reconnect_s < 2.0
    flags = [e.connected for e in events if isinstance(e, ConnectionEvent)]
    assert flags[:3] == [True, False, True]
    assert link.counters()["reconnects"] == 1


async def test_buttons_and_battery_surface(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(HeadsetConfig(name="Btn", battery_percent=57))
    async with _link(hs) as link:
        assert link.info.battery == 57
        hs.press(Button.DOUBLE_TAP)
        async with asyncio.timeout(2.0):
            async for event in link.events():
                if isinstance(event, ButtonEvent):
                    assert event.button is Button.DOUBLE_TAP
                    break


async def test_malformed_notifications_are_counted_and_dropped(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(HeadsetConfig(name="Bad"))
    async with _link(hs) as link:
        for junk in (b"", b"\x01", b"\x00\x00\x80\x63payload", bytes(3)):
            link._on_mic(None, bytearray(junk))
        link._on_control(None, bytearray(b"\x99\x01\x00"))
        counters = link.counters()
    assert counters["packets_malformed"] == 4
    assert counters["control_malformed"] == 1


async def test_scan_lists_profiles_in_process(sim_world: SimWorld) -> None:
    sim_world.add_headset(HeadsetConfig(name="Scan A", battery_percent=80))
    sim_world.add_headset(HeadsetConfig(profile="omi", name="Omi"))
    found = await scan_headsets(1.0, backend=SimScanner)
    names = {h.name: h for h in found}
    assert names["Scan A"].profile is Profile.COMPANION
    assert names["Omi"].profile is Profile.OMI
    assert names["Scan A"].rssi is not None


def test_cross_process_scan_finds_served_headsets(tmp_path) -> None:
    env = {**os.environ, "COMPANION_SIM_SOCKET": str(tmp_path / "sim.sock")}
    sim = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim", "--count", "2", "--name", "Remote"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "sim.sock").exists():
            assert sim.poll() is None, sim.stderr.read()
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.1)
        result = subprocess.run(
            [sys.executable, "-m", "companion.cli", "scan", "--sim", "--json", "--timeout", "1.5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        remote = [r for r in rows if r["name"].startswith("Remote")]
        assert len(remote) == 2
        assert all(r["profile"] == "companion" and r["rssi"] is not None for r in remote)
    finally:
        sim.terminate()
        sim.wait(10)


def test_missing_bluez_is_explained() -> None:
    from companion.link.ble import describe_ble_error

    message = describe_ble_error(FileNotFoundError(2, "No such file or directory"))
    assert "D-Bus" in message and "--sim" in message


def test_rechunker_makes_20ms_frames_and_keeps_concealment_marks() -> None:
    from companion.link.mic_stream import Rechunker as _Rechunker

    rng = np.random.default_rng(0)
    rc = _Rechunker()
    frame = rng.integers(-3000, 3000, 320).astype(np.int16)
    (out,) = rc.push(frame, 16000, concealed=True)  # one decoded 20 ms frame passes straight through
    assert np.array_equal(out[0], frame) and out[1] is True
    # 10 ms frames pair up; a 20 ms output frame is concealed if any of its audio was.
    halves = [rng.integers(-3000, 3000, 160).astype(np.int16) for _ in range(4)]
    got = [f for i, h in enumerate(halves) for f in rc.push(h, 16000, concealed=i == 1)]
    assert [c for _, c in got] == [True, False]
    assert np.array_equal(np.concatenate([p for p, _ in got]), np.concatenate(halves))
    # 8 kHz codecs come out resampled to 16 kHz, still in 320-sample frames.
    out8 = [f for _ in range(10) for f in rc.push(np.zeros(160, np.int16), 8000, False)]
    assert out8 and all(len(p) == 320 for p, _ in out8)
