"""``python -m firmware_sim``: run virtual headsets in their own process and serve them on a Unix socket.

A host started separately (``companion scan --sim``, or any bleak code using ``SimScanner``) finds them
through the default socket path without flags. The wearer speaks each ``--mic`` file / ``--mic-text``
once a host has connected and is streaming the mic (after ``--settle`` seconds, with ``--pause`` seconds
between utterances). SIGINT/SIGTERM shut down cleanly and remove the socket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import ConfigError, HeadsetConfig, RadioConfig
from .config_model import Float, Int, SimModel, setting
from .firmware import load_wav, synthesize
from .headset import VirtualHeadset
from .options import add_model_options, flag_for, model_values
from .paths import SOCKET_ENV, default_socket_path
from .server import SimServer, SocketInUse
from .tasks import TaskOwner
from .world import SimWorld

log = logging.getLogger("firmware_sim")

EPILOG = f"""\
The socket defaults to ${SOCKET_ENV} if set, else {default_socket_path()} ; the companion
service and SimScanner look there by default, so `companion scan --sim` finds these headsets with no flags.
Examples:
  python -m firmware_sim --count 2
  python -m firmware_sim --profile omi --mic question.wav --loss 0.02 --record /tmp/conv.wav
  python -m firmware_sim --mic-text "what time is it" --mic-text "set a timer for two minutes"
"""


class RunOptions(SimModel):
    """What the process does beyond the headsets: how many, what the wearer says, where it serves."""

    count: Int = setting(1, "how many headsets to run", "--count", "N", ge=1, le=1000)
    mic: tuple[Path, ...] = setting(
        (), "WAV files the wearer speaks, in order, once a host is connected and streaming", "--mic", "WAV"
    )
    mic_text: tuple[str, ...] = setting(
        (),
        "sentences the wearer speaks (synthesised with the bundled piper voice), after the WAVs",
        "--mic-text",
        "TEXT",
    )
    settle: Float = setting(
        1.0, "seconds to wait after the host starts streaming before speaking", "--settle", "S", ge=0, le=3600
    )
    pause: Float = setting(2.0, "seconds between utterances", "--pause", "S", ge=0, le=3600)
    record: Path | None = setting(
        None,
        "write the conversation recording (stereo 16 kHz: left the wearer, right the speaker); "
        "with --count > 1 each headset writes WAV-1, WAV-2 ...",
        "--record",
        "WAV",
    )
    socket: Path | None = setting(
        None,
        f"Unix socket to serve on (default: ${SOCKET_ENV} or the per-user runtime directory)",
        "--socket",
        "PATH",
    )
    verbose: bool = setting(False, "debug logging", "--verbose", short="-v")


def build_parser() -> argparse.ArgumentParser:
    """The options of HeadsetConfig, RadioConfig and RunOptions, derived from their fields."""
    p = argparse.ArgumentParser(
        prog="python -m firmware_sim",
        description="Run virtual BLE headsets (companion or Omi profile) for a companion service to use.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(p.add_argument_group("headsets"), HeadsetConfig)
    add_model_options(p.add_argument_group("radio link"), RadioConfig)
    add_model_options(p.add_argument_group("the wearer and the process"), RunOptions)
    return p


def run_options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(**model_values(args, RunOptions))


def configs(args: argparse.Namespace) -> list[tuple[HeadsetConfig, RadioConfig]]:
    """One (headset, radio) pair per ``--count``: NAME-1, NAME-2 ... and seeds SEED, SEED+1 ..."""
    count = run_options(args).count
    base = HeadsetConfig(**model_values(args, HeadsetConfig))
    radio = RadioConfig(**model_values(args, RadioConfig))
    if count == 1:
        return [(base, radio)]
    out = []
    for i in range(count):
        seed = None if base.seed is None else base.seed + i
        out.append((base.replace(name=f"{base.name}-{i + 1}", seed=seed), radio.replace(seed=seed)))
    return out


def explain(exc: ConfigError) -> str:
    """The error with the flag of the field it names, so the fix is plain: ``--volume: volume = ...``."""
    field = str(exc).split(" ", 1)[0].split(":", 1)[0].split(".", 1)[0]
    for model in (HeadsetConfig, RadioConfig, RunOptions):
        flag = flag_for(model, field)
        if flag is not None:
            return f"{flag}: {exc}"
    return str(exc)


def record_path(base: Path, index: int, count: int) -> Path:
    return base if count == 1 else base.with_name(f"{base.stem}-{index + 1}{base.suffix}")


async def wearer(
    hs: VirtualHeadset, wavs: Sequence[Path], texts: Sequence[str], settle: float, pause: float
) -> None:
    """Speak each utterance once, into a connected, streaming mic (waiting for a host as needed).

    The audio is prepared first (WAVs loaded, texts synthesised, in worker threads) while no host is
    there yet, so each utterance starts on time once one is.
    """
    items: list[tuple[str, np.ndarray]] = []
    for wav in wavs:
        items.append((wav.name, await asyncio.to_thread(load_wav, wav)))
    for text in texts:
        items.append((repr(text), await asyncio.to_thread(synthesize, text)))
    for i, (label, pcm) in enumerate(items):
        if not hs.streaming:
            log.info("%s: waiting for a host to stream the mic", hs.name)
            await hs.wait_streaming()
            await asyncio.sleep(settle)
        elif i:
            await asyncio.sleep(pause)
        log.info("%s: wearer says %s (%.1f s)", hs.name, label, len(pcm) / 16000)
        end = await hs.mic.say(pcm, label=label)
        log.info("%s: utterance ended at headset time %.2f s", hs.name, end)
    if items:
        log.info("%s: wearer has said everything", hs.name)


async def serve(run: RunOptions, pairs: list[tuple[HeadsetConfig, RadioConfig]]) -> int:
    path = run.socket or default_socket_path()
    for wav in run.mic:
        if not wav.is_file():
            log.error("--mic %s: file not found", wav)
            return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with SimWorld(address_prefix="5A:E0") as world:
            server = SimServer(world, path)
            try:
                await server.start()
            except SocketInUse as exc:
                log.error("%s", exc)
                return 1
            headsets = [world.add_headset(h, r) for h, r in pairs]
            wearers = TaskOwner("wearer")  # a wearer that fails is logged with its error; the rest go on
            for i, hs in enumerate(headsets):
                if run.record:
                    hs.start_recording(record_path(run.record, i, len(headsets)))
                wearers.spawn(wearer(hs, run.mic, run.mic_text, run.settle, run.pause), hs.name)
            log.info(
                "ready: %d %s headset(s) on %s: %s",
                len(headsets),
                pairs[0][0].profile,
                path,
                ", ".join(f"{h.name} ({h.address})" for h in headsets),
            )
            try:
                await stop.wait()
            finally:
                log.info("shutting down")
                await wearers.aclose()
                await server.aclose()
                for hs in headsets:
                    rec = hs.stop_recording()
                    if rec is not None and rec.path is not None:
                        log.info("%s: recording written to %s (%.1f s)", hs.name, rec.path, rec.seconds)
                        if rec.acoustics is not None:
                            log.info("%s: ground truth in %s", hs.name, rec.sidecar(".json"))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run = run_options(args)
        pairs = configs(args)
    except ConfigError as exc:
        print(f"python -m firmware_sim: error: {explain(exc)}", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if run.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(run, pairs))
    return 130
