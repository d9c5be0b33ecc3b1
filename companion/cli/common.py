"""What every `companion` command shares: exit codes, the error type that carries one, logging, loading
the config, running a coroutine with the project's typed errors turned into messages, and the root group.

Exit codes: 0 success; 1 failure while running; 2 bad usage or configuration; 3 no headset found or
reachable; 4 a model, voice, server or library is missing (the message says what to install or start).
"""

from __future__ import annotations

import asyncio
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
        # click's annotations make exit_code a ClassVar, but click reads it from the instance
        self.exit_code = exit_code  # type: ignore[misc]


def setup_logging(verbose: int, quiet: bool) -> None:
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


def load(ctx: click.Context) -> Config:
    try:
        return load_config(ctx.obj.get("config_path"))
    except ConfigError as exc:
        raise CliError(f"configuration error:\n{exc}", EXIT_USAGE) from None


def override(config: Config, source: str, **sections: dict[str, Any]) -> Config:
    from companion.config import with_overrides

    try:
        return with_overrides(config, source, **sections)
    except ConfigError as exc:
        raise CliError(f"configuration error:\n{exc}", EXIT_USAGE) from None


def run_command(coro: Coroutine[Any, Any, Any]) -> Any:
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


def progress(message: str) -> None:
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
    setup_logging(verbose, quiet)
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
