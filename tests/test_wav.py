"""Audio files: damaged and unusual WAVs give clear errors or correct reads, checked before models load."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from companion.audio.wav import SAMPLE_RATE, AudioFileError, check_wav, load_wav

SPEECH = Path(__file__).parent / "data" / "speech"


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _wav16(path: Path, x: np.ndarray, rate: int = SAMPLE_RATE, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return path


def _with_rate(path: Path, rate: int) -> Path:
    """The same file with another sample rate written into its fmt chunk (as a damaged header has)."""
    data = bytearray(path.read_bytes())
    block_align = struct.unpack_from("<H", data, 32)[0]
    struct.pack_into("<II", data, 24, rate, rate * block_align)
    out = path.with_name(f"rate{rate}.wav")
    out.write_bytes(data)
    return out


def _close(a: np.ndarray, b: np.ndarray, tol: float = 400) -> bool:
    n = min(len(a), len(b))
    return abs(len(a) - len(b)) <= 2 and float(np.abs(a[:n].astype(float) - b[:n]).max()) < tol


def test_a_16_bit_wav_cut_at_an_odd_byte_reads_the_whole_samples(tmp_path: Path) -> None:
    good = _wav16(tmp_path / "good.wav", _tone(1.0, SAMPLE_RATE))
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[:-1])
    pcm = load_wav(cut)
    assert len(pcm) == SAMPLE_RATE - 1 and _close(pcm, load_wav(good)[:-1], tol=1)


@pytest.mark.parametrize("rate", [0, 1, 100, 10_000_000])
def test_an_absurd_sample_rate_is_an_error_not_an_allocation(tmp_path: Path, rate: int) -> None:
    bad = _with_rate(_wav16(tmp_path / "x.wav", _tone(1.0, SAMPLE_RATE)), rate)
    t0 = time.perf_counter()
    with pytest.raises(AudioFileError, match=str(bad)):
        load_wav(bad)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize(
    ("subtype", "channels", "rate"),
    [
        ("PCM_24", 1, 48000),
        ("PCM_24", 6, 44100),
        ("PCM_16", 4, 16000),
        ("PCM_32", 2, 22050),
        ("FLOAT", 3, 8000),
    ],
)
def test_wave_format_extensible_files_read_correctly(
    tmp_path: Path, subtype: str, channels: int, rate: int
) -> None:
    """The header sox writes for 24-bit and multi-channel audio (format tag 0xFFFE)."""
    x = _tone(1.0, rate, 300.0)
    frames = np.repeat(x[:, None], channels, axis=1)
    path = tmp_path / "ext.wav"
    sf.write(path, frames, rate, subtype=subtype, format="WAVEX")
    assert struct.unpack_from("<H", path.read_bytes(), 20)[0] == 0xFFFE
    pcm = load_wav(path)
    expected = (_tone(1.0, SAMPLE_RATE, 300.0) * 32768).astype(np.int16)
    assert abs(len(pcm) - SAMPLE_RATE) <= 2
    # the same tone after resampling (edges aside)
    assert float(np.abs(pcm[200:-200].astype(float) - expected[200 : len(pcm) - 200]).max()) < 600


def test_not_audio_and_empty_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    empty = _wav16(tmp_path / "empty.wav", np.zeros(0, np.float32))
    with pytest.raises(AudioFileError, match="not a readable audio file"):
        load_wav(junk)
    with pytest.raises(AudioFileError, match="no audio"):
        load_wav(empty)
    with pytest.raises(AudioFileError, match="no such file"):
        load_wav(tmp_path / "missing.wav")
    with pytest.raises(AudioFileError, match="not a file"):
        load_wav(tmp_path)


def test_a_long_file_reports_progress(tmp_path: Path) -> None:
    path = _wav16(tmp_path / "long.wav", _tone(45.0, 44100), rate=44100)
    seen: list[tuple[float, float]] = []
    pcm = load_wav(path, progress=lambda done, total: seen.append((done, total)))
    assert len(pcm) == 45 * SAMPLE_RATE
    assert len(seen) >= 4 and seen[-1] == (45.0, 45.0)
    assert check_wav(path).seconds == 45.0


def _cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    (tmp_path / "config.toml").touch()
    env["COMPANION_CONFIG"] = str(tmp_path / "config.toml")
    return subprocess.run(
        [sys.executable, "-m", "companion.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_demo_checks_every_utterance_before_loading_models(tmp_path: Path) -> None:
    good = _wav16(tmp_path / "good.wav", _tone(1.0, SAMPLE_RATE))
    bad = _with_rate(good, 0)
    result = _cli("demo", "--utterance", str(good), "--utterance", str(bad), tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert str(bad) in result.stderr and "Traceback" not in result.stderr
    assert "loading" not in result.stderr  # no model was loaded


def test_transcribe_checks_the_file_before_loading_the_model(tmp_path: Path) -> None:
    bad = _with_rate(_wav16(tmp_path / "x.wav", _tone(1.0, SAMPLE_RATE)), 1)
    result = _cli("transcribe", str(bad), tmp_path=tmp_path)
    assert result.returncode == 2 and "1 Hz" in result.stderr and "loading" not in result.stderr


@pytest.mark.slow
def test_transcribing_a_long_file_shows_progress(tmp_path: Path) -> None:
    clips = [load_wav(SPEECH / f"coquitts_{i}.wav") for i in range(1, 9)]
    pcm = np.concatenate(clips + clips[:3])  # about 70 s of real speech
    assert len(pcm) > 65 * SAMPLE_RATE
    path = tmp_path / "long.wav"
    sf.write(path, pcm, SAMPLE_RATE, subtype="PCM_16")
    result = _cli("transcribe", str(path), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("transcribed ")]
    assert len(progress) >= 2 and progress[-1].endswith("(100 %)"), result.stderr
    assert "printing" in result.stdout.lower()
