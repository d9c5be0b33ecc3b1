"""Streaming voice activity detection and end-pointing.

`SileroVAD` runs the Silero VAD v6 ONNX model that faster-whisper bundles, one 512-sample window at a
time, carrying the 64-sample context and the LSTM state across calls, so a live stream of 20 ms frames
gives the same probabilities as a whole-file run. A connected headset streams silence most of the day, so
once the model has settled on a quiet stretch, quiet windows are run in batches of up to a second instead of
one by one (see `SileroVAD`). `Endpointer` turns the probabilities into speech events with accurate
audio-clock times (pre-roll, hysteresis, click rejection, pause hint, end of speech).
"""

from __future__ import annotations

import functools
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from companion.audio.lead_in import lead_windows, window_levels_db

__all__ = [
    "EndOfSpeech",
    "Endpointer",
    "SileroVAD",
    "SpeechEvent",
    "SpeechPaused",
    "SpeechResumed",
    "SpeechStarted",
    "VADModelNotAvailable",
]

SAMPLE_RATE = 16000
WINDOW = 512  # samples per Silero window at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window the model sees in front of each window
#: A window (with its context) whose peak is at most this (about -70 dBFS) is quiet: no speech is this soft.
QUIET_PEAK = 10 / 32768
#: Quiet windows the model must have scored below QUIET_PROB in a row before quiet windows are batched.
SETTLE_WINDOWS = 64  # 2 s
QUIET_PROB = 0.01
#: Settled quiet windows are run in batches of this many (1 s), or sooner with the next loud window.
BATCH_WINDOWS = 32
#: When this many windows in a row have scored below REST_PROB (1 s of no speech) the LSTM state is zeroed,
#: once per such stretch.
REST_WINDOWS = 32
FLOOR_MIN_DB = -90.0  # quieter windows are digital silence, not a room: they do not set the noise floor
FLOOR_KNOWN_WINDOWS = 32  # the noise floor speaks for the room once this many windows (1 s) have set it
LEAD_MARGIN = 1600  # samples (100 ms) kept before the first soft word found before an onset
REST_PROB = 0.35  # the endpointer's default speech-off level (threshold 0.5 - 0.15)
#: `Endpointer.voice_margin_db`: the smallest margin over the room's floor allowed, and how far under the
#: onset's level a window may fall and still count as the voice (a word's decay falls further).
VOICE_MARGIN_MIN_DB = 20.0
VOICE_BELOW_ONSET_DB = 15.0
#: ... and for at most this long after the last window the VAD heard as speech (a falsetto phrase was 1.1 s).
VOICE_ONLY_MAX_S = 1.5
#: Outside replies, a window at least `voice_margin_db` over the room's floor may start speech from this VAD
#: score up (0.5 otherwise): Silero scores whispers and falsetto 0.3-0.55 in a quiet room.
QUIET_VOICE_PROB = 0.3


_INT16_SCALE = np.float32(1 / 32768)


def _rows(buf: np.ndarray, n: int) -> np.ndarray:
    """The model inputs of `n` windows: overlapping (context + window) slices of `buf`, as one array."""
    view = np.lib.stride_tricks.sliding_window_view(buf, CONTEXT + WINDOW)[: n * WINDOW : WINDOW]
    return np.ascontiguousarray(view)


class VADModelNotAvailable(RuntimeError):
    """The Silero ONNX model or onnxruntime is missing."""


def default_model_path() -> Path:
    """The Silero VAD v6 model bundled in faster-whisper's assets."""
    try:
        from faster_whisper.utils import get_assets_path
    except ImportError as e:  # pragma: no cover - depends on the install
        raise VADModelNotAvailable(
            "Silero VAD needs faster-whisper's bundled model: pip install 'companion[stt]'"
        ) from e
    return Path(get_assets_path()) / "silero_vad_v6.onnx"


@functools.lru_cache(maxsize=4)
def _session(path: str):  # -> onnxruntime.InferenceSession
    """One ONNX session per model file, shared by all streams (the state lives in each SileroVAD)."""
    try:
        import onnxruntime
    except ImportError as e:  # pragma: no cover - depends on the install
        raise VADModelNotAvailable("Silero VAD needs onnxruntime: pip install onnxruntime") from e
    if not Path(path).is_file():
        raise VADModelNotAvailable(f"Silero VAD model not found at {path}")
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=opts)


class SileroVAD:
    """Incremental Silero VAD: feed int16 chunks of any length, get one speech probability per 32 ms window.

    The ONNX session is shared between instances; each instance carries its own recurrent state,
    context and partial-window buffer, so instances are independent streams. Not thread-safe.

    Idle streams are cheap (``batch_quiet``, on by default). Each model call has a fixed cost on top of
    its per-window work (Python and onnxruntime overhead, and caches gone cold between 32 ms windows), so
    once the model has scored `SETTLE_WINDOWS` quiet windows (peak <= `QUIET_PEAK`) in a row below
    `QUIET_PROB`, further quiet windows are queued and run `BATCH_WINDOWS` at a time, or in one call
    with the next loud window, which therefore sees exactly the state a window-by-window run gives it:
    every window still goes through the model, in order. (Skipping silence instead would not do: the
    LSTM state keeps drifting through minutes of silence, and speech after it scores differently.)
    The recurrent state is zeroed once `REST_WINDOWS` windows in a row have scored below `REST_PROB` (a
    second with no speech), as Silero's own iterator resets it after each segment. Carried through minutes
    of a session, the state made the model slow to believe speech: on voice barge-in over a reply's
    cancelled echo, a soft onset reached p >= 0.5 up to 250 ms later than with a state one second old
    (docs/benchmarks.md, "Voice barge-in"). The reset depends only on the scores, so it falls on the same
    window whether windows run one by one, in batches or as a whole file.
    A queued window is reported with the last computed probability (below `QUIET_PROB`, so no threshold
    decision changes); a batch that scores any window at or above `QUIET_PROB` ends the settled
    stretch, so the next windows run at once again. Loud windows, and the first 2 s of any quiet
    stretch, always run at once.
    """

    window = WINDOW
    sample_rate = SAMPLE_RATE

    def __init__(self, model_path: str | Path | None = None, *, batch_quiet: bool = True) -> None:
        self._session = _session(str(model_path or default_model_path()))
        self.batch_quiet = batch_quiet
        self._queued: list[np.ndarray] = []  # settled quiet windows (model input rows) not yet run
        self.windows_queued = 0  # quiet windows that were run later than they came (observability, tests)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: zero state and context, drop buffered samples, restart the window count."""
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        # The last window's final 64 samples (the next window's context), then samples not yet in a window.
        self._tail = np.zeros(CONTEXT, dtype=np.float32)
        self._queued = []
        self._quiet_run = 0  # computed quiet windows in a row scored below QUIET_PROB
        self._rest_run = 0  # windows in a row scored below REST_PROB
        self._last_prob = 0.0
        self.windows_done = 0

    @property
    def samples_done(self) -> int:
        """Samples consumed into whole windows since the reset; window k covers [k*512, (k+1)*512)."""
        return self.windows_done * WINDOW

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Buffer `pcm` (mono 16 kHz int16, or float32 in [-1, 1]); return finished windows' probabilities."""
        pcm = np.asarray(pcm)
        if pcm.ndim != 1:
            raise ValueError(f"SileroVAD.process expects mono 1-D audio, got shape {pcm.shape}")
        samples = pcm * _INT16_SCALE if pcm.dtype == np.int16 else pcm.astype(np.float32, copy=False)
        buf = np.concatenate((self._tail, samples))
        n = (len(buf) - CONTEXT) // WINDOW
        self._tail = buf[n * WINDOW :]
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        # Row k is the 64 samples before window k followed by the window, as in training.
        rows = buf[None, : CONTEXT + WINDOW] if n == 1 else _rows(buf, n)
        self.windows_done += n
        if not self.batch_quiet:
            return self._run(rows)
        quiet = np.abs(rows).max(axis=1) <= QUIET_PEAK
        probs = np.empty(n, dtype=np.float32)
        for i in range(n):
            if not (quiet[i] and self._quiet_run >= SETTLE_WINDOWS):
                probs[i:] = self._run(rows[i:])  # the queued windows first, then these, in one call
                self._note(quiet[i:], probs[i:])
                break
            self._queued.append(rows[i])
            probs[i] = self._last_prob
            self.windows_queued += 1
            if len(self._queued) >= BATCH_WINDOWS:
                self._run_queue()
        return probs

    def _run(self, rows: np.ndarray) -> np.ndarray:
        """Run the queued windows, then `rows`, in one model call; the probabilities of `rows`."""
        queued = len(self._queued)
        if queued:
            rows = np.concatenate([np.stack(self._queued), rows])
            self._queued = []
        return self._infer(rows)[queued:]

    def _run_queue(self) -> None:
        rows = np.stack(self._queued)
        self._queued = []
        self._note(np.ones(len(rows), dtype=bool), self._infer(rows))

    def _infer(self, rows: np.ndarray) -> np.ndarray:
        # The v6 graph runs its LSTM across the batch axis, carrying h/c row to row. Where the state is due
        # to be zeroed (REST_WINDOWS), the rows after that point run again from a zero state.
        out = np.empty(len(rows), dtype=np.float32)
        done = 0
        while done < len(rows):
            raw, h, c = self._session.run(None, {"input": rows[done:], "h": self._h, "c": self._c})
            probs = np.asarray(raw, dtype=np.float32).reshape(len(rows) - done)
            cut = self._rest_point(probs)
            if cut is None:
                out[done:], self._h, self._c = probs, h, c
                break
            out[done : done + cut] = probs[:cut]
            self._h, self._c = np.zeros_like(self._h), np.zeros_like(self._c)
            done += cut
        return out

    def _rest_point(self, probs: np.ndarray) -> int | None:
        """How many of ``probs`` come before the state is zeroed (None: not in these), counting the run."""
        run = self._rest_run
        for i, p in enumerate(probs):
            run = run + 1 if p < REST_PROB else 0
            if run == REST_WINDOWS:  # once per stretch: a fresh state's first quiet scores delay settling
                self._rest_run = run
                return i + 1
        self._rest_run = run
        return None

    def _note(self, quiet: np.ndarray, probs: np.ndarray) -> None:
        """Track the run of quiet windows the model scored below QUIET_PROB, ending with these."""
        settled = quiet & (probs < QUIET_PROB)
        if settled.all():
            self._quiet_run += len(settled)
        else:
            self._quiet_run = len(settled) - 1 - int(np.flatnonzero(~settled)[-1])
        self._last_prob = float(probs[-1])


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechStarted:
    """Speech confirmed (it lasted `min_speech_ms`); `t` is when it began on the audio clock."""

    t: float
    sample: int = 0  # stream sample index of the onset (before pre-roll)


@dataclass(frozen=True, eq=False)
class SpeechPaused:
    """Silence has lasted `speculate_ms`: a hint to transcribe `audio` speculatively."""

    t_end_of_speech: float
    audio: np.ndarray = field(repr=False)
    start_sample: int = 0  # stream sample span of `audio`
    end_sample: int = 0


@dataclass(frozen=True)
class SpeechResumed:
    """Speech came back after a `SpeechPaused`; any speculative transcript is stale."""

    t: float


@dataclass(frozen=True, eq=False)
class EndOfSpeech:
    """Silence reached `end_silence_ms` (or the utterance hit `max_utterance_s`, then `forced`)."""

    t_end_of_speech: float
    t_decided: float
    audio: np.ndarray = field(repr=False)
    start_sample: int = 0
    end_sample: int = 0
    forced: bool = False


SpeechEvent = SpeechStarted | SpeechPaused | SpeechResumed | EndOfSpeech


# --- end-pointing -------------------------------------------------------------------------------


class _Ring:
    """The recent stream: int16 samples addressed by absolute sample index, plus frame times."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buf = np.zeros(capacity, dtype=np.int16)
        self.end = 0  # absolute index one past the newest sample
        self.frames: deque[tuple[int, float]] = deque(maxlen=512)  # (start index, start time) of frames

    def append(self, pcm: np.ndarray, t: float) -> None:
        self.frames.append((self.end, t))
        n = len(pcm)
        kept = pcm[-self.capacity :]
        pos = (self.end + n - len(kept)) % self.capacity
        first = min(len(kept), self.capacity - pos)
        self.buf[pos : pos + first] = kept[:first]
        if first < len(kept):  # wrapped around
            self.buf[: len(kept) - first] = kept[first:]
        self.end += n

    @property
    def start(self) -> int:
        return max(0, self.end - self.capacity)

    def slice(self, a: int, b: int) -> np.ndarray:
        a, b = max(a, self.start), min(b, self.end)
        if b <= a:
            return np.zeros(0, dtype=np.int16)
        idx = np.arange(a, b) % self.capacity
        return self.buf[idx]

    def time_of(self, index: int) -> float:
        """Audio-clock time of a sample index, from the newest frame that starts at or before it."""
        for start, t in reversed(self.frames):
            if start <= index:
                return t + (index - start) / SAMPLE_RATE
        start, t = self.frames[0]
        return t + (index - start) / SAMPLE_RATE


class Endpointer:
    """Turns 20 ms int16 frames into speech events (`SpeechStarted`, `SpeechPaused`, `SpeechResumed`,
    `EndOfSpeech`) with times on the audio clock.

    `feed(frame, t)` takes a frame and the audio-clock time of its first sample and returns the
    events the frame completed. The end of speech is the end of the last window classified as speech,
    not the moment of decision, so voice-to-voice latency can be measured from it.
    """

    def __init__(
        self,
        vad: SileroVAD | None = None,
        *,
        threshold: float = 0.5,
        neg_threshold: float | None = None,
        speculate_ms: float = 120,
        end_silence_ms: float = 250,
        pre_roll_ms: float = 300,
        lead_in_ms: float = 1500,
        tail_ms: float = 100,
        min_speech_ms: float = 90,
        barge_in_speech_ms: float | None = None,
        barge_in_threshold: float | None = None,
        residual_margin_db: float = 6.0,
        voice_margin_db: float | None = None,
        quiet_onsets: bool = True,
        max_utterance_s: float = 30.0,
        history_s: float = 60.0,
    ) -> None:
        neg = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
        if not 0.0 < neg <= threshold < 1.0:
            raise ValueError(f"need 0 < neg_threshold ({neg}) <= threshold ({threshold}) < 1")
        if not 0 < speculate_ms <= end_silence_ms:
            raise ValueError(f"need 0 < speculate_ms ({speculate_ms}) <= end_silence_ms ({end_silence_ms})")
        if not 0 <= tail_ms <= speculate_ms:
            # the speculative audio must equal the final audio, so its tail must already exist at the pause
            raise ValueError(f"need 0 <= tail_ms ({tail_ms}) <= speculate_ms ({speculate_ms})")
        barge = min_speech_ms if barge_in_speech_ms is None else barge_in_speech_ms
        if pre_roll_ms < 0 or lead_in_ms < 0 or not 0 <= barge <= min_speech_ms or max_utterance_s <= 1.0:
            raise ValueError(
                "need pre_roll_ms >= 0, lead_in_ms >= 0, 0 <= barge_in_speech_ms <= min_speech_ms and "
                "max_utterance_s > 1"
            )
        barge_on = threshold if barge_in_threshold is None else barge_in_threshold
        if not 0.0 < barge_on <= threshold:
            raise ValueError(f"need 0 < barge_in_threshold ({barge_on}) <= threshold ({threshold})")
        if residual_margin_db < 0:
            raise ValueError(f"need residual_margin_db >= 0, got {residual_margin_db}")
        if voice_margin_db is not None and voice_margin_db < VOICE_MARGIN_MIN_DB:
            raise ValueError(f"need voice_margin_db >= {VOICE_MARGIN_MIN_DB} or None, got {voice_margin_db}")
        if history_s < max_utterance_s + (pre_roll_ms + lead_in_ms) / 1000:
            raise ValueError(f"history_s ({history_s}) must cover max_utterance_s, pre-roll and lead-in")
        self.vad = vad or SileroVAD()
        self.threshold = threshold
        self.neg_threshold = neg
        # While a reply can be interrupted, speech may be confirmed from lower scores: the canceller's
        # residual echo scores far below speech, and a soft voice under the echo scores below 0.5.
        self.barge_in_threshold = barge_on
        self.barge_in_neg_threshold = min(neg, max(barge_on - 0.15, 0.01))
        ms = SAMPLE_RATE // 1000
        self._speculate = int(speculate_ms * ms)
        self._end_silence = int(end_silence_ms * ms)
        self._pre_roll = int(pre_roll_ms * ms)
        #: How much further back than the pre-roll soft first words are looked for (`audio.lead_in`).
        self._lead_in = int(lead_in_ms * ms)
        self._tail = int(tail_ms * ms)
        self._min_speech = int(min_speech_ms * ms)
        self._barge_in_speech = int(barge * ms)
        #: Set while a reply plays that the wearer may interrupt by voice: speech is then confirmed after
        #: `barge_in_speech_ms` instead of `min_speech_ms`, so the reply stops sooner. Outside replies the
        #: longer confirmation keeps clicks and coughs from opening turns.
        self.interruptible = False
        #: Set while the audio comes out of an echo canceller. Its suppressor gates the background noise in
        #: step with the reply, and the VAD can score noise shaped that way as speech (0.6-0.8 in 10 dB SNR
        #: noise), so speech must then also stand `residual_margin_db` above the noise floor heard outside
        #: the canceller (`noise_floor_db`, from windows the VAD calls silence).
        self.echo_residual = False
        self.residual_margin_db = residual_margin_db
        self.noise_floor_db: float | None = None
        #: Inside an utterance, a window this far over the noise floor, and within VOICE_BELOW_ONSET_DB of the
        #: speech that confirmed the onset, is still the voice whatever the VAD scores (None: off). Silero
        #: scores falsetto and other voices unlike its training 0.01-0.1 at -20 dBFS over a -75 dBFS room,
        #: so without this the turn ended inside the sentence and the reply played over its rest.
        self.voice_margin_db = voice_margin_db
        #: Outside replies, a window `voice_margin_db` over the known floor starts speech from a lower score
        #: (QUIET_VOICE_PROB). Off in wake mode: the room holds other people there, and a bystander's murmur
        #: begun in the follow-up window was answered as a request (docs/benchmarks.md).
        self.quiet_onsets = quiet_onsets
        self._voice_only_max = int(VOICE_ONLY_MAX_S * SAMPLE_RATE)
        self._onset_db = -math.inf  # the level of the windows that confirmed the current onset
        self._heard_end = 0  # end of the last window the VAD itself scored as speech
        self._first_levels: list[float] = []  # the first FLOOR_KNOWN_WINDOWS levels that set the noise floor
        self._last_end = 0  # where the previous utterance's audio ended: a lead-in never reaches into it
        self._reply_end = 0  # the end of the audio last fed while a reply played: nor into that
        self._max_utterance = int(max_utterance_s * SAMPLE_RATE)
        self._ring = _Ring(int(history_s * SAMPLE_RATE))
        self.end_silence_ms = end_silence_ms
        self.speculate_ms = speculate_ms
        self._reset_state()

    def _reset_state(self) -> None:
        self._offset = self._ring.end  # stream index where the VAD's window 0 starts
        self._candidate: int | None = None  # onset of unconfirmed speech
        self._onset: int | None = None  # onset of the current utterance (confirmed)
        self._start = 0  # where the current utterance's audio starts (pre-roll and lead-in before the onset)
        self._speech_end = 0  # end of the last speech window
        self._in_silence = False
        self._paused = False

    def reset(self) -> None:
        """Drop the current utterance and the VAD state (the audio history is kept)."""
        self.vad.reset()
        self._reset_state()

    @property
    def in_speech(self) -> bool:
        """Whether an utterance is open (confirmed speech, not yet ended)."""
        return self._onset is not None

    @property
    def now(self) -> float:
        """Audio-clock time at the end of the newest sample fed."""
        if not self._ring.frames:
            return 0.0
        return self._ring.time_of(self._ring.end)

    @property
    def stream_end(self) -> int:
        """Stream sample index one past the newest sample fed."""
        return self._ring.end

    def time_of(self, sample: int) -> float:
        """Audio-clock time of a stream sample index."""
        return self._ring.time_of(sample)

    def pause_point(self, end_sample: int) -> int:
        """Where the pause was called for an utterance whose audio ends at `end_sample` (an event's
        `end_sample`: the speech and its tail): the speech plus the whole windows of silence that made
        `speculate_ms`, or the stream so far if that is not heard yet. A model that reads the silence as a
        cue (the audio end-of-turn model) is given audio up to here whenever it runs, so a busy machine that
        asks it late does not change its answer: with ~200 ms more silence, Smart Turn calls some pauses
        inside a sentence finished."""
        windows = -(-self._speculate // WINDOW)
        return min(self.stream_end, end_sample - self._tail + windows * WINDOW)

    def audio(self, start_sample: int, end_sample: int) -> np.ndarray:
        """The stream's int16 samples in [start_sample, end_sample) that are still in the history."""
        return self._ring.slice(start_sample, end_sample)

    def feed(self, frame: np.ndarray, t: float) -> list[SpeechEvent]:
        """Consume one frame (int16 mono 16 kHz, any length) starting at audio time `t` (seconds)."""
        frame = np.asarray(frame)
        if frame.dtype != np.int16 or frame.ndim != 1:
            raise ValueError(f"Endpointer.feed expects 1-D int16 audio, got {frame.dtype} {frame.shape}")
        self._ring.append(frame, t)
        if self.interruptible or self.echo_residual:
            self._reply_end = self._ring.end
        events: list[SpeechEvent] = []
        first = self.vad.windows_done
        for k, p in enumerate(self.vad.process(frame)):
            start = self._offset + (first + k) * WINDOW
            self._window(float(p), start, start + WINDOW, events)
        return events

    def flush(self) -> list[SpeechEvent]:
        """End an open utterance now (end of stream): a forced `EndOfSpeech`, or nothing."""
        if self._onset is None:
            return []
        end = self._speech_end if self._in_silence else self._offset + self.vad.samples_done
        return [self._end(end, self._ring.end, forced=True)]

    # -- state machine, one 32 ms window at a time

    def _window(self, p: float, start: int, end: int, events: list[SpeechEvent]) -> None:
        if self._onset is None:
            if self.echo_residual:
                floor = self.noise_floor_db
                if floor is not None and self._level_db(start, end) < floor + self.residual_margin_db:
                    p = 0.0  # no louder than the background: the canceller's shaping of it, not a voice
            elif p < self.neg_threshold:
                self._track_floor(self._level_db(start, end))
            self._idle_window(p, start, end, events)
            return
        heard = p >= self.threshold or (p >= self.neg_threshold and not self._in_silence)
        if heard:
            self._heard_end = end
        if heard or self._voice_level(start, end):
            if self._paused:
                events.append(SpeechResumed(self._ring.time_of(start)))
            self._speech_end, self._in_silence, self._paused = end, False, False
        else:
            self._in_silence = True
        silence = end - self._speech_end if self._in_silence else 0
        if end - self._onset >= self._max_utterance:
            events.append(self._end(self._speech_end if self._in_silence else end, end, forced=True))
        elif silence >= self._end_silence:
            events.append(self._end(self._speech_end, end))
        elif silence >= self._speculate and not self._paused:
            self._paused = True
            a, b = self._span(self._speech_end)
            events.append(SpeechPaused(self._ring.time_of(self._speech_end), self._ring.slice(a, b), a, b))

    def _level_db(self, start: int, end: int) -> float:
        x = self._ring.slice(start, end).astype(np.float32)
        power = float(np.dot(x, x)) / max(len(x), 1) / 32768.0**2
        return 10 * math.log10(power) if power > 0 else -math.inf

    @property
    def _floor_known(self) -> bool:
        """Whether a second of room has set the noise floor (before that it may be one odd window's)."""
        return len(self._first_levels) >= FLOOR_KNOWN_WINDOWS

    def _voice_level(self, start: int, end: int) -> bool:
        """Whether a window the VAD scored as silence is loud enough to be the same voice (see
        `voice_margin_db`). Off while a reply plays or the canceller shapes the audio (its echo is loud too)
        and until the room's floor is known."""
        if self.interruptible or end - self._heard_end > self._voice_only_max:
            return False  # a noise that started while the wearer spoke (music) must not hold the turn open
        level = self._level_db(start, end)
        return self._loud_over_floor(level) and level >= self._onset_db - VOICE_BELOW_ONSET_DB

    def _loud_over_floor(self, level_db: float) -> bool:
        """Whether a window at `level_db` stands `voice_margin_db` over the room's known floor, with no echo
        canceller shaping the audio (None margin: never)."""
        margin, floor = self.voice_margin_db, self.noise_floor_db
        if margin is None or floor is None or not self._floor_known or self.echo_residual:
            return False
        return level_db >= floor + margin

    def _track_floor(self, level_db: float) -> None:
        """Follow the level of windows without speech: down quickly, up slowly (a few seconds), so a
        word the VAD missed barely lifts it. Digital silence (a muted or idle mic) says nothing."""
        if level_db < FLOOR_MIN_DB:
            return
        if len(self._first_levels) < FLOOR_KNOWN_WINDOWS:
            # The first windows of a stream set it by their median: a tracker started from the first window
            # kept an odd quiet one (a decoder warming up) for good, since it rises so slowly, and echo
            # residual 40 dB over that "floor" passed for the wearer's voice (a reply cut itself off).
            self._first_levels.append(level_db)
            self.noise_floor_db = float(np.median(self._first_levels))
            return
        floor = self.noise_floor_db
        assert floor is not None
        self.noise_floor_db = floor + (0.2 if level_db < floor else 0.02) * (level_db - floor)

    def _idle_window(self, p: float, start: int, end: int, events: list[SpeechEvent]) -> None:
        if self.interruptible:
            on, off, need = self.barge_in_threshold, self.barge_in_neg_threshold, self._barge_in_speech
        else:
            on, off, need = self.threshold, self.neg_threshold, self._min_speech
            if (
                self.quiet_onsets
                and on > p >= QUIET_VOICE_PROB
                and self._loud_over_floor(self._level_db(start, end))
            ):
                p = on  # a whisper or a falsetto in a quiet room: the VAD doubts it, its level does not
        if p >= on:
            if self._candidate is None:
                self._candidate = start
        elif p < off:
            self._candidate = None
        if self._candidate is not None and end - self._candidate >= need:
            self._onset, self._candidate = self._candidate, None
            self._start = self._audio_start(self._onset, end)
            self._onset_db, self._heard_end = self._level_db(self._onset, end), end
            self._speech_end, self._in_silence, self._paused = end, False, False
            events.append(SpeechStarted(self._ring.time_of(self._onset), self._onset))

    def _audio_start(self, onset: int, confirmed: int) -> int:
        """The pre-roll before `onset`, or earlier over soft first words the VAD scored as silence. Never
        over audio fed while a reply played (its echo, or the canceller's output) nor into the previous
        utterance."""
        start = max(self._ring.start, onset - self._pre_roll)
        if not self._lead_in or self.interruptible or self.echo_residual:
            return start
        earliest = max(self._ring.start, self._last_end, self._reply_end, start - self._lead_in)
        walk = (onset - earliest) // WINDOW * WINDOW
        levels = window_levels_db(self._ring.slice(onset - walk, onset), WINDOW)
        floor = self.noise_floor_db if self._floor_known else None
        lead = lead_windows(levels, self._level_db(onset, confirmed), floor)
        if lead == 0:
            return start
        return min(start, max(earliest, onset - lead * WINDOW - LEAD_MARGIN))

    def _span(self, speech_end: int) -> tuple[int, int]:
        assert self._onset is not None
        return self._start, min(self._ring.end, speech_end + self._tail)

    def _end(self, speech_end: int, decided: int, *, forced: bool = False) -> EndOfSpeech:
        a, b = self._span(speech_end)
        self._last_end = b
        ev = EndOfSpeech(
            self._ring.time_of(speech_end), self._ring.time_of(decided), self._ring.slice(a, b), a, b, forced
        )
        self._onset, self._in_silence, self._paused = None, False, False
        return ev
