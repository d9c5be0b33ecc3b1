"""What a headset link gives a conversation session, whatever carries it (BLE, a local sound device).

A link is an async context manager. Audio comes out of :meth:`HeadsetLink.audio` as 20 ms frames of 16 kHz
int16; replies go in through :meth:`HeadsetLink.play`; everything else the headset says (buttons, battery,
playback progress, connection changes) comes out of :meth:`HeadsetLink.events`.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from companion.protocol import Button, Capabilities, DeviceState, PlaybackEvent, Profile

if TYPE_CHECKING:
    from .playout import PlayoutTrack

SAMPLE_RATE = 16000
FRAME_SAMPLES = 320  # 20 ms


class LinkError(RuntimeError):
    """A link could not do what was asked; the message says what to do about it."""


class LinkBandwidthError(LinkError):
    """The radio cannot carry the audio in real time with this MTU, interval and codec."""


class NotConnected(LinkError):
    """The headset is not connected right now (the link may be reconnecting)."""


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """One frame of microphone audio.

    ``t_stream`` is the frame's start on the stream's sample clock (seconds since the link first produced
    audio, continuous across reconnects); ``t_arrival`` is the event-loop time it reached the host.
    ``concealed`` marks frames rebuilt from loss concealment.
    """

    pcm: np.ndarray
    t_stream: float
    t_arrival: float
    concealed: bool = False


@dataclass(frozen=True, slots=True)
class ButtonEvent:
    button: Button
    t: float


@dataclass(frozen=True, slots=True)
class BatteryEvent:
    percent: int
    t: float


@dataclass(frozen=True, slots=True)
class PlaybackStatus:
    event: PlaybackEvent
    t: float


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    connected: bool
    t: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LinkErrorEvent:
    message: str
    t: float


LinkEvent = ButtonEvent | BatteryEvent | PlaybackStatus | ConnectionEvent | LinkErrorEvent


@dataclass(slots=True)
class PlaybackReport:
    """What happened to one reply sent to the headset."""

    frames_sent: int = 0
    seconds_sent: float = 0.0
    t_first_sent: float | None = None
    t_last_sent: float | None = None
    aborted: bool = False


@dataclass(slots=True)
class HeadsetInfo:
    address: str
    name: str
    profile: Profile
    capabilities: Capabilities | None = None
    battery: int | None = None
    mtu: int = 23
    mic_codec: str = ""
    speaker_codec: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def has_speaker(self) -> bool:
        return bool(self.capabilities and self.capabilities.has_speaker)

    @property
    def has_aec(self) -> bool:
        return bool(self.capabilities and self.capabilities.has_aec)


_T = TypeVar("_T")


async def until_closed(queue: asyncio.Queue[_T | BaseException | None]) -> AsyncIterator[_T]:
    """Yield a link's queued items until the link puts ``None`` (closed) or an exception (failed: raised)."""
    while (item := await queue.get()) is not None:
        if isinstance(item, BaseException):
            queue.put_nowait(item)  # every later reader fails the same way
            raise item
        yield item


class HeadsetLink(abc.ABC):
    """The interface a session drives; BLE and local-audio links implement it."""

    info: HeadsetInfo

    @abc.abstractmethod
    async def __aenter__(self) -> HeadsetLink: ...

    @abc.abstractmethod
    async def __aexit__(self, *exc: object) -> None: ...

    @property
    @abc.abstractmethod
    def connected(self) -> bool: ...

    @abc.abstractmethod
    def audio(self) -> AsyncIterator[AudioChunk]:
        """Microphone frames, in order, lost ones concealed; continues across reconnects.

        A plain method returning the iterator (not an async generator function), on every link: a link
        that cannot give audio raises :class:`LinkError` at the call, not at the first frame."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[LinkEvent]:
        """Buttons, battery, playback progress and connection changes."""

    @abc.abstractmethod
    async def listen(self, on: bool) -> None:
        """Open or close the headset's mic stream (tap-to-talk, push-to-talk, the `listen` command).

        Where the device has no such command (a sound device, an omi pendant) this does nothing: the
        session gates the audio itself."""

    @abc.abstractmethod
    async def play(self, chunks: AsyncIterable[np.ndarray]) -> PlaybackReport:
        """Send a reply's 16 kHz int16 audio as it is produced; returns once all of it is sent.

        Cancelling the call stops sending at once; :meth:`abort` also flushes what the headset buffered.
        """

    @abc.abstractmethod
    async def abort(self) -> None:
        """Stop playback at the headset now (barge-in)."""

    def playout_track(self) -> PlayoutTrack | None:
        """What this connection's speaker played when, on the mic's stream clock, if the headset reports
        its playout (a companion headset's FLOW); None where only PLAYBACK events tell it."""
        return None

    @abc.abstractmethod
    async def set_state(self, state: DeviceState) -> None: ...

    @abc.abstractmethod
    async def set_volume(self, percent: int) -> None: ...

    @abc.abstractmethod
    def counters(self) -> dict[str, int]:
        """Exact counts of what the link received, lost, repaired and dropped."""
