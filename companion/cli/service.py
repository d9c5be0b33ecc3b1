"""Commands that run a long-lived server: `run` (the headset service), `serve` (Wyoming for Home
Assistant), and `doctor`, which checks what they need.
"""

from __future__ import annotations

import asyncio
import json
import sys

import click

from .common import (
    EXIT_FAILURE,
    EXIT_MISSING,
    EXIT_USAGE,
    CliError,
    cli,
    config_option,
    load,
    override,
    progress,
    run_command,
)


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

    config = load(ctx)
    if mqtt_url:
        config = override(config, "--mqtt", mqtt={"url": mqtt_url})
    try:
        load_known()  # a damaged registry stops here, not at the first scan
    except RegistryError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    run_command(run_service(config, sim=sim or config.link.sim, progress=progress))


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
    config = load(ctx)
    run_command(run_server(config, uri, zeroconf_name=zeroconf_name, progress=progress))
