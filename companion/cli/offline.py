"""Commands that run whole offline without the service: `demo` (a conversation with a virtual headset)
and `transcribe` (a WAV file to text, optionally through a virtual headset and the BLE link).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from companion.protocol.codec_ids import CODEC_NAMES

from .common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    cli,
    config_option,
    load,
    override,
    progress,
    run_command,
)


def _codec_option(default: str | None, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--codec``: a mic codec by the protocol's name for it."""
    return click.option(
        "--codec",
        type=click.Choice(list(CODEC_NAMES)),
        default=default,
        show_default=default is not None,
        help=help,
    )


def _loss_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--loss``: packet loss on the simulated radio."""
    return click.option("--loss", type=click.FloatRange(0, 0.5), default=0.0, show_default=True, help=help)


@cli.command()
@config_option
@click.option("--say", "says", multiple=True, metavar="TEXT", help="A turn the wearer speaks (repeatable).")
@click.option(
    "--utterance",
    "utterances",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A WAV file the wearer speaks (repeatable, one turn each).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per turn.")
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the conversation recording: stereo 16 kHz WAV, left = wearer, right = headset playback.",
)
@click.option(
    "--earcons", is_flag=True, help="Play earcons (off by default so the recording measures the reply)."
)
@_codec_option(None, "Mic codec over the simulated link (default: the best the link carries).")
@_loss_option("Packet loss on the simulated radio.")
@click.option(
    "--llm-url", metavar="URL", help="Answer with an OpenAI-compatible server instead of the skills."
)
@click.option("--llm-model", default="default", show_default=True, help="Model name for --llm-url.")
@click.option("--no-wait-timers", is_flag=True, help="Do not wait for timers set during the demo to ring.")
@click.option(
    "--mode",
    type=click.Choice(["hands_free", "wake"]),
    default="hands_free",
    show_default=True,
    help="hands_free answers everything heard; wake answers speech that begins with the wake phrase "
    "('hey companion') or follows a reply.",
)
@click.option(
    "--echo-db",
    type=click.FloatRange(-100, 20),
    metavar="DB",
    help="The virtual headset hears its own speaker at DB relative to the playback (e.g. -6).",
)
@click.option(
    "--bystander",
    "bystanders",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A WAV of another person talking near the wearer (repeatable; played in a loop with gaps).",
)
@click.option(
    "--bystander-db",
    type=click.FloatRange(-60, 30),
    default=0.0,
    show_default=True,
    metavar="DB",
    help="Bystander level relative to the wearer's speech.",
)
@click.option(
    "--noise-snr",
    type=click.FloatRange(-20, 100),
    metavar="DB",
    help="Background noise this many dB below the wearer's speech.",
)
@click.pass_context
def demo(
    ctx: click.Context,
    says: tuple[str, ...],
    utterances: tuple[Path, ...],
    as_json: bool,
    record: Path | None,
    earcons: bool,
    codec: str | None,
    loss: float,
    llm_url: str | None,
    llm_model: str,
    no_wait_timers: bool,
    mode: str,
    echo_db: float | None,
    bystanders: tuple[Path, ...],
    bystander_db: float,
    noise_snr: float | None,
) -> None:
    """Talk to a virtual headset: spoken turns in, answers out, with a latency breakdown. Offline."""
    from companion.audio.wav import AudioFileError, check_wav
    from companion.demo import DemoOptions, run_demo

    config = load(ctx)
    if llm_url:
        llm = {"backend": "openai", "base_url": llm_url, "model": llm_model}
        config = override(config, "--llm-url", llm=llm)
    for path in utterances:  # every file checked before any model loads
        try:
            check_wav(path)
        except AudioFileError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    options = DemoOptions(
        list(says),
        list(utterances),
        as_json,
        record,
        earcons,
        codec,
        loss,
        not no_wait_timers,
        mode=mode,
        echo_db=echo_db,
        bystanders=list(bystanders),
        bystander_db=bystander_db,
        noise_snr_db=noise_snr,
    )
    turns = run_command(run_demo(options, config, progress))
    if any(not t.transcript for t in turns):
        raise CliError("a turn got no transcript (see the log with -v)", EXIT_FAILURE)


@cli.command()
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--via-headset", is_flag=True, help="Stream the audio through a virtual headset and the BLE link first."
)
@_codec_option("opus", "Mic codec on the link (with --via-headset).")
@_loss_option("Packet loss on the simulated radio (with --via-headset).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print text, audio seconds, STT milliseconds, link counters."
)
@click.pass_context
def transcribe(
    ctx: click.Context, file: Path, via_headset: bool, codec: str, loss: float, as_json: bool
) -> None:
    """Print the text spoken in FILE (a WAV file)."""
    from companion.audio.wav import AudioFileError
    from companion.transcribe import transcribe_file

    config = load(ctx)
    try:
        result = run_command(
            transcribe_file(file, config, via_headset=via_headset, codec=codec, loss=loss, progress=progress)
        )
    except AudioFileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(result["text"])
