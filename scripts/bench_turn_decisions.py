#!/usr/bin/env python3
"""What the turn detector decides on real speech, with the machine's speed taken out.

Each recording is fed frame by frame on its own audio clock, and after every frame the detector's
transcription and audio-model jobs are awaited: as if STT and model answered instantly. What is left is the
decision itself: how many turns each recording became (an expected single turn split in two is an early
answer), and how long after the end of speech each turn ended (the silence the detector chose to wait).
Text cues only, and text plus Smart Turn, side by side; the skills decide what is "recognised" (none of this
speech is a command, as for questions meant for an LLM). The model's cost per call is measured on the side
(wall and thread CPU time; the CPU figure is the one to compare across loaded runs).

    .venv/bin/python scripts/bench_turn_decisions.py [--set use|all] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_pipecat import use_speech  # noqa: E402

from companion.audio.vad import Endpointer  # noqa: E402
from companion.stt.smart_turn import SmartTurn  # noqa: E402
from companion.stt.turn import Turn, TurnDetector  # noqa: E402
from companion.stt.whisper import WhisperSTT  # noqa: E402
from tests.fixtures.speech import load_manifest  # noqa: E402


class TimedModel:
    """The Smart Turn model, timing each call in wall and thread CPU time."""

    def __init__(self, model: SmartTurn) -> None:
        self.model = model
        self.wall_ms: list[float] = []
        self.cpu_ms: list[float] = []

    def _call(self, pcm: np.ndarray) -> float:
        t0, c0 = time.perf_counter(), time.thread_time()
        p = self.model.probability(pcm)
        self.wall_ms.append((time.perf_counter() - t0) * 1000)
        self.cpu_ms.append((time.thread_time() - c0) * 1000)
        return p

    async def aprobability(self, pcm: np.ndarray) -> float:
        return await asyncio.to_thread(self._call, pcm)


async def decide(stt: WhisperSTT, model, pcm: np.ndarray) -> list[Turn]:
    ep = Endpointer(speculate_ms=60, end_silence_ms=220, pre_roll_ms=300, tail_ms=60)
    det = TurnDetector(
        stt, ep, fallback_ms=1200, unsure_ms=1000, recognised=lambda _t: False, end_model=model
    )
    det._clock = lambda: 0.0  # the audio clock only
    audio = np.concatenate([np.zeros(4800, np.int16), pcm, np.zeros(40000, np.int16)])
    turns: list[Turn] = []
    for i in range(0, len(audio), 320):
        det.feed(audio[i : i + 320], i / 16000)
        while det._tasks:
            await asyncio.gather(*list(det._tasks), return_exceptions=True)
        while not det._queue.empty():
            event = det._queue.get_nowait()
            if isinstance(event, Turn):
                turns.append(event)
    await det.aclose()
    return turns


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


async def run(args) -> dict:
    stt = WhisperSTT()
    stt.load()
    found = SmartTurn.shared()
    if found is None:
        raise SystemExit("the Smart Turn model is not installed: python -m companion.stt.smart_turn install")
    model = TimedModel(found)
    found.probability(np.zeros(1600, np.int16))  # load the session outside the timing
    if args.set == "use":
        items = [(u.path.name, u.kind, u.path) for u in use_speech()]
    else:
        items = [(u.path.name, "human", u.path) for u in load_manifest()]
    from companion.audio.wav import load_wav

    out: dict = {"set": args.set, "recordings": len(items)}
    for label, end_model in (("text", None), ("text+audio", model)):
        rows = []
        for name, kind, path in items:
            turns = await decide(stt, end_model, load_wav(path))
            rows.append(
                {
                    "file": name,
                    "kind": kind,
                    "turns": [
                        {
                            "reason": t.reason,
                            "wait_ms": round((t.t_end_of_turn - t.t_end_of_speech) * 1000),
                            "p": None if t.p_complete is None else round(t.p_complete, 2),
                            "text": t.text,
                        }
                        for t in turns
                    ],
                }
            )
            brief = [(t["reason"], t["wait_ms"], t["p"]) for t in rows[-1]["turns"]]
            print(label, name, brief, file=sys.stderr)
        last = [r["turns"][-1]["wait_ms"] for r in rows if r["turns"]]
        out[label] = {
            "split": sum(len(r["turns"]) > 1 for r in rows),
            "no_turn": sum(not r["turns"] for r in rows),
            "end_wait_ms": {"p50": pct(last, 50), "p95": pct(last, 95)},
            "ended_at_the_silence": sum(w <= 300 for w in last),
            "rows": rows,
        }
    out["model_ms_per_call"] = {
        "calls": len(model.wall_ms),
        "wall_p50": pct(model.wall_ms, 50),
        "cpu_p50": pct(model.cpu_ms, 50),
        "cpu_p95": pct(model.cpu_ms, 95),
    }
    stt.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=("use", "all"), default="use")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    for label in ("text", "text+audio"):
        r = result[label]
        print(
            f"{label:<11} recordings {result['recordings']}: split {r['split']}, no turn {r['no_turn']}, "
            f"ended at the silence {r['ended_at_the_silence']}, end-of-turn wait after the last words "
            f"p50 {r['end_wait_ms']['p50']} ms, p95 {r['end_wait_ms']['p95']} ms"
        )
    m = result["model_ms_per_call"]
    print(f"Smart Turn: {m['calls']} calls, CPU p50 {m['cpu_p50']} ms, p95 {m['cpu_p95']};", end=" ")
    print(f"wall p50 {m['wall_p50']} ms")


if __name__ == "__main__":
    main()
