"""Audio end-of-turn model: Smart Turn v3 (Daily's BSD-2 model that ships inside the `pipecat-ai` wheel).

Text alone cannot tell a finished short question ("what's the capital of France?") from the first half of
a hesitation that Whisper closes with a full stop ("what is the ..." heard as "What is that?"). The voice
can: a falling end, a drawn-out last syllable. Smart Turn reads the last 8 s of the turn (16 kHz) as
Whisper-style log-mel features and gives the probability that the speaker has finished. The turn detector
asks it only where the transcript leaves the end unsure, so a typical command never pays for it.

The model file is looked up, in order: an explicit path (`turn.smart_turn_model`), companion's data
directory (`install_model()` puts it there from the pipecat-ai wheel, without installing pipecat), and an
installed `pipecat` package. Without it the detector falls back to the text cues alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from companion.blas import single_threaded_blas

__all__ = [
    "MODEL_FILE",
    "SmartTurn",
    "SmartTurnNotAvailable",
    "find_model",
    "install_model",
    "log_mel_8s",
]

log = logging.getLogger(__name__)

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
#: Where the model comes from: one file of this wheel (the rest of pipecat is not needed).
WHEEL = "pipecat-ai==1.14.0"
_WHEEL_MEMBER = f"pipecat/audio/turn/smart_turn/data/{MODEL_FILE}"
_WHEEL_LICENSE = "pipecat_ai-1.14.0.dist-info/licenses/LICENSE"

SAMPLE_RATE = 16000
WINDOW_S = 8  # the model sees the last 8 s of the turn, zero-padded in front when shorter
_N_FFT = 400
_HOP = 160
_N_MELS = 80
#: How many nice steps below the rest of the process the model's worker thread runs (Linux).
_NICE_STEPS = 10


class SmartTurnNotAvailable(RuntimeError):
    """The Smart Turn model file (or onnxruntime) is missing or unreadable."""


# -- features: Whisper's log-mel spectrogram, as the model was trained on ------------------------------


def _slaney_mel(freq: np.ndarray | float) -> np.ndarray:
    """Hz to mel on the Slaney scale (linear below 1 kHz, logarithmic above), as librosa and Whisper."""
    f = np.asarray(freq, dtype=np.float64)
    lin = 3.0 * f / 200.0
    log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) * 27.0 / np.log(6.4)
    return np.where(f >= 1000.0, log, lin)


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    m = np.asarray(mel, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0), 200.0 * m / 3.0)


@functools.lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    """(80, 201) triangular filters over the rFFT bins, area-normalised (Slaney), 0-8 kHz."""
    edges = _slaney_hz(np.linspace(_slaney_mel(0.0), _slaney_mel(SAMPLE_RATE / 2), _N_MELS + 2))
    bins = np.linspace(0, SAMPLE_RATE / 2, _N_FFT // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    tri = np.maximum(0.0, np.minimum(rising, falling))
    return tri * (2.0 / (upper - lower))


@functools.lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    return np.hanning(_N_FFT + 1)[:-1]  # periodic


def log_mel_8s(audio: np.ndarray) -> np.ndarray:
    """The model's input for one turn: (80, 800) float32 log-mel features of its last 8 s.

    `audio` is mono 16 kHz, int16 or float in [-1, 1]. Shorter audio is zero-padded in front (the end of
    the turn stays at the end of the window). The waveform is normalised to zero mean and unit variance
    first, then: centred STFT (400-point periodic Hann, hop 160, reflect padding), power, 80 Slaney mel
    bands, log10 floored at 1e-10, clamped to 8 decades below the maximum, scaled as (x + 4) / 4, the
    last frame dropped.
    """
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"expected mono 1-D audio, got shape {x.shape}")
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    n = WINDOW_S * SAMPLE_RATE
    x = x[-n:] if len(x) >= n else np.concatenate((np.zeros(n - len(x), np.float32), x))
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), _N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * _hann(), axis=-1)) ** 2  # (801, 201)
    mel = np.log10(np.maximum(_mel_filters() @ power.T, 1e-10))[:, :-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


# -- finding and installing the model ----------------------------------------------------------------


def model_dir() -> Path:
    """companion's own copy: <user data dir>/models/smart-turn/."""
    from companion.config import data_dir

    return data_dir() / "models" / "smart-turn"


def _pipecat_model() -> Path | None:
    """The copy inside an installed pipecat-ai (found without importing pipecat)."""
    try:
        spec = importlib.util.find_spec("pipecat")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder, *_WHEEL_MEMBER.split("/")[1:])
        if path.is_file():
            return path
    return None


def find_model(explicit: str | Path | None = None) -> Path | None:
    """The model file to use, or None (text-only end of turn). An explicit path must exist."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise SmartTurnNotAvailable(f"turn.smart_turn_model: {path} is not a file")
        return path
    own = model_dir() / MODEL_FILE
    if own.is_file():
        return own
    return _pipecat_model()


def install_model(dest: Path | None = None, *, wheel: Path | None = None) -> Path:
    """Put the model file (and pipecat's BSD-2 licence) into `dest` (default `model_dir()`).

    Takes it from `wheel` if given, else downloads the pipecat-ai wheel with pip (`--no-deps`: nothing is
    installed). Returns the model's path; an existing copy is kept.
    """
    dest = dest or model_dir()
    target = dest / MODEL_FILE
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", tmp]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wheels = list(Path(tmp).glob("pipecat_ai-*.whl"))
            if done.returncode or not wheels:
                raise SmartTurnNotAvailable(f"pip download {WHEEL} failed: {done.stderr.strip()[-500:]}")
            wheel = wheels[0]
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            if _WHEEL_MEMBER not in names:
                raise SmartTurnNotAvailable(f"{wheel.name} has no {_WHEEL_MEMBER}")
            part = target.with_suffix(".part")
            with zf.open(_WHEEL_MEMBER) as src, part.open("wb") as out:
                shutil.copyfileobj(src, out)
            if _WHEEL_LICENSE in names:
                (dest / "LICENSE-pipecat").write_bytes(zf.read(_WHEEL_LICENSE))
            part.replace(target)
    return target


# -- the model -----------------------------------------------------------------------------------------


class SmartTurn:
    """Smart Turn v3 on onnxruntime, one thread, in its own worker thread (the STT worker stays free).

    `probability(pcm)` takes the turn's audio (pre-roll to now, int16 16 kHz) and returns the chance the
    speaker has finished. ~80-100 ms per call on the 2-core test hosts (`last_ms` keeps the latest).
    """

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        """Cheap: the ONNX session is made on first use, in the worker thread (`aload()` to warm it)."""
        self.path = Path(path)
        self.threads = threads
        self._session: Any = None
        self._input = ""
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.last_ms = 0.0
        self.calls = 0

    def _ensure(self) -> Any:
        with self._lock:
            if self._session is not None:
                return self._session
            try:
                import onnxruntime as ort
            except ImportError as e:  # pragma: no cover - onnxruntime comes with faster-whisper
                raise SmartTurnNotAvailable("Smart Turn needs onnxruntime: pip install onnxruntime") from e
            single_threaded_blas()  # the features' BLAS threads would spin on the model's core
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            try:
                session = ort.InferenceSession(
                    str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            except Exception as e:  # onnxruntime raises its own exception types
                raise SmartTurnNotAvailable(f"cannot load Smart Turn model {self.path}: {e}") from e
            self._input = session.get_inputs()[0].name
            self._session = session
            return session

    @classmethod
    def shared(cls, explicit: str | Path | None = None) -> SmartTurn | None:
        """The process's one instance for the model `find_model` finds (all headsets share it), or None
        when no model is installed: end of turn from the transcript alone."""
        path = find_model(explicit)
        if path is None:
            log.info("Smart Turn model not installed: end of turn from the transcript alone")
            return None
        return _shared(str(path))

    def probability(self, pcm: np.ndarray, run_options: Any = None) -> float:
        """P(turn complete) for the audio of a turn so far. Blocking (~80-100 ms on this project's 2-core
        test hosts). `run_options` (onnxruntime's) lets another thread stop the run (`terminate`)."""
        t0 = time.perf_counter()
        session = self._ensure()
        features = log_mel_8s(pcm)[None]
        out = session.run(None, {self._input: features}, run_options)
        self.last_ms = (time.perf_counter() - t0) * 1000
        self.calls += 1
        return float(np.asarray(out[0]).reshape(-1)[0])

    def _worker(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="smart-turn", initializer=_yield_to_the_recogniser
            )
        return self._executor

    async def aload(self) -> None:
        """Make the ONNX session in the worker thread (~0.2 s), so the first turn does not pay for it."""
        await asyncio.get_running_loop().run_in_executor(self._worker(), self._ensure)

    async def aprobability(self, pcm: np.ndarray) -> float:
        """`probability` in the model's worker thread (one request at a time). Cancelling the caller drops
        a queued request and stops a running one (its answer is no longer wanted: the core is freed)."""
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - onnxruntime comes with faster-whisper
            raise SmartTurnNotAvailable("Smart Turn needs onnxruntime: pip install onnxruntime") from e
        run_options = ort.RunOptions()
        work = functools.partial(self.probability, pcm, run_options)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker(), work)
        except asyncio.CancelledError:
            run_options.terminate = True
            raise

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _yield_to_the_recogniser() -> None:
    """In the model's worker thread (Linux only: elsewhere a thread has no priority of its own): run below
    the rest of the process. The turn detector asks the model alongside the transcript; where both want a
    core, the transcript, which every turn waits on, goes first."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + _NICE_STEPS))


@functools.lru_cache(maxsize=4)
def _shared(path: str) -> SmartTurn:
    return SmartTurn(path)


def main(argv: list[str] | None = None) -> int:
    """`python -m companion.stt.smart_turn install [WHEEL]`: put the model into companion's data dir."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "install":
        print("usage: python -m companion.stt.smart_turn install [PATH_TO_PIPECAT_WHEEL]", file=sys.stderr)
        return 2
    try:
        path = install_model(wheel=Path(args[1]) if len(args) > 1 else None)
    except SmartTurnNotAvailable as e:
        print(f"smart turn: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
