"""The local audio link against a real PulseAudio null sink: what it plays comes back on the sink's monitor.

Latency figures are printed (run with ``-s``) and attached to the test report as user properties.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
import pytest

from companion.audio import devices
from companion.link.base import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioChunk,
    ConnectionEvent,
    LinkError,
    LinkEvent,
    NotConnected,
    PlaybackStatus,
)
from companion.link.local import LocalAudioLink, LocalAudioOptions
from companion.protocol import PlaybackEvent
from tests.fixtures.conditions import until
from tests.fixtures.pulse import PulseNull
from tests.fixtures.speech import Utterance, load_manifest

pytestmark = pytest.mark.timeout(60)

SILENT = 64  # peak int16 below which a 20 ms block of the monitor counts as silence


def _utterance(min_s: float, max_s: float) -> Utterance:
    return min((u for u in load_manifest() if min_s <= u.seconds <= max_s), key=lambda u: u.seconds)


async def _chunks(pcm: np.ndarray, n: int = 1600) -> AsyncIterator[np.ndarray]:
    """A reply as TTS hands it over: 100 ms pieces."""
    for i in range(0, len(pcm), n):
        yield pcm[i : i + n]
        await asyncio.sleep(0)


def _align(recorded: np.ndarray, played: np.ndarray) -> tuple[int, float]:
    """Where ``played`` starts in ``recorded`` (cross-correlation peak) and the normalised correlation."""
    x = recorded.astype(np.float64)
    y = played.astype(np.float64)
    n = 1 << (len(x) + len(y)).bit_length()
    cc = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(y, n)), n)[: max(1, len(x) - len(y) + 1)]
    lag = int(np.argmax(cc))
    seg = x[lag : lag + len(y)]
    return lag, float(cc[lag] / np.sqrt((seg**2).sum() * (y**2).sum() + 1e-9))


@dataclass
class Heard:
    """How a played signal shows up in a recording, judged on 0.5 s windows of it that carry speech."""

    onset: int  # recording sample where the played signal's sample 0 appeared
    windows: int
    matched: int  # windows found with correlation > 0.9 where they belong (within 100 ms)
    gain: float  # median recorded/played RMS over matched windows


def _heard(recorded: np.ndarray, played: np.ndarray) -> Heard:
    """Windowed so that one output underflow on a loaded machine (a short gap that delays the rest) costs
    one window, not the whole comparison."""
    w = SAMPLE_RATE // 2
    found = []
    for off in range(0, len(played) - w + 1, w):
        win = played[off : off + w]
        if np.sqrt((win.astype(np.float64) ** 2).mean()) < 300:
            continue  # a pause: nothing to recognise
        lag, corr = _align(recorded, win)
        rec = recorded[lag : lag + w].astype(np.float64)
        found.append((off, lag - off, corr, np.sqrt((rec**2).mean() / (win.astype(np.float64) ** 2).mean())))
    assert found, "the played signal has no speech"
    onset = next((f[1] for f in found if f[2] > 0.9), found[0][1])  # the first window found sets it
    good = [f for f in found if f[2] > 0.9 and abs(f[1] - onset) < SAMPLE_RATE // 10]
    gain = float(np.median([f[3] for f in good])) if good else 0.0
    return Heard(onset, len(found), len(good), gain)


class Loopback:
    """A LocalAudioLink on PulseAudio that records everything it hears and every event, with timestamps."""

    def __init__(self, pulse: PulseNull, **options: object) -> None:
        self.link = LocalAudioLink(pulse.device, pulse.device, options=LocalAudioOptions(**options))
        self.chunks: list[AudioChunk] = []
        self.events: list[LinkEvent] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._news = asyncio.Condition()  # notified on every chunk and event

    async def __aenter__(self) -> Loopback:
        await self.link.__aenter__()
        self._tasks = [asyncio.create_task(self._record()), asyncio.create_task(self._watch())]
        try:  # the null sink takes up to ~2 s to deliver a new stream's first audio
            await self._until(lambda: len(self.chunks) >= 5, 6, "no audio from the monitor")
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.link.__aexit__(*exc)
        await asyncio.wait_for(asyncio.gather(*self._tasks), 2)  # both iterators end when the link closes

    async def _record(self) -> None:
        async for chunk in self.link.audio():
            self.chunks.append(chunk)
            async with self._news:
                self._news.notify_all()

    async def _watch(self) -> None:
        async for event in self.link.events():
            self.events.append(event)
            async with self._news:
                self._news.notify_all()

    async def _until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout), self._news:
                await self._news.wait_for(predicate)
        except TimeoutError:
            pytest.fail(f"{what} within {timeout} s; events: {self.events}")

    async def heard_until(self, t: float) -> None:
        """Wait until the recording covers monotonic time ``t``."""
        await self._until(
            lambda: bool(self.chunks) and self.chunks[-1].t_arrival >= t, 3, "recording stalled"
        )

    def pcm(self, start: int) -> np.ndarray:
        return np.concatenate([c.pcm for c in self.chunks[start:]])

    def seen_at(self, start: int, sample: int) -> float:
        """When recorded sample ``sample`` (counted from chunk ``start``) reached the host."""
        chunk = self.chunks[start + sample // FRAME_SAMPLES]
        return chunk.t_arrival - (FRAME_SAMPLES - sample % FRAME_SAMPLES) / SAMPLE_RATE

    def playback(self) -> list[PlaybackStatus]:
        return [e for e in self.events if isinstance(e, PlaybackStatus)]

    async def wait_event(self, kind: PlaybackEvent, timeout: float) -> PlaybackStatus:
        def found() -> PlaybackStatus | None:
            return next((e for e in self.playback() if e.event is kind), None)

        await self._until(lambda: found() is not None, timeout, f"no {kind.name}")
        event = found()
        assert event is not None
        return event


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _thread_names() -> list[str]:
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except FileNotFoundError:
            pass  # it left while we looked
    return sorted(names)


async def _threads_back_to(count: int) -> int:
    """OS threads of this process once joined ones have left the kernel's list too (at most ``count``
    if nothing leaked; fewer when a thread of an earlier test was still on its way out at the start)."""
    for _ in range(100):
        if _threads() <= count:
            break
        await asyncio.sleep(0.02)
    return _threads()


# -- devices ---------------------------------------------------------------------------------------
def test_device_listing_and_resolution(pulse_null: PulseNull) -> None:
    found = devices.list_devices()
    pulse = next(d for d in found if d.name == "pulse")
    assert pulse.max_input_channels > 0 and pulse.max_output_channels > 0
    assert pulse.hostapi == "ALSA" and pulse.default_samplerate > 0
    assert "pulse" in pulse.describe() and pulse.as_dict()["index"] == pulse.index
    assert {d.name for d in devices.list_devices("input")} >= {"pulse"}
    assert devices.resolve_device("PULSE", "output") == pulse  # exact name, any case, beats substrings
    assert devices.resolve_device(pulse.index, "input") == pulse
    assert devices.resolve_device(str(pulse.index), "output") == pulse
    default = devices.resolve_device(None, "input")
    assert default.max_input_channels > 0


def test_bad_device_names_list_what_exists(pulse_null: PulseNull) -> None:
    with pytest.raises(devices.DeviceNotFound) as err:
        devices.resolve_device("no-such-headset", "input")
    assert "'no-such-headset'" in str(err.value) and "pulse" in str(err.value)
    with pytest.raises(devices.DeviceNotFound, match=r"(?s)index 999.*pulse"):
        devices.resolve_device(999, "output")
    names = [d.name for d in devices.list_devices()]
    if "pulse" in names and "default" in names:  # "u" is in both: ambiguous, and the error says so
        with pytest.raises(devices.DeviceNotFound, match="matches 2"):
            devices.resolve_device("u", "output")


async def test_link_with_bad_device_fails_clearly(pulse_null: PulseNull) -> None:
    threads = _threads()
    link = LocalAudioLink(pulse_null.device, "no-such-speaker")
    with pytest.raises(LinkError) as err:
        async with link:
            pass
    assert "no-such-speaker" in str(err.value) and "pulse" in str(err.value)
    assert isinstance(err.value.__cause__, devices.DeviceNotFound)
    assert not link.connected
    assert await _threads_back_to(threads) <= threads  # the half-opened capture stream was closed


def test_missing_sounddevice_or_portaudio_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # what an uninstalled package looks like
    with pytest.raises(devices.PortAudioMissing, match=r"pip install 'companion\[audio\]'"):
        devices.list_devices()

    real_import = builtins.__import__

    def no_portaudio(name: str, *args: object, **kwargs: object) -> object:
        if name == "sounddevice":  # sounddevice's own error when libportaudio cannot be loaded
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice")
    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    with pytest.raises(devices.PortAudioMissing, match="apt-get install libportaudio2"):
        devices.resolve_device(None, "output")


def test_no_devices_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        sd = devices.sounddevice_module()
    except devices.PortAudioMissing as exc:
        pytest.skip(str(exc))
    monkeypatch.setattr(sd, "query_devices", lambda: [])  # a bare machine: PortAudio works, lists nothing
    with pytest.raises(devices.NoAudioDevices, match="pulseaudio -D"):
        devices.resolve_device(None, "input")


# -- the link --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("rate", [None, 48000], ids=["16k", "48k-resampled"])
async def test_plays_speech_and_hears_it_on_the_monitor(
    pulse_null: PulseNull, rate: int | None, record_property: pytest.RecordProperty
) -> None:
    utt = _utterance(1.5, 3.0)
    pcm = utt.pcm()
    async with Loopback(pulse_null, samplerate=rate) as lb:
        link = lb.link
        expected_rate = rate or SAMPLE_RATE
        assert link.info.extra["input_rate"] == link.info.extra["output_rate"] == expected_rate
        assert link.info.has_speaker and not link.info.has_aec and link.connected
        assert isinstance(lb.events[0], ConnectionEvent) and lb.events[0].connected

        start = len(lb.chunks)
        t_call = time.monotonic()
        report = await link.play(_chunks(pcm))
        t_return = time.monotonic()
        drained = await lb.wait_event(PlaybackEvent.DRAINED, 5)
        await lb.heard_until(drained.t + 0.15)
        recorded = lb.pcm(start)

        heard = _heard(recorded, pcm)
        assert heard.matched >= heard.windows - 1, f"played speech not found in the recording: {heard}"
        latency = lb.seen_at(start, heard.onset) - t_call
        print(
            f"\n[{rate or 16000} Hz] play() -> first sample on the monitor: {latency * 1000:.1f} ms "
            f"(device output latency {link.info.extra['output_latency_s'] * 1000:.0f} ms; {link.counters()})"
        )
        record_property("play_to_monitor_ms", round(latency * 1000, 1))
        assert 0 <= latency < 0.25
        assert 0.9 < heard.gain < 1.1  # volume 100 is unity gain

        # replies are paced to real time: play() returns once all but the lead is queued
        assert t_return - t_call > utt.seconds - link.options.max_lead_s - 0.15
        assert report.frames_sent == -(-len(pcm) // FRAME_SAMPLES) and not report.aborted
        assert abs(report.seconds_sent - utt.seconds) < 0.02

        kinds = [e.event for e in lb.playback()]
        assert kinds == [PlaybackEvent.STARTED, PlaybackEvent.DRAINED]
        started = lb.playback()[0]
        assert t_call <= started.t < t_call + 0.15  # when it reaches the speaker: after the device latency
        assert abs((drained.t - started.t) - len(pcm) / SAMPLE_RATE) < 0.1

        # mic frames: 20 ms of 16 kHz on a gapless sample clock
        assert all(c.pcm.dtype == np.int16 and len(c.pcm) == FRAME_SAMPLES for c in lb.chunks)
        steps = np.diff([c.t_stream for c in lb.chunks])
        assert np.allclose(steps, FRAME_SAMPLES / SAMPLE_RATE)
        counters = link.counters()
        assert counters["dropped_blocks"] == counters["frames_dropped_backlog"] == 0
        assert counters["underruns"] == 0  # the reply never ran dry in our queue (PortAudio's own may)
        assert counters["samples_played"] >= len(pcm) * expected_rate // SAMPLE_RATE


@pytest.mark.slow
async def test_abort_silences_the_speaker_within_150_ms(
    pulse_null: PulseNull, record_property: pytest.RecordProperty
) -> None:
    utt = _utterance(6.0, 12.0)
    pcm = utt.pcm()
    # abort in the middle of loud speech, so silence afterwards means the abort worked
    peaks = np.abs(pcm[: len(pcm) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)).max(axis=1)
    loud = [i for i in range(60, len(peaks) - 10) if (peaks[i - 8 : i + 2] > 2000).all()]
    assert loud, "no loud stretch in the utterance"
    abort_at = loud[0] * FRAME_SAMPLES / SAMPLE_RATE

    async with Loopback(pulse_null) as lb:
        start = len(lb.chunks)
        player = asyncio.create_task(lb.link.play(_chunks(pcm)))
        started = await lb.wait_event(PlaybackEvent.STARTED, 3)
        await asyncio.sleep(started.t + abort_at - time.monotonic())
        t_abort = time.monotonic()
        await lb.link.abort()
        report = await asyncio.wait_for(player, 1)
        assert report.aborted and report.seconds_sent < abort_at + 0.5
        await until(lambda: lb.chunks[-1].t_arrival > t_abort + 1.0, 3, "a second of the monitor after abort")

        kinds = [e.event for e in lb.playback()]
        assert kinds == [PlaybackEvent.STARTED, PlaybackEvent.ABORTED]
        tail = lb.chunks[start:]
        sounding = [c for c in tail if np.abs(c.pcm).max() > SILENT]
        assert sounding, "nothing was heard at all"
        assert any(c.t_arrival > t_abort - 0.06 for c in sounding), "speech was not playing when aborted"
        t_silent = sounding[-1].t_arrival
        print(f"\nabort() -> monitor silent: {(t_silent - t_abort) * 1000:.1f} ms")
        record_property("abort_to_silence_ms", round((t_silent - t_abort) * 1000, 1))
        assert t_silent - t_abort <= 0.15
        assert tail[-1].t_arrival - t_silent > 0.8  # and it stays silent

        # the link still plays after an abort
        lb.events.clear()
        await lb.link.play(_chunks(pcm[: SAMPLE_RATE // 2]))
        await lb.wait_event(PlaybackEvent.DRAINED, 3)
        assert [e.event for e in lb.playback()] == [PlaybackEvent.STARTED, PlaybackEvent.DRAINED]


@pytest.mark.slow
async def test_volume_scales_the_signal(pulse_null: PulseNull) -> None:
    pcm = _utterance(1.5, 3.0).pcm()
    levels = {}
    async with Loopback(pulse_null) as lb:
        for volume in (100, 40):
            await lb.link.set_volume(volume)
            lb.events.clear()
            start = len(lb.chunks)
            await lb.link.play(_chunks(pcm))
            drained = await lb.wait_event(PlaybackEvent.DRAINED, 5)
            await lb.heard_until(drained.t + 0.15)
            heard = _heard(lb.pcm(start), pcm)
            assert heard.matched >= heard.windows - 1, heard
            levels[volume] = heard.gain
        assert lb.link.info.extra["volume"] == 40
    ratio = levels[40] / levels[100]
    assert 0.37 < ratio < 0.43, f"volume 40 gave {ratio:.3f} of volume 100's level"


@pytest.mark.slow
async def test_cancelled_play_lets_the_queue_drain(pulse_null: PulseNull) -> None:
    pcm = _utterance(6.0, 12.0).pcm()
    async with Loopback(pulse_null) as lb:
        player = asyncio.create_task(lb.link.play(_chunks(pcm)))
        await lb.wait_event(PlaybackEvent.STARTED, 3)
        await asyncio.sleep(0.5)
        player.cancel()
        t_cancel = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await player
        assert time.monotonic() - t_cancel < 0.05  # cancelling stops sending at once
        drained = await lb.wait_event(PlaybackEvent.DRAINED, 2)
        assert drained.t - t_cancel <= lb.link.options.max_lead_s + 0.1  # only the queued lead still played


@pytest.mark.slow
async def test_cancel_as_the_queue_makes_room_still_cancels(pulse_null: PulseNull) -> None:
    """A barge-in cancelling the sender in the loop step in which the playout queue made room (the
    race on which Python 3.11's wait_for drops the cancellation) still stops the reply."""
    pcm = _utterance(6.0, 12.0).pcm()
    async with Loopback(pulse_null) as lb:
        player = asyncio.create_task(lb.link.play(_chunks(pcm)))
        await lb.wait_event(PlaybackEvent.STARTED, 3)
        await until(lambda: lb.link._playout is not None and lb.link._playout.want_room, 3, "a full queue")
        lb.link._room.set()  # what the audio callback does when the queue drains below the lead
        player.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(player, 2)


@pytest.mark.slow
async def test_close_leaves_no_threads_streams_or_tasks(pulse_null: PulseNull) -> None:
    threads = _threads()
    link = LocalAudioLink(pulse_null.device, pulse_null.device)
    async with link:
        assert _threads() > threads  # PortAudio's callback threads and PulseAudio's client threads
        audio = link.audio()
        first = await asyncio.wait_for(anext(audio), 6)
        assert len(first.pcm) == FRAME_SAMPLES
        await link.play(_chunks(np.zeros(SAMPLE_RATE // 10, dtype=np.int16)))
    assert not link.connected
    assert await _threads_back_to(threads) <= threads, _thread_names()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    rest = [c async for c in audio]  # the iterator ends at close
    assert len(rest) < 400
    with pytest.raises(NotConnected):
        await link.play(_chunks(np.zeros(320, dtype=np.int16)))
    with pytest.raises(LinkError, match="opens once"):
        await link.__aenter__()
