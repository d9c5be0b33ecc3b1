"""`companion run` in-process against virtual headsets: who it serves, and how it restarts a failed device.

The service runs its real code path (scan loop, BLE link through the simulator's bleak backend, sessions
with Whisper and piper); only the process boundary is skipped so the test can reach into the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from companion.config import Config
from companion.engines import Engines
from companion.events import ErrorEvent, ReplyEvent, TranscriptEvent
from companion.registry import remember
from companion.service import Service
from firmware_sim import HeadsetConfig, SimWorld
from tests.fixtures.sim import until

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_backoff")]


@pytest.fixture
def service_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COMPANION_CONTROL_SOCKET", str(tmp_path / "control.sock"))
    monkeypatch.setenv("COMPANION_REGISTRY", str(tmp_path / "headsets.json"))
    monkeypatch.setenv("COMPANION_SIM_SOCKET", str(tmp_path / "no-sim.sock"))  # only this process's headsets
    return tmp_path


@contextlib.asynccontextmanager
async def running(service: Service):
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(30):
            await service.ready.wait()
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _served(service: Service, address: str) -> bool:
    dev = service.devices.get(address.upper())
    return bool(dev and dev.session is not None and dev.link is not None and dev.link.connected)


async def test_only_allowed_headsets_are_served(service_env, whisper_stt, piper_tts) -> None:
    config = Config()
    config.link.allow = ["Mine"]
    engines = Engines(stt=whisper_stt, tts=piper_tts, llm=None)
    async with SimWorld() as world:
        mine = world.add_headset(HeadsetConfig(name="Mine"))
        paired = world.add_headset(HeadsetConfig(name="Paired"))
        stranger = world.add_headset(HeadsetConfig(name="Stranger"))
        remember(paired.address, "Paired", "companion")
        service = Service(config, sim=True, engines=engines)
        async with running(service):
            await until(lambda: _served(service, mine.address) and _served(service, paired.address), 20)
            await asyncio.sleep(2.5)  # at least one more scan
            assert stranger.address.upper() not in service.devices
        assert stranger.truth.connects == 0, "a headset that is neither paired nor allowed was connected"
        assert mine.truth.connects >= 1 and paired.truth.connects >= 1


def test_a_real_adapter_serves_nothing_unpaired(service_env) -> None:
    """Without --sim, an empty allowlist and no paired headset mean no headset is served at all."""
    from bleak.backends.device import BLEDevice

    from companion.link.ble import FoundHeadset
    from companion.protocol import Profile

    found = FoundHeadset(BLEDevice("C0:11:22:33:44:55", "Omi", None), Profile.OMI, -50, None)
    assert not Service(Config(), sim=False).allowed(found)
    remember("C0:11:22:33:44:55", "Omi", "omi")
    assert Service(Config(), sim=False).allowed(found)
    other = FoundHeadset(BLEDevice("C0:11:22:33:44:66", "Omi", None), Profile.OMI, -50, None)
    assert not Service(Config(), sim=False).allowed(other)


async def test_a_failed_link_restarts_the_device_keeping_memory_and_timers(
    service_env, whisper_stt, piper_tts, synth_speech
) -> None:
    engines = Engines(stt=whisper_stt, tts=piper_tts, llm=None)
    config = Config()
    config.session.earcons = False
    async with SimWorld() as world:
        hs = world.add_headset(HeadsetConfig(name="Flaky"))
        service = Service(config, sim=True, engines=engines)
        events = service.hub.subscriber()

        async def next_event(kind, timeout=20.0, where=lambda e: True):
            async with asyncio.timeout(timeout):
                while True:
                    event = await events.get()
                    if isinstance(event, kind) and where(event):
                        return event

        async with running(service):
            await until(lambda: _served(service, hs.address), 20, "the headset to be served")
            first = service.devices[hs.address.upper()].session
            await hs.mic.say(synth_speech("Set a timer for six seconds."))
            await next_event(TranscriptEvent)
            assert (await next_event(ReplyEvent)).intent == "timer.set"
            # Every reconnect is now answered with a capabilities record naming an unknown codec.
            hs.fault_reads("capabilities", "unknown_codec", times=3)
            await hs.power_cycle(0.3)
            error = await next_event(ErrorEvent, where=lambda e: "cannot read" in e.message)
            await until(
                lambda: (
                    _served(service, hs.address) and service.devices[hs.address.upper()].session is not first
                ),
                20,
                "the device to be restarted",
            )
            second = service.devices[hs.address.upper()].session
            rang = await next_event(ReplyEvent, timeout=15, where=lambda e: e.intent == "announcement")
    assert "unknown codec id" in error.message
    assert "timer" in rang.text.lower()
    history = [m.content.lower() for m in second.conversation.messages()]
    assert any("set a timer" in m for m in history), history
