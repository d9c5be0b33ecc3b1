#!/usr/bin/env python3
"""Many headsets, two bridges, shared STT servers: voice-to-voice latency, CPU and memory per process.

The deployment of docs/scale.md on loopback: `--headsets` virtual headsets (default 8) split over
`--bridges` `companion run --sim` processes (default 2), each bridge finding its own headsets through its
own simulator socket. Speech recognition is either

- `local`: faster-whisper tiny.en inside each bridge (the baseline: every bridge loads its own model), or
- `serve` / `wff`: `--servers` shared Wyoming servers (default 2), `companion serve` or
  `wyoming-faster-whisper` with the same packaged tiny.en model, listed in a different order on each
  bridge (`[stt] urls`) so the load spreads without a balancer.

TTS stays local in each bridge (piper), the replies come from the offline skills, and the reply audio goes
to the headsets as Opus (`--speaker-codec`). Each headset speaks real recordings from tests/data/speech
(1.5-6 s) alternating with synthesised commands, starting staggered by `--stagger` seconds; it waits for
the reply to finish playing and `--pause` seconds before its next turn.
Latency is read off each headset's conversation recording (headset clock): the end of the wearer's
utterance to the first reply audio. CPU (% of one core, over the talking phase) and peak RSS are measured
for every process: bridges, servers, and this script (which simulates the headsets and their radios).

    .venv/bin/python scripts/bench_scale.py --stt local --turns 6
    .venv/bin/python scripts/bench_scale.py --stt serve --turns 6
    .venv/bin/python scripts/bench_scale.py --stt wff --turns 6 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.speech import load_manifest  # noqa: E402

COMMANDS = (
    "What time is it?",
    "How much battery is left?",
    "Turn the volume up.",
    "What's the date today?",
    "Set a timer for five minutes.",
    "What day is it?",
)
WINDOW = 160  # 10 ms at 16 kHz
THRESHOLD = 32768 * 10 ** (-45 / 20)  # -45 dBFS, as companion.audio.v2v


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


@dataclass
class Turn:
    label: str
    start_s: float  # headset clock
    end_s: float
    reply_s: float | None = None
    waited_out: bool = False  # no reply had finished playing within the wearer's patience

    @property
    def latency_ms(self) -> float | None:
        return None if self.reply_s is None else round((self.reply_s - self.end_s) * 1000, 1)


@dataclass
class Proc:
    """A child process whose CPU time and RSS are sampled."""

    name: str
    popen: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cpu0: float = 0.0
    cpu1: float = 0.0

    def cpu_s(self) -> float:
        import psutil

        p = psutil.Process(self.popen.pid)
        t = p.cpu_times()
        return t.user + t.system

    def sample_rss(self) -> None:
        import psutil

        with contextlib.suppress(psutil.Error):
            self.rss_mb.append(psutil.Process(self.popen.pid).memory_info().rss / 2**20)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def _pump(proc: Proc) -> None:
    assert proc.popen.stderr is not None
    for line in proc.popen.stderr:
        proc.log.append(line.rstrip())


def start_bridge(
    index: int, sock: Path, stt: str, urls: list[str], tmp: Path, timeout_s: float, speaker_codec: str
) -> Proc:
    """`companion run --sim` with its own simulator socket, runtime/config/state directories."""
    home = tmp / f"bridge{index}"
    for sub in ("run", "config", "state", "data", "cache"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "run").chmod(0o700)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(home / "run"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "COMPANION_SIM_SOCKET": str(sock),
        "COMPANION_STT__ENGINE": "local" if stt == "local" else "wyoming",
        "COMPANION_TTS__ENGINE": "piper",
        "COMPANION_LLM__BACKEND": "skills",
        "COMPANION_LINK__SPEAKER_CODEC": speaker_codec,
    }
    if stt != "local":
        env["COMPANION_STT__URLS"] = json.dumps(urls)
        env["COMPANION_STT__TIMEOUT_S"] = str(timeout_s)
    cmd = [sys.executable, "-c", "from companion.cli import main; main()", "run", "--sim"]
    popen = subprocess.Popen(
        cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    proc = Proc(f"bridge {index} (companion run)", popen)
    threading.Thread(target=_pump, args=(proc,), daemon=True).start()
    return proc


def start_servers(kind: str, count: int, tmp: Path) -> list[tuple[Proc, str]]:
    from tests.fixtures.wyoming import start_companion_serve, start_wyoming_faster_whisper

    out = []
    for i in range(count):
        if kind == "serve":
            server = start_companion_serve()
            name = f"stt server {i} (companion serve)"
        else:
            data = tmp / f"wff{i}"
            data.mkdir()
            server = start_wyoming_faster_whisper(data)
            name = f"stt server {i} (wyoming-faster-whisper)"
        proc = Proc(name, server.proc, server.log)
        out.append((proc, server.uri))
    return out


def reply_onset(right: np.ndarray, t0: float, turn: Turn, limit_s: float | None) -> float | None:
    """The first 10 ms window of reply audio after the turn began (before the next one), headset clock."""
    a = max(0, int((turn.start_s - t0) * 16000))
    b = len(right) if limit_s is None else min(len(right), int((limit_s - t0) * 16000))
    if b <= a:
        return None
    seg = right[a:b].astype(np.float64)
    n = len(seg) // WINDOW
    if n == 0:
        return None
    rms = np.sqrt(np.mean(seg[: n * WINDOW].reshape(n, WINDOW) ** 2, axis=1))
    hits = np.flatnonzero(rms > THRESHOLD)
    return None if not len(hits) else t0 + (a + int(hits[0]) * WINDOW) / 16000


async def poll(condition: Callable[[], bool]) -> None:
    """Until `condition()` (the simulator's LED state has no change event to wait on)."""
    while True:
        if condition():
            return
        await asyncio.sleep(0.02)


async def wearer(
    hs, items: list[tuple[str, np.ndarray]], delay_s: float, pause_s: float, turns: int, patience_s: float
) -> list[Turn]:
    """Speak `turns` items, each after the previous reply has finished playing (or `patience_s` without)."""
    from companion.protocol import DeviceState

    await hs.wait_streaming()
    await asyncio.sleep(delay_s)
    done: list[Turn] = []
    for n in range(turns):
        label, pcm = items[n % len(items)]
        end = await hs.mic.say(pcm, label=label)
        turn = Turn(label, end - len(pcm) / 16000, end)
        done.append(turn)
        try:
            async with asyncio.timeout(patience_s):
                await poll(lambda: hs.state is DeviceState.SPEAKING)
                await poll(lambda: hs.state is not DeviceState.SPEAKING)
        except TimeoutError:
            turn.waited_out = True
        await asyncio.sleep(pause_s)
    return done


async def run(args: argparse.Namespace) -> dict:
    import psutil

    from companion.tts import create_tts
    from companion.tts.base import synthesize
    from firmware_sim import HeadsetConfig, SimWorld
    from firmware_sim.server import SimServer

    tmp = Path(tempfile.mkdtemp(prefix="bench_scale-"))
    recordings = [u for u in load_manifest() if args.min_s <= u.seconds <= args.max_s]
    voice = create_tts("piper")
    await asyncio.to_thread(voice.load)
    commands = [(c, await synthesize(voice, c)) for c in COMMANDS]
    await voice.aclose()
    real = [(u.path.name, u.pcm()) for u in recordings]
    print(f"{len(real)} recordings ({args.min_s}-{args.max_s} s), {len(commands)} commands", file=sys.stderr)

    procs: list[Proc] = []
    servers = start_servers(args.stt, args.servers, tmp) if args.stt != "local" else []
    procs += [p for p, _ in servers]
    uris = [u for _, u in servers]
    me = psutil.Process()
    results: list[dict] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            worlds = []
            for b in range(args.bridges):
                world = await stack.enter_async_context(SimWorld(address_prefix=f"5A:E{b}"))
                sock = tmp / f"sim{b}.sock"
                server = SimServer(world, sock)
                await server.start()
                stack.push_async_callback(server.aclose)
                worlds.append((world, sock))
            headsets = []
            for i in range(args.headsets):
                b = i % args.bridges
                hs = worlds[b][0].add_headset(HeadsetConfig(name=f"Bridge{b}-{i}"))
                headsets.append((b, hs))
            for b, (_, sock) in enumerate(worlds):
                order = uris[b % len(uris) :] + uris[: b % len(uris)] if uris else []
                procs.append(start_bridge(b, sock, args.stt, order, tmp, args.timeout, args.speaker_codec))
            t_start = time.monotonic()
            async with asyncio.timeout(240):
                while not all(hs.streaming for _, hs in headsets):
                    for p in procs:
                        if p.popen.poll() is not None:
                            raise RuntimeError(f"{p.name} exited:\n" + "\n".join(p.log[-20:]))
                    await asyncio.sleep(0.1)
            print(f"all headsets streaming after {time.monotonic() - t_start:.1f} s", file=sys.stderr)
            t_rec: dict[int, float] = {}
            for i, (_, hs) in enumerate(headsets):
                hs.start_recording()
                t_rec[i] = hs.clock()
            # the measured phase: CPU over it, RSS sampled through it
            for p in procs:
                p.cpu0 = p.cpu_s()
            me_cpu0 = sum(me.cpu_times()[:2])
            me_rss: list[float] = []
            wall0 = time.monotonic()
            sampling = True

            async def sample() -> None:
                while sampling:
                    for p in procs:
                        p.sample_rss()
                    me_rss.append(me.memory_info().rss / 2**20)
                    await asyncio.sleep(0.5)

            sampler = asyncio.create_task(sample())
            try:
                plans = []
                for i, (_, hs) in enumerate(headsets):
                    # alternate a real recording and a command, each headset from its own place in the lists
                    items = []
                    for n in range(args.turns):
                        src = real if n % 2 == 0 else commands
                        items.append(src[(i * 3 + n // 2) % len(src)])
                    plans.append(
                        wearer(hs, items, 0.5 + args.stagger * i, args.pause, args.turns, args.patience)
                    )
                spoken = await asyncio.gather(*plans)
                await asyncio.sleep(1.0)
            finally:
                sampling = False
                await sampler
            wall = time.monotonic() - wall0
            for p in procs:
                p.cpu1 = p.cpu_s()
            me_cpu = sum(me.cpu_times()[:2]) - me_cpu0
            for i, (b, hs) in enumerate(headsets):
                rec = hs.stop_recording()
                assert rec is not None
                right = np.asarray(rec.right)
                turns = spoken[i]
                for n, turn in enumerate(turns):
                    limit = turns[n + 1].start_s if n + 1 < len(turns) else None
                    turn.reply_s = reply_onset(right, t_rec[i], turn, limit)
                results.append({"headset": hs.name, "bridge": b, "turns": turns})
    finally:
        for p in reversed(procs):
            p.stop()

    def summary(values: list[float]) -> dict:
        return {"p50": pct(values, 50), "p95": pct(values, 95), "n": len(values)}

    per_headset = {}
    everything: list[float] = []
    real_only: list[float] = []
    command_only: list[float] = []
    unanswered = 0
    for r in results:
        lat = [t.latency_ms for t in r["turns"] if t.latency_ms is not None]
        unanswered += sum(t.latency_ms is None for t in r["turns"])
        everything += lat
        real_only += [
            t.latency_ms for t in r["turns"] if t.latency_ms is not None and t.label.endswith(".wav")
        ]
        command_only += [
            t.latency_ms for t in r["turns"] if t.latency_ms is not None and not t.label.endswith(".wav")
        ]
        per_headset[r["headset"]] = summary(lat)
    for p in procs:  # the logs, for a look at what the latencies hide
        (tmp / f"{p.name.split(' (')[0].replace(' ', '_')}.log").write_text("\n".join(p.log) + "\n")
    problems = [line for p in procs for line in p.log if "Traceback" in line or "was destroyed" in line]
    fallbacks = [line for p in procs for line in p.log if "every endpoint failed" in line]
    return {
        "stt": args.stt,
        "servers": [p.name for p, _ in servers],
        "headsets": args.headsets,
        "bridges": args.bridges,
        "turns": sum(len(r["turns"]) for r in results),
        "unanswered": unanswered,
        "voice_to_voice_ms": summary(everything),
        "recordings_ms": summary(real_only),
        "commands_ms": summary(command_only),
        "per_headset_ms": per_headset,
        "processes": [
            {
                "name": p.name,
                "cpu_percent_of_one_core": round(100 * (p.cpu1 - p.cpu0) / wall, 1),
                "rss_mb_max": round(max(p.rss_mb), 1) if p.rss_mb else None,
            }
            for p in procs
        ]
        + [
            {
                "name": "headset simulator (this script)",
                "cpu_percent_of_one_core": round(100 * me_cpu / wall, 1),
                "rss_mb_max": round(max(me_rss), 1) if me_rss else None,
            }
        ],
        "per_turn": [
            {
                "headset": r["headset"],
                "said": t.label,
                "latency_ms": t.latency_ms,
                "speech_s": round(t.end_s - t.start_s, 2),
                "waited_out": t.waited_out,
            }
            for r in results
            for t in r["turns"]
        ],
        "waited_out": sum(t.waited_out for r in results for t in r["turns"]),
        # the link's throughput watch gave up on a reply (the headset stopped taking audio in real time)
        "replies_not_delivered": sum("reply not delivered" in line for p in procs for line in p.log),
        "logs": str(tmp),
        "warnings": sum(
            " WARNING " in line or "warning" in line.lower()[:60] for p in procs for line in p.log
        ),
        "wall_s": round(wall, 1),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "stt_fallbacks": len(fallbacks),
        "tracebacks": problems[:5],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stt", choices=("local", "serve", "wff"), default="serve")
    p.add_argument("--servers", type=int, default=2, help="shared STT servers (default 2)")
    p.add_argument("--headsets", type=int, default=8)
    p.add_argument("--bridges", type=int, default=2)
    p.add_argument("--turns", type=int, default=6, help="turns per headset (default 6)")
    p.add_argument("--pause", type=float, default=1.0, help="seconds after a reply before the next turn")
    p.add_argument("--patience", type=float, default=60.0, help="seconds a wearer waits for a reply")
    p.add_argument("--stagger", type=float, default=0.7, help="seconds between the headsets' first turns")
    p.add_argument("--min-s", type=float, default=1.5)
    p.add_argument("--max-s", type=float, default=6.0)
    p.add_argument("--timeout", type=float, default=1.5, help="stt.timeout_s of the bridges (remote STT)")
    p.add_argument(
        "--speaker-codec",
        default="opus",
        help="link.speaker_codec of the bridges (default opus: with pcm16, 256 kbit/s per headset through "
        "the simulator's socket, replies to 8 headsets stall on a loaded 2-core machine)",
    )
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    args = p.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    print(json.dumps(result, indent=2))
    v = result["voice_to_voice_ms"]
    print(
        f"\nstt={result['stt']}: {result['turns']} turns on {result['headsets']} headsets / "
        f"{result['bridges']} bridges: p50 {v['p50']:.0f} ms, p95 {v['p95']:.0f} ms, "
        f"unanswered {result['unanswered']}, load average {result['load_average_1min']}"
    )
    for proc in result["processes"]:
        print(f"  {proc['name']:<45} CPU {proc['cpu_percent_of_one_core']:>6}%  RSS {proc['rss_mb_max']} MB")
    per = result["per_headset_ms"].items()
    print(
        "  per headset p50/p95 ms: "
        + ", ".join(f"{k} {s['p50']:.0f}/{s['p95']:.0f}" for k, s in per if s["p50"])
    )


if __name__ == "__main__":
    main()
