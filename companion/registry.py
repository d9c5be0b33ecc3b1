"""Remembered (paired) headsets, kept as JSON in the platform data directory."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from companion.config import data_dir


@dataclass(frozen=True, slots=True)
class KnownHeadset:
    address: str
    name: str
    profile: str
    paired_at: float


def registry_path() -> Path:
    return Path(os.environ.get("COMPANION_REGISTRY", data_dir() / "headsets.json"))


def load_known(path: Path | None = None) -> dict[str, KnownHeadset]:
    path = path or registry_path()
    if not path.exists():
        return {}
    try:
        rows = json.loads(path.read_text())
        return {r["address"].upper(): KnownHeadset(**r) for r in rows}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(
            f"{path}: unreadable headset registry ({exc}); move it away to start afresh"
        ) from None


def remember(address: str, name: str, profile: str, path: Path | None = None) -> KnownHeadset:
    path = path or registry_path()
    known = load_known(path)
    entry = KnownHeadset(address.upper(), name, profile, time.time())
    known[entry.address] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(k) for k in known.values()], indent=2))
    tmp.replace(path)
    return entry
