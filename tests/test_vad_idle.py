"""An idle stream is cheap for the VAD, and batching its quiet windows changes no decision.

`SileroVAD` runs settled quiet windows (digital silence, or the +-1 LSB an Opus decoder makes of it) in
batches instead of one by one. Every window still goes through the model in order, so the windows that
matter (speech, and the 2 s after it) must score exactly as in a window-by-window run, and the endpointer
must see the same events.
"""

from __future__ import annotations

import numpy as np
import pytest

from companion.audio.vad import (
    BATCH_WINDOWS,
    QUIET_PROB,
    REST_PROB,
    REST_WINDOWS,
    SETTLE_WINDOWS,
    WINDOW,
    Endpointer,
    SileroVAD,
)

SR = 16000
FRAME = 320


def quiet(seconds: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Digital silence, or with `rng` the +-1 LSB that decoded Opus silence is."""
    n = int(seconds * SR)
    return np.zeros(n, np.int16) if rng is None else rng.integers(-1, 2, n).astype(np.int16)


def stream(vad: SileroVAD, pcm: np.ndarray) -> np.ndarray:
    return np.concatenate([vad.process(pcm[i : i + FRAME]) for i in range(0, len(pcm), FRAME)])


def events(ep: Endpointer, pcm: np.ndarray) -> list[tuple[str, float]]:
    out = []
    for i in range(0, len(pcm), FRAME):
        out += ep.feed(pcm[i : i + FRAME], i / SR)
    return [(type(e).__name__, getattr(e, "t", None) or e.t_end_of_speech) for e in out]


def conversation(speech_set, rng: np.random.Generator | None) -> np.ndarray:
    """Long quiet stretches (6 s, more than a batch and the settling time) around real utterances."""
    names = ["coquitts_2.wav", "lhotse_1.wav", "mfa_7.wav"]
    pcms = [next(u for u in speech_set if u.path.name == n).pcm() for n in names]
    parts = [quiet(6.0, rng)]
    for pcm in pcms:
        parts += [pcm, quiet(6.0, rng)]
    return np.concatenate(parts)


@pytest.mark.slow
@pytest.mark.parametrize("dither", [False, True], ids=["digital-silence", "opus-silence"])
def test_batching_quiet_windows_changes_no_decision(speech_set, silero_vad_model, dither) -> None:
    x = conversation(speech_set, np.random.default_rng(0) if dither else None)
    exact = stream(SileroVAD(batch_quiet=False), x)
    vad = SileroVAD()
    batched = stream(vad, x)

    assert len(batched) == len(exact) == len(x) // WINDOW
    assert vad.windows_queued > 0.4 * len(batched)  # half of this stream is settled silence
    queued = batched != exact
    # Windows that ran at once scored exactly as window by window: the LSTM state was exact.
    np.testing.assert_array_equal(batched[~queued], exact[~queued])
    assert exact.max() > 0.9  # the speech is there
    # Queued windows carry the last score, and were (in truth) below QUIET_PROB too.
    assert batched[queued].max() < QUIET_PROB and exact[queued].max() < QUIET_PROB

    assert events(Endpointer(SileroVAD()), x) == events(Endpointer(SileroVAD(batch_quiet=False)), x)


@pytest.mark.slow
def test_idle_stream_runs_the_model_about_once_a_second(silero_vad_model) -> None:
    vad = SileroVAD()
    calls = []
    infer = vad._infer
    vad._infer = lambda rows: calls.append(len(rows)) or infer(rows)  # count model calls
    seconds = 20
    probs = stream(vad, quiet(seconds))
    # Window by window until the model has settled (about 2 s), then one call per batch of a second.
    first_batch = calls.index(BATCH_WINDOWS)
    # (the state is zeroed after the first second, and its first scores from zero are not yet settled)
    assert first_batch <= REST_WINDOWS + SETTLE_WINDOWS + 8
    assert set(calls[first_batch:]) == {BATCH_WINDOWS}
    assert len(calls) - first_batch >= (seconds - 3) * SR // (WINDOW * BATCH_WINDOWS)
    assert sum(calls) + len(vad._queued) == len(probs)  # every window goes through the model
    assert probs[first_batch:].max() < QUIET_PROB


@pytest.mark.slow
def test_speech_after_a_long_silence_scores_as_window_by_window(speech_set, silero_vad_model) -> None:
    pcm = next(u for u in speech_set if u.path.name == "coquitts_4.wav").pcm()
    x = np.concatenate([quiet(3.3), pcm])  # ends inside a batch: the onset runs with the queued windows
    exact = stream(SileroVAD(batch_quiet=False), x)
    batched = stream(SileroVAD(), x)
    loud = exact >= QUIET_PROB
    np.testing.assert_array_equal(batched[loud], exact[loud])
    # The first speech window comes with the queued quiet windows in one model call, not after them.
    vad = SileroVAD()
    stream(vad, quiet(3.3))
    assert vad._queued
    stream(vad, pcm[: FRAME * 4])
    assert not vad._queued


@pytest.mark.slow
def test_reset_forgets_the_settled_stretch(silero_vad_model) -> None:
    vad = SileroVAD()
    stream(vad, quiet(4.0))
    assert vad._queued
    vad.reset()
    assert not vad._queued and vad.windows_done == 0
    stream(vad, quiet(1.0))  # under the settling time: every window runs at once again
    assert not vad._queued


@pytest.mark.slow
def test_the_state_starts_afresh_once_a_second_after_speech(speech_set, silero_vad_model) -> None:
    pcm = next(u for u in speech_set if u.path.name == "coquitts_2.wav").pcm()
    vad = SileroVAD(batch_quiet=False)
    zeroed = []
    infer = vad._session.run

    class Spy:  # sees the state each window starts from
        def run(self, names, feeds):
            zeroed.append(not feeds["h"].any() and not feeds["c"].any())
            return infer(names, feeds)

    vad._session = Spy()  # type: ignore[assignment]
    probs = stream(vad, np.concatenate([pcm, quiet(3.0, np.random.default_rng(2))]))
    last_speech = int(np.flatnonzero(probs >= REST_PROB)[-1])
    fresh = [i for i, z in enumerate(zeroed) if z and i > 0]
    # Once, REST_WINDOWS after the last window that could be speech; not again in the same silence.
    assert fresh == [last_speech + REST_WINDOWS + 1]
    assert probs[last_speech + 1 :].max() < REST_PROB
