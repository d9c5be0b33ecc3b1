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
from typing import TypedDict

import numpy as np

from companion.protocol import codec_by_name

from .config import ConfigError, HeadsetConfig, RadioConfig
from .firmware import load_wav, synthesize
from .headset import VirtualHeadset
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


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 0.9:
        raise argparse.ArgumentTypeError(f"{value} is not a probability between 0 and 0.9")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _codec(text: str) -> str:
    try:
        codec_by_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_acoustics_arguments(g: argparse._ActionsContainer) -> None:
    """The open-ear world around the headset (shared with ``companion demo``)."""
    g.add_argument(
        "--echo-db",
        type=float,
        metavar="DB",
        help="the headset's own speaker in its mic, at DB relative to the playback (e.g. -6: an echo return "
        "loss of 6 dB, a loud open-ear leak), through a 4 ms delay and a short synthetic impulse "
        "response (off by default)",
    )
    g.add_argument(
        "--bystander",
        action="append",
        default=[],
        type=Path,
        metavar="WAV",
        help="another person talking near the wearer (repeatable): the files play in a loop with 1-4 s "
        "gaps, between and over the wearer's turns",
    )
    g.add_argument(
        "--bystander-db",
        type=float,
        default=0.0,
        metavar="DB",
        help="bystander speech level relative to the wearer's (default 0)",
    )
    g.add_argument(
        "--noise-snr",
        type=float,
        metavar="DB",
        help="background noise (Gaussian) this many dB below the wearer's speech level (off by default)",
    )


class AcousticsFields(TypedDict):
    """The HeadsetConfig fields the acoustics flags set."""

    echo_db: float | None
    bystanders: tuple[str, ...]
    bystander_db: float
    noise_snr_db: float | None


def acoustics_config(args: argparse.Namespace) -> AcousticsFields:
    """HeadsetConfig fields for the acoustics flags."""
    return {
        "echo_db": args.echo_db,
        "bystanders": tuple(str(p) for p in args.bystander),
        "bystander_db": args.bystander_db,
        "noise_snr_db": args.noise_snr,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m firmware_sim",
        description="Run virtual BLE headsets (companion or Omi profile) for a companion service to use.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("headsets")
    g.add_argument(
        "--profile",
        choices=["companion", "omi"],
        default="companion",
        help="GATT profile: our open 'companion' protocol (audio both ways) or Omi/Friend "
        "compatibility (mic only). Default: companion.",
    )
    g.add_argument("--count", type=_positive_int, default=1, help="how many headsets to run (default 1)")
    g.add_argument(
        "--name",
        metavar="PREFIX",
        help="advertised name; with --count > 1 each gets PREFIX-1, PREFIX-2 ... "
        "(default 'Companion Sim', or 'Omi' for the omi profile)",
    )
    g.add_argument(
        "--codec",
        type=_codec,
        metavar="CODEC",
        help="mic codec: opus (Opus 20 ms), opus10, opus60, pcm16 or mulaw (default opus; "
        "the host may change it with SET_CODECS on the companion profile)",
    )
    g.add_argument(
        "--speaker-buffer-ms",
        type=int,
        default=400,
        metavar="MS",
        help="speaker playout buffer, which sets the flow-control credits (default 400)",
    )
    g.add_argument("--aec", action="store_true", help="the headset cancels its own speaker echo")
    g.add_argument(
        "--echo-gain",
        type=float,
        default=0.0,
        metavar="G",
        help="how much speaker output leaks into the mic without --aec (0..4, default 0)",
    )
    g.add_argument(
        "--noise",
        type=float,
        default=0.0,
        metavar="RMS",
        help="mic self-noise, RMS in int16 units (default 0: digital silence between words)",
    )
    add_acoustics_arguments(g)
    g.add_argument(
        "--battery", type=float, default=100.0, metavar="PCT", help="battery at start (default 100)"
    )
    g.add_argument(
        "--storage", action="store_true", help="omi offline storage of audio while no host is connected"
    )
    g.add_argument(
        "--variant",
        choices=["cv1", "devkit"],
        help="omi build: cv1 (the consumer Omi, Opus 20 ms, default) or devkit (Opus 10 ms)",
    )
    g = p.add_argument_group("the wearer")
    g.add_argument(
        "--mic",
        nargs="+",
        action="extend",
        default=[],
        metavar="WAV",
        type=Path,
        help="WAV files the wearer speaks, in order, once a host is connected and streaming",
    )
    g.add_argument(
        "--mic-text",
        nargs="+",
        action="extend",
        default=[],
        metavar="TEXT",
        help="sentences the wearer speaks (synthesised with the bundled piper voice), after the WAVs",
    )
    g.add_argument(
        "--settle",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds to wait after the host starts streaming before speaking (default 1)",
    )
    g.add_argument(
        "--pause", type=float, default=2.0, metavar="S", help="seconds between utterances (default 2)"
    )
    g.add_argument(
        "--record",
        type=Path,
        metavar="WAV",
        help="write the conversation recording (stereo 16 kHz: left the wearer, right the speaker); "
        "with --count > 1 each headset writes WAV-1, WAV-2 ...",
    )
    g = p.add_argument_group("radio link")
    g.add_argument(
        "--mtu",
        type=int,
        default=247,
        metavar="N",
        help="largest ATT MTU the headset accepts (23-517, default 247); the link starts at 23 "
        "until the host exchanges the MTU",
    )
    g.add_argument(
        "--auto-mtu", action="store_true", help="the host's stack raises the MTU at connect (as macOS does)"
    )
    g.add_argument(
        "--no-device-mtu",
        action="store_true",
        help="the headset does not ask for the MTU exchange itself (omi does, 1.3 s after connecting)",
    )
    g.add_argument(
        "--interval-ms", type=float, default=15.0, metavar="MS", help="connection interval (default 15)"
    )
    g.add_argument(
        "--packets-per-event",
        type=int,
        default=6,
        metavar="N",
        help="packets per connection event and direction: the throughput limit (default 6)",
    )
    g.add_argument(
        "--latency-ms", type=float, default=0.0, metavar="MS", help="extra one-way latency (default 0)"
    )
    g.add_argument("--loss", type=_probability, default=0.0, metavar="P", help="mic packet loss probability")
    g.add_argument(
        "--dup", type=_probability, default=0.0, metavar="P", help="mic packet duplicate probability"
    )
    g.add_argument(
        "--reorder",
        type=_probability,
        default=0.0,
        metavar="P",
        help="probability that a mic packet arrives after the next one",
    )
    g.add_argument(
        "--downlink-loss", type=_probability, default=0.0, metavar="P", help="speaker write loss probability"
    )
    g.add_argument(
        "--seed", type=int, metavar="N", help="random seed for the radio and mic noise (reproducible runs)"
    )
    g = p.add_argument_group("process")
    g.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help=f"Unix socket to serve on (default: ${SOCKET_ENV} or the per-user runtime directory)",
    )
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def configs(args: argparse.Namespace) -> list[tuple[HeadsetConfig, RadioConfig]]:
    out = []
    for i in range(args.count):
        name = args.name
        if name and args.count > 1:
            name = f"{name}-{i + 1}"
        elif not name and args.count > 1:
            name = f"{'Omi' if args.profile == 'omi' else 'Companion Sim'}-{i + 1}"
        seed = None if args.seed is None else args.seed + i
        hs = HeadsetConfig(
            profile=args.profile,
            name=name,
            mic_codec=args.codec,
            speaker_buffer_ms=args.speaker_buffer_ms,
            has_aec=args.aec,
            echo_gain=args.echo_gain,
            mic_noise_rms=args.noise,
            **acoustics_config(args),
            battery_percent=args.battery,
            has_storage=args.storage,
            variant=args.variant,
            requests_mtu=False if args.no_device_mtu else None,
            seed=seed,
        )
        radio = RadioConfig(
            max_mtu=args.mtu,
            auto_mtu=args.auto_mtu,
            interval_ms=args.interval_ms,
            packets_per_event=args.packets_per_event,
            latency_ms=args.latency_ms,
            loss=args.loss,
            duplicate=args.dup,
            reorder=args.reorder,
            downlink_loss=args.downlink_loss,
            seed=seed,
        )
        out.append((hs, radio))
    return out


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


async def serve(args: argparse.Namespace) -> int:
    path = args.socket or default_socket_path()
    for wav in args.mic:
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
            headsets = [world.add_headset(h, r) for h, r in configs(args)]
            wearers = TaskOwner("wearer")  # a wearer that fails is logged with its error; the rest go on
            for i, hs in enumerate(headsets):
                if args.record:
                    hs.start_recording(record_path(args.record, i, len(headsets)))
                wearers.spawn(wearer(hs, args.mic, args.mic_text, args.settle, args.pause), hs.name)
            log.info(
                "ready: %d %s headset(s) on %s: %s",
                len(headsets),
                args.profile,
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
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
    )
    try:
        configs(args)
    except ConfigError as exc:
        print(f"python -m firmware_sim: error: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(args))
    return 130
