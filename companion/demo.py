"""`companion demo`: the whole loop against a virtual headset, offline, on any machine.

A virtual headset is started in this process; the wearer's turns (synthesised with the bundled voice, or
given as text or WAV files) are spoken into its microphone one at a time; the service hears them over the
simulated BLE link, answers, and speaks back through the headset. Each turn prints its transcript, reply and
latency breakdown; voice-to-voice latency is read off the headset's own conversation recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from companion.aio import cancel_and_wait
from companion.audio.v2v import voice_to_voice
from companion.audio.wav import load_wav
from companion.config import Config
from companion.engines import Engines
from companion.events import EventHub, ReplyEvent, TranscriptEvent, TurnTimings, Unaddressed
from companion.link.ble import BleLinkOptions
from companion.protocol import codec_by_name
from companion.session import Session
from companion.tts.base import synthesize

log = logging.getLogger(__name__)

DEFAULT_TURNS = ("What time is it?", "Set a timer for ten seconds.", "How much battery is left?")
TURN_MARGIN_S = 60.0  # STT, speech synthesis and playing a long reply, beyond the LLM's own limit


def turn_limit_s(config: Config) -> float:
    """How long a demo turn may take: longer than the LLM may legitimately take (its whole-reply
    timeout) plus the longest utterance, so a slow LLM ends in its own spoken apology, not here."""
    return config.llm.timeout_s + config.turn.max_utterance_s + TURN_MARGIN_S


# In wake mode: the phrase, a follow-up within the window (no phrase), the phrase again.
DEFAULT_WAKE_TURNS = (
    "Hey companion, what time is it?",
    "Set a timer for ten seconds.",
    "Hey companion, how much battery is left?",
)


@dataclass
class DemoOptions:
    says: list[str] = field(default_factory=list)
    utterances: list[Path] = field(default_factory=list)
    as_json: bool = False
    record: Path | None = None
    earcons: bool = False
    codec: str | None = None
    loss: float = 0.0
    wait_timers: bool = True
    pause_s: float = 0.8
    mode: str = "hands_free"  # or "wake"
    echo_db: float | None = None  # the virtual headset's acoustic world (see firmware_sim.firmware.acoustics)
    bystanders: list[Path] = field(default_factory=list)
    bystander_db: float = 0.0
    noise_snr_db: float | None = None


@dataclass
class DemoTurn:
    said: str
    transcript: str = ""
    reply: str = ""
    timings: TurnTimings | None = None
    voice_to_voice_ms: float | None = None
    answered_early: bool = False
    interrupted: bool = False

    def as_dict(self) -> dict[str, object]:
        timings = self.timings.to_dict() if self.timings is not None else {}
        for key in ("type", "device", "turn"):
            timings.pop(key, None)
        return {
            "said": self.said,
            "transcript": self.transcript,
            "reply": self.reply,
            "voice_to_voice_ms": self.voice_to_voice_ms,
            "answered_early": self.answered_early,
            "addressed": True,
            "interrupted": self.interrupted,
            "timings_ms": timings,
        }


def _format_turn(n: int, turn: DemoTurn) -> str:
    t = turn.timings
    lines = [
        f"turn {n}",
        f"  you said : {turn.said}",
        f"  heard    : {turn.transcript}",
        f"  reply    : {turn.reply}" + (" [interrupted]" if turn.interrupted else ""),
    ]
    if t is not None:

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f} ms"

        lines.append(
            "  latency  : end of turn "
            f"{ms(t.end_of_turn_ms)} | STT done {ms(t.stt_done_ms)} (STT {ms(t.stt_ms)}) | "
            f"first token {ms(t.llm_first_token_ms)} | first sentence {ms(t.first_sentence_ms)} | "
            f"TTS audio {ms(t.tts_first_audio_ms)} | sent {ms(t.first_audio_sent_ms)} | "
            f"played {ms(t.first_audio_played_ms)}" + (" [speculative]" if t.speculative else "")
        )
    if turn.voice_to_voice_ms is not None:
        lines.append(f"  voice-to-voice (headset recording): {turn.voice_to_voice_ms:.0f} ms")
    return "\n".join(lines)


async def run_demo(options: DemoOptions, config: Config, progress: Callable[[str], None]) -> list[DemoTurn]:
    from companion.link.sim import sim_link
    from firmware_sim import HeadsetConfig, RadioConfig, SimWorld

    engines = await Engines.load(config, progress)
    try:
        scripted: list[tuple[str, np.ndarray]] = []
        defaults = DEFAULT_WAKE_TURNS if options.mode == "wake" else DEFAULT_TURNS
        for text in options.says or ([] if options.utterances else list(defaults)):
            scripted.append((text, await synthesize(engines.tts, text)))
        for path in options.utterances:
            scripted.append((path.name, await asyncio.to_thread(load_wav, path)))

        record_path = options.record or Path(tempfile.mkstemp(prefix="companion-demo-", suffix=".wav")[1])
        radio = RadioConfig(loss=options.loss) if options.loss else RadioConfig()
        async with SimWorld() as world:
            headset = world.add_headset(
                HeadsetConfig(
                    name="Companion Demo",
                    echo_db=options.echo_db,
                    bystanders=tuple(str(p) for p in options.bystanders),
                    bystander_db=options.bystander_db,
                    noise_snr_db=options.noise_snr_db,
                ),
                radio,
            )
            link_options = BleLinkOptions(mic_codec=codec_by_name(options.codec) if options.codec else None)
            hub = EventHub()
            events = hub.subscriber()
            async with sim_link(headset.address, link_options) as link:
                info = link.info
                progress(f"connected to virtual headset {headset.name} ({info.mic_codec}, MTU {info.mtu})")
                session = Session.from_engines(
                    engines, link, config, hub=hub, earcons_enabled=options.earcons, mode=options.mode
                )
                session_task = asyncio.create_task(session.run(), name="demo-session")
                recording = headset.start_recording(record_path)
                turns: list[DemoTurn] = []
                try:
                    await asyncio.sleep(0.5)
                    for n, (said, pcm) in enumerate(scripted, 1):
                        turn = DemoTurn(said)
                        turns.append(turn)
                        await headset.mic.say(pcm)
                        try:
                            await _collect_turn(
                                events, turn, session_task, turn_limit_s(config), options.as_json
                            )
                        except TimeoutError:
                            log.warning("turn %d: no reply within %.0f s", n, turn_limit_s(config))
                            print(f"turn {n}: no reply within {turn_limit_s(config):.0f} s", flush=True)
                            continue
                        # The reply has played out: read this turn's latency off the recording so far.
                        measured = voice_to_voice(recording.left, recording.right)
                        if len(measured) >= n:
                            turn.voice_to_voice_ms = measured[n - 1].latency_ms
                            turn.answered_early = measured[n - 1].answered_early
                        if options.as_json:
                            row = {"turn": n, **turn.as_dict(), "link": link.counters()}
                            print(json.dumps(row), flush=True)
                        else:
                            print(_format_turn(n, turn), flush=True)
                        await asyncio.sleep(options.pause_s)
                    if options.wait_timers:
                        await _wait_for_timers(session, events, options.as_json)
                finally:
                    headset.stop_recording()
                    await cancel_and_wait(session_task)
                counters = link.counters()
        _report(turns, options, record_path, counters)
        if options.record is None:
            record_path.unlink(missing_ok=True)
        return turns
    finally:
        await engines.aclose()


async def _collect_turn(
    events: asyncio.Queue,
    turn: DemoTurn,
    session_task: asyncio.Task,
    limit_s: float,
    as_json: bool = False,
) -> None:
    """Wait for this turn's transcript, reply and timings (the timings event closes a turn); speech heard
    meanwhile that was not addressed to the assistant (wake mode) is reported as it comes."""
    async with asyncio.timeout(limit_s):
        while True:
            get = asyncio.ensure_future(events.get())
            try:
                done, _ = await asyncio.wait({get, session_task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not get.done():
                    get.cancel()
            if session_task in done:
                get.cancel()
                session_task.result()  # raises the session's error
                raise RuntimeError("the session stopped")
            event = get.result()
            if isinstance(event, TranscriptEvent):
                turn.transcript = event.text
            elif isinstance(event, ReplyEvent):
                turn.reply = event.text
                turn.interrupted = event.interrupted
            elif isinstance(event, Unaddressed):
                _print_unaddressed(event, as_json)
            elif isinstance(event, TurnTimings):
                turn.timings = event
                return


def _print_unaddressed(event: Unaddressed, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"addressed": False, "audio_s": event.audio_s}), flush=True)
    else:
        print(f"(heard {event.audio_s:.1f} s of speech not addressed to the assistant: ignored)", flush=True)


async def _wait_for_timers(session: Session, events: asyncio.Queue, as_json: bool) -> None:
    timers = session.skills_context.timers.list()
    if not timers:
        return
    wait = max(t.remaining_s() for t in timers) + 8.0
    if not as_json:
        print(f"(waiting {wait - 8.0:.0f} s for the timer to ring)", flush=True)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            while True:
                event = await events.get()
                if isinstance(event, ReplyEvent) and event.intent == "announcement":
                    if as_json:
                        print(json.dumps({"announcement": event.text}), flush=True)
                    else:
                        print(f"timer rang: {event.text}", flush=True)
                    return


def _report(turns: list[DemoTurn], options: DemoOptions, record_path: Path, counters: dict[str, int]) -> None:
    if options.as_json:
        return
    print()
    values = [t.voice_to_voice_ms for t in turns if t.voice_to_voice_ms is not None]
    if values:
        print(f"voice-to-voice median {statistics.median(values):.0f} ms over {len(values)} turns")
    print(
        f"link: {counters['packets_received']} packets, {counters['packets_lost']} lost, "
        f"{counters['packets_duplicate']} duplicate, {counters['packets_reordered']} reordered, "
        f"{counters['frames_concealed']} frames concealed"
    )
    if options.record is not None:
        print(f"recording (left: wearer, right: headset playback): {record_path}")
