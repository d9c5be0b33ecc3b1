"""Omi-style offline storage: what the mic records while no host is connected, oldest dropped when full."""

from __future__ import annotations

from collections import deque

from ..config import SAMPLE_RATE, TICK_SAMPLES


class Storage:
    """Omi-style offline storage: encoded mic frames kept while no host is connected."""

    def __init__(self, capacity: int) -> None:
        self.frames: deque[bytes] = deque(maxlen=capacity)
        self.dropped = 0  # oldest frames pushed out when full

    @property
    def count(self) -> int:
        return len(self.frames)

    @property
    def seconds(self) -> float:
        return len(self.frames) * TICK_SAMPLES / SAMPLE_RATE

    def add(self, frame: bytes) -> None:
        if self.frames.maxlen == 0:
            self.dropped += 1
            return
        if len(self.frames) == self.frames.maxlen:
            self.dropped += 1
        self.frames.append(frame)

    def clear(self) -> list[bytes]:
        out = list(self.frames)
        self.frames.clear()
        return out
