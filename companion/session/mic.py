"""The microphone side of a session: the stream clock, host echo cancellation, and when the mic is muted.

The clock maps the mic's stream time (the sample clock of the frames) to monotonic time through the
latest frame's arrival, so turn times (on the stream clock) and reply times (monotonic) can be compared.
Echo cancellation runs on the host only where replies play on the headset itself and the headset does not
cancel its own echo; its reference is what was sent, placed on the mic's clock by the headset's playback
events.
"""

from __future__ import annotations

import time

import numpy as np

from companion.audio.aec import EchoCanceller
from companion.config import SessionConfig
from companion.link.base import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk, HeadsetLink, PlaybackStatus
from companion.protocol import PlaybackEvent

ECHO_TAIL_S = 0.15  # the mic stays muted this long after a reply ended (the echo's tail)


class MicPath:
    """One session's mic: clock, echo canceller and mute decisions."""

    def __init__(self, link: HeadsetLink, speaker: HeadsetLink, config: SessionConfig) -> None:
        self.link = link
        self.speaker = speaker
        self.config = config
        self.clock: tuple[float, float] = (0.0, time.monotonic())  # (stream time, monotonic) of latest frame
        self.mute_until = 0.0
        # Made when first needed (`canceller`): once loaded, livekit's runtime costs ~0.25 % of a core even
        # idle, and a headset that never plays a reply needs none of it.
        self.aec: EchoCanceller | None = None
        #: Whether the latest frame came out of the echo canceller (it runs while a reply can echo).
        self.cancelling = False

    def frame(self, chunk: AudioChunk) -> np.ndarray:
        """Advance the clock to ``chunk`` and return its audio with the reply's echo removed."""
        self.clock = (chunk.t_stream + len(chunk.pcm) / SAMPLE_RATE, chunk.t_arrival)
        self.cancelling = False
        if not self.cancels_on_host():
            return chunk.pcm
        track = self.link.playout_track()
        aec = self.aec if track is not None and not track.frames_sent else self.canceller()
        if aec is None:
            return chunk.pcm
        out = aec.process(chunk.pcm, chunk.t_stream, track)
        self.cancelling = aec.running
        return out

    def canceller(self) -> EchoCanceller | None:
        """The host echo canceller, made on first use, if this headset needs one."""
        if self.aec is None and self.cancels_on_host():
            self.aec = EchoCanceller(noise_suppression=self.config.noise_suppression)
        return self.aec

    def cancels_on_host(self) -> bool:
        """Replies play on this headset, which hears them and does not cancel them itself."""
        return (
            self.config.echo_cancel != "off"
            and self.speaker is self.link
            and self.link.info.has_speaker
            and not self.link.info.has_aec
        )

    def echo_handled(self) -> bool:
        """Whether the mic may stay open while a reply plays: no echo, or someone cancels it."""
        return self.speaker is not self.link or self.link.info.has_aec or self.cancels_on_host()

    def muted(self, *, listening: bool, speaking: bool) -> bool:
        """Whether the mic must be ignored now: not listening, or our own reply would echo into it."""
        if not listening:
            return True
        if speaking or time.monotonic() < self.mute_until:
            if self.speaker is not self.link:
                return False  # replies play elsewhere: no echo in the headset's mic
            return not (self.echo_handled() and self.config.voice_barge_in)
        return False

    def reply_ended(self) -> None:
        """A reply finished playing: its echo's tail may still reach the mic for a moment."""
        self.mute_until = time.monotonic() + ECHO_TAIL_S

    def stream_time(self, monotonic: float) -> float:
        """The stream time the mic had reached at ``monotonic`` (inverse of :meth:`monotonic_at`)."""
        t_latest, mono_latest = self.clock
        return t_latest - (mono_latest - monotonic)

    def monotonic_at(self, t_stream: float) -> float:
        """The monotonic time at which the stream reached ``t_stream`` (via the latest frame's arrival)."""
        t_latest, mono_latest = self.clock
        return mono_latest - (t_latest - t_stream)

    def playout(self, event: PlaybackStatus) -> None:
        """Place the reference on the mic's clock: the event left the headset in the tick that played
        (or flushed) the sample, with the mic frame of that tick, which ends at the stream time reached
        when the event arrived."""
        if self.aec is None:
            return
        t = self.stream_time(event.t) - FRAME_SAMPLES / SAMPLE_RATE
        if event.event is PlaybackEvent.STARTED:
            self.aec.played(t)
        elif event.event is PlaybackEvent.DRAINED:
            self.aec.drained(t)
        elif event.event is PlaybackEvent.ABORTED:
            self.aec.stopped(t)
