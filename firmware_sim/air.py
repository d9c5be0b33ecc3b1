"""The air between a headset and its host, sans-IO: what the simulated link does to packets and the ground
truth of it.

:class:`Uplink` models the lossy channel of audio notifications (random loss, duplicates, and reordering: a
packet held back and delivered after the next one, for at most ``HOLD_MAX_MS``) and counts what happened to
every packet in :class:`RadioTruth`, for tests to compare with what a host saw. :func:`downlink_survives`
decides the fate of a speaker write. No event loop and no clock: the :class:`~firmware_sim.link.Link` calls
these once per connection event with a seeded random generator, so a test can drive them directly.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, fields
from typing import Any

from .config import RadioConfig

HOLD_MAX_MS = 100  # a packet held back for reordering waits at most this long for the next one


@dataclass(slots=True)
class AudioTruth:
    """What really happened to the packets of one audio characteristic (cumulative)."""

    sent: int = 0  # packets that went on air
    lost: int = 0  # sent but never delivered (random loss, or in flight when the link dropped)
    duplicated: int = 0  # extra copies delivered
    reordered: int = 0  # first deliveries that came after a packet sent later
    delivered: int = 0  # deliveries to the host, copies included: sent - lost + duplicated
    overflow_frames: int = 0  # frames dropped because the transmit ring was full
    overflow_packets: int = 0  # the packets those frames would have taken
    unsent: int = 0  # packets still queued when the link dropped

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class RadioTruth:
    """Ground truth for tests: per audio stream, plus connection counts."""

    mic: AudioTruth = field(default_factory=AudioTruth)
    speaker: AudioTruth = field(default_factory=AudioTruth)
    connects: int = 0
    disconnects: int = 0

    def stream(self, key: str) -> AudioTruth:
        return self.speaker if key == "speaker" else self.mic

    def as_dict(self) -> dict[str, Any]:
        return {
            "mic": self.mic.as_dict(),
            "speaker": self.speaker.as_dict(),
            "connects": self.connects,
            "disconnects": self.disconnects,
        }


@dataclass(slots=True)
class Request:
    """Host -> headset: a write, a read, a CCCD write or an MTU exchange, in FIFO order."""

    kind: str  # "write" | "read" | "cccd" | "mtu"
    handle: int
    data: bytes
    response: bool
    future: asyncio.Future[Any] | None


@dataclass(slots=True)
class Up:
    """Headset -> host: a notification or the response to a request."""

    handle: int
    data: bytes
    future: asyncio.Future[Any] | None = None
    result: Any = None
    error: BaseException | None = None
    key: str | None = None  # audio stream key for lossy audio packets
    order: int = 0
    dup: bool = False


class Uplink:
    """The lossy headset -> host audio channel of one connection; counts into ``truth``."""

    def __init__(self, truth: RadioTruth) -> None:
        self.truth = truth
        self.held: Up | None = None  # a packet held back to be delivered after the next one
        self._held_age = 0  # connection events it has waited
        self._highest: dict[str, int] = {}  # highest packet order delivered, per stream

    def air(self, pkt: Up, ups: list[Up], rng: random.Random, cfg: RadioConfig) -> None:
        """Send one audio packet; append what the host gets (nothing, it, a copy, a held one) to ``ups``."""
        assert pkt.key is not None
        truth = self.truth.stream(pkt.key)
        truth.sent += 1
        if cfg.loss and rng.random() < cfg.loss:
            truth.lost += 1
            return
        if self.held is not None:
            ups.append(pkt)
            ups.append(self.held)
            self.held = None
        elif cfg.reorder and rng.random() < cfg.reorder:
            self.held, self._held_age = pkt, 0
            return
        else:
            ups.append(pkt)
        if cfg.duplicate and rng.random() < cfg.duplicate:
            ups.append(Up(pkt.handle, pkt.data, key=pkt.key, order=pkt.order, dup=True))

    def end_event(self, ups: list[Up], cfg: RadioConfig, more_coming: bool) -> None:
        """End of a connection event: a held packet nothing came after for ``HOLD_MAX_MS`` is let go."""
        if self.held is not None:
            self._held_age += 1
            if self._held_age * cfg.interval_ms >= HOLD_MAX_MS and not more_coming:
                ups.append(self.held)  # nothing came after it (the stream paused): let it go
                self.held = None

    def account(self, up: Up) -> None:
        """A packet reached the host: count it as delivered, duplicated or reordered."""
        assert up.key is not None
        truth = self.truth.stream(up.key)
        truth.delivered += 1
        if up.dup:
            truth.duplicated += 1
            return
        highest = self._highest.get(up.key, -1)
        if up.order < highest:
            truth.reordered += 1
        else:
            self._highest[up.key] = up.order

    def drop_held(self) -> None:
        """The link dropped: a held packet is lost."""
        if self.held is not None:
            self.truth.stream(self.held.key or "mic").lost += 1
            self.held = None


def downlink_survives(truth: AudioTruth, rng: random.Random, cfg: RadioConfig) -> bool:
    """One speaker write on air: False (counted lost) when ``downlink_loss`` takes it."""
    truth.sent += 1
    if cfg.downlink_loss and rng.random() < cfg.downlink_loss:
        truth.lost += 1
        return False
    truth.delivered += 1
    return True
