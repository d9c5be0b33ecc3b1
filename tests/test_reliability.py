"""A headset that drops mid-reply, comes back, or answers a reconnect with garbage: the session lives on.

Real parts throughout: the simulator's headsets behind bleak, the BLE link, the session with Whisper and
piper. Faults are the simulator's own (power cycle, out of range, damaged GATT reads).
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest
from bleak.exc import BleakError

from companion.config import Config
from companion.events import (
    Availability,
    ErrorEvent,
    ReplyEvent,
    StateChanged,
    TranscriptEvent,
)
from companion.link.base import LinkError, NotConnected
from companion.link.ble import BleHeadsetLink
from companion.link.errors import LinkFailed, as_link_errors
from companion.protocol import DeviceState
from firmware_sim import HeadsetConfig, RadioConfig, SimClient, SimScanner, SimWorld
from tests.fixtures.session_rig import SessionRig
from tests.fixtures.sim import until

pytestmark = [pytest.mark.usefixtures("fast_backoff")]


@pytest.fixture
async def world(fast_backoff):
    async with SimWorld() as w:
        yield w


def Rig(
    world: SimWorld, stt, tts, radio: RadioConfig | None = None, *, config=None, llm=None, **headset
) -> SessionRig:
    """A session rig on a headset named "Reliable" (earcons as the config says, no recording)."""
    earcons = config is not None and config.session.earcons
    return SessionRig(
        world,
        stt,
        tts,
        radio,
        config=config,
        llm=llm,
        earcons=earcons,
        record=False,
        name="Reliable",
        **headset,
    )


# -- link errors keep their own type ---------------------------------------------------------------


def test_bleak_errors_become_link_errors() -> None:
    with pytest.raises(NotConnected, match="went away") as info:
        with as_link_errors("AA"):
            raise BleakError("Not connected: power off")
    assert isinstance(info.value.__cause__, BleakError)
    with pytest.raises(LinkError, match="GATT busy"):
        with as_link_errors("AA"):
            raise BleakError("GATT busy")
    with pytest.raises(NotConnected):
        with as_link_errors("AA"):
            raise TimeoutError


@pytest.mark.parametrize("fault", ["power", "range"])
async def test_a_drop_while_sending_raises_the_links_own_error(world: SimWorld, fault: str) -> None:
    """Power-off or walking away while a reply is being written: NotConnected, never bleak's BleakError."""
    hs = world.add_headset(
        HeadsetConfig(name="Writer", speaker_buffer_ms=4000),
        RadioConfig(supervision_timeout_ms=200),
    )
    async with BleHeadsetLink(hs.address, backend=SimClient, scanner_backend=SimScanner) as link:
        tone = (np.sin(np.arange(16000 * 6) * 0.05) * 8000).astype(np.int16)

        async def reply():
            for i in range(0, len(tone), 320):
                yield tone[i : i + 320]
                await asyncio.sleep(0)

        play = asyncio.create_task(link.play(reply()))
        await until(lambda: hs.speaker.played_samples > 3200, 5, "the reply to be playing at the headset")
        assert not play.done()
        hs.power_off() if fault == "power" else hs.go_out_of_range()
        with pytest.raises(LinkError) as info:
            async with asyncio.timeout(5):
                await play
        assert not isinstance(info.value, BleakError)
        # LED and volume writes after the drop fail the same way, or are skipped while disconnected.
        await until(lambda: not link.connected, 3, "the link to notice the drop")
        await link.set_state(DeviceState.IDLE)
        hs.power_on() if fault == "power" else hs.come_back()
        await link.wait_connected(5)


# -- the session survives its headset going and coming back ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["power", "range"])
async def test_session_survives_a_drop_mid_reply(world, whisper_stt, piper_tts, synth_speech, fault) -> None:
    radio = RadioConfig(supervision_timeout_ms=300)
    async with Rig(world, whisper_stt, piper_tts, radio) as rig:
        await rig.headset.mic.say(synth_speech("What can you do?"))  # the help skill: a long reply
        await rig.next(StateChanged, where=lambda e: e.state == "speaking")
        await asyncio.sleep(0.4)
        if fault == "power":
            cycle = asyncio.create_task(rig.headset.power_cycle(1.0))
        else:
            rig.headset.go_out_of_range()
        cut = await rig.next(ReplyEvent)
        # The cut reply and the headset going offline are separate events, in either order.
        if not any(isinstance(e, Availability) and not e.online for e in rig.seen):
            await rig.next(Availability, where=lambda e: not e.online)
        if fault == "power":
            await cycle
        else:
            await asyncio.sleep(0.5)
            rig.headset.come_back()
        await rig.next(Availability, timeout=10, where=lambda e: e.online)
        assert not rig.task.done(), "the session ended with its headset"
        assert rig.session.state is DeviceState.IDLE
        reply = await rig.ask(synth_speech("What time is it?"), intent="time")
        await asyncio.sleep(0.3)  # a window in which the session must not end
        assert not rig.task.done()
    assert cut.interrupted and not reply.interrupted
    history = [m.content for m in rig.session.conversation.messages()]
    assert any("what can you do" in m.lower() for m in history), history
    assert any("time" in m.lower() for m in history)


@pytest.mark.slow
async def test_a_timer_set_before_a_power_cycle_rings_after_reconnect(
    world, whisper_stt, piper_tts, synth_speech
) -> None:
    async with Rig(world, whisper_stt, piper_tts) as rig:
        reply = await rig.ask(synth_speech("Set a timer for two seconds."))
        assert reply.intent == "timer.set"
        await until(lambda: rig.session.state is DeviceState.IDLE, 3, "the reply to finish")
        await rig.headset.power_cycle(3.5)  # the timer falls due while the headset is off
        back = await rig.next(Availability, timeout=10, where=lambda e: e.online)
        rang = await rig.next(ReplyEvent, timeout=10, where=lambda e: e.intent == "announcement")
        await until(lambda: rig.headset.speaker.events, 3, "the ring at the headset's speaker")
        played = rig.headset.speaker.events
    assert back.online and "timer" in rang.text.lower() and not rang.interrupted
    assert played, "nothing reached the headset's speaker after it came back"
    assert not rig.session.skills_context.timers.list()


# -- a reconnect answered with data the host cannot read -------------------------------------------


@pytest.mark.parametrize(
    ("key", "fault"),
    [("capabilities", "unknown_codec"), ("capabilities", "truncated"), ("flow", "zero_capacity")],
)
async def test_an_unreadable_answer_on_reconnect_is_retried_and_reported(world, key, fault) -> None:
    hs = world.add_headset(HeadsetConfig(name="Garbled"))
    async with BleHeadsetLink(hs.address, backend=SimClient, scanner_backend=SimScanner) as link:
        events = link.events()
        hs.fault_reads(key, fault, times=1)
        await hs.power_cycle(0.2)
        seen = []
        async with asyncio.timeout(10):
            async for event in events:
                seen.append(event)
                drops = [e for e in seen if getattr(e, "connected", None) is False]
                if drops and getattr(event, "connected", False):
                    break
        assert link.connected, seen
    messages = [e.message for e in seen if hasattr(e, "message")]
    assert any("cannot read" in m for m in messages), seen
    assert link.counters()["reconnect_protocol_errors"] == 1


async def test_a_headset_that_keeps_sending_garbage_fails_the_link_loudly(world) -> None:
    hs = world.add_headset(HeadsetConfig(name="Broken"))
    async with BleHeadsetLink(hs.address, backend=SimClient, scanner_backend=SimScanner) as link:
        hs.fault_reads("capabilities", "unknown_codec", times=10)
        await hs.power_cycle(0.2)
        with pytest.raises(LinkFailed, match="unknown codec id 238"):
            async with asyncio.timeout(10):
                async for _ in link.audio():
                    pass
        with pytest.raises(LinkFailed):
            async for _ in link.events():
                pass


@pytest.mark.slow
async def test_the_session_reports_a_failed_link_and_ends(world, whisper_stt, piper_tts) -> None:
    async with Rig(world, whisper_stt, piper_tts) as rig:
        rig.headset.fault_reads("capabilities", "unknown_codec", times=10)
        await rig.headset.power_cycle(0.2)
        error = await rig.next(ErrorEvent, timeout=10)
        async with asyncio.timeout(10):
            with pytest.raises(ExceptionGroup) as info:
                await rig.task
    assert "cannot read" in error.message
    assert info.group_contains(LinkFailed)


# -- announcements: bounded, and stop clears them -----------------------------------------------------


@pytest.mark.slow
async def test_announcements_are_bounded_and_stop_clears_them(world, whisper_stt, piper_tts) -> None:
    from companion.announcements import MAX_SAY, AnnouncementRefused

    async with Rig(world, whisper_stt, piper_tts) as rig:
        says = [asyncio.create_task(rig.session.commands.say(f"Announcement number {i}.")) for i in range(30)]
        await rig.next(StateChanged, where=lambda e: e.state == "speaking")
        refused = [t for t in says if t.done() and isinstance(t.exception(), AnnouncementRefused)]
        # MAX_SAY were queued (one of them is playing now), the rest were refused with a reason
        assert len(refused) == 30 - MAX_SAY, [t.exception() for t in says if t.done()]
        assert "already waiting" in str(refused[0].exception())
        assert len(rig.session.announcements) == MAX_SAY - 1
        await rig.session.barge_in("command")
        async with asyncio.timeout(5):
            await asyncio.gather(*says, return_exceptions=True)
        assert len(rig.session.announcements) == 0
        await asyncio.sleep(1.0)
        spoken = [e for e in rig.seen if isinstance(e, ReplyEvent)]
        while not rig.events.empty():
            event = rig.events.get_nowait()
            if isinstance(event, ReplyEvent):
                spoken.append(event)
    assert len(spoken) == 1 and spoken[0].interrupted, spoken  # only the one that was playing, cut short
    assert rig.session.state is not DeviceState.SPEAKING


async def test_say_while_the_headset_is_away_is_refused_and_timers_wait(world) -> None:
    """The queue's rules without speech: `say` needs a connected headset, timer rings wait for it."""
    from companion.announcements import AnnouncementRefused, Announcements

    connected = False
    played: list[str] = []

    async def speak(item):
        played.append(item.text)
        return "played"

    queue = Announcements(speak, lambda: connected)
    worker = asyncio.create_task(queue.run())
    try:
        with pytest.raises(AnnouncementRefused, match="not connected"):
            queue.put("hello", "say")
        ring = queue.put("Your timer is done.", "announcement")
        await asyncio.sleep(0.05)
        assert not played and len(queue) == 1
        connected = True
        queue.link_changed()
        assert await asyncio.wait_for(ring.done, 1) == "played"
        assert played == ["Your timer is done."]
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


# -- a hung LLM: a thinking cue, then the spoken apology soon after the limit --------------------------


@contextlib.asynccontextmanager
async def hanging_llm_server():
    """An HTTP server on loopback that accepts every request and never answers (the fault injector)."""
    handlers: set[asyncio.Task] = set()
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())
        requests.append(b"")
        try:
            requests[-1] = await reader.readuntil(b"\r\n\r\n")
            await asyncio.Event().wait()  # hang
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", requests
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def _sounds(pcm: np.ndarray, threshold: int = 300, gap_s: float = 0.12) -> list[tuple[float, float]]:
    """(start, end) seconds of the audible stretches of a recording channel."""
    frames = np.abs(pcm[: len(pcm) // 320 * 320].reshape(-1, 320)).max(axis=1) > threshold
    runs: list[list[float]] = []
    for i in np.flatnonzero(frames):
        t = i * 0.02
        if runs and t - runs[-1][1] <= gap_s:
            runs[-1][1] = t + 0.02
        else:
            runs.append([t, t + 0.02])
    return [(a, b) for a, b in runs]


@pytest.mark.slow
async def test_a_hung_llm_gets_a_thinking_cue_then_a_spoken_apology(
    world, whisper_stt, piper_tts, synth_speech
) -> None:
    from companion.engines import make_llm
    from companion.thinking import THINKING_CUE_S

    limit = 3.0
    async with hanging_llm_server() as (url, _requests):
        config = Config()
        config.llm.backend = "openai"
        config.llm.base_url = url
        config.llm.first_token_timeout_s = limit
        llm = make_llm(config)  # the product's openai client
        try:
            async with Rig(world, whisper_stt, piper_tts, config=config, llm=llm) as rig:
                recording = rig.headset.start_recording()
                await rig.headset.mic.say(synth_speech("Tell me a story about a dragon."))
                await rig.next(TranscriptEvent)
                reply = await rig.next(ReplyEvent, timeout=limit + 10)
                await asyncio.sleep(0.5)
                rig.headset.stop_recording()
        finally:
            await llm.aclose()
    assert "taking too long" in reply.text
    speech_end = _sounds(recording.left)[-1][1]
    played = [s for s in _sounds(recording.right) if s[0] > speech_end]
    assert len(played) >= 2, played
    (cue_start, cue_end), (apology_start, _) = played[0], played[1]
    assert cue_end - cue_start < 0.4, "the cue is short"
    # The cue comes ~1.5 s into the wait. The wait starts when the turn ends: 0.2-0.6 s after the speech
    # as a rule, up to ~2 s on a slow host when the final pass re-reads a clip or Smart Turn is asked.
    assert THINKING_CUE_S <= cue_start - speech_end <= THINKING_CUE_S + 2.5, played
    # The apology is heard within 2 s once the limit has passed (measured from when the wait began).
    waited_from = cue_start - THINKING_CUE_S
    assert apology_start - waited_from <= limit + 2.0, played
