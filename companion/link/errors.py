"""How a BLE link's failures reach the session: always as the link's own error types, never bleak's.

A headset that powers off or walks out of range while a reply or LED write is in flight makes bleak raise
``BleakError("Not connected ...")`` (or an OSError/TimeoutError from the stack). The session only knows
:class:`~companion.link.base.LinkError`; letting bleak's type escape would end the session's task group and
throw away its conversation and timers. :func:`as_link_errors` translates at the few places that touch the
radio.

While reconnecting, a headset may also answer with data this host cannot read (a capabilities record or
flow status that does not decode, an unknown codec id). That is a :class:`~companion.protocol.ProtocolError`.
:class:`ReconnectPolicy` decides which failures the reconnect loop retries and how many unreadable answers
in a row it accepts before it gives up, so the link fails loudly instead of ending its supervisor silently.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bleak.exc import BleakError

from companion.protocol import ProtocolError

from .base import LinkError, NotConnected

#: Unreadable answers in a row during reconnects before the link gives up (the service restarts it).
MAX_PROTOCOL_FAILURES = 3


@contextlib.contextmanager
def as_link_errors(address: str) -> Iterator[None]:
    """Re-raise bleak/OS errors of a GATT operation as NotConnected/LinkError (the cause kept)."""
    try:
        yield
    except LinkError:
        raise
    except BleakError as exc:
        text = str(exc) or type(exc).__name__
        if "not connected" in text.lower() or "disconnected" in text.lower():
            raise NotConnected(f"headset {address} went away: {text}") from exc
        raise LinkError(f"headset {address}: {text}") from exc
    except (TimeoutError, OSError) as exc:
        raise NotConnected(f"headset {address} did not answer: {exc or type(exc).__name__}") from exc


class ProtocolFailure(LinkError):
    """The headset answered a reconnect with data this host cannot read; retried a few times."""


class LinkFailed(LinkError):
    """The link gave up reconnecting; the service restarts the device."""


class ReconnectPolicy:
    """Counts unreadable answers during reconnects; transient radio errors are always retried."""

    TRANSIENT = (BleakError, NotConnected, ProtocolFailure, TimeoutError, OSError)

    def __init__(self, address: str, max_protocol_failures: int = MAX_PROTOCOL_FAILURES) -> None:
        self.address = address
        self.max_protocol_failures = max_protocol_failures
        self.protocol_failures = 0

    def connected(self) -> None:
        self.protocol_failures = 0

    def protocol_error(self, exc: ProtocolError) -> LinkError:
        """The error to raise for an unreadable answer: retryable until the limit, then final."""
        self.protocol_failures += 1
        message = f"headset {self.address} sent data this host cannot read while reconnecting: {exc}"
        if self.protocol_failures >= self.max_protocol_failures:
            return LinkFailed(f"{message} ({self.protocol_failures} times in a row; restarting the device)")
        return ProtocolFailure(message)
