"""The host echo canceller across replies (real AEC3 through livekit, scripted playout): one canceller is
kept while it cancels, and one that has lost its way is replaced before the next reply."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from companion.audio.aec import EchoCanceller
from companion.audio.wav import load_wav
from companion.link.playout import PlayoutTrack

SPEECH = Path(__file__).parent / "data" / "speech" / "coquitts_1.wav"

FRAME = 320


def speech_track(speech: np.ndarray, t0: float) -> tuple[PlayoutTrack, np.ndarray]:
    """A track whose speaker played ``speech`` from stream time ``t0`` (all of it sent at once, one FLOW
    per tick while it plays)."""
    audio = speech[: len(speech) // FRAME * FRAME].astype(np.int16)
    track = PlayoutTrack(FRAME)
    for i in range(0, len(audio), FRAME):
        track.sent(audio[i : i + FRAME])
    n = len(audio) // FRAME
    for k in range(n + 1):
        track.progress(t0 + k * 0.02, consumed=k, buffered_ms=(n - k) * 20)
    return track, audio


def reply_track(seconds: float, t0: float, seed: int) -> tuple[PlayoutTrack, np.ndarray]:
    """A track whose speaker played ``seconds`` of noise-like audio from stream time ``t0``."""
    rng = np.random.default_rng(seed)
    return speech_track(rng.normal(0, 4000, int(seconds * 16000)), t0)


def run(aec: EchoCanceller, track: PlayoutTrack, mic: np.ndarray, t0: float, tail_s: float = 1.0) -> None:
    n = len(mic) + int(tail_s * 16000)
    mic = np.concatenate([mic, np.zeros(n - len(mic), dtype=np.int16)])
    for i in range(0, n, FRAME):
        aec.process(mic[i : i + FRAME], t0 + i / 16000, track)


def test_a_canceller_that_cancels_nothing_is_replaced_before_the_next_reply() -> None:
    aec = EchoCanceller()
    first = aec._apm
    track, audio = reply_track(1.0, 10.0, seed=1)
    echo = (audio * 0.5).astype(np.int16)  # an echo in step with what played
    run(aec, track, echo, 10.0)
    assert aec._apm is first and not aec._stale  # it cancelled: kept
    assert aec.erle_db is not None and aec.erle_db > 15

    # The echo arrives 750 ms after the reference says it played (beyond AEC3's reach): nothing is cancelled.
    track, audio = reply_track(2.0, 20.0, seed=2)
    late = np.concatenate([np.zeros(12000, np.int16), (audio[:-12000] * 0.5).astype(np.int16)])
    run(aec, track, late, 20.0)
    assert aec._stale  # it could not cancel what it was given: the next stretch starts afresh
    track, audio = reply_track(0.2, 30.0, seed=4)
    run(aec, track, (audio * 0.5).astype(np.int16), 30.0)
    assert aec._apm is not first and not aec._stale


def test_background_noise_is_not_taken_for_a_lost_canceller() -> None:
    """In a room as loud as the echo, even a perfect canceller shows ~5 dB, the "lost" mark. Judged on
    every frame, each stretch would look lost and each reply would start with a cold canceller, whose
    leaking echo then cut the replies (docs/benchmarks.md, "Background noise, and a softer voice during
    replies")."""
    speech = load_wav(SPEECH)
    rng = np.random.default_rng(5)
    aec = EchoCanceller()
    first = aec._apm
    t = 0.0
    for k in range(3):
        room = rng.normal(0, 1500, 3 * 16000).astype(np.int16)  # -27 dBFS of noise before the reply
        run(aec, PlayoutTrack(FRAME), room, t, tail_s=0)
        t += 3.0
        track, audio = speech_track(speech[k * 32000 : (k + 2) * 32000], t)
        mic = np.clip(audio * 0.5 + rng.normal(0, 1500, len(audio)), -32768, 32767).astype(np.int16)
        run(aec, track, mic, t)
        t += len(audio) / 16000 + 1.0
        assert not aec._stale
    assert aec._apm is first
