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
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite, StreamingStarted, StreamingStopped
from wyoming.snd import Played
from wyoming.tts import Synthesize
from wyoming.vad import VoiceStarted, VoiceStopped

from companion.link.ble import BleHeadsetLink
from companion.protocol import Button, DeviceState
from companion.stt.text import wer
from companion.wyoming.satellite import HeadsetSatellite, satellite_uri
from firmware_sim import HeadsetConfig, SimClient, SimScanner, SimWorld
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
                    assert headset.state is DeviceState.THINKING

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
