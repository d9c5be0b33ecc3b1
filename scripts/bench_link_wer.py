#!/usr/bin/env python3
"""WER of the real human speech set, clean versus carried through a virtual headset and the BLE link.

Each utterance of tests/data/speech is spoken into a virtual headset, carried over the simulated radio with
the given codec and packet loss (counted and concealed by the link), and transcribed with the same
fast path as the clean file. The target: Opus at 2% loss within +1 WER point of the clean files.

    .venv/bin/python scripts/bench_link_wer.py --codec opus --loss 0.02 [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from companion.stt import WhisperSTT
from companion.stt.text import word_errors
from companion.stt.whisper import has_repeat
from companion.transcribe import through_headset
from tests.fixtures.speech import load_manifest


async def run(args) -> dict:
    stt = WhisperSTT("tiny.en")
    await asyncio.to_thread(stt.load)
    rows = []
    clean_err = link_err = stock_err = words = 0
    repeats = 0  # link transcripts with a word or phrase twice in a row that the reference does not have
    lost = sent = concealed = 0
    for utt in load_manifest()[: args.limit]:
        pcm = utt.pcm()
        clean = await stt.atranscribe(pcm)
        stock = await asyncio.to_thread(stt.transcribe_stock, pcm)
        heard, counters = await through_headset(pcm, codec=args.codec, loss=args.loss)
        carried = await stt.atranscribe(heard)
        e_clean, n = word_errors(utt.transcript, clean.text)
        e_link, _ = word_errors(utt.transcript, carried.text)
        e_stock, _ = word_errors(utt.transcript, stock.text)
        repeated = has_repeat(carried.text) and not has_repeat(utt.transcript)
        repeats += repeated
        stock_err += e_stock
        clean_err += e_clean
        link_err += e_link
        words += n
        lost += counters["packets_lost"]
        sent += counters["packets_received"] + counters["packets_lost"]
        concealed += counters["frames_concealed"]
        rows.append(
            {
                "file": utt.path.name,
                "clean": clean.text,
                "link": carried.text,
                "errors_clean": e_clean,
                "errors_link": e_link,
                "errors_stock": e_stock,
                "repeat": repeated,
                "words": n,
            }
        )
        print(
            f"{utt.path.name:<18} stock {e_stock:>2}  clean {e_clean:>2}  link {e_link:>2}  / {n}"
            + ("  (repeat)" if repeated else ""),
            file=sys.stderr,
        )
    stt.close()
    return {
        "codec": args.codec,
        "loss": args.loss,
        "utterances": len(rows),
        "wer_stock_clean": round(100 * stock_err / words, 2),
        "wer_clean": round(100 * clean_err / words, 2),
        "wer_link": round(100 * link_err / words, 2),
        "packets_lost": lost,
        "packet_loss_measured": round(lost / max(sent, 1), 4),
        "frames_concealed": concealed,
        "repeats": repeats,
        "rows": rows,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default="opus", choices=["opus", "opus10", "opus60", "pcm16", "mulaw"])
    p.add_argument("--loss", type=float, default=0.02)
    p.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"WER stock clean {result['wer_stock_clean']}%, ours clean {result['wer_clean']}%, "
        f"through the link ({args.codec}, {args.loss:.0%} loss) "
        f"{result['wer_link']}%; {result['packets_lost']} packets lost, "
        f"{result['frames_concealed']} frames concealed; {result['repeats']} transcripts with a repeat"
    )


if __name__ == "__main__":
    main()
