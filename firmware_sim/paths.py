"""Where a separately started simulator listens: one default path both sides know without flags."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

SOCKET_ENV = "COMPANION_SIM_SOCKET"
SOCKET_NAME = "firmware_sim.sock"


def default_socket_path() -> Path:
    """``$COMPANION_SIM_SOCKET``, else ``platformdirs.user_runtime_dir("companion")/firmware_sim.sock``."""
    env = os.environ.get(SOCKET_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir("companion")) / SOCKET_NAME
