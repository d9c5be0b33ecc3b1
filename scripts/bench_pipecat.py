#!/usr/bin/env python3
"""companion and Pipecat side by side: the same utterances, the same engines, the same kind of recording.

Each round runs both systems, one after the other, each in a fresh process on a fresh virtual headset
(alternating which goes first): companion's Session, and a Pipecat 1.14 pipeline built the way Pipecat's
docs build a local voice agent (Silero VAD, Smart Turn v3, faster-whisper tiny.en int8, piper joe, and
companion's offline skills as an instant responder; see scripts/pipecat_headset.py). Both hear the wearer over
the same simulated BLE link and play on the same kind of headset. Voice-to-voice latency is read off the
headsets' conversation recordings, from the end of the wearer's speech (left) to the first reply audio
(right). The utterances: six short questions the skills answer, three with a 0.5 s hesitation in the middle,
and real human read speech from tests/data/speech (answered by the responder's fallback sentence).

    .venv/bin/python scripts/bench_pipecat.py --rounds 3 [--recordings DIR] [--json]
    COMPANION_TURN__UNSURE_MS=0 .venv/bin/python scripts/bench_pipecat.py --only companion  # a config change

Needs the pipecat extra: .venv/bin/pip install -e '.[pipecat]'.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_v2v import QUESTIONS, pct  # noqa: E402  (scripts/ is on sys.path when run as a script)

from companion.audio.v2v import voice_to_voice  # noqa: E402
from companion.audio.wav import load_wav  # noqa: E402
from companion.link.base import SAMPLE_RATE  # noqa: E402

SYSTEMS = ("companion", "pipecat")
# Questions with a hesitation in the middle: the first part alone is not the end of the turn.
HESITANT = (
    ("Set a timer for", "ten minutes."),
    ("What is the", "date today?"),
    ("Turn the volume", "up a bit."),  # "turn the volume" alone reads like a whole command
)
HESITATION_S = 0.5
# --set use: speech that looks like use. Real human recordings from tests/data/speech, chosen by rule, not by
# result: every recording except the LJSpeech excerpts that stop mid-sentence (a wearer would go on talking:
# no single expected turn) and the two with pauses over 1 s inside. "human-pause" are those whose own
# pauses inside the sentence last 250 ms - 1 s (Silero, 32 ms windows); each is one expected turn. Open
# questions and commands no skill knows are piper-made (labelled "open-synth"): the set has no recordings
# of them.
MID_SENTENCE = {"speechbrain_1.wav", "coquitts_3.wav", "coquitts_4.wav", "coquitts_6.wav", "coquitts_7.wav"}
LONG_PAUSES = {"mfa_10.wav", "mfa_13.wav"}
HUMAN_PAUSE = {
    "coquitts_1.wav", "coquitts_5.wav", "lhotse_2.wav", "mfa_2.wav", "mfa_4.wav", "mfa_6.wav", "mfa_9.wav",
    "mfa_20.wav", "mfa_21.wav", "mfa_23.wav",
}  # fmt: skip
OPEN_SYNTH = (
    "What's the capital of France?",
    "Call my sister.",
    "Go forward ten meters.",
    "Tell me something about the moon.",
)
SPEECH_DIR = Path(os.environ.get("COMPANION_SPEECH_DIR") or ROOT / "tests" / "data" / "speech")
REPLY_TIMEOUT_S = 20.0
QUIET_S = 0.8  # the speaker must stay idle this long before a reply counts as finished


# ------------------------------------------------------------------------------------------- utterances


@dataclass(frozen=True)
class Utterance:
    kind: str  # question | hesitant | human
    text: str
    path: Path


def _write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.astype("<i2").tobytes())


async def make_utterances(out: Path, human: int, which: str = "commands") -> list[Utterance]:
    """Synthesise the questions once (so both systems hear identical audio) and pick the human speech."""
    from companion.tts.base import synthesize
    from companion.tts.piper_tts import PiperTTS

    tts = PiperTTS()
    await asyncio.to_thread(tts.load)
    utterances: list[Utterance] = []
    if which == "use":
        try:
            for i, text in enumerate(OPEN_SYNTH):
                path = out / f"open_{i}.wav"
                _write_wav(path, await synthesize(tts, text))
                utterances.append(Utterance("open-synth", text, path))
        finally:
            await tts.aclose()
        return utterances + await asyncio.to_thread(use_speech)
    try:
        for i, text in enumerate(QUESTIONS):
            path = out / f"question_{i}.wav"
            _write_wav(path, await synthesize(tts, text))
            utterances.append(Utterance("question", text, path))
        gap = np.zeros(int(HESITATION_S * SAMPLE_RATE), dtype=np.int16)
        for i, (first, rest) in enumerate(HESITANT):
            path = out / f"hesitant_{i}.wav"
            _write_wav(path, np.concatenate([await synthesize(tts, first), gap, await synthesize(tts, rest)]))
            utterances.append(Utterance("hesitant", f"{first} ... {rest}", path))
    finally:
        await tts.aclose()
    return utterances + await asyncio.to_thread(human_speech, human)


def human_speech(n: int) -> list[Utterance]:
    """The first `n` real recordings of 2-8 s in tests/data/speech (read speech, with natural pauses)."""
    with open(SPEECH_DIR / "manifest.tsv", newline="") as f:
        rows = sorted(
            (r for r in csv.DictReader(f, delimiter="\t") if 2.0 <= float(r["seconds"]) <= 8.0),
            key=lambda r: r["file"],
        )
    return [Utterance("human", r["transcript"], SPEECH_DIR / r["file"]) for r in rows[:n]]


def use_speech() -> list[Utterance]:
    """The real recordings of `--set use`, in manifest order, interleaved finished / with pauses."""
    with open(SPEECH_DIR / "manifest.tsv", newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["file"] not in MID_SENTENCE | LONG_PAUSES]
    return [
        Utterance(
            "human-pause" if r["file"] in HUMAN_PAUSE else "human", r["transcript"], SPEECH_DIR / r["file"]
        )
        for r in rows
    ]


# ------------------------------------------------------------------------------------- one system, one round


async def wait_for_reply(hs, events_before: int) -> bool:
    """Until the headset has played a reply and its speaker stayed quiet for QUIET_S (False: no reply)."""
    from companion.protocol import PlaybackEvent

    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPLY_TIMEOUT_S
    quiet_since: float | None = None
    while loop.time() < deadline:
        events = hs.speaker.events[events_before:]
        started = any(e.event is PlaybackEvent.STARTED for e in events)
        if started and not hs.speaker.playing:
            quiet_since = quiet_since or loop.time()
            if loop.time() - quiet_since >= QUIET_S:
                return True
        else:
            quiet_since = None
        await asyncio.sleep(0.05)
    return False


class CompanionUnderTest:
    """companion's Session with the default config (offline skills), as bench_v2v.py runs it."""

    name = "companion"

    async def __aenter__(self):
        from companion.config import load_config
        from companion.engines import Engines
        from companion.events import EventHub

        self.config = load_config()
        self.end_silence_ms = self.config.turn.end_silence_ms
        self.engines = await Engines.load(self.config, lambda m: print(m, file=sys.stderr))
        self.hub = EventHub()
        self.events = self.hub.subscriber()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.engines.aclose()

    @contextlib.asynccontextmanager
    async def serving(self, link):
        from companion.session import Session

        session = Session.from_engines(self.engines, link, self.config, hub=self.hub, earcons_enabled=False)
        task = asyncio.create_task(session.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def drain(self) -> dict:
        from companion.events import ReplyEvent, TranscriptEvent, TurnTimings

        heard, intents, stages = [], [], []
        while not self.events.empty():
            event = self.events.get_nowait()
            if isinstance(event, TranscriptEvent):
                heard.append(event.text)
            elif isinstance(event, ReplyEvent):
                intents.append(event.intent)
            elif isinstance(event, TurnTimings):
                stages.append(
                    {
                        "end_of_turn": event.end_of_turn_ms,
                        "transcript": event.stt_done_ms,
                        "ready_in_silence": event.stt_done_ms is not None
                        and event.stt_done_ms <= self.end_silence_ms + 10,
                        "tts_first_audio": event.tts_first_audio_ms,
                        "first_audio_sent": event.first_audio_sent_ms,
                    }
                )
        return {"heard": heard, "intents": intents, "stages": stages}


class PipecatUnderTest:
    """The Pipecat pipeline of scripts/pipecat_headset.py."""

    name = "pipecat"

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        return None

    @contextlib.asynccontextmanager
    async def serving(self, link):
        import pipecat_headset
        from pipecat.pipeline.runner import WorkerRunner

        self.task, self.replier, self.observer = pipecat_headset.build_task(link)
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.task)
        running = asyncio.create_task(runner.run())
        try:
            yield
        finally:
            await self.task.cancel()
            await running

    def milestones(self, ends: list[float], starts: list[float]) -> list[dict]:
        """Per utterance: ms from the end of speech to each milestone's first frame before the next one."""
        out = []
        for i, end in enumerate(ends):
            limit = starts[i + 1] if i + 1 < len(starts) else float("inf")
            marks: dict[str, float] = {}
            for t, name in self.observer.marks:
                if end <= t < limit and name not in marks:
                    marks[name] = round((t - end) * 1000, 1)
            out.append(marks)
        return out


async def run_system(
    system: str, utterances: list[Utterance], pause_s: float, recording: Path | None
) -> dict:
    import psutil

    from companion.link.sim import sim_link
    from firmware_sim import HeadsetConfig, SimWorld

    under_test = CompanionUnderTest() if system == "companion" else PipecatUnderTest()
    voices = [await asyncio.to_thread(load_wav, u.path) for u in utterances]
    proc = psutil.Process()
    async with under_test, SimWorld() as world:
        hs = world.add_headset(HeadsetConfig(name=f"Bench {system}"))
        async with sim_link(hs.address) as link, under_test.serving(link):
            await asyncio.wait_for(hs.wait_streaming(), 30)
            await asyncio.sleep(2.0)  # let both settle: VAD state, first-inference warm-up is theirs to pay
            rec = hs.start_recording(recording)
            proc.cpu_percent(None)
            t0 = time.monotonic()
            rss, answered = [], []
            for pcm in voices:
                before = len(hs.speaker.events)
                await hs.mic.say(pcm)
                answered.append(await wait_for_reply(hs, before))
                rss.append(proc.memory_info().rss / 2**20)
                await asyncio.sleep(pause_s)
            cpu = proc.cpu_percent(None)
            wall = time.monotonic() - t0
            hs.stop_recording()
            counters = link.counters()
            turns = voice_to_voice(rec.left, rec.right, merge_gap_s=1.5)
            # Speech boundaries as the recording shows them, on the event loop's clock (for the milestones).
            starts = [hs.clock_to_loop_time(rec.t0 + t.speech_start_s) for t in turns]
            ends = [hs.clock_to_loop_time(rec.t0 + t.speech_end_s) for t in turns]
    if system == "companion":
        detail = under_test.drain()
        stages = detail["stages"]
    else:
        detail = {"heard": under_test.replier.heard, "intents": under_test.replier.intents}
        stages = under_test.milestones(ends, starts)
    return {
        "system": system,
        "segments_match": len(turns) == len(utterances),
        "turns": [
            {
                "kind": u.kind,
                "latency_ms": t.latency_ms,
                "answered_early": t.answered_early,
                "speech_end_s": round(t.speech_end_s, 2),
            }
            for u, t in zip(utterances, turns, strict=False)
        ],
        "replied": sum(answered),
        "heard": detail["heard"],
        "intents": detail["intents"],
        "stages_ms": stages,
        "cpu_percent_of_one_core": round(cpu, 1),
        "rss_mb_max": round(max(rss), 1),
        "wall_s": round(wall, 1),
        "packets_lost": counters["packets_lost"],
    }


# ----------------------------------------------------------------------------------------------- the rounds


def run_round(system: str, utterance_file: Path, args, round_no: int) -> dict:
    cmd = [sys.executable, __file__, "--system", system, "--utterances", str(utterance_file)]
    cmd += ["--pause", str(args.pause)]
    if args.recordings:
        cmd += ["--recording", str(Path(args.recordings) / f"{system}_round{round_no}.wav")]
    env = {**os.environ, "LOGURU_LEVEL": "WARNING"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{system} round {round_no} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(rounds: list[dict]) -> dict:
    out: dict = {}
    for system in (s for s in SYSTEMS if s in rounds[0]):
        runs = [r[system] for r in rounds]
        turns = [t for r in runs for t in r["turns"]]
        on_time = [t["latency_ms"] for t in turns if t["latency_ms"] is not None and not t["answered_early"]]
        by_kind = {}
        for kind in ("question", "hesitant", "human", "human-pause", "open-synth"):
            vals = [
                t["latency_ms"]
                for t in turns
                if t["kind"] == kind and t["latency_ms"] is not None and not t["answered_early"]
            ]
            by_kind[kind] = {"p50": pct(vals, 50), "n": len(vals)}
        stage_names = sorted({k for r in runs for s in r["stages_ms"] for k in s if k != "ready_in_silence"})
        stages = {}
        for name in stage_names:
            vals = [s[name] for r in runs for s in r["stages_ms"] if s.get(name) is not None]
            stages[name] = {"p50": pct(vals, 50), "p95": pct(vals, 95)}
        ready = [s["ready_in_silence"] for r in runs for s in r["stages_ms"] if "ready_in_silence" in s]
        out[system] = {
            "turns": len(turns),
            "voice_to_voice_ms": {"p50": pct(on_time, 50), "p95": pct(on_time, 95), "n": len(on_time)},
            "per_round_p50_ms": [
                pct([t["latency_ms"] for t in r["turns"] if t["latency_ms"] and not t["answered_early"]], 50)
                for r in runs
            ],
            "by_kind_p50_ms": by_kind,
            "answered_early": sum(t["answered_early"] for t in turns),
            "unanswered": sum(t["latency_ms"] is None for t in turns),
            "stages_ms": stages,
            # companion only: the transcript that ended the turn was ready inside the endpointer's silence
            "stt_ready_in_silence_share": round(sum(ready) / len(ready), 3) if ready else None,
            "cpu_percent_of_one_core": statistics.median(r["cpu_percent_of_one_core"] for r in runs),
            "rss_mb_max": max(r["rss_mb_max"] for r in runs),
            "segments_match": all(r["segments_match"] for r in runs),
            "intents": [r["intents"] for r in runs],
        }
    if len(out) < len(SYSTEMS):
        return out
    c, p = out["companion"]["voice_to_voice_ms"], out["pipecat"]["voice_to_voice_ms"]
    out["ratio_pipecat_over_companion"] = {
        "p50": round(p["p50"] / c["p50"], 2) if c["p50"] and p["p50"] else None,
        "p95": round(p["p95"] / c["p95"], 2) if c["p95"] and p["p95"] else None,
    }
    return out


def print_table(summary: dict, rounds: int) -> None:
    print(f"\nside by side, {rounds} round(s), voice-to-voice from the headset recordings (ms):")
    print(
        f"{'':<12}{'p50':>8}{'p95':>8}{'n':>5}{'early':>7}{'none':>6}{'question':>10}{'hesitant':>10}"
        f"{'human':>8}{'h-pause':>9}{'open':>7}{'CPU %':>7}{'RSS MB':>8}"
    )
    systems = [s for s in SYSTEMS if s in summary]
    for system in systems:
        s = summary[system]
        v, k = s["voice_to_voice_ms"], s["by_kind_p50_ms"]

        def f(x):
            return f"{x:.0f}" if x is not None else "-"

        print(
            f"{system:<12}{f(v['p50']):>8}{f(v['p95']):>8}{v['n']:>5}{s['answered_early']:>7}{s['unanswered']:>6}"
            f"{f(k['question']['p50']):>10}{f(k['hesitant']['p50']):>10}{f(k['human']['p50']):>8}"
            f"{f(k['human-pause']['p50']):>9}{f(k['open-synth']['p50']):>7}"
            f"{s['cpu_percent_of_one_core']:>7}{s['rss_mb_max']:>8}"
        )
    if r := summary.get("ratio_pipecat_over_companion"):
        print(f"ratio pipecat / companion: p50 {r['p50']}x, p95 {r['p95']}x")
    for system in systems:
        print(
            f"{system} stages after the end of speech (p50 ms): "
            + ", ".join(f"{k} {v['p50']:.0f}" for k, v in summary[system]["stages_ms"].items() if v["p50"])
        )
    if (c := summary.get("companion")) and (t := c["stages_ms"].get("transcript")) and t["p50"] is not None:
        share = c["stt_ready_in_silence_share"]
        print(
            f"companion STT final after the end of speech: p50 {t['p50']:.0f} ms, p95 {t['p95']:.0f} ms; "
            f"ready inside the silence window in {100 * (share or 0):.0f}% of turns"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds; each runs both systems (default 3)")
    p.add_argument("--human", type=int, default=4, help="human read-speech utterances per round (default 4)")
    p.add_argument(
        "--set",
        choices=("commands", "use"),
        default="commands",
        help="commands: skill questions, hesitations, --human recordings; use: real speech as in use",
    )
    p.add_argument("--pause", type=float, default=1.0, help="seconds between a reply and the next utterance")
    p.add_argument("--recordings", help="keep each round's stereo conversation recording in this folder")
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument("--only", choices=SYSTEMS, help="run one system (e.g. to compare configurations)")
    p.add_argument("--system", choices=SYSTEMS, help=argparse.SUPPRESS)  # one round in this process
    p.add_argument("--utterances", help=argparse.SUPPRESS)
    p.add_argument("--recording", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.system:
        spec = json.loads(Path(args.utterances).read_text())
        utterances = [Utterance(u["kind"], u["text"], Path(u["path"])) for u in spec]
        recording = Path(args.recording) if args.recording else None
        print(json.dumps(asyncio.run(run_system(args.system, utterances, args.pause, recording))))
        return

    try:
        if args.only != "companion":
            import pipecat  # noqa: F401
    except ImportError:
        raise SystemExit("Pipecat is not installed: .venv/bin/pip install -e '.[pipecat]'") from None
    if args.recordings:
        Path(args.recordings).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="companion-vs-pipecat-") as tmp:
        utterances = asyncio.run(make_utterances(Path(tmp), args.human, args.set))
        spec = Path(tmp) / "utterances.json"
        spec.write_text(
            json.dumps([{"kind": u.kind, "text": u.text, "path": str(u.path)} for u in utterances])
        )
        rounds = []
        for n in range(args.rounds):
            order = (args.only,) if args.only else SYSTEMS if n % 2 == 0 else SYSTEMS[::-1]
            result = {}
            for system in order:
                print(f"round {n + 1}/{args.rounds}: {system} ...", file=sys.stderr)
                result[system] = run_round(system, spec, args, n + 1)
            rounds.append(result)
    summary = {"rounds": args.rounds, "utterances": [u.text for u in utterances], **summarise(rounds)}
    if args.json:
        print(json.dumps({"summary": summary, "rounds": rounds}))
        return
    print(json.dumps(summary, indent=2))
    print_table(summary, args.rounds)


if __name__ == "__main__":
    main()
