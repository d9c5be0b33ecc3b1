"""Streaming Silero VAD and the endpointer, on real speech (and a scripted VAD for the state machine)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from companion.audio.vad import (
    QUIET_VOICE_PROB,
    REST_PROB,
    REST_WINDOWS,
    VOICE_ONLY_MAX_S,
    WINDOW,
    EndOfSpeech,
    Endpointer,
    SileroVAD,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)

SR = 16000
FRAME = 320
# Clean single-phrase files from the shared set (read speech and conversational takes).
CLEAN = ["coquitts_2.wav", "coquitts_4.wav", "lhotse_1.wav", "mfa_7.wav", "mfa_11.wav"]


def speech_bounds(pcm: np.ndarray, floor_db: float = -40.0) -> tuple[int, int]:
    """First and last sample of 10 ms frames within `floor_db` of the loudest frame."""
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160).astype(np.float64)
    db = 10 * np.log10((frames**2).mean(axis=1) + 1e-9)
    active = np.flatnonzero(db > db.max() + floor_db)
    return int(active[0]) * 160, int(active[-1] + 1) * 160


def padded(pcm: np.ndarray, before_s: float = 1.0, after_s: float = 1.5) -> np.ndarray:
    """The speech cropped to its energy bounds, between known stretches of silence."""
    a, b = speech_bounds(pcm)
    return np.concatenate(
        [np.zeros(int(before_s * SR), np.int16), pcm[a:b], np.zeros(int(after_s * SR), np.int16)]
    )


def run(ep: Endpointer, pcm: np.ndarray, t0: float = 0.0, frame: int = FRAME) -> list:
    events = []
    for i in range(0, len(pcm), frame):
        events += ep.feed(pcm[i : i + frame], t0 + i / SR)
    return events


def by_name(speech_set, name):
    return next(u for u in speech_set if u.path.name == name)


# --- SileroVAD ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_streaming_matches_whole_file_reference(speech_set, silero_vad_model):
    from faster_whisper.vad import get_vad_model

    x = padded(by_name(speech_set, "coquitts_4.wav").pcm())
    reference = get_vad_model()(np.pad(x.astype(np.float32) / 32768, (0, WINDOW - len(x) % WINDOW)))
    reference = np.asarray(reference).ravel()

    vad = SileroVAD()
    streamed = np.concatenate([vad.process(x[i : i + FRAME]) for i in range(0, len(x), FRAME)])
    assert len(streamed) == len(x) // WINDOW
    # The same scores until our state is zeroed after a second with no speech (the reference never does).
    resting = np.convolve(reference < REST_PROB, np.ones(REST_WINDOWS, dtype=int), "valid") == REST_WINDOWS
    rest = int(np.argmax(resting)) + REST_WINDOWS if resting.any() else len(streamed)
    assert rest > 100  # the speech itself is compared
    np.testing.assert_allclose(streamed[:rest], reference[:rest], atol=1e-4)
    assert streamed[rest:].max(initial=0) < REST_PROB  # and the silence after it is still silence
    assert streamed.max() > 0.9 and streamed[:20].max() < 0.1  # speech found, leading silence not

    # Odd chunk sizes give the same probabilities: the state and context are carried, not reset.
    vad.reset()
    rng = np.random.default_rng(1)
    chunks, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 1500))
        chunks.append(vad.process(x[i : i + n]))
        i += n
    np.testing.assert_allclose(np.concatenate(chunks), streamed, atol=1e-5)


@pytest.mark.slow
def test_vad_window_is_cheap(silero_vad_model):
    vad = SileroVAD()
    noise = (np.random.default_rng(0).normal(0, 300, SR * 3)).astype(np.int16)
    start = time.thread_time()  # CPU time: onnxruntime runs single-threaded in the caller's thread
    n = sum(len(vad.process(noise[i : i + FRAME])) for i in range(0, len(noise), FRAME))
    per_window_ms = (time.thread_time() - start) * 1000 / n
    assert per_window_ms < 1.0, f"VAD costs {per_window_ms:.2f} ms of CPU per 32 ms window"


@pytest.mark.slow
def test_vad_rejects_bad_input(silero_vad_model):
    with pytest.raises(ValueError, match="mono"):
        SileroVAD().process(np.zeros((2, 320), np.int16))
    with pytest.raises(ValueError, match="int16"):
        Endpointer().feed(np.zeros(320, np.float32), 0.0)
    with pytest.raises(ValueError, match="speculate_ms"):
        Endpointer(speculate_ms=300, end_silence_ms=250)
    with pytest.raises(ValueError, match="neg_threshold"):
        Endpointer(threshold=0.3, neg_threshold=0.6)


# --- Endpointer on real speech --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", CLEAN)
def test_events_land_on_real_speech_bounds(speech_set, name):
    pcm = padded(by_name(speech_set, name).pcm())
    t0 = 100.0  # an arbitrary audio clock origin
    onset = t0 + 1.0
    offset = onset + (len(pcm) - int(2.5 * SR)) / SR
    ep = Endpointer(speculate_ms=120, end_silence_ms=250, pre_roll_ms=300, tail_ms=100)
    events = run(ep, pcm, t0)

    # One utterance (pauses at commas may come and go inside it), then its end.
    kinds = [type(e) for e in events]
    assert kinds[0] is SpeechStarted and kinds[-2:] == [SpeechPaused, EndOfSpeech], events
    assert kinds.count(SpeechStarted) == 1 and kinds.count(EndOfSpeech) == 1
    assert kinds.count(SpeechPaused) == kinds.count(SpeechResumed) + 1
    started, paused, end = events[0], events[-2], events[-1]
    assert abs(started.t - onset) <= 0.1
    assert abs(end.t_end_of_speech - offset) <= 0.1
    # Decided after end_silence of silence, reported at the end of speech (to within one window).
    assert 0.25 <= end.t_decided - end.t_end_of_speech <= 0.25 + WINDOW / SR + 1e-9
    assert paused.t_end_of_speech == end.t_end_of_speech
    # The utterance runs from the pre-roll to the tail, and the pause hint carries the same audio.
    assert np.array_equal(paused.audio, end.audio)
    assert abs(len(end.audio) / SR - (end.t_end_of_speech - started.t + 0.3 + 0.1)) <= 0.01
    start_idx = end.start_sample
    assert np.array_equal(end.audio, pcm[start_idx : start_idx + len(end.audio)])


@pytest.mark.slow
def test_silence_and_noise_give_no_events(silero_vad_model):
    rng = np.random.default_rng(0)
    ep = Endpointer()
    assert run(ep, np.zeros(3 * SR, np.int16)) == []
    assert run(ep, rng.normal(0, 200, 3 * SR).astype(np.int16), t0=3.0) == []


@pytest.mark.slow
def test_flush_closes_an_open_utterance(speech_set):
    pcm = padded(by_name(speech_set, "lhotse_1.wav").pcm(), after_s=0.0)
    ep = Endpointer()
    events = run(ep, pcm)
    assert [type(e) for e in events] == [SpeechStarted]
    (end,) = ep.flush()
    assert isinstance(end, EndOfSpeech) and end.forced
    assert abs(end.t_end_of_speech - len(pcm) / SR) <= 0.1
    assert ep.flush() == []


# --- Endpointer state machine with scripted probabilities (pure logic) ------------------------------


class ScriptedVAD:
    """Stands in for SileroVAD: returns scripted probabilities, one per 512-sample window."""

    def __init__(self, probs: list[float]) -> None:
        self.probs = list(probs)
        self.windows_done = 0
        self._pending = 0

    @property
    def samples_done(self) -> int:
        return self.windows_done * WINDOW

    def reset(self) -> None:
        self.windows_done = 0
        self._pending = 0

    def process(self, pcm: np.ndarray) -> np.ndarray:
        self._pending += len(pcm)
        n = self._pending // WINDOW
        self._pending -= n * WINDOW
        out = [self.probs[min(self.windows_done + k, len(self.probs) - 1)] for k in range(n)]
        self.windows_done += n
        return np.asarray(out, dtype=np.float32)


def scripted(probs: list[float], **kwargs) -> list:
    ep = Endpointer(ScriptedVAD(probs), **kwargs)
    return run(ep, np.ones(len(probs) * WINDOW, np.int16))


W = WINDOW / SR  # 32 ms


def test_click_shorter_than_min_speech_is_ignored():
    assert scripted([0.0] * 10 + [0.9, 0.9] + [0.0] * 30, min_speech_ms=90) == []


def test_while_a_reply_can_be_interrupted_two_windows_confirm_speech():
    """Voice barge-in: two windows of speech start an utterance (the reply stops 32 ms sooner); a single
    window is still a click, and outside replies two windows are not enough."""
    probs = [0.0] * 10 + [0.9, 0.9] + [0.0] * 30

    def confirm(interruptible: bool, probs: list[float]) -> list:
        ep = Endpointer(ScriptedVAD(probs), min_speech_ms=90, barge_in_speech_ms=64)
        ep.interruptible = interruptible
        return run(ep, np.ones(len(probs) * WINDOW, np.int16))

    assert confirm(False, probs) == []
    started = confirm(True, probs)[0]
    assert isinstance(started, SpeechStarted) and started.t == pytest.approx(10 * W)
    assert confirm(True, [0.0] * 10 + [0.9] + [0.0] * 30) == []
    with pytest.raises(ValueError, match="barge_in_speech_ms"):
        Endpointer(ScriptedVAD([]), min_speech_ms=90, barge_in_speech_ms=120)


def test_while_a_reply_can_be_interrupted_a_softer_voice_counts():
    """A whisper under a reply's echo scores 0.3-0.5 after the canceller: while the reply can be
    interrupted it starts an utterance; outside replies the same scores are not speech, and the residual
    echo's scores (under 0.15) never are."""
    soft = [0.0] * 10 + [0.38, 0.24] + [0.0] * 30

    def events(interruptible: bool, probs: list[float]) -> list:
        ep = Endpointer(ScriptedVAD(probs), min_speech_ms=90, barge_in_speech_ms=64, barge_in_threshold=0.3)
        ep.interruptible = interruptible
        return run(ep, np.ones(len(probs) * WINDOW, np.int16))

    started = events(True, soft)[0]
    assert isinstance(started, SpeechStarted) and started.t == pytest.approx(10 * W)
    assert events(False, soft) == []
    assert events(True, [0.0] * 10 + [0.15] * 20 + [0.0] * 10) == []
    assert events(True, [0.0] * 10 + [0.38, 0.12] + [0.0] * 30) == []  # one window, then echo: a click
    with pytest.raises(ValueError, match="barge_in_threshold"):
        Endpointer(ScriptedVAD([]), threshold=0.5, barge_in_threshold=0.6)


def test_out_of_the_echo_canceller_speech_must_stand_above_the_noise_floor():
    """The canceller's suppressor shapes background noise into what the VAD scores as speech. While its
    output is fed, a window no louder than the noise floor (heard before, outside the canceller) is not
    speech; a voice 12 dB over it is."""
    rng = np.random.default_rng(3)

    def noise(windows: int, rms: float) -> np.ndarray:
        return rng.normal(0, rms, windows * WINDOW).astype(np.int16)

    probs = [0.05] * 40 + [0.8] * 20 + [0.0] * 20 + [0.8] * 10 + [0.0] * 20
    ep = Endpointer(ScriptedVAD(probs), min_speech_ms=90, residual_margin_db=6.0)
    assert run(ep, noise(40, 1000)) == []  # the room: -30 dBFS
    assert ep.noise_floor_db is not None and -32 < ep.noise_floor_db < -29
    ep.echo_residual = True
    assert run(ep, noise(20, 1000), t0=40 * W) == []  # scored as speech, but no louder than the room
    assert run(ep, noise(20, 1000), t0=60 * W) == []
    started = run(ep, noise(10, 4000), t0=80 * W)
    assert isinstance(started[0], SpeechStarted) and started[0].t == pytest.approx(80 * W)
    assert ep.noise_floor_db < -29  # nothing heard through the canceller moves the floor


def test_one_quiet_window_at_the_start_does_not_set_the_noise_floor():
    """A stream that starts with a near-silent window (a decoder warming up) and then the room: the floor is
    the room's, so echo residual at the room's level is still not speech. Started from that first window,
    the slow-rising tracker kept the floor 50 dB low and the residual of a reply's echo cut the reply."""
    rng = np.random.default_rng(5)
    first = rng.normal(0, 2, WINDOW).astype(np.int16)  # about -84 dBFS
    room = rng.normal(0, 1000, 5 * WINDOW).astype(np.int16)  # -30 dBFS; speech follows at once
    ep = Endpointer(ScriptedVAD([0.05] * 6 + [0.8] * 10), min_speech_ms=90, residual_margin_db=6.0)
    run(ep, np.concatenate([first, room]))
    assert ep.noise_floor_db is not None and -33 < ep.noise_floor_db < -28
    ep.echo_residual = True
    assert run(ep, rng.normal(0, 1400, 10 * WINDOW).astype(np.int16), t0=6 * W) == []


def test_hysteresis_keeps_speech_between_thresholds():
    # 0.4 is below threshold 0.5 but above neg 0.35: it continues speech, it does not start it.
    events = scripted([0.0] * 5 + [0.9] * 5 + [0.4] * 10 + [0.0] * 20, end_silence_ms=250)
    start, _pause, end = events
    assert start.t == pytest.approx(5 * W)
    assert end.t_end_of_speech == pytest.approx(20 * W)
    assert scripted([0.0] * 5 + [0.4] * 30) == []


def test_pause_and_resume_then_end():
    probs = [0.0] * 5 + [0.9] * 10 + [0.0] * 5 + [0.9] * 10 + [0.0] * 15
    events = scripted(probs, speculate_ms=120, end_silence_ms=250)
    kinds = [type(e) for e in events]
    assert kinds == [SpeechStarted, SpeechPaused, SpeechResumed, SpeechPaused, EndOfSpeech]
    assert events[1].t_end_of_speech == pytest.approx(15 * W)
    assert events[2].t == pytest.approx(20 * W)
    assert events[4].t_end_of_speech == pytest.approx(30 * W)
    assert events[4].t_decided == pytest.approx(30 * W + 8 * W)  # first window with >= 250 ms silence


def test_max_utterance_forces_an_end():
    events = scripted([0.9] * 200, max_utterance_s=2.0, min_speech_ms=0)
    ends = [e for e in events if isinstance(e, EndOfSpeech)]
    assert ends and ends[0].forced
    assert ends[0].t_end_of_speech == pytest.approx(63 * W)  # 2 s rounded up to whole windows


# --- lead-in: soft first words the VAD scored as silence -----------------------------------------------


def tone(windows: int, rms: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, rms, windows * WINDOW).clip(-32768, 32767).astype(np.int16)


def first_end(ep: Endpointer, pcm: np.ndarray) -> EndOfSpeech:
    return next(e for e in run(ep, pcm) if isinstance(e, EndOfSpeech))


def lead_in_case(before: np.ndarray, *, room_rms: float = 6.0, **kwargs) -> tuple[Endpointer, np.ndarray]:
    """2 s of room tone (about -75 dBFS), then `before` (scored as silence), then 20 windows of speech the
    VAD hears, then silence. The scripted VAD scores only by position."""
    room = tone(64, room_rms, seed=1)
    speech = tone(20, 800, seed=2)  # about -32 dBFS
    pcm = np.concatenate([room, before, speech, tone(30, room_rms, seed=3)])
    onset = (len(room) + len(before)) // WINDOW
    probs = [0.02] * onset + [0.9] * 20 + [0.02] * 30
    return Endpointer(ScriptedVAD(probs), pre_roll_ms=300, **kwargs), pcm


def test_soft_first_words_before_the_onset_are_kept():
    """Words 6-12 dB under the sentence, scored as silence, lead into the onset: the utterance's audio
    starts before them (with a margin), not at the fixed pre-roll."""
    soft = np.concatenate([tone(10, 300, seed=4), tone(3, 6, seed=5), tone(12, 400, seed=6)])  # a gap inside
    ep, pcm = lead_in_case(soft)
    end = first_end(ep, pcm)
    words_start = 64 * WINDOW
    assert end.start_sample == words_start - 1600  # 100 ms before the first soft word


def test_room_tone_before_the_onset_keeps_the_plain_pre_roll():
    ep, pcm = lead_in_case(tone(25, 6, seed=4))
    end = first_end(ep, pcm)
    assert end.start_sample == (64 + 25) * WINDOW - 300 * 16


def test_a_loud_room_or_a_reply_playing_gives_no_lead_in():
    """Babble as loud as the soft words is the room, not the wearer (the floor is known after 1 s);
    while a reply can be interrupted what came before is its echo; and `lead_in_ms=0` turns it off."""
    loud_room = tone(25, 300, seed=4)
    ep, pcm = lead_in_case(loud_room, room_rms=300)
    assert first_end(ep, pcm).start_sample == (64 + 25) * WINDOW - 300 * 16
    soft = tone(25, 300, seed=4)
    ep, pcm = lead_in_case(soft)
    ep.interruptible = True
    assert first_end(ep, pcm).start_sample == (64 + 25) * WINDOW - 300 * 16
    # Soft sound partly heard while a reply played (its echo residual): the lead-in stops where the reply's
    # audio ended.
    ep, pcm = lead_in_case(soft)
    at = (64 + 5) * WINDOW
    ep.echo_residual = True
    run(ep, pcm[:at])
    ep.echo_residual = False
    events = run(ep, pcm[at:], t0=at / SR)
    end = next(e for e in events if isinstance(e, EndOfSpeech))
    assert end.start_sample == at
    ep, pcm = lead_in_case(soft, lead_in_ms=0)
    assert first_end(ep, pcm).start_sample == (64 + 25) * WINDOW - 300 * 16


def test_the_lead_in_stops_at_its_limit_and_at_the_previous_utterance():
    ep, pcm = lead_in_case(tone(60, 300, seed=4), lead_in_ms=500)  # 1.9 s of soft sound: capped
    onset = (64 + 60) * WINDOW
    assert first_end(ep, pcm).start_sample == onset - 300 * 16 - 500 * 16
    # Two utterances 0.6 s apart with soft sound between: the second's lead-in stops where the first's
    # audio ended.
    probs = [0.02] * 64 + [0.9] * 20 + [0.02] * 20 + [0.9] * 20 + [0.02] * 30
    pcm = np.concatenate([tone(64, 6), tone(20, 800), tone(20, 300), tone(20, 800), tone(30, 6)])
    ep = Endpointer(ScriptedVAD(probs), pre_roll_ms=300, end_silence_ms=250, speculate_ms=120, tail_ms=100)
    first, second = [e for e in run(ep, pcm) if isinstance(e, EndOfSpeech)]
    assert second.start_sample == first.end_sample < (64 + 40) * WINDOW - 300 * 16


@pytest.mark.slow
def test_soft_first_words_of_real_speech_are_kept(speech_set):
    """`mfa_23` opens with "and here's a" at -27 to -36 dBFS, which Silero scores as silence; the VAD's
    onset comes 1.2 s into the take. After a second of room tone, the utterance's audio holds those words."""
    take = by_name(speech_set, "mfa_23.wav").pcm()
    room = tone(32, 6)
    ep = Endpointer(speculate_ms=60, end_silence_ms=220, pre_roll_ms=300, tail_ms=60)
    events = run(ep, np.concatenate([room, take, np.zeros(SR, np.int16)]))
    started = next(e for e in events if isinstance(e, SpeechStarted))
    first = next(e for e in events if isinstance(e, EndOfSpeech))
    assert started.t > 1.0 + 0.9  # the VAD itself does not hear the first words
    assert first.start_sample <= len(room)  # the utterance starts before them


# --- a voice the VAD scores as silence, inside an utterance ----------------------------------------


def voice_case(voice_rms: float, *, room: int = 64, **kwargs) -> tuple[Endpointer, np.ndarray]:
    """Room tone (about -75 dBFS, `room` windows), a word the VAD hears (6 windows at about -32 dBFS), 12
    windows at `voice_rms` that it scores as silence (a falsetto), 4 windows it hears again, then the room."""
    parts = [(room, 6.0), (6, 800), (12, voice_rms), (4, 800), (30, 6.0)]
    pcm = np.concatenate([tone(n, rms, seed=k) for k, (n, rms) in enumerate(parts, 1)])
    probs = [0.02] * room + [0.9] * 6 + [0.04] * 12 + [0.9] * 4 + [0.02] * 30
    return Endpointer(ScriptedVAD(probs), end_silence_ms=220, speculate_ms=60, tail_ms=60, **kwargs), pcm


def ends(events: list) -> list[float]:
    return [round(e.t_end_of_speech / W) for e in events if isinstance(e, EndOfSpeech)]


def test_a_voice_the_vad_scores_as_silence_stays_one_utterance_while_loud_over_the_room():
    """Silero scores falsetto 0.01-0.1 at -20 dBFS in a -75 dBFS room: without the level rule the turn
    ended after the first word and the reply played over the rest of the sentence."""
    ep, pcm = voice_case(800, voice_margin_db=30)
    assert ends(run(ep, pcm)) == [64 + 22]  # one utterance, to the last word
    ep, pcm = voice_case(800, voice_margin_db=None)
    assert ends(run(ep, pcm)) == [64 + 6, 64 + 22]  # off: split at the falsetto


def test_the_voice_level_rule_needs_a_known_room_a_loud_voice_and_no_reply_playing():
    """Not a word's decay (15 dB and more under the onset), not before a second of the room has set its
    floor, and not while a reply plays or the canceller shapes the audio (its echo is loud too)."""
    ep, pcm = voice_case(100, voice_margin_db=30)  # -50 dBFS: 18 dB under the onset
    assert ends(run(ep, pcm)) == [64 + 6, 64 + 22]
    ep, pcm = voice_case(800, room=20, voice_margin_db=30)  # the floor is not known yet
    assert ends(run(ep, pcm)) == [20 + 6, 20 + 22]
    for flag in ("interruptible", "echo_residual"):
        ep, pcm = voice_case(800, voice_margin_db=30, residual_margin_db=0.0)
        setattr(ep, flag, True)
        assert len(ends(run(ep, pcm))) == 2, flag
    with pytest.raises(ValueError, match="voice_margin_db"):
        Endpointer(ScriptedVAD([]), voice_margin_db=10)


def soft_voice(rms: float, p: float, *, room: int = 64, flag: str | None = None, **kwargs) -> list:
    """Room tone (about -75 dBFS, `room` windows), then 8 windows at `rms` that the VAD scores `p`; `flag`
    names an Endpointer attribute set on (a reply playing, the canceller's output)."""
    parts = [(room, 6.0), (8, rms), (30, 6.0)]
    pcm = np.concatenate([tone(n, level, seed=k) for k, (n, level) in enumerate(parts, 1)])
    probs = [0.02] * room + [p] * 8 + [0.02] * 30
    kwargs.setdefault("voice_margin_db", 30)
    ep = Endpointer(ScriptedVAD(probs), end_silence_ms=220, speculate_ms=60, tail_ms=60, **kwargs)
    if flag is not None:
        setattr(ep, flag, True)
    return run(ep, pcm)


def test_a_soft_voice_well_over_a_quiet_room_starts_an_utterance():
    """Silero scores a whisper or a falsetto 0.3-0.55 in a quiet room, so such a request often went
    unheard: a window `voice_margin_db` over the room's floor may start speech from QUIET_VOICE_PROB."""
    started = [e for e in soft_voice(800, 0.4) if isinstance(e, SpeechStarted)]
    assert len(started) == 1 and started[0].t == pytest.approx(64 * W)
    assert soft_voice(800, QUIET_VOICE_PROB - 0.1) == []  # the VAD hears nothing like a voice
    assert soft_voice(100, 0.4) == []  # 25 dB over the room: as loud as a radio next door
    assert soft_voice(800, 0.4, voice_margin_db=None) == []  # the rule is off
    assert soft_voice(800, 0.4, room=20) == []  # the room's floor is not known yet
    assert soft_voice(800, 0.4, quiet_onsets=False) == []  # wake mode: bystanders murmur too
    # Off out of the canceller (its residual is loud too); during a reply barge_in_threshold rules.
    assert soft_voice(800, 0.4, flag="echo_residual", residual_margin_db=0.0) == []
    assert soft_voice(800, 0.4, flag="interruptible", barge_in_speech_ms=64, barge_in_threshold=0.5) == []


def test_a_loud_noise_that_starts_while_the_wearer_speaks_holds_the_turn_at_most_a_while():
    """Music starting under the last word is as loud as a voice but never scored as one: it extends the
    utterance by at most VOICE_ONLY_MAX_S after the last window the VAD heard, then the turn ends."""
    pcm = np.concatenate([tone(64, 6.0, seed=1), tone(6, 800, seed=2), tone(100, 800, seed=3)])
    probs = [0.02] * 64 + [0.9] * 6 + [0.04] * 100
    ep = Endpointer(ScriptedVAD(probs), end_silence_ms=220, speculate_ms=60, tail_ms=60, voice_margin_db=30)
    cap = int(VOICE_ONLY_MAX_S * SR) // WINDOW
    assert ends(run(ep, pcm)) == [64 + 6 + cap]
