"""Session facts others rely on: the state is published from the start (MQTT retains it), and "first
audio played" is the first sample of the reply even when playback restarts after a gap."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest

from companion.events import EventHub, StateChanged
from companion.link.ble import BleHeadsetLink
from companion.session import Milestones, Session, Spoken
from firmware_sim import HeadsetConfig, SimClient, SimScanner, SimWorld

pytestmark = pytest.mark.usefixtures("fast_backoff")


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


async def test_first_audio_played_survives_a_playback_gap(sim_world: SimWorld) -> None:
    headset = sim_world.add_headset(HeadsetConfig(name="Gap"))
    async with BleHeadsetLink(headset.address, backend=SimClient, scanner_backend=SimScanner) as link:
        session = Session(link, stt=None, tts=None, earcons_enabled=False)
        events = asyncio.create_task(session.headset.run(link))
        try:

            async def reply_with_a_gap() -> AsyncIterator[np.ndarray]:
                for chunk in np.array_split(_tone(0.4), 10):
                    yield chunk
                await asyncio.sleep(0.9)  # TTS fell behind: the headset drains, then starts again
                for chunk in np.array_split(_tone(0.4), 10):
                    yield chunk

            marks = Milestones(end_of_speech=0.0)
            await session.player.play(reply_with_a_gap(), marks, Spoken())
            await asyncio.sleep(0.6)
        finally:
            events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events
    assert headset.speaker.replies == 2  # it really played in two stretches
    assert marks.first_audio_sent is not None and marks.first_audio_played is not None
    assert marks.first_audio_played - marks.first_audio_sent < 0.5  # the first stretch, not the restart


@pytest.mark.slow
async def test_the_state_is_published_when_the_session_starts(
    sim_world: SimWorld, whisper_stt, piper_tts
) -> None:
    headset = sim_world.add_headset(HeadsetConfig(name="State"))
    hub = EventHub()
    seen = hub.subscriber()
    async with BleHeadsetLink(headset.address, backend=SimClient, scanner_backend=SimScanner) as link:
        session = Session(link, stt=whisper_stt, tts=piper_tts, hub=hub, earcons_enabled=False)
        task = asyncio.create_task(session.run())
        try:
            async with asyncio.timeout(10):
                while not isinstance(event := await seen.get(), StateChanged):
                    pass
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert event.state == "idle"  # nothing changed yet, and MQTT has a retained state to show
