"""Events a session publishes: small classes with a clear wire form (a type name and a JSON body).

The CLI prints them, the MQTT bridge publishes them, tests read them. :class:`EventHub` fans them out to any
number of async subscribers, each with its own bounded queue so a slow one never blocks the audio path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from companion.aio import DropOldestQueue


@dataclass(frozen=True, slots=True)
class Event:
    device: str  # the headset's address
    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    state: str  # idle | listening | thinking | speaking
    type: ClassVar[str] = "state"


@dataclass(frozen=True, slots=True)
class TranscriptEvent(Event):
    text: str
    audio_s: float = 0.0
    type: ClassVar[str] = "transcript"


@dataclass(frozen=True, slots=True)
class Unaddressed(Event):
    """Speech heard but not addressed to the assistant (wake mode): only its length, never its words."""

    audio_s: float = 0.0
    type: ClassVar[str] = "unaddressed"


@dataclass(frozen=True, slots=True)
class ReplyEvent(Event):
    text: str
    intent: str = ""  # the skill that answered, or "llm"
    interrupted: bool = False
    type: ClassVar[str] = "reply"


@dataclass(frozen=True, slots=True)
class TurnTimings(Event):
    """One turn's milestones in milliseconds after the end of the wearer's speech (None: did not happen)."""

    turn: int
    end_of_turn_ms: float | None = None
    stt_done_ms: float | None = None
    llm_first_token_ms: float | None = None
    first_sentence_ms: float | None = None
    tts_first_audio_ms: float | None = None
    first_audio_sent_ms: float | None = None
    first_audio_played_ms: float | None = None
    stt_ms: float | None = None
    speculative: bool = False
    type: ClassVar[str] = "timings"


@dataclass(frozen=True, slots=True)
class BatteryChanged(Event):
    percent: int
    type: ClassVar[str] = "battery"


@dataclass(frozen=True, slots=True)
class ButtonPressed(Event):
    button: str
    type: ClassVar[str] = "button"


@dataclass(frozen=True, slots=True)
class Availability(Event):
    online: bool
    reason: str = ""
    type: ClassVar[str] = "availability"


@dataclass(frozen=True, slots=True)
class ErrorEvent(Event):
    message: str
    type: ClassVar[str] = "error"


@dataclass(slots=True)
class _Subscriber:
    queue: DropOldestQueue[Event]  # a slow subscriber loses its oldest events (queue.dropped counts them)


@dataclass
class EventHub:
    """Fan-out of events to subscribers; publishing never blocks."""

    maxsize: int = 1000
    _subs: list[_Subscriber] = field(default_factory=list)
    published: int = 0

    def publish(self, event: Event) -> None:
        self.published += 1
        for sub in self._subs:
            sub.queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[Event]:
        sub = _Subscriber(DropOldestQueue(self.maxsize))
        self._subs.append(sub)
        try:
            while True:
                yield await sub.queue.get()
        finally:
            self._subs.remove(sub)

    def subscriber(self) -> asyncio.Queue[Event]:
        """A queue that receives every event from now on (remove it with :meth:`unsubscribe`)."""
        sub = _Subscriber(DropOldestQueue(self.maxsize))
        self._subs.append(sub)
        return sub.queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._subs[:] = [s for s in self._subs if s.queue is not queue]


def now() -> float:
    """The clock every timing in the service uses."""
    return time.monotonic()
