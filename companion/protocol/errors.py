"""Typed errors for everything that parses bytes off the air.

A link catches :class:`ProtocolError`, counts it and drops the packet; nothing on the wire can crash it.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """A packet or field that does not follow the wire format."""


class TruncatedPacket(ProtocolError):
    """Fewer bytes than the format needs."""


class UnknownCodec(ProtocolError):
    """A codec id that is not in the table: rejected, never guessed."""


class BadField(ProtocolError):
    """A field whose value is out of its documented range."""
