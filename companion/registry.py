"""Remembered (paired) headsets, kept as JSON in the platform data directory."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from companion.config import data_dir


@dataclass(frozen=True, slots=True)
class KnownHeadset:
    address: str
    name: str
    profile: str
    paired_at: float


class _Row(BaseModel):
    """One remembered headset as stored (strict: a hand-edited or truncated file is an error)."""

    model_config = ConfigDict(extra="ignore", strict=True)
    address: str = Field(min_length=1, max_length=64)
    name: str = Field(max_length=256)
    profile: str = Field(max_length=32)
    paired_at: float = Field(allow_inf_nan=False)


def registry_path() -> Path:
    return Path(os.environ.get("COMPANION_REGISTRY", data_dir() / "headsets.json"))


class RegistryError(ValueError):
    """The headset registry file cannot be used; the message names the file and says what to do."""


_ROWS = TypeAdapter(list[_Row])


def load_known(path: Path | None = None) -> dict[str, KnownHeadset]:
    """The remembered headsets by upper-case address; :class:`RegistryError` if the file is damaged."""
    path = path or registry_path()
    if not path.exists():
        return {}
    try:
        rows = _ROWS.validate_json(path.read_bytes())
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the headset registry: {exc.strerror or exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "top level"
        raise RegistryError(
            f"{path}: damaged headset registry ({where}: {err['msg']}); move it away to start afresh "
            "and pair again"
        ) from None
    return {r.address.upper(): KnownHeadset(r.address.upper(), r.name, r.profile, r.paired_at) for r in rows}


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
