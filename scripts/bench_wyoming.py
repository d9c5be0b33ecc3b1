#!/usr/bin/env python3
"""Wyoming speech recognition side by side: `companion serve` vs `wyoming-faster-whisper`, same model.

Both servers run here on loopback with the packaged tiny.en model (CTranslate2 int8, 2 threads, greedy).
Each utterance of the speech set (tests/data/speech, or $COMPANION_SPEECH_DIR) is sent to each server as a
Home Assistant client sends a finished recording (transcribe, audio-start, chunks as fast as the socket
takes them, audio-stop) `--rounds` times, interleaved, after one warm-up; latency is from audio-stop sent to
transcript received. Then `--concurrency` clients transcribe at once against `companion serve` (one model,
one worker thread: requests queue), which is what one inference server does for several headsets.

    .venv/bin/python scripts/bench_wyoming.py --rounds 3
    .venv/bin/python scripts/bench_wyoming.py --rounds 3 --wyoming-bench   # also run wyoming-bench (PyPI)
    .venv/bin/python scripts/bench_wyoming.py --rounds 2 --streaming-only  # upload at the end vs streamed
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from companion.stt.text import word_errors  # noqa: E402
from tests.fixtures.speech import load_manifest  # noqa: E402
from tests.fixtures.wyoming import start_companion_serve, start_wyoming_faster_whisper  # noqa: E402


async def transcribe_once(host_port: tuple[str, int], pcm: np.ndarray) -> tuple[str, float]:
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    async with AsyncTcpClient(*host_port, connect_timeout=10, read_timeout=120) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        data = pcm.astype("<i2").tobytes()
        for i in range(0, len(data), 2048):
            await client.write_event(
                AudioChunk(rate=16000, width=2, channels=1, audio=data[i : i + 2048]).event()
            )
        t0 = time.perf_counter()
        await client.write_event(AudioStop().event())
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError("server closed the connection")
            if Transcript.is_type(event.type):
                return Transcript.from_event(event).text, (time.perf_counter() - t0) * 1000


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def side_by_side(servers: dict[str, tuple[str, int]], rounds: int, min_s: float, max_s: float) -> None:
    utterances = [u for u in load_manifest() if min_s <= u.seconds <= max_s]
    latency: dict[str, list[float]] = {name: [] for name in servers}
    errors = dict.fromkeys(servers, 0)
    words = 0
    for hp in servers.values():  # warm-up
        await transcribe_once(hp, utterances[0].pcm())
    for u in utterances:
        pcm = u.pcm()
        words += len(u.transcript.split())
        for name, hp in servers.items():
            text = ""
            for _ in range(rounds):
                text, ms = await transcribe_once(hp, pcm)
                latency[name].append(ms)
            errors[name] += word_errors(u.transcript, text)[0]
    print(
        f"\nWyoming transcribe: {len(utterances)} utterances, {min_s:g}-{max_s:g} s, {rounds} rounds, tiny.en"
    )
    print(f"{'server':<24} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'WER':>7}")
    for name in servers:
        values = latency[name]
        wer = 100 * errors[name] / max(1, words)
        p50, p95, mean = pct(values, 50), pct(values, 95), statistics.fmean(values)
        print(f"{name:<24} {p50:8.0f} {p95:8.0f} {mean:8.0f} {wer:6.1f}%")


async def concurrent(host_port: tuple[str, int], clients: int, min_s: float, max_s: float) -> None:
    utterances = [u for u in load_manifest() if min_s <= u.seconds <= max_s][:clients]
    while len(utterances) < clients:
        utterances += utterances[: clients - len(utterances)]
    pcms = [u.pcm() for u in utterances]
    for n in sorted({1, clients // 2 or 1, clients}):
        values: list[float] = []
        for _ in range(3):
            results = await asyncio.gather(*(transcribe_once(host_port, p) for p in pcms[:n]))
            values += [ms for _, ms in results]
        print(f"  {n} concurrent clients: p50 {pct(values, 50):.0f} ms, p95 {pct(values, 95):.0f} ms")


async def streaming_gain(
    servers: dict[str, tuple[str, int]], rounds: int, min_s: float, max_s: float
) -> None:
    """STT after the end of speech: the bridge's two ways to use a remote Wyoming server, interleaved.

    - at the end: the utterance is uploaded when the turn ends (`RemoteSTT.atranscribe`), timed from the call;
    - streamed: audio-start at speech start, 20 ms frames paced at real time as a microphone delivers them,
      audio-stop at the end (`RemoteSTT.open_stream()`), timed from the last frame.
    """
    from companion.remote.engines import RemoteSTT

    utterances = [u for u in load_manifest() if min_s <= u.seconds <= max_s][:8]
    results: dict[str, dict[str, list[float]]] = {n: {"at the end": [], "streamed": []} for n in servers}
    for name, (host, port) in servers.items():
        stt = RemoteSTT([f"tcp://{host}:{port}"], deadline_s=120.0)
        await stt.astart()
        try:
            await stt.atranscribe(utterances[0].pcm())  # warm-up
            for _ in range(rounds):
                for u in utterances:
                    pcm = u.pcm()
                    t0 = time.perf_counter()
                    await stt.atranscribe(pcm)
                    results[name]["at the end"].append((time.perf_counter() - t0) * 1000)
                    stream = stt.open_stream()
                    start = time.perf_counter()
                    for i in range(0, len(pcm), 320):
                        await stream.push(pcm[i : i + 320])
                        await asyncio.sleep(max(0.0, start + (i + 320) / 16000 - time.perf_counter()))
                    t0 = time.perf_counter()
                    result = await stream.finish()
                    results[name]["streamed"].append((time.perf_counter() - t0) * 1000)
                    assert result.path == "remote-wyoming-streamed", result
        finally:
            await stt.aclose()
    print("\nSTT after the end of speech, uploaded at the end vs streamed during speech")
    print(f"({len(utterances)} utterances of {min_s:g}-{max_s:g} s x {rounds} rounds, loopback):")
    print(f"{'server':<24} {'way':<12} {'p50 ms':>8} {'p95 ms':>8}")
    for name, ways in results.items():
        for way, values in ways.items():
            print(f"{name:<24} {way:<12} {pct(values, 50):8.0f} {pct(values, 95):8.0f}")


def run_wyoming_bench(servers: dict[str, tuple[str, int]], min_s: float, max_s: float) -> None:
    exe = shutil.which("wyoming-bench") or str(Path(sys.executable).with_name("wyoming-bench"))
    with tempfile.TemporaryDirectory() as tmp:
        for u in load_manifest():
            if min_s <= u.seconds <= max_s:
                shutil.copy(u.path, Path(tmp) / u.path.name)
                (Path(tmp) / u.path.name).with_suffix(".txt").write_text(u.transcript)
        hosts = [f"{h}:{p}" for h, p in servers.values()]
        cmd = [
            exe,
            "stt",
            "--corpus",
            tmp,
            "--mode",
            "non_streaming",
            "--rounds",
            "1",
            "--trailing-silence",
            "0",
            *hosts,
        ]
        print("\n$", " ".join([*cmd[:1], "stt", "--corpus", "<speech set>", *cmd[4:]]), flush=True)
        subprocess.run(cmd, check=False)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-s", type=float, default=1.0)
    ap.add_argument("--max-s", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument(
        "--wyoming-bench", action="store_true", help="also run the wyoming-bench (PyPI) STT benchmark"
    )
    ap.add_argument(
        "--streaming-only",
        action="store_true",
        help="only compare uploading at the end of speech with streaming during it (RemoteSTT)",
    )
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as data:
        serve = start_companion_serve()
        wfw = start_wyoming_faster_whisper(Path(data))
        try:
            servers = {"companion serve": serve.host_port, "wyoming-faster-whisper": wfw.host_port}
            if args.streaming_only:
                await streaming_gain(servers, args.rounds, args.min_s, min(args.max_s, 6.0))
                return
            await side_by_side(servers, args.rounds, args.min_s, args.max_s)
            print(f"\ncompanion serve, concurrent clients ({args.min_s:g}-{args.max_s:g} s utterances):")
            await concurrent(serve.host_port, args.concurrency, args.min_s, args.max_s)
            if args.wyoming_bench:
                run_wyoming_bench(servers, args.min_s, args.max_s)
        finally:
            serve.stop()
            wfw.stop()


if __name__ == "__main__":
    asyncio.run(main())
