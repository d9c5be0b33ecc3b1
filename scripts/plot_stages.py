#!/usr/bin/env python3
"""Per-stage latency chart (PNG) from the JSON that scripts/bench_v2v.py prints.

.venv/bin/python scripts/bench_v2v.py --turns 18 --json > v2v.json
.venv/bin/python scripts/plot_stages.py v2v.json docs/latency_stages.png
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LABELS = {
    "stt_done_ms": "transcript ready",
    "end_of_turn_ms": "end of turn decided",
    "llm_first_token_ms": "reply's first words",
    "tts_first_audio_ms": "first audio synthesised",
    "first_audio_sent_ms": "first audio sent",
    "first_audio_played_ms": "first audio played (headset)",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="bench_v2v.py --json output")
    p.add_argument("png")
    args = p.parse_args()
    r = json.load(open(args.results))
    stages = [(LABELS[k], r["stages_ms"][k]) for k in LABELS if r["stages_ms"][k]["p50"] is not None]
    v2v = r["voice_to_voice_ms"]
    fig, ax = plt.subplots(figsize=(9.5, 3.6))
    names = [n for n, _ in stages] + ["voice-to-voice (recording)"]
    p50 = [s["p50"] for _, s in stages] + [v2v["p50"]]
    p95 = [s["p95"] for _, s in stages] + [v2v["p95"]]
    y = range(len(names))
    ax.barh(y, p95, color="#c9d8ef", label="p95")
    ax.barh(y, p50, color="#2f6db5", label="p50")
    ax.axvline(350, color="#b03a2e", ls="--", lw=1, label="target p50 350 ms")
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlabel("ms after the end of the wearer's speech")
    ax.set_title(f"companion, {r['turns']} turns, {r['backend']}, {r['headsets']} headset(s)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)


if __name__ == "__main__":
    main()
