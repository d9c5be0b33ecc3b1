"""Where passwords and API keys come from, and warnings when they are exposed.

Secrets may be given, lowest precedence first, in the config file, as systemd credentials (a file
named after the key, e.g. ``mqtt.password``, in ``$CREDENTIALS_DIRECTORY``: ``LoadCredential=`` in the
unit), as ``COMPANION_<SECTION>__<KEY>_FILE=/path`` (the file's content, one trailing newline removed),
or as ``COMPANION_<SECTION>__<KEY>`` itself. Every secret value found is registered with
:mod:`companion.redact` so it is masked wherever it would be printed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from companion.config_checks import is_loopback
from companion.redact import redact_url, register_secret

SECRET_KEYS = ("mqtt.password", "mqtt.username", "llm.api_key")
MAX_SECRET_BYTES = 64 * 1024


class SecretSourceError(ValueError):
    """A secret file that cannot be read: ``source``, ``key`` and the reason."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source, self.key, self.reason = source, key, reason


def read_secret_file(path: str | Path, *, source: str, key: str) -> str:
    """The secret in ``path`` (UTF-8, at most 64 KiB, one trailing newline removed)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretSourceError(source, key, f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise SecretSourceError(source, key, f"{path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise SecretSourceError(source, key, f"{path} is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")


def credentials(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Secrets from systemd's ``$CREDENTIALS_DIRECTORY`` as a nested dict (files that exist only)."""
    directory = environ.get("CREDENTIALS_DIRECTORY")
    out: dict[str, dict[str, Any]] = {}
    if not directory:
        return out
    for key in SECRET_KEYS:
        path = Path(directory) / key
        if path.is_file():
            section, _, name = key.partition(".")
            out.setdefault(section, {})[name] = read_secret_file(
                path, source="systemd credentials ($CREDENTIALS_DIRECTORY)", key=key
            )
    return out


def file_variable(section: str, name: str) -> str | None:
    """``mqtt``, ``password_file`` -> ``password`` when that is a secret given through a file variable."""
    if name.endswith("_file") and f"{section}.{name[:-5]}" in SECRET_KEYS:
        return name[:-5]
    return None


def register(cfg: Any) -> None:
    """Mask every secret of ``cfg`` (a Config) in logs and messages from now on."""
    register_secret(cfg.mqtt.password)
    register_secret(cfg.llm.api_key)
    for url in (cfg.mqtt.url, cfg.llm.base_url, cfg.tts.base_url):
        if url and "@" in url:
            try:
                password = urlsplit(url).password
            except ValueError:
                continue
            if password:
                register_secret(password)
                register_secret(unquote(password))


def _secrets_in_file(data: Mapping[str, Any]) -> list[str]:
    found = []
    for key in ("mqtt.password", "llm.api_key"):
        section, _, name = key.partition(".")
        if isinstance(data.get(section), Mapping) and data[section].get(name):
            found.append(key)
    for key in ("mqtt.url", "llm.base_url", "tts.base_url"):
        section, _, name = key.partition(".")
        value = data.get(section, {}).get(name) if isinstance(data.get(section), Mapping) else None
        if isinstance(value, str) and redact_url(value) != value:
            found.append(f"{key} (a password in the URL)")
    return found


def exposure_warnings(cfg: Any, file: Path | None, file_data: Mapping[str, Any]) -> list[str]:
    """What leaves a secret open: a config file others can read that holds one, a password sent in
    clear text over the network (plain ``mqtt://`` or ``http://`` to another host)."""
    out: list[str] = []
    held = _secrets_in_file(file_data)
    if file is not None and held:
        try:
            mode = stat.S_IMODE(os.stat(file).st_mode)
        except OSError:
            mode = 0
        if mode & 0o077:
            out.append(
                f"{file} holds {', '.join(held)} and is readable by other users (mode {mode:04o}): "
                f"chmod 600 {file}, or give the secret as a systemd credential or "
                "COMPANION_<SECTION>__<KEY>_FILE"
            )
    mqtt_url = cfg.mqtt.url or ""
    if mqtt_url.startswith("mqtt://"):
        parts = urlsplit(mqtt_url)
        if (cfg.mqtt.password or parts.password) and not is_loopback(parts.hostname):
            out.append(
                f"mqtt.url {redact_url(mqtt_url)} is plain mqtt://: the MQTT password crosses the network "
                "unencrypted; use mqtts:// (TLS)"
            )
    base = cfg.llm.base_url or ""
    if cfg.llm.backend == "openai" and base.startswith("http://"):
        parts = urlsplit(base)
        if (cfg.llm.api_key or parts.password) and not is_loopback(parts.hostname):
            out.append(
                f"llm.base_url {redact_url(base)} is plain http://: the API key crosses the network "
                "unencrypted; use https://"
            )
    return out
