"""The audio end-of-turn model: its features, where it comes from, and what it says on real speech."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import zipfile

import numpy as np
import pytest

from companion.stt import smart_turn as st
from tests.fixtures.speech import load_manifest


def test_features_are_whisper_log_mel_of_the_last_8_seconds():
    from faster_whisper.feature_extractor import FeatureExtractor

    rng = np.random.default_rng(7)
    audio = (rng.standard_normal(3 * 16000) * 3000).astype(np.int16)
    ours = st.log_mel_8s(audio)
    assert ours.shape == (80, 800) and ours.dtype == np.float32
    # The reference: faster-whisper's Whisper extractor on the same normalised, front-padded 8 s.
    x = np.concatenate((np.zeros(5 * 16000, np.float32), audio.astype(np.float32) / 32768))
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    ref = FeatureExtractor(feature_size=80)(x, padding=0)
    assert ref.shape == ours.shape
    assert np.abs(ref - ours).max() < 2e-3
    long = np.concatenate((np.full(16000 * 4, 1000, np.int16), audio, audio, audio))
    assert np.array_equal(st.log_mel_8s(long), st.log_mel_8s(long[-8 * 16000 :]))  # only the last 8 s
    with pytest.raises(ValueError, match="mono"):
        st.log_mel_8s(np.zeros((2, 100), np.int16))


def test_install_takes_the_file_from_the_wheel_and_find_prefers_an_explicit_path(tmp_path, monkeypatch):
    wheel = tmp_path / "pipecat_ai-1.14.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(st._WHEEL_MEMBER, b"onnx bytes")
        zf.writestr(st._WHEEL_LICENSE, "BSD 2-Clause")
    dest = tmp_path / "models"
    path = st.install_model(dest, wheel=wheel)
    assert path == dest / st.MODEL_FILE and path.read_bytes() == b"onnx bytes"
    assert (dest / "LICENSE-pipecat").read_text() == "BSD 2-Clause"
    assert st.install_model(dest, wheel=tmp_path / "absent.whl") == path  # kept: nothing re-read

    empty = tmp_path / "other.whl"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("x.txt", "")
    with pytest.raises(st.SmartTurnNotAvailable, match="has no"):
        st.install_model(tmp_path / "m2", wheel=empty)

    assert st.find_model(path) == path
    with pytest.raises(st.SmartTurnNotAvailable, match="smart_turn_model"):
        st.find_model(tmp_path / "missing.onnx")
    monkeypatch.setattr(st, "model_dir", lambda: dest)
    assert st.find_model() == path
    monkeypatch.setattr(st, "model_dir", lambda: tmp_path / "nowhere")
    monkeypatch.setattr(st, "_pipecat_model", lambda: None)
    assert st.find_model() is None and st.SmartTurn.shared() is None  # text cues only


async def test_real_speech_finished_versus_cut_off(smart_turn):
    """Read sentences that end, against LJSpeech excerpts that stop at a comma mid-sentence."""
    utts = {u.path.name: u for u in load_manifest()}
    pad = np.zeros(3200, np.int16)

    async def p(name: str) -> float:
        return await smart_turn.aprobability(np.concatenate((pad, utts[name].pcm(), pad)))

    finished = [await p(n) for n in ("mfa_11.wav", "coquitts_2.wav", "mfa_12.wav")]
    cut_off = [await p(n) for n in ("coquitts_6.wav", "coquitts_4.wav")]  # "...fine typography," / "book,"
    assert min(finished) > 0.5 > max(cut_off), (finished, cut_off)
    assert 0 < smart_turn.last_ms < 5000 and smart_turn.calls >= 5


async def test_a_cancelled_call_stops_its_run_and_the_model_answers_the_next(smart_turn):
    """Speech that resumes cancels the model's call: its run is stopped (onnxruntime's terminate flag) so
    the core is free for the next transcript, and the next call answers as before."""
    import onnxruntime as ort

    pcm = next(u for u in load_manifest() if u.path.name == "mfa_11.wav").pcm()
    stopped = ort.RunOptions()
    stopped.terminate = True
    with pytest.raises(Exception, match=r"(?i)terminat"):
        smart_turn.probability(pcm, stopped)
    p = await smart_turn.aprobability(pcm)
    call = asyncio.create_task(smart_turn.aprobability(pcm))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await smart_turn.aprobability(pcm) == pytest.approx(p)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have their own priority on Linux")
def test_the_model_thread_yields_the_cores_to_the_recogniser(tmp_path):
    """The detector asks the model alongside the transcript: its worker runs below the rest of the process."""
    model = st.SmartTurn(tmp_path / "unused.onnx")  # no model is loaded to look at its thread
    try:
        nice = model._worker().submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        assert nice.result(timeout=5) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + st._NICE_STEPS)
    finally:
        model.close()
