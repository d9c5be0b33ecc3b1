"""A virtual headset served as a Home Assistant Assist satellite; a Wyoming client plays Home Assistant.

The client (the `wyoming` package's own) runs a pipeline against the satellite the way Home Assistant's
Wyoming integration does: the headset's button starts it, the mic audio reaches the client (checked by
transcribing it), TTS audio sent back at piper's native 22.05 kHz plays on the headset (checked in the
headset's own recording), and the state LED follows the pipeline's events.
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest
import soxr
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite, StreamingStarted, StreamingStopped
from wyoming.snd import Played
from wyoming.tts import Synthesize
from wyoming.vad import VoiceStarted, VoiceStopped
from wyoming.wake import Detection

from companion.link.ble import BleHeadsetLink
from companion.protocol import Button, DeviceState
from companion.stt.text import wer
from companion.wyoming.satellite import HeadsetSatellite, satellite_uri
from firmware_sim import HeadsetConfig, SimClient, SimScanner, SimWorld
from tests.fixtures.conditions import until
from tests.fixtures.wyoming import free_port

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_backoff")]


async def _next(client: AsyncTcpClient, wanted: str, timeout: float = 10.0) -> Event:
    """The next event of type `wanted` (mic chunks and other events in between are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            event = await client.read_event()
            assert event is not None, "the satellite closed the connection"
            if event.type == wanted:
                return event


async def test_home_assistant_runs_a_pipeline_through_the_headset(whisper_stt, synth_speech) -> None:
    # Synthesised before the virtual headset starts: piper runs in this thread and would stall its clock.
    question = synth_speech("What time is it?")
    answer = "The kitchen lights are now on."
    pcm16 = synth_speech(answer)
    native = (soxr.resample(pcm16.astype(np.float32) / 32768, 16000, 22050) * 32767).astype("<i2")
    async with SimWorld() as world:
        headset = world.add_headset(HeadsetConfig(name="Kitchen"))
        async with BleHeadsetLink(headset.address, backend=SimClient, scanner_backend=SimScanner) as link:
            satellite = HeadsetSatellite(link, f"tcp://127.0.0.1:{free_port()}", area="Kitchen")
            task = asyncio.create_task(satellite.run())
            leds: list[DeviceState] = []

            async def watch_led() -> None:
                while True:
                    if not leds or leds[-1] is not headset.state:
                        leds.append(headset.state)
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch_led())
            recording = headset.start_recording()
            try:
                await asyncio.wait_for(satellite.ready.wait(), 10)
                host, port = satellite.bound_uri.removeprefix("tcp://").split(":")
                async with AsyncTcpClient(host, int(port), connect_timeout=5, read_timeout=15) as ha:
                    await ha.write_event(Describe().event())
                    info = Info.from_event(await _next(ha, "info"))
                    assert info.satellite is not None and info.satellite.name == "Kitchen"
                    assert info.satellite.area == "Kitchen" and info.satellite.supports_trigger

                    # Paused: the button does nothing.
                    await ha.write_event(PauseSatellite().event())
                    headset.press(Button.TAP)
                    with pytest.raises(TimeoutError):
                        await _next(ha, "run-pipeline", timeout=0.7)

                    # Running: the button starts a pipeline and the mic streams.
                    await ha.write_event(RunSatellite().event())
                    await asyncio.sleep(0.1)
                    headset.press(Button.TAP)
                    pipeline = RunPipeline.from_event(await _next(ha, "run-pipeline"))
                    assert (pipeline.start_stage, pipeline.end_stage) == (
                        PipelineStage.ASR,
                        PipelineStage.TTS,
                    )
                    start = AudioStart.from_event(await _next(ha, "audio-start"))
                    assert (start.rate, start.width, start.channels) == (16000, 2, 1)
                    await _next(ha, StreamingStarted().event().type)

                    speaking = asyncio.create_task(headset.mic.say(question))
                    heard: list[bytes] = []
                    async with asyncio.timeout(15):
                        while sum(map(len, heard)) < 2 * (len(question) + 8000):
                            event = await ha.read_event()
                            assert event is not None
                            if AudioChunk.is_type(event.type):
                                heard.append(AudioChunk.from_event(event).audio)
                    await speaking
                    mic = np.frombuffer(b"".join(heard), dtype=np.int16)
                    text = (await whisper_stt.atranscribe(mic)).text
                    assert wer("what time is it", text) <= 0.25, text

                    # Home Assistant's VAD: speech started, then stopped -> the mic stops streaming.
                    await ha.write_event(VoiceStarted().event())
                    await asyncio.sleep(0.1)
                    assert headset.state is DeviceState.LISTENING
                    await ha.write_event(VoiceStopped().event())
                    await _next(ha, "audio-stop")
                    await _next(ha, StreamingStopped().event().type)
                    await asyncio.sleep(0.1)
                    await until(lambda: headset.state is DeviceState.THINKING, what="LED thinking")

                    # The answer: piper's audio at its native 22.05 kHz, streamed in chunks.
                    await ha.write_event(Transcript(text=text).event())
                    await ha.write_event(Synthesize(text=answer).event())
                    pcm16 = synth_speech(answer)
                    native = (soxr.resample(pcm16.astype(np.float32) / 32768, 16000, 22050) * 32767).astype(
                        "<i2"
                    )
                    await ha.write_event(AudioStart(rate=22050, width=2, channels=1).event())
                    for i in range(0, len(native), 1024):
                        chunk = native[i : i + 1024].tobytes()
                        await ha.write_event(AudioChunk(rate=22050, width=2, channels=1, audio=chunk).event())
                    await ha.write_event(AudioStop().event())
                    await _next(ha, Played().event().type, timeout=len(pcm16) / 16000 + 5)
                    await asyncio.sleep(0.1)
                    assert headset.state is DeviceState.IDLE
            finally:
                headset.stop_recording()
                watcher.cancel()
                task.cancel()
                for t in (watcher, task):
                    with contextlib.suppress(asyncio.CancelledError):
                        await t

    played = recording.right
    active = np.flatnonzero(np.abs(played) > 500)
    played = played[max(0, active[0] - 1600) : active[-1] + 1600]  # the reply, without the silence before it
    assert abs(len(played) - len(pcm16)) < 0.4 * 16000, (len(played), len(pcm16))  # all of it, no gaps
    assert wer(answer, (await whisper_stt.atranscribe(played)).text) <= 0.25
    # The LED followed the pipeline: listening (button, voice), thinking (voice stopped), speaking, idle.
    order = [s for i, s in enumerate(leds) if i == 0 or s is not leds[i - 1]]
    assert order[-4:] == [DeviceState.LISTENING, DeviceState.THINKING, DeviceState.SPEAKING, DeviceState.IDLE]


def test_satellite_ports_come_from_config() -> None:
    from companion.config import SatelliteConfig

    config = SatelliteConfig(enabled=True, host="0.0.0.0", base_port=10800, ports={"aa:bb": 10900})
    assert satellite_uri(config, "AA:BB", 0) == "tcp://0.0.0.0:10900"
    assert satellite_uri(config, "CC:DD", 2) == "tcp://0.0.0.0:10802"


async def _chunks(client: AsyncTcpClient, seconds: float) -> tuple[int, list[str]]:
    """Mic bytes that arrived within `seconds`, and the types of the other events."""
    got, others = 0, []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                event = await client.read_event()
                assert event is not None, "the satellite closed the connection"
                if AudioChunk.is_type(event.type):
                    got += len(AudioChunk.from_event(event).audio)
                else:
                    others.append(event.type)
    return got, others


async def test_wake_word_mode_remote_trigger_and_barge_in(whisper_stt, synth_speech) -> None:
    """`start = "wake"`: run-satellite starts a wake-stage pipeline and the mic streams for Home Assistant's
    wake word all the time; a detection lights the LED; after the reply the mic keeps streaming. The button
    during a reply stops it (barge-in) and tells Home Assistant it was played. In button mode a remote
    run-pipeline (Home Assistant's "start listening" trigger) opens the mic, and an error closes it."""
    tone = (3000 * np.sin(2 * np.pi * 440 * np.arange(4 * 16000) / 16000)).astype("<i2")  # 4 s
    async with SimWorld() as world:
        headset = world.add_headset(HeadsetConfig(name="Hall"))
        async with BleHeadsetLink(headset.address, backend=SimClient, scanner_backend=SimScanner) as link:
            satellite = HeadsetSatellite(link, f"tcp://127.0.0.1:{free_port()}", start="wake")
            task = asyncio.create_task(satellite.run())
            try:
                await asyncio.wait_for(satellite.ready.wait(), 10)
                host, port = satellite.bound_uri.removeprefix("tcp://").split(":")
                async with AsyncTcpClient(host, int(port), connect_timeout=5, read_timeout=15) as ha:
                    await ha.write_event(RunSatellite().event())
                    pipeline = RunPipeline.from_event(await _next(ha, "run-pipeline"))
                    assert (pipeline.start_stage, pipeline.end_stage) == (
                        PipelineStage.WAKE,
                        PipelineStage.TTS,
                    )
                    assert pipeline.restart_on_end
                    await _next(ha, "audio-start")
                    await _next(ha, StreamingStarted().event().type)
                    # streaming with nobody talking: Home Assistant's wake word listens
                    got, others = await _chunks(ha, 0.6)
                    assert got >= 0.3 * 32000 and "audio-stop" not in others, (got, others)
                    assert headset.state is DeviceState.IDLE

                    await ha.write_event(Detection(name="ok_nabu").event())
                    await until(lambda: headset.state is DeviceState.LISTENING, what="LED listening")
                    await ha.write_event(Transcript(text="play a long song").event())
                    got, others = await _chunks(ha, 0.4)  # still streaming (Home Assistant ends the stages)
                    assert got > 0 and "audio-stop" not in others, others
                    await until(lambda: headset.state is DeviceState.THINKING, what="LED thinking")

                    await ha.write_event(AudioStart(rate=16000, width=2, channels=1).event())
                    for i in range(0, len(tone), 1600):
                        await ha.write_event(
                            AudioChunk(
                                rate=16000, width=2, channels=1, audio=tone[i : i + 1600].tobytes()
                            ).event()
                        )
                    await ha.write_event(AudioStop().event())
                    await until(lambda: headset.state is DeviceState.SPEAKING, what="the reply to play")
                    await asyncio.sleep(0.5)
                    pressed = asyncio.get_running_loop().time()
                    headset.press(Button.TAP)  # barge-in
                    await _next(ha, Played().event().type, timeout=3)
                    assert asyncio.get_running_loop().time() - pressed < 2.0  # well before the 4 s tone ended
                    await until(lambda: headset.state is DeviceState.IDLE, what="LED idle")

                    await ha.write_event(PauseSatellite().event())
                    await _next(ha, "audio-stop")
                    await _next(ha, StreamingStopped().event().type)

                # Button mode: Home Assistant triggers a pipeline remotely; an error ends it.
                satellite.start_mode = "button"
                async with AsyncTcpClient(host, int(port), connect_timeout=5, read_timeout=15) as ha:
                    await ha.write_event(RunSatellite().event())
                    got, others = await _chunks(ha, 0.5)
                    assert got == 0 and "audio-start" not in others  # nothing streams until asked
                    await ha.write_event(
                        RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event()
                    )
                    await _next(ha, "audio-start")
                    await _next(ha, StreamingStarted().event().type)
                    await until(lambda: headset.state is DeviceState.LISTENING, what="LED listening")
                    spoken = synth_speech("Turn on the hall light.")
                    speaking = asyncio.create_task(headset.mic.say(spoken))
                    heard: list[bytes] = []
                    async with asyncio.timeout(15):
                        while sum(map(len, heard)) < 2 * (len(spoken) + 8000):
                            event = await ha.read_event()
                            assert event is not None
                            if AudioChunk.is_type(event.type):
                                heard.append(AudioChunk.from_event(event).audio)
                    await speaking
                    text = (
                        await whisper_stt.atranscribe(np.frombuffer(b"".join(heard), dtype=np.int16))
                    ).text
                    assert wer("turn on the hall light", text) <= 0.25, text
                    await ha.write_event(Error(text="no intent matched", code="intent-failed").event())
                    await _next(ha, "audio-stop")
                    await _next(ha, StreamingStopped().event().type)
                    await until(lambda: headset.state is DeviceState.IDLE, what="LED idle")
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
