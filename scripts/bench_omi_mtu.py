#!/usr/bin/env python3
"""How much speech an Omi loses at a given MTU: the share of CV1 Opus frames too large for one notification.

Omi firmware sends each frame whole in one notification and drops a frame larger than MTU - 6 bytes
(companion/protocol/omi.py). This encodes every clip in tests/data/speech with the firmware's settings
(CELT restricted low delay, 32 kbit/s unconstrained VBR, complexity 3, at most 160 B) and prints, per MTU,
the share of frames dropped: the median and p95 over clips, and over all frames.

    .venv/bin/python scripts/bench_omi_mtu.py
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import soundfile as sf

from companion.protocol import CodecId
from companion.protocol.codecs import OpusEncoder
from companion.protocol.omi import MAX_FRAME_BYTES, frame_fits

SPEECH = Path(__file__).resolve().parents[1] / "tests" / "data" / "speech"


def frame_sizes(path: Path) -> list[int]:
    pcm, rate = sf.read(path, dtype="int16")
    if rate != 16000:
        import soxr

        pcm = soxr.resample(pcm, rate, 16000).astype(np.int16)
    enc = OpusEncoder(
        CodecId.OPUS_16K_20MS,
        application="lowdelay",
        bitrate=32000,
        fec=False,
        complexity=3,
        constrained_vbr=False,
        max_bytes=MAX_FRAME_BYTES,
    )
    return [len(enc.encode(pcm[i : i + 320])) for i in range(0, len(pcm) - 319, 320)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mtu", type=int, nargs="+", default=[100, 120, 150, 160, 166, 185, 247])
    args = p.parse_args()
    clips = [frame_sizes(f) for f in sorted(SPEECH.glob("*.wav"))]
    every = [n for sizes in clips for n in sizes]
    print(
        f"{len(clips)} clips, {len(every)} frames; bytes/frame median {statistics.median(every):.0f}, "
        f"p95 {np.percentile(every, 95):.0f}, max {max(every)}"
    )
    print("MTU  dropped: median clip  p95 clip  all frames")
    for mtu in args.mtu:
        shares = [sum(not frame_fits(n, mtu) for n in sizes) / len(sizes) for sizes in clips if sizes]
        total = sum(not frame_fits(n, mtu) for n in every) / len(every)
        print(
            f"{mtu:3d}  {100 * statistics.median(shares):17.1f}%  {100 * np.percentile(shares, 95):7.1f}%"
            f"  {100 * total:9.1f}%"
        )


if __name__ == "__main__":
    main()
