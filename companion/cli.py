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
from typing import Any

import click

from companion import __version__
from companion.config import Config, ConfigError, load_config

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NO_DEVICE = 3
EXIT_MISSING = 4

log = logging.getLogger("companion")


class CliError(click.ClickException):
    """An error the user can act on, with its own exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = (
        logging.WARNING
        if quiet
        else (logging.INFO if verbose == 1 else logging.DEBUG if verbose > 1 else logging.WARNING)
    )
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if verbose < 2:
        for noisy in ("bleak", "bleak_retry_connector", "httpx", "httpcore", "openai", "faster_whisper"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _config(ctx: click.Context) -> Config:
    try:
        return load_config(ctx.obj.get("config_path"))
    except ConfigError as exc:
        raise CliError(f"configuration error:\n{exc}", EXIT_USAGE) from None


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a command's coroutine, turning the project's typed errors into messages and exit codes."""
    from companion.engines import EngineUnavailable
    from companion.link.base import LinkError, NotConnected

    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except EngineUnavailable as exc:
        raise CliError(str(exc), EXIT_MISSING) from None
    except NotConnected as exc:
        raise CliError(str(exc), EXIT_NO_DEVICE) from None
    except (LinkError, ConfigError) as exc:
        raise CliError(str(exc), EXIT_FAILURE) from None


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
        raise CliError(
            f"scan failed: {exc}. No Bluetooth adapter? Try --sim for virtual headsets.", EXIT_NO_DEVICE
        ) from None
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


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
