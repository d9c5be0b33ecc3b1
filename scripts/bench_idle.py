#!/usr/bin/env python3
"""Idle cost: `companion run --sim` with one connected virtual headset streaming silence.

The simulator runs in its own process (`python -m firmware_sim`), so only the service is measured: CPU as a
percentage of one core and RSS, sampled with psutil over --seconds after the headset has connected, repeated
--runs times (median and worst reported).

    .venv/bin/python scripts/bench_idle.py --seconds 60 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def one_run(seconds: float, noise: float) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="companion-idle-"))
    (tmp / "config.toml").touch()
    env = {
        **os.environ,
        "COMPANION_SIM_SOCKET": str(tmp / "sim.sock"),
        "COMPANION_CONTROL_SOCKET": str(tmp / "control.sock"),
        "COMPANION_REGISTRY": str(tmp / "headsets.json"),
        "COMPANION_CONFIG": str(tmp / "config.toml"),
    }
    sim = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim", "--name", "Idle", "--noise", str(noise)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    service = None
    try:
        wait_for(lambda: (tmp / "sim.sock").exists(), 30, "the simulator")
        service = subprocess.Popen(
            [sys.executable, "-m", "companion.cli", "-v", "run", "--sim"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in service.stderr:  # the service logs each headset it serves
            if "serving Idle" in line:
                break
        time.sleep(2.0)  # settle
        proc = psutil.Process(service.pid)
        cpu0, t0 = proc.cpu_times(), time.monotonic()
        rss = []
        while time.monotonic() < t0 + seconds:
            time.sleep(1.0)
            rss.append(proc.memory_info().rss / 2**20)
        cpu1, wall = proc.cpu_times(), time.monotonic() - t0
        user, system = cpu1.user - cpu0.user, cpu1.system - cpu0.system
        return {
            # CPU time of all the service's threads over wall time (psutil's cpu_percent, unrounded)
            "cpu_percent_of_one_core": round(100 * (user + system) / wall, 2),
            "cpu_user_percent": round(100 * user / wall, 2),
            "cpu_system_percent": round(100 * system / wall, 2),
            "rss_mb": round(max(rss), 1),
        }
    finally:
        if service is not None:
            service.send_signal(signal.SIGTERM)
            service.wait(30)
        sim.send_signal(signal.SIGINT)
        sim.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="mic self-noise RMS in int16 units (default 0: digital silence; 30 is about -61 dBFS)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    runs = [one_run(args.seconds, args.noise) for _ in range(args.runs)]
    cpu = [r["cpu_percent_of_one_core"] for r in runs]
    rss = [r["rss_mb"] for r in runs]
    result = {
        "seconds": args.seconds,
        "runs": runs,
        "cpu_percent_median": statistics.median(cpu),
        "cpu_percent_max": max(cpu),
        "rss_mb_median": statistics.median(rss),
        "rss_mb_max": max(rss),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    if not args.json:
        print(
            f"\nidle: CPU median {result['cpu_percent_median']:.2f}% of one core "
            f"(max {result['cpu_percent_max']:.2f}%), RSS max {result['rss_mb_max']:.0f} MB"
        )


if __name__ == "__main__":
    main()
