"""Keeping credentials out of everything the companion prints: logs, errors, `doctor`, MQTT error events.

One helper for all of it. :func:`redact` removes the user-info part of every URL in a text
(``mqtt://companion:S3cret@host`` -> ``mqtt://***@host``) and every secret value the config loader has
registered (passwords and API keys however they were given: file, environment, ``*_FILE``, systemd
credentials). :class:`RedactingFormatter` applies it to each log line, tracebacks included, so a
message built anywhere (a library's exception text, a warning that quotes a URL) is covered.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
MIN_SECRET_CHARS = 4  # shorter values would mask ordinary words and numbers in every line

# scheme://userinfo@ — userinfo is anything up to the first @ that has no /, whitespace or quote before it.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s'\"<>]+)@")

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` in everything :func:`redact` sees from now on (ignored when too short to be useful)."""
    if value and len(value) >= MIN_SECRET_CHARS:
        with _lock:
            _secrets.add(value)


def redact_url(url: str | None) -> str:
    """``url`` without its user name and password (``scheme://***@host:port/path``)."""
    if not url:
        return url or ""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:  # malformed (e.g. a bad IPv6 literal): fall back to the pattern
        return redact(url)
    if "@" not in netloc:
        return redact(url)
    host = netloc.rpartition("@")[2]
    return redact(urlunsplit(parts._replace(netloc=f"{MASK}@{host}")))


def redact(text: str) -> str:
    """``text`` with URL credentials and registered secret values masked."""
    if not text:
        return text
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


class RedactingFormatter(logging.Formatter):
    """A formatter whose every line (message, traceback, stack) has gone through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def install(handler: logging.Handler | None = None) -> None:
    """Make ``handler`` (default: every root handler) redact what it writes, keeping its format."""
    handlers = [handler] if handler is not None else logging.getLogger().handlers
    for h in handlers:
        if isinstance(h.formatter, RedactingFormatter):
            continue
        old = h.formatter or logging.Formatter()
        new = RedactingFormatter(old._fmt, old.datefmt)
        new._style = old._style
        h.setFormatter(new)
