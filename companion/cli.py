"""The `companion` command line. Each command is a thin shell over a module that does the work.

Exit codes: 0 success; 1 failure while running; 2 bad usage or configuration; 3 no headset found or
reachable; 4 a model, voice, server or library is missing (the message says what to install or start).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from companion import __version__
from companion.config import Config, ConfigError, load_config
from companion.protocol.codec_ids import CODEC_NAMES

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NO_DEVICE = 3
EXIT_MISSING = 4

log = logging.getLogger("companion")


class CliError(click.ClickException):
    """An error the user can act on, with its own exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        # click's annotations make exit_code a ClassVar, but click reads it from the instance
        self.exit_code = exit_code  # type: ignore[misc]


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = (
        logging.WARNING
        if quiet
        else (logging.INFO if verbose == 1 else logging.DEBUG if verbose > 1 else logging.WARNING)
    )
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    from companion import redact

    redact.install()  # no password or API key in any log line, tracebacks included
    if verbose < 2:
        for noisy in ("bleak", "bleak_retry_connector", "httpx", "httpcore", "openai", "faster_whisper"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _config(ctx: click.Context) -> Config:
    try:
        return load_config(ctx.obj.get("config_path"))
    except ConfigError as exc:
        raise CliError(f"configuration error:\n{exc}", EXIT_USAGE) from None


def _override(config: Config, source: str, **sections: dict[str, Any]) -> Config:
    from companion.config import with_overrides

    try:
        return with_overrides(config, source, **sections)
    except ConfigError as exc:
        raise CliError(f"configuration error:\n{exc}", EXIT_USAGE) from None


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a command's coroutine, turning the project's typed errors into messages and exit codes."""
    from companion.control_socket import ControlSocketError
    from companion.engines import EngineUnavailable
    from companion.link.base import LinkError, NotConnected
    from companion.registry import RegistryError

    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except EngineUnavailable as exc:
        raise CliError(str(exc), EXIT_MISSING) from None
    except NotConnected as exc:
        raise CliError(str(exc), EXIT_NO_DEVICE) from None
    except (LinkError, ConfigError, ControlSocketError) as exc:
        raise CliError(str(exc), EXIT_FAILURE) from None
    except RegistryError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _store_config_path(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)
        ctx.find_root().obj["config_path"] = value


def config_option(command: Any) -> Any:
    """`--config FILE` on a command as well as before it, as users type it (`companion run --config F`)."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        expose_value=False,
        is_eager=True,
        callback=_store_config_path,
        help="TOML config file (overrides the one given before the command and $COMPANION_CONFIG).",
    )(command)


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="companion")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="COMPANION_CONFIG",
    help="TOML config file (default: the platform config dir's companion/config.toml).",
)
@click.option("-v", "--verbose", count=True, help="Log what happens (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool) -> None:
    """Offline-first voice assistant for Bluetooth LE wearables."""
    _setup_logging(verbose, quiet)
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


@cli.command()
@config_option
@click.option("--sim", is_flag=True, help="Scan virtual headsets (in-process and `python -m firmware_sim`).")
@click.option(
    "--timeout", default=5.0, show_default=True, type=click.FloatRange(0.1, 120), help="Seconds to scan."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def scan(sim: bool, timeout: float, as_json: bool) -> None:
    """List advertising headsets: profile, name, address, RSSI, battery."""
    from companion.link.ble import scan_headsets

    async def go():
        backend = None
        if sim:
            from companion.link.sim import sim_backends

            backend = sim_backends()[0]
        return await scan_headsets(timeout, backend=backend)

    try:
        found = _run(go())
    except CliError:
        raise
    except Exception as exc:  # bleak raises plain errors when no adapter exists
        from companion.link.ble import describe_ble_error

        raise CliError(f"scan failed: {describe_ble_error(exc)}", EXIT_NO_DEVICE) from None
    if as_json:
        click.echo(json.dumps([h.as_dict() for h in found]))
        return
    if not found:
        click.echo("no headsets found" + ("" if sim else " (try --sim for virtual headsets)"), err=True)
        return
    click.echo(f"{'PROFILE':<10} {'NAME':<24} {'ADDRESS':<20} {'RSSI':>5} {'BATTERY':>7}")
    for h in found:
        battery = f"{h.battery}%" if h.battery is not None else "-"
        rssi = str(h.rssi) if h.rssi is not None else "-"
        click.echo(f"{h.profile!s:<10} {h.name:<24} {h.address:<20} {rssi:>5} {battery:>7}")


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check models, voices, Bluetooth, audio devices, MQTT, LLM and config; say what to do about each."""
    from companion.doctor import run_checks

    checks = asyncio.run(run_checks(ctx.obj.get("config_path")))
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        for c in checks:
            click.echo(f"[{marks[c.status]}] {c.name:<10} {c.detail}")
            if c.advice and c.status != "ok":
                click.echo(f"       {'':<10} -> {c.advice}")
    if any(c.status == "fail" for c in checks):
        sys.exit(EXIT_FAILURE)


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
@click.option(
    "--codec",
    type=click.Choice(list(CODEC_NAMES)),
    help="Mic codec over the simulated link (default: the best the link carries).",
)
@click.option(
    "--loss",
    type=click.FloatRange(0, 0.5),
    default=0.0,
    show_default=True,
    help="Packet loss on the simulated radio.",
)
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

    config = _config(ctx)
    if llm_url:
        llm = {"backend": "openai", "base_url": llm_url, "model": llm_model}
        config = _override(config, "--llm-url", llm=llm)
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
    turns = _run(run_demo(options, config, _progress))
    if any(not t.transcript for t in turns):
        raise CliError("a turn got no transcript (see the log with -v)", EXIT_FAILURE)


@cli.command()
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--via-headset", is_flag=True, help="Stream the audio through a virtual headset and the BLE link first."
)
@click.option(
    "--codec",
    type=click.Choice(list(CODEC_NAMES)),
    default="opus",
    show_default=True,
    help="Mic codec on the link (with --via-headset).",
)
@click.option(
    "--loss",
    type=click.FloatRange(0, 0.5),
    default=0.0,
    show_default=True,
    help="Packet loss on the simulated radio (with --via-headset).",
)
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

    config = _config(ctx)
    try:
        result = _run(
            transcribe_file(file, config, via_headset=via_headset, codec=codec, loss=loss, progress=_progress)
        )
    except AudioFileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(result["text"])


@cli.command()
@config_option
@click.option(
    "--sim", is_flag=True, help="Serve virtual headsets (in-process or from `python -m firmware_sim`)."
)
@click.option(
    "--mqtt", "mqtt_url", metavar="URL", help="MQTT broker, e.g. mqtt://127.0.0.1:1883 (overrides mqtt.url)."
)
@click.pass_context
def run(ctx: click.Context, sim: bool, mqtt_url: str | None) -> None:
    """Run the background service until SIGINT/SIGTERM."""
    from companion.registry import RegistryError, load_known
    from companion.service import run_service

    config = _config(ctx)
    if mqtt_url:
        config = _override(config, "--mqtt", mqtt={"url": mqtt_url})
    try:
        load_known()  # a damaged registry stops here, not at the first scan
    except RegistryError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    _run(run_service(config, sim=sim or config.link.sim, progress=_progress))


@cli.command()
@config_option
@click.argument("address")
@click.option("--sim", is_flag=True, help="Pair a virtual headset.")
@click.option(
    "--timeout", default=10.0, show_default=True, type=click.FloatRange(0.5, 120), help="Seconds to look."
)
def pair(address: str, sim: bool, timeout: float) -> None:
    """Bond with the headset at ADDRESS and remember it, so `companion run` serves it."""
    from companion.pairing import pair_headset

    entry = _run(pair_headset(address, sim=sim, timeout=timeout))
    click.echo(f"paired {entry.name} ({entry.address}, {entry.profile} profile)")


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def devices(as_json: bool) -> None:
    """List remembered headsets and, if the service runs, their live state."""
    from companion.control_socket import ServiceNotRunning, request
    from companion.registry import load_known

    try:
        known = load_known()
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        live = asyncio.run(request({"cmd": "status"}, timeout=5.0))["devices"]
        running = True
    except ServiceNotRunning:
        live, running = [], False
    rows: dict[str, dict[str, object]] = {
        k.address: {
            "address": k.address,
            "name": k.name,
            "profile": k.profile,
            "paired": True,
            "connected": False,
            "state": "offline" if running else "service not running",
            "battery": None,
        }
        for k in known.values()
    }
    for d in live:
        rows[d["address"]] = {**rows.get(d["address"], {"paired": False}), **d}
    if as_json:
        click.echo(json.dumps({"service_running": running, "devices": list(rows.values())}))
        return
    if not running:
        click.echo("companion service not running (start it with `companion run`)", err=True)
    if not rows:
        click.echo(
            "no headsets: pair one with `companion pair ADDRESS` (find it with `companion scan`)", err=True
        )
        return
    click.echo(f"{'NAME':<24} {'ADDRESS':<20} {'PROFILE':<10} {'PAIRED':<6} {'STATE':<12} {'BATTERY':>7}")
    for r in rows.values():
        battery = f"{r['battery']}%" if r.get("battery") is not None else "-"
        paired = "yes" if r.get("paired") else "no"
        click.echo(
            f"{r['name']!s:<24} {r['address']!s:<20} {r['profile']!s:<10} {paired:<6} "
            f"{r['state']!s:<12} {battery:>7}"
        )


@cli.command()
@config_option
@click.argument("text")
@click.option("--device", "-d", metavar="D", help="Address or name of the headset (default: the only one).")
@click.option("--wait", is_flag=True, help="Return once the text has been spoken (default: once queued).")
def say(text: str, device: str | None, wait: bool) -> None:
    """Speak TEXT (at most 2000 characters) on a headset served by the running service."""
    from companion.bus.topics import MAX_SAY_CHARS
    from companion.control_socket import ServiceNotRunning, request, say_timeout_s

    text = text.strip()
    if not text or len(text) > MAX_SAY_CHARS:
        raise CliError(f"TEXT must be 1-{MAX_SAY_CHARS} characters, got {len(text)}", EXIT_USAGE)
    req = {"cmd": "say", "device": device or "", "text": text, "wait": wait}
    timeout = say_timeout_s(text) if wait else 10.0
    try:
        reply = asyncio.run(request(req, timeout=timeout))
    except ServiceNotRunning as exc:
        raise CliError(str(exc), EXIT_NO_DEVICE) from None
    except TimeoutError:
        what = "finished speaking" if wait else "accepted the text"
        message = f"the service has not {what} after {timeout:g} s; stopped waiting"
        raise CliError(message, EXIT_FAILURE) from None
    if not reply.get("ok"):
        raise CliError(str(reply.get("error")), EXIT_NO_DEVICE)


@cli.command()
@config_option
@click.option(
    "--uri",
    default="tcp://127.0.0.1:10700",
    show_default=True,
    help="Where to listen: tcp://HOST:PORT (0.0.0.0 for other machines, port 0 for any) or unix:///PATH.",
)
@click.option(
    "--zeroconf",
    "zeroconf_name",
    metavar="NAME",
    help="Announce the server over mDNS under NAME for Home Assistant's discovery (needs `zeroconf`).",
)
@click.pass_context
def serve(ctx: click.Context, uri: str, zeroconf_name: str | None) -> None:
    """Serve speech recognition and the voice over Wyoming (Home Assistant's voice protocol)."""
    try:
        from companion.wyoming.server import check_uri, run_server
    except ImportError as exc:
        raise CliError(f"{exc.name} is missing: pip install 'companion[wyoming]'", EXIT_MISSING) from None
    try:
        check_uri(uri)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    config = _config(ctx)
    _run(run_server(config, uri, zeroconf_name=zeroconf_name, progress=_progress))


def _redacted_excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    import traceback

    from companion.redact import redact

    sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))


def main() -> None:
    sys.excepthook = _redacted_excepthook  # an unexpected traceback must not print a password either
    cli(obj={})


if __name__ == "__main__":
    main()
