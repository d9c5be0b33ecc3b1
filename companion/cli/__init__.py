"""The `companion` command line: one module per group of commands, each a thin shell over a module that
does the work. ``common`` holds the exit codes (0 success; 1 failure while running; 2 bad usage or
configuration; 3 no headset found or reachable; 4 something missing to install or start) and the root group.
"""

from __future__ import annotations

import sys
from typing import Any

from . import headsets, offline, service  # noqa: F401 - importing registers the commands
from .common import EXIT_FAILURE, EXIT_MISSING, EXIT_NO_DEVICE, EXIT_USAGE, CliError, cli

__all__ = ["EXIT_FAILURE", "EXIT_MISSING", "EXIT_NO_DEVICE", "EXIT_USAGE", "CliError", "cli", "main"]


def _redacted_excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    import traceback

    from companion.redact import redact

    sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))


def main() -> None:
    sys.excepthook = _redacted_excepthook  # an unexpected traceback must not print a password either
    cli(obj={})
