#!/usr/bin/env python3
"""Open-ear acoustics: self-interruption and ERLE under echo, voice barge-in, and wake mode with bystanders.

Everything runs through a virtual open-ear headset (no on-board AEC) whose mic hears its own speaker
(firmware_sim's echo path), over the simulated BLE link, into the real session (tiny.en, skills, piper).

- ``echo``: hands-free, echo at each --echo-levels dB, --replies replies each (questions with short and
  long answers). Self-interruptions = replies cut by the service's own voice barge-in, plus turns made of
  echo (more transcripts than questions). ERLE = mic energy in / out of the host canceller over the frames
  where only the reply's echo reached the mic (the session speaking, the wearer silent).
- ``bargein``: echo at -6 dB; a long reply plays; 0.4-1.4 s into it the wearer speaks a real recording
  (tests/data/speech, the shorter files). Stop latency = the headset's ABORTED time - the first voiced
  sample of the interruption (within 30 dB of its peak: a breath or a noise floor counts), on the headset
  clock; and the same from the speech onset (the first window Silero calls speech in the clean file). WER
  of the interrupting speech (double talk at its start) against the manifest, next to the same files
  transcribed clean. A reply that stopped before the wearer spoke (a self-interruption on its echo) is
  counted apart and the trial skipped, so its later abort is not read as a stop.
- ``wake``: wake mode, echo at --wake-echo-db (-12 dB; "off": a headset that cancels its echo on board, so
  the host canceller is out of the picture); bystanders (every file of tests/data/speech, looped, 2-6 s gaps)
  at each --bystander-levels dB relative to the wearer; the wearer says --addressed requests that start
  with "hey companion" (three requests with distinct skills, so a reply tells whose speech it answered).
  Each answered turn is attributed by its speech span against the ground truth: a reply to a turn that
  overlaps no request of the wearer is a reply to a bystander (by a false wake-up, or a bystander taking
  the follow-up window); misses = requests without a reply of their intent (a wrong reply to the wearer,
  e.g. a garbled transcript, is a miss and counted apart).

    .venv/bin/python scripts/bench_acoustics.py [--part echo|bargein|wake|all] [--replies 30]
        [--trials 30] [--addressed 20] [--wake-echo-db -12|off] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from companion.config import load_config
from companion.engines import Engines
from companion.events import EventHub, ReplyEvent, StateChanged, TranscriptEvent, TurnTimings, Unaddressed
from companion.link.sim import sim_link
from companion.protocol import DeviceState, PlaybackEvent
from companion.session import Session
from companion.stt.text import word_errors
from companion.tts.base import synthesize
from tests.fixtures.speech import load_manifest

ECHO_QUESTIONS = (
    "What can you do?",
    "What is the date today?",
    "What time is it?",
    "How much battery is left?",
)
WAKE_REQUESTS = {
    "Hey companion, what time is it?": "time",
    "Hey companion, what is the date today?": "date",
    "Hey companion, how much battery is left?": "battery",
}


def describe(event: object) -> str:
    """One line for the benchmark's log: the event's kind and what it says (text cut short)."""
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}  # type: ignore[arg-type]
    fields = {k: v for k, v in fields.items() if k not in ("device", "audio")}
    text = ", ".join(f"{k}={str(v)[:50]!r}" if isinstance(v, str) else f"{k}={v}" for k, v in fields.items())
    return f"{type(event).__name__}({text})"


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(np.array(values, dtype=float), q)) if values else None


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Rig:
    """A virtual open-ear headset, its link and a session; the session's events in a queue."""

    def __init__(self, world, engines, config, mode: str = "hands_free", **headset) -> None:
        from firmware_sim import HeadsetConfig

        self.engines, self.config, self.mode = engines, config, mode
        self.headset = world.add_headset(HeadsetConfig(name=f"Bench {id(self) % 1000}", seed=7, **headset))
        self.hub = EventHub()
        self.events = self.hub.subscriber()
        self.frames: list[tuple[float, float, bool]] = []  # (energy in, energy out, echo only)
        self.seen: list[str] = []  # what the session published lately, to say what happened on a timeout

    async def __aenter__(self) -> Rig:
        self._link_cm = sim_link(self.headset.address)
        self.link = await self._link_cm.__aenter__()
        e = self.engines
        self.session = Session.from_engines(
            e, self.link, self.config, hub=self.hub, earcons_enabled=False, mode=self.mode
        )
        aec = self.session.mic.canceller()  # made now so that its frames can be measured
        if aec is not None:  # measure the canceller where only echo reaches the mic
            process = aec.process

            def measured(pcm: np.ndarray, t: float, track=None) -> np.ndarray:
                out = process(pcm, t, track)
                if aec.active(t, track):
                    x, y = pcm.astype(np.float64), out.astype(np.float64)
                    echo_only = self.session.state is DeviceState.SPEAKING and not self.headset.mic.speaking
                    self.frames.append((float(np.dot(x, x)), float(np.dot(y, y)), echo_only))
                return out

            aec.process = measured  # type: ignore[method-assign]
        barge_in = self.session.barge_in
        self.t_barge = 0.0

        async def timed_barge_in(why: str, *, clear: bool = True) -> None:
            self.t_barge = self.headset.clock()
            await barge_in(why, clear=clear)

        self.session.barge_in = timed_barge_in  # type: ignore[method-assign]
        self.task = asyncio.create_task(self.session.run())
        self.recording = self.headset.start_recording()
        await asyncio.sleep(0.5)
        return self

    async def __aexit__(self, *exc) -> None:
        self.headset.stop_recording()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self._link_cm.__aexit__(None, None, None)

    async def next(self, kind, timeout: float = 60.0, where=lambda e: True):
        async with asyncio.timeout(timeout):
            while True:
                event = self.note(await self.events.get())
                if isinstance(event, kind) and where(event):
                    return event

    def note(self, event):
        """Keep the event in the recent log (`seen`) and return it."""
        self.seen.append(f"{self.headset.clock():.2f} {describe(event)}")
        del self.seen[:-16]
        return event

    def explain(self, what: str) -> None:
        """Log what went wrong in a trial, with the session's state and what it published lately."""
        log(f"{what} (state {self.session.state.name.lower()})")
        for line in self.seen:
            log(f"    seen: {line}")

    def erle(self) -> dict[str, float | None]:
        sel = [(a, b) for a, b, only in self.frames if only and a > 0]
        if not sel:
            return {"erle_db": None, "residual_dbfs": None, "frames": 0}
        e_in = sum(a for a, _ in sel)
        e_out = sum(b for _, b in sel)
        n = len(sel) * 320
        return {
            "erle_db": round(10 * np.log10(e_in / max(e_out, 1e-9)), 1),
            "echo_dbfs": round(10 * np.log10(e_in / n / 32768**2), 1),
            "residual_dbfs": round(10 * np.log10(max(e_out, 1e-9) / n / 32768**2), 1),
            "frames": len(sel),
        }


async def bench_echo(
    engines, config, levels: list[float], replies: int, noise_snr_db: float | None = None
) -> list[dict]:
    from firmware_sim import SimWorld

    voices = {q: await synthesize(engines.tts, q) for q in ECHO_QUESTIONS}
    out = []
    for level in levels:
        async with (
            SimWorld() as world,
            Rig(world, engines, config, echo_db=level, noise_snr_db=noise_snr_db) as rig,
        ):
            cut = transcripts = unanswered = 0
            for i in range(replies):
                q = ECHO_QUESTIONS[i % len(ECHO_QUESTIONS)]
                await rig.headset.mic.say(voices[q])
                while True:
                    try:
                        ev = await rig.next((TranscriptEvent, ReplyEvent, TurnTimings), timeout=20.0)
                    except TimeoutError:
                        unanswered += 1
                        log(f"echo {level:+.0f} dB: no reply to {q!r} ({i}), state {rig.session.state}")
                        break
                    if isinstance(ev, TranscriptEvent):
                        transcripts += 1
                        log(f"  {i}: heard {ev.text!r}")
                    elif isinstance(ev, ReplyEvent):
                        cut += ev.interrupted
                        if ev.interrupted:
                            log(f"  {i}: reply cut: {ev.text[:60]!r}")
                    else:
                        break
                await asyncio.sleep(1.2)  # the reply's echo tail dies out before the next question
            await asyncio.sleep(1.0)
            while not rig.events.empty():
                ev = rig.events.get_nowait()
                transcripts += isinstance(ev, TranscriptEvent)
            row = {
                "echo_db": level,
                "noise_snr_db": noise_snr_db,
                "replies": replies,
                "self_interruptions": cut + max(0, transcripts - replies),
                "replies_cut": cut,
                "turns_from_echo": max(0, transcripts - replies),
                "unanswered": unanswered,
                **rig.erle(),
            }
        log(f"echo {level:+.0f} dB: {row}")
        out.append(row)
    return out


def first_voiced(pcm: np.ndarray, below_peak_db: float = 30.0) -> int:
    """The first sample of the first 10 ms block within ``below_peak_db`` of the loudest block: where
    the speech (or the breath before it) starts, whatever the recording's level and noise floor."""
    frames = pcm[: len(pcm) // 160 * 160].astype(np.float64).reshape(-1, 160)
    rms = np.sqrt((frames**2).mean(axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-below_peak_db / 20))
    return int(loud[0]) * 160 if len(loud) else 0


def speech_onset(pcm: np.ndarray) -> int:
    """The first sample of the first 32 ms window that Silero scores as speech (p >= 0.5) in the clean
    recording (or :func:`first_voiced` if none is): where a speech detector with no echo to fight first
    hears the voice. Unlike
    :func:`first_voiced` it skips a breath, a click or a noise floor within 30 dB of the peak, which no
    speech detector (and no listener) takes for the start of speech."""
    from companion.audio.vad import WINDOW, SileroVAD

    probs = np.array(list(SileroVAD(batch_quiet=False).process(pcm)))
    hit = np.flatnonzero(probs >= 0.5)
    return int(hit[0]) * WINDOW if len(hit) else first_voiced(pcm)  # a whisper: no window is speech


def active_dbfs(pcm: np.ndarray, below_peak_db: float = 30.0) -> float:
    """The speech level: the median level of the 10 ms blocks within ``below_peak_db`` of the loudest."""
    frames = pcm[: len(pcm) // 160 * 160].astype(np.float64).reshape(-1, 160)
    db = 10 * np.log10((frames**2).mean(axis=1) / 32768**2 + 1e-12)
    return float(np.median(db[db > db.max() - below_peak_db]))


def at_level(pcm: np.ndarray, dbfs: float | None) -> np.ndarray:
    """``pcm`` scaled so its speech level is ``dbfs`` (None: as recorded)."""
    if dbfs is None:
        return pcm
    gain = 10 ** ((dbfs - active_dbfs(pcm)) / 20)
    return np.clip(np.round(pcm.astype(np.float64) * gain), -32768, 32767).astype(np.int16)


async def bench_bargein(
    engines,
    config,
    trials: int,
    echo_db: float = -6.0,
    wearer_dbfs: float | None = -26.0,
    noise_snr_db: float | None = None,
) -> dict:
    """``wearer_dbfs``: the interrupting speech's level at the mic (the recordings range from -19 to
    -58 dBFS; a wearer 30 dB below the reply's echo cannot be told from it). None plays them as recorded."""
    from firmware_sim import SimWorld

    speech = [u for u in load_manifest() if u.seconds <= 6.0]
    rng = random.Random(3)
    long_q = await synthesize(engines.tts, "What can you do?")
    latencies: list[float] = []
    from_speech: list[float] = []  # the same stops, from the speech onset (`speech_onset`)
    errors = words = clean_errors = 0
    stopped = no_reply = cut_early = 0
    rows = []
    async with (
        SimWorld() as world,
        Rig(world, engines, config, echo_db=echo_db, noise_snr_db=noise_snr_db) as rig,
    ):
        for i in range(trials):
            utt = speech[i % len(speech)]
            pcm = at_level(utt.pcm(), wearer_dbfs)
            while not rig.events.empty():  # a late answer to the last trial must not be read as this one's
                rig.note(rig.events.get_nowait())
            await rig.headset.mic.say(long_q)
            await rig.next(StateChanged, where=lambda e: e.state == "speaking")
            await asyncio.sleep(rng.uniform(0.4, 1.4))
            if rig.session.state is not DeviceState.SPEAKING:  # the reply stopped before the wearer spoke
                rig.explain(f"barge-in {i + 1}/{trials}: the reply stopped before the wearer spoke")
                cut_early += 1
                await rig.session.barge_in("bench: next trial")
                await asyncio.sleep(1.5)
                continue
            n_events = len(rig.headset.speaker.events)
            t0 = rig.headset.clock()
            saying = asyncio.create_task(rig.headset.mic.say(pcm))
            rig.t_barge = 0.0
            try:
                first = await rig.next(ReplyEvent, timeout=30.0, where=lambda e: e.intent == "help")
            except TimeoutError:  # e.g. the question misheard, so its reply was not the help skill's
                rig.explain(f"barge-in {i + 1}/{trials}: no reply to the question in 30 s")
                no_reply += 1
                await saying
                await rig.session.barge_in("bench: next trial")
                await asyncio.sleep(1.5)
                continue
            t_barge = rig.t_barge
            if first.interrupted and not t_barge:  # cut by something else, e.g. a turn that replaced it
                rig.explain(f"barge-in {i + 1}/{trials}: the reply was cut, but not by the voice barge-in")
            try:  # a recording that gives no words (mfa_15, falsetto) makes no turn
                heard = (await rig.next(TranscriptEvent, timeout=20.0)).text
            except TimeoutError:
                heard = ""
            end = await saying
            if heard:  # let the answer start (or the turn end) before stopping it
                try:
                    started = lambda e: e.state in ("speaking", "idle")  # noqa: E731
                    await rig.next(StateChanged, timeout=10.0, where=started)
                except TimeoutError:
                    rig.explain(f"barge-in {i + 1}/{trials}: no answer to {heard!r} started in 10 s")
            await rig.session.barge_in("bench: next trial")  # the answer to the interruption is not measured
            t_start = end - len(pcm) / 16000
            onset = t_start + first_voiced(pcm) / 16000
            voice = t_start + speech_onset(pcm) / 16000
            aborted = [e for e in rig.headset.speaker.events[n_events:] if e.event is PlaybackEvent.ABORTED]
            lat = (aborted[0].t - onset) * 1000 if aborted and first.interrupted else None
            lat_voice = (aborted[0].t - voice) * 1000 if aborted and first.interrupted else None
            if aborted:
                log(
                    f"  onset {onset:.3f} (say {t_start:.3f} + {first_voiced(pcm) / 16000:.3f}), "
                    f"speech {voice:.3f}, "
                    f"barge-in {t_barge:.3f}, aborted {aborted[0].t:.3f} (headset clock)"
                )
            if lat is not None and lat_voice is not None:
                stopped += 1
                latencies.append(lat)
                from_speech.append(lat_voice)
            e, n = word_errors(utt.transcript, heard)
            clean = await engines.stt.atranscribe(pcm)
            ce, _ = word_errors(utt.transcript, clean.text)
            errors, words, clean_errors = errors + e, words + n, clean_errors + ce
            rows.append(
                {
                    "file": utt.path.name,
                    "stop_ms": lat,
                    "stop_ms_speech": lat_voice,
                    "heard": heard,
                    "errors": e,
                    "words": n,
                }
            )
            log(
                f"barge-in {i + 1}/{trials} {utt.path.name}: stop {lat} ms ({lat_voice} from speech), "
                f"errors {e}/{n} (clean {ce}), said at {t0:.2f}"
            )
            while rig.session.state in (DeviceState.SPEAKING, DeviceState.THINKING):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)
    within = sum(1 for v in latencies if v <= 300)
    within_speech = sum(1 for v in from_speech if v <= 300)
    return {
        "echo_db": echo_db,
        "wearer_dbfs": wearer_dbfs,
        "noise_snr_db": noise_snr_db,
        "trials": trials,
        "stopped": stopped,
        "question_not_answered": no_reply,
        "reply_stopped_before_the_wearer_spoke": cut_early,  # a self-interruption, or the reply was short
        "stop_ms_p50": pct(latencies, 50),
        "stop_ms_p95": pct(latencies, 95),
        "stop_ms_max": max(latencies) if latencies else None,
        "within_300ms": within,
        "within_300ms_pct": round(100 * within / trials, 1),
        "speech_stop_ms_p50": pct(from_speech, 50),
        "speech_stop_ms_p95": pct(from_speech, 95),
        "speech_within_300ms": within_speech,
        "speech_within_300ms_pct": round(100 * within_speech / trials, 1),
        "wer_double_talk": round(100 * errors / max(words, 1), 2),
        "wer_clean_same_files": round(100 * clean_errors / max(words, 1), 2),
        "rows": rows,
    }


def _drain_wake(rig: Rig, pending: list[str], replies: list[tuple[int, str]]) -> float:
    """Pair each reply with its turn (the TurnTimings after it); the seconds of unaddressed speech."""
    unaddressed_s = 0.0
    while not rig.events.empty():
        ev = rig.events.get_nowait()
        if isinstance(ev, ReplyEvent):
            pending.append(ev.intent)
        elif isinstance(ev, TurnTimings) and pending:
            replies.append((ev.turn, pending.pop(0)))
        elif isinstance(ev, Unaddressed):
            unaddressed_s += ev.audio_s
    return unaddressed_s


def _overlap(a: tuple[float, float], spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(a[1], b[1]) - max(a[0], b[0])) for b in spans)


async def bench_wake(
    engines, config, levels: list[float], addressed: int, echo_db: float | None = -12.0
) -> list[dict]:
    """Wake mode with bystanders; `echo_db` None: the headset cancels its own echo (no echo reaches the
    host, whose canceller stays idle).

    Each answered turn is attributed by its audio span (speech start to end, headset clock) against the
    ground truth: overlapping the wearer's request by >= 0.3 s makes it the wearer's (answered if the
    reply's intent is the request's, else a wrong reply to the wearer); otherwise it is a bystander's.
    """
    from firmware_sim import SimWorld

    bystanders = tuple(str(u.path) for u in load_manifest())
    requests = list(WAKE_REQUESTS)
    voices = {q: await synthesize(engines.tts, q) for q in requests}
    rng = random.Random(5)
    out = []
    for level in levels:
        async with (
            SimWorld() as world,
            Rig(
                world, engines, config, mode="wake", echo_db=echo_db, has_aec=echo_db is None,
                bystanders=bystanders, bystander_db=level, bystander_gap_s=(2.0, 6.0),
            ) as rig,
        ):  # fmt: skip
            session = rig.session
            spans: dict[int, tuple[float, float, str]] = {}  # turn -> (start, end of speech, how addressed)
            on_turn = session._on_turn

            async def recorded(turn, on_turn=on_turn, session=session, spans=spans) -> None:
                c = session.addressing.counters
                before, wakes, follows = session.turns, c.wake_ups, c.follow_ups
                await on_turn(turn)
                if session.turns > before:
                    how = "phrase" if c.wake_ups > wakes else "follow_up" if c.follow_ups > follows else ""
                    spans[session.turns] = (turn.t_start, turn.t_end_of_speech, how)

            session._on_turn = recorded  # type: ignore[method-assign]
            said: list[tuple[float, float, str]] = []  # the wearer's requests: (start, end, intent)
            replies: list[tuple[int, str]] = []  # (turn, intent)
            pending: list[str] = []
            unaddressed_s = 0.0

            t_begin = rig.headset.clock()
            for i in range(addressed):
                q = requests[i % len(requests)]
                await asyncio.sleep(rng.uniform(3.0, 6.0))
                t0 = rig.headset.clock()
                await rig.headset.mic.say(voices[q])
                said.append((t0, rig.headset.clock(), WAKE_REQUESTS[q]))
                await asyncio.sleep(4.0)  # the reply (if any) plays
                unaddressed_s += _drain_wake(rig, pending, replies)
            await asyncio.sleep(3.0)
            unaddressed_s += _drain_wake(rig, pending, replies)
            counters = session.addressing.counters
            truth = rig.recording.truth() if rig.recording is not None else {}
            bystander_s = sum(
                (s["end"] or 0) - s["start"]
                for s in truth.get("segments", [])  # type: ignore[union-attr]
                if s["source"] == "bystander" and s["end"] is not None
            )
            answered: set[int] = set()
            to_bystanders = wrong_to_wearer = false_wakes = bystander_follow_ups = 0
            for turn, intent in replies:
                start, end, how = spans.get(turn, (0.0, 0.0, ""))
                hits = [(_overlap((start, end), [(a, b)]), k) for k, (a, b, _) in enumerate(said)]
                best, k = max(hits) if hits else (0.0, -1)
                if best < 0.3:
                    to_bystanders += 1
                    false_wakes += how == "phrase"
                    bystander_follow_ups += how == "follow_up"
                elif said[k][2] == intent:
                    answered.add(k)
                else:
                    wrong_to_wearer += 1
            n_answered = len(answered)
            row = {
                "bystander_db": level,
                "echo_db": "off (on-board AEC)" if echo_db is None else echo_db,
                "load_after": [float(x) for x in np.round(np.array(os_load()), 2)],
                "addressed": addressed,
                "answered": n_answered,
                "misses_per_100": round(100 * (addressed - n_answered) / addressed, 1),
                "replies_to_bystanders": to_bystanders,
                "of_them_false_wakeups": false_wakes,
                "of_them_follow_ups": bystander_follow_ups,
                "wrong_replies_to_wearer": wrong_to_wearer,
                "bystander_speech_s": round(bystander_s, 1),
                "session_s": round(rig.headset.clock() - t_begin, 1),
                "false_wakeups": false_wakes,
                "false_wakeups_per_hour": round(false_wakes * 3600 / max(bystander_s, 1e-9), 1),
                "unaddressed_utterances": counters.unaddressed,
                "unaddressed_s": round(unaddressed_s, 1),
                "counters": counters.as_dict(),
            }
        log(f"wake, bystanders {level:+.0f} dB: {row}")
        out.append(row)
    return out


async def run(args) -> dict:
    config = load_config()
    config.session.echo_cancel = "auto"  # the default; set here so an environment override cannot turn it off
    engines = await Engines.load(config, log)
    result: dict[str, object] = {"machine_load": list(np.round(np.array(os_load()), 2))}
    t0 = time.monotonic()
    try:
        if args.part in ("echo", "all"):
            result["echo"] = await bench_echo(engines, config, args.echo_levels, args.replies, args.noise_snr)
        if args.part in ("bargein", "all"):
            wearer = None if args.wearer_dbfs == "recorded" else float(args.wearer_dbfs)
            result["bargein"] = await bench_bargein(
                engines, config, args.trials, wearer_dbfs=wearer, noise_snr_db=args.noise_snr
            )
        if args.part in ("wake", "all"):
            result["wake"] = await bench_wake(
                engines, config, args.bystander_levels, args.addressed, args.wake_echo_db
            )
    finally:
        await engines.aclose()
    result["wall_s"] = round(time.monotonic() - t0, 1)
    result["machine_load_after"] = list(np.round(np.array(os_load()), 2))
    return result


def os_load() -> tuple[float, float, float]:
    import os

    return os.getloadavg()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["echo", "bargein", "wake", "all"], default="all")
    p.add_argument("--echo-levels", type=float, nargs="+", default=[-6.0, -12.0, -20.0])
    p.add_argument("--replies", type=int, default=30)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument(
        "--wearer-dbfs",
        default="-26",
        help="bargein: the interrupting speech's level at the mic in dBFS, or 'recorded' (default -26)",
    )
    p.add_argument(
        "--noise-snr",
        type=float,
        default=None,
        help="echo and bargein: Gaussian noise this many dB under the wearer's speech level (default: none)",
    )
    p.add_argument("--bystander-levels", type=float, nargs="+", default=[0.0, -6.0])
    p.add_argument("--addressed", type=int, default=20)
    p.add_argument(
        "--wake-echo-db",
        type=lambda v: None if v == "off" else float(v),
        default=-12.0,
        help='echo return loss for the wake part, or "off" (a headset with on-board AEC)',
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for row in result.get("echo", []):  # type: ignore[union-attr]
        print(
            f"echo {row['echo_db']:+.0f} dB: {row['self_interruptions']} self-interruptions in "
            f"{row['replies']} replies; ERLE {row['erle_db']} dB "
            f"(echo {row.get('echo_dbfs')} -> {row['residual_dbfs']} dBFS)"
        )
    b = result.get("bargein")
    if b:
        print(
            f"barge-in at {b['echo_db']:+.0f} dB echo: stopped {b['stopped']}/{b['trials']}, p50 "
            f"{b['stop_ms_p50']:.0f} ms, p95 {b['stop_ms_p95']:.0f} ms, "
            f"within 300 ms {b['within_300ms_pct']}%; from the speech onset p50 "
            f"{b['speech_stop_ms_p50']:.0f} ms, p95 {b['speech_stop_ms_p95']:.0f} ms, within 300 ms "
            f"{b['speech_within_300ms_pct']}%; "
            f"WER double talk {b['wer_double_talk']}% (same files clean {b['wer_clean_same_files']}%)"
        )
    for row in result.get("wake", []):  # type: ignore[union-attr]
        print(
            f"wake, bystanders {row['bystander_db']:+.0f} dB, echo {row['echo_db']}: "
            f"{row['replies_to_bystanders']} replies to "
            f"bystanders, {row['false_wakeups_per_hour']} false wake-ups/h ({row['bystander_speech_s']} s "
            f"of bystander speech), misses {row['misses_per_100']}/100"
        )


if __name__ == "__main__":
    main()
