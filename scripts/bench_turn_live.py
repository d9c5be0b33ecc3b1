#!/usr/bin/env python3
"""The turn detector in real time on real speech: how soon the words and the end of the turn come.

`bench_turn_decisions.py` takes the machine's speed out; this one keeps it and leaves everything else out
(no link, no codec, no TTS). Each recording of the real-speech set (`bench_pipecat.py --set use`) is fed
to a `TurnDetector` frame by frame at the pace of the audio, with the local Whisper and Smart Turn, and
no skill recognises anything (as for questions meant for an LLM). Per turn: the transcript's time after
the end of speech (`t_stt_done`), whether it came inside the endpointer's silence (220 ms), and the end
of the turn. The recogniser's passes are counted by kind ("draft:abandoned": stopped after the encoder,
the speech having resumed). Use it to compare two builds side by side (run each from its own checkout).

    .venv/bin/python scripts/bench_turn_live.py [--runs 2] [--speculate-ms 60] [--json]
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
from companion.audio.wav import load_wav  # noqa: E402
from companion.stt.smart_turn import SmartTurn  # noqa: E402
from companion.stt.turn import Turn, TurnDetector  # noqa: E402
from companion.stt.whisper import WhisperSTT  # noqa: E402

SR = 16000
FRAME = 320
END_SILENCE_MS = 220
READY_SLACK_MS = 10  # clock jitter allowed when counting a transcript as ready inside the silence


async def live(stt: WhisperSTT, model: SmartTurn | None, pcm: np.ndarray, speculate_ms: float) -> list[Turn]:
    """The turns one recording makes, fed in real time after 0.3 s of faint noise and followed by 1.5 s."""
    ep = Endpointer(
        speculate_ms=speculate_ms,
        end_silence_ms=END_SILENCE_MS,
        pre_roll_ms=300,
        tail_ms=min(60, speculate_ms),
    )
    det = TurnDetector(
        stt, ep, fallback_ms=1200, unsure_ms=1000, recognised=lambda _t: False, end_model=model
    )
    noise = np.random.default_rng(0).normal(0, 20, int(1.5 * SR)).astype(np.int16)
    audio = np.concatenate([noise[: int(0.3 * SR)], pcm, noise])
    turns: list[Turn] = []

    async def consume() -> None:
        async for event in det.events():
            if isinstance(event, Turn):
                turns.append(event)

    consumer = asyncio.create_task(consume())
    t0 = time.monotonic()
    try:
        for i in range(0, len(audio), FRAME):
            t = i / SR
            if (ahead := t0 + t - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            det.feed(audio[i : i + FRAME], t)
        await asyncio.sleep(0.1)
    finally:
        await det.aclose()
        await consumer
    return turns


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q))) if values else None


async def run(args: argparse.Namespace) -> dict:
    stt = WhisperSTT()
    stt.load()
    model = SmartTurn.shared()
    if model is None:
        raise SystemExit("the Smart Turn model is not installed: python -m companion.stt.smart_turn install")
    await model.aload()
    await stt.apass(np.full(SR, 100, np.int16), "draft")  # the first pass pays for the allocator
    recordings = use_speech()[: args.limit] if args.limit else use_speech()
    out: dict = {"speculate_ms": args.speculate_ms, "recordings": len(recordings), "runs": []}
    for r in range(args.runs):
        rows = []
        for u in recordings:
            turns = await live(stt, model, load_wav(u.path), args.speculate_ms)
            for t in turns:
                rows.append(
                    {
                        "file": u.path.name,
                        "turns": len(turns),
                        "transcript_ms": round((t.t_stt_done - t.t_end_of_speech) * 1000),
                        "end_of_turn_ms": round((t.t_end_of_turn - t.t_end_of_speech) * 1000),
                        "reason": t.reason,
                        "text": t.text,
                    }
                )
                print(r, *list(rows[-1].values())[:5], file=sys.stderr)
        stt_ms = [x["transcript_ms"] for x in rows]
        ready = sum(v <= END_SILENCE_MS + READY_SLACK_MS for v in stt_ms)
        at_silence = [x["end_of_turn_ms"] for x in rows if x["reason"] in ("audio", "complete")]
        out["runs"].append(
            {
                "turns": len(rows),
                "split": len({x["file"] for x in rows if x["turns"] > 1}),
                "transcript_ms": {"p50": pct(stt_ms, 50), "p95": pct(stt_ms, 95)},
                "ready_in_silence": round(ready / len(rows), 3) if rows else None,
                "end_of_turn_ms_when_not_held": {"p50": pct(at_silence, 50), "n": len(at_silence)},
                "rows": rows,
            }
        )
    out["stt_passes"] = {k: v["calls"] for k, v in stt.stats().items()}
    out["model_calls"] = model.calls
    await stt.aclose()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2, help="passes over the set (default 2)")
    p.add_argument("--speculate-ms", type=float, default=60, help="silence before the draft (default 60)")
    p.add_argument("--limit", type=int, default=0, help="only the first N recordings")
    p.add_argument("--json", action="store_true", help="print the JSON result (with every turn)")
    args = p.parse_args()
    out = asyncio.run(run(args))
    if args.json:
        print(json.dumps(out, indent=1))
        return
    for i, r in enumerate(out["runs"]):
        brief = {k: v for k, v in r.items() if k != "rows"}
        print(f"run {i + 1}: {brief}")
    print("passes:", out["stt_passes"], "model calls:", out["model_calls"])


if __name__ == "__main__":
    main()
