#!/usr/bin/env python3
"""Voice-to-voice latency through virtual headsets, read off the headsets' conversation recordings.

Each turn: the wearer's question (synthesised with the bundled voice) is spoken into a virtual headset; the
service hears it over the simulated BLE link, answers (offline skills by default, or an OpenAI-compatible
server with --llm-url) and plays the reply on the headset. Latency = end of the wearer's speech on the
recording's left channel -> first reply audio on its right channel. The per-stage breakdown comes from the
session's turn-timing events. With --headsets K, K headsets talk at the same time in one service; CPU and
RSS of this process are sampled while they do.

    .venv/bin/python scripts/bench_v2v.py --turns 20 [--headsets 4] [--llm-url URL] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from companion.audio.v2v import voice_to_voice
from companion.config import load_config
from companion.engines import Engines
from companion.events import EventHub, TranscriptEvent, TurnTimings
from companion.link.sim import sim_link
from companion.session import Session
from companion.tts.base import synthesize

QUESTIONS = (
    "What time is it?",
    "What's the date today?",
    "How much battery is left?",
    "Turn the volume up.",
    "What day is it?",
    "Set a timer for five minutes.",
)
STAGES = (
    "end_of_turn_ms",
    "stt_done_ms",
    "llm_first_token_ms",
    "first_sentence_ms",
    "tts_first_audio_ms",
    "first_audio_sent_ms",
    "first_audio_played_ms",
)


READY_SLACK_MS = 10  # the session maps the detector's audio clock to wall time at frame granularity


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.array(values, dtype=float), q))


async def one_headset(world, engines, config, index: int, turns: int, pause_s: float, voices) -> dict:
    from firmware_sim import HeadsetConfig

    hs = world.add_headset(HeadsetConfig(name=f"Bench {index}"))
    hub = EventHub()
    events = hub.subscriber()
    async with sim_link(hs.address) as link:
        session = Session.from_engines(engines, link, config, hub=hub, earcons_enabled=False)
        task = asyncio.create_task(session.run())
        recording = hs.start_recording()
        timings: list[TurnTimings] = []
        heard: list[list[str]] = []  # the transcripts of each question (more than one if it was split)
        try:
            await asyncio.sleep(0.5 + 0.37 * index)  # stagger the headsets a little, as people are
            for n in range(turns):
                await hs.mic.say(voices[n % len(voices)])
                heard.append([])
                async with asyncio.timeout(60):
                    while True:
                        event = await events.get()
                        if isinstance(event, TranscriptEvent):
                            heard[-1].append(event.text)
                        elif isinstance(event, TurnTimings):
                            timings.append(event)
                            break
                await asyncio.sleep(pause_s)
        finally:
            hs.stop_recording()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    measured = voice_to_voice(recording.left, recording.right)
    per_turn = []
    for n, (texts, t) in enumerate(zip(heard, timings, strict=False)):
        m = measured[n] if n < len(measured) else None  # the recording's n-th utterance
        per_turn.append(
            {
                "said": QUESTIONS[n % len(QUESTIONS)],
                "heard": " | ".join(texts),
                "latency_ms": m.latency_ms if m else None,
                "answered_early": bool(m.answered_early) if m else None,
                "end_of_turn_ms": t.end_of_turn_ms,
                "speculative": t.speculative,
            }
        )
    return {"timings": timings, "v2v": measured, "counters": link.counters(), "per_turn": per_turn}


async def run(args) -> dict:
    import psutil

    from firmware_sim import SimWorld

    config = load_config()  # the default config, with COMPANION_* environment overrides
    if args.llm_url:
        config.llm.backend = "openai"
        config.llm.base_url = args.llm_url
        config.llm.model = args.llm_model
        config.llm.max_tokens = 30
    engines = await Engines.load(config, lambda m: print(m, file=sys.stderr))
    voices = [await synthesize(engines.tts, q) for q in QUESTIONS]
    proc = psutil.Process()
    proc.cpu_percent(None)
    rss: list[float] = []
    sampling = True

    async def sample() -> None:
        while sampling:
            rss.append(proc.memory_info().rss / 2**20)
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    t0 = time.monotonic()
    try:
        async with SimWorld() as world:
            results = await asyncio.gather(
                *(
                    one_headset(world, engines, config, i, args.turns, args.pause, voices)
                    for i in range(args.headsets)
                )
            )
    finally:
        sampling = False
        await sampler
        stt_paths = engines.stt.stats() if hasattr(engines.stt, "stats") else {}
        await engines.aclose()
    wall = time.monotonic() - t0
    cpu = proc.cpu_percent(None)
    v2v = [t.latency_ms for r in results for t in r["v2v"] if t.latency_ms is not None]
    early = int(sum(bool(t.answered_early) for r in results for t in r["v2v"]))
    unanswered = int(sum(t.reply_start_s is None for r in results for t in r["v2v"]))
    stages = {}
    for stage in STAGES:
        vals = [getattr(t, stage) for r in results for t in r["timings"] if getattr(t, stage) is not None]
        stages[stage] = {"p50": pct(vals, 50), "p95": pct(vals, 95), "n": len(vals)}
    stt = [t.stt_ms for r in results for t in r["timings"] if t.stt_ms is not None]
    stt_after = [t.stt_done_ms for r in results for t in r["timings"] if t.stt_done_ms is not None]
    # The transcript that ended the turn was ready inside the endpointer's silence window (made at the pause).
    ready = [ms <= config.turn.end_silence_ms + READY_SLACK_MS for ms in stt_after]
    return {
        "headsets": args.headsets,
        "turns": len(v2v),
        "backend": "openai" if args.llm_url else "skills",
        "voice_to_voice_ms": {
            "p50": pct(v2v, 50),
            "p95": pct(v2v, 95),
            "min": min(v2v, default=None),
            "max": max(v2v, default=None),
        },
        "answered_early": early,
        "unanswered": unanswered,
        "stages_ms": stages,
        "stt_ms": {"p50": pct(stt, 50), "p95": pct(stt, 95)},
        "stt_final_after_end_ms": {"p50": pct(stt_after, 50), "p95": pct(stt_after, 95)},
        "stt_ready_in_silence_share": round(sum(ready) / len(ready), 3) if ready else None,
        "stt_paths": stt_paths,
        "speculative_turns": sum(t.speculative for r in results for t in r["timings"]),
        "cpu_percent_of_one_core": round(cpu, 1),
        "rss_mb": {
            "max": round(max(rss), 1) if rss else None,
            "median": round(statistics.median(rss), 1) if rss else None,
        },
        "wall_s": round(wall, 1),
        "packets_lost": sum(r["counters"]["packets_lost"] for r in results),
        "per_turn": [dict(t, headset=i) for i, r in enumerate(results) for t in r["per_turn"]],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--turns", type=int, default=12, help="turns per headset (default 12)")
    p.add_argument("--headsets", type=int, default=1, help="headsets talking at once (default 1)")
    p.add_argument("--pause", type=float, default=1.0, help="seconds between a reply and the next question")
    p.add_argument("--llm-url", help="answer with this OpenAI-compatible server instead of the skills")
    p.add_argument("--llm-model", default="default")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    args = p.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    print(json.dumps(result, indent=2))
    v = result["voice_to_voice_ms"]
    print(
        f"\nvoice-to-voice, {result['turns']} turns, {result['headsets']} headset(s), {result['backend']}: "
        f"p50 {v['p50']:.0f} ms, p95 {v['p95']:.0f} ms; answered early {result['answered_early']}, "
        f"unanswered {result['unanswered']}"
    )
    a, share = result["stt_final_after_end_ms"], result["stt_ready_in_silence_share"]
    if a["p50"] is not None:
        print(
            f"STT final after the end of speech: p50 {a['p50']:.0f} ms, p95 {a['p95']:.0f} ms; transcript "
            f"ready inside the silence window in {100 * share:.0f}% of turns; passes {result['stt_paths']}"
        )
    print(f"{'stage':<24}{'p50 ms':>10}{'p95 ms':>10}")
    for stage, s in result["stages_ms"].items():
        if s["p50"] is not None:
            print(f"{stage:<24}{s['p50']:>10.0f}{s['p95']:>10.0f}")


if __name__ == "__main__":
    main()
