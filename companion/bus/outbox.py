"""The MQTT bridge's outbox, sans-IO: bounded, ordered, at-least-once.

A message leaves the outbox only once the broker acknowledged it (:meth:`Outbox.done`), so a broker that
goes away loses nothing. When the outbox is full the oldest message is dropped, never the one whose PUBACK
is awaited. The last retained message per topic is remembered, to be sent again after a reconnect to a
broker that may have forgotten it. No event loop, no aiomqtt: the bridge does the I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from companion.bus.topics import Outgoing


class Outbox:
    """Messages waiting for the broker, oldest first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"outbox_size must be at least 1, got {size}")
        self.size = size
        self.dropped = 0  # dropped because the outbox was full
        self._queue: deque[Outgoing] = deque()
        self._inflight: Outgoing | None = None
        self._retained: dict[str, Outgoing] = {}  # topic -> last retained message

    def __len__(self) -> int:
        return len(self._queue)

    def __iter__(self) -> Iterator[Outgoing]:
        return iter(self._queue)

    def add(self, message: Outgoing) -> int:
        """Queue ``message``; returns how many older messages it pushed out."""
        self._queue.append(message)
        dropped = 0
        while len(self._queue) > self.size:
            oldest = 1 if self._queue[0] is self._inflight else 0  # never the one awaiting its PUBACK
            del self._queue[oldest]
            dropped += 1
        self.dropped += dropped
        return dropped

    def next(self) -> Outgoing | None:
        """The head, now in flight (it stays queued until :meth:`done`); None when empty."""
        self._inflight = self._queue[0] if self._queue else None
        return self._inflight

    def done(self, message: Outgoing) -> None:
        """``message`` was acknowledged (or refused for good): it leaves the outbox."""
        self._inflight = None
        if self._queue and self._queue[0] is message:
            self._queue.popleft()

    def failed(self) -> None:
        """The in-flight message was not acknowledged (the connection went): it stays at the head."""
        self._inflight = None

    def remember(self, message: Outgoing) -> None:
        """Keep ``message`` (a retained state) to send again after each reconnect."""
        self._retained[message.topic] = message

    def retained_to_resend(self) -> list[Outgoing]:
        """The last retained message of each topic, except topics with a newer message still queued."""
        pending = {m.topic for m in self._queue}
        return [m for topic, m in self._retained.items() if topic not in pending]
