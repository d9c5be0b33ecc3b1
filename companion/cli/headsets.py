"""Commands about headsets: find them (`scan`), bond with one (`pair`), list the known ones and their live
state (`devices`), and speak on one through the running service (`say`).
"""

from __future__ import annotations

import asyncio
import json

import click

from .common import EXIT_FAILURE, EXIT_NO_DEVICE, EXIT_USAGE, CliError, cli, config_option, run_command


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
        found = run_command(go())
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
@click.argument("address")
@click.option("--sim", is_flag=True, help="Pair a virtual headset.")
@click.option(
    "--timeout", default=10.0, show_default=True, type=click.FloatRange(0.5, 120), help="Seconds to look."
)
def pair(address: str, sim: bool, timeout: float) -> None:
    """Bond with the headset at ADDRESS and remember it, so `companion run` serves it."""
    from companion.pairing import pair_headset

    entry = run_command(pair_headset(address, sim=sim, timeout=timeout))
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
