"""Voice-to-voice measurement from a conversation recording."""

import numpy as np

from companion.audio.v2v import voice_to_voice


def _tone(seconds: float, amp: int = 8000) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (np.sin(2 * np.pi * 200 * t) * amp).astype(np.int16)


def test_latency_from_end_of_speech_to_first_reply_audio() -> None:
    left = np.zeros(16000 * 6, np.int16)
    right = np.zeros_like(left)
    left[16000:32000] = _tone(1.0)  # speech 1.0-2.0 s, with a 300 ms pause inside
    left[20000:24800] = 0
    right[16000 * 2 + 4800 : 16000 * 3] = _tone(0.7)  # reply starts 300 ms after the end
    left[16000 * 4 : 16000 * 5] = _tone(1.0)  # a second utterance, never answered
    turns = voice_to_voice(left, right)
    assert len(turns) == 2
    assert turns[0].speech_end_s == 2.0
    assert turns[0].latency_ms == 300.0
    assert not turns[0].answered_early
    assert turns[1].reply_start_s is None


def test_early_answer_is_flagged() -> None:
    left = np.zeros(16000 * 3, np.int16)
    right = np.zeros_like(left)
    left[0:32000] = _tone(2.0)
    right[16000:20000] = _tone(0.25)
    (turn,) = voice_to_voice(left, right)
    assert turn.answered_early and turn.latency_ms < 0


def test_a_click_after_the_words_does_not_move_the_end_of_speech() -> None:
    """A knock 0.9 s after the last word (two blips 30 ms apart, as in a recording of the real-speech set) is
    not speech: the reply after the words is not early."""
    left = np.zeros(16000 * 4, np.int16)
    right = np.zeros_like(left)
    left[16000:32000] = _tone(1.0)  # speech 1.0-2.0 s
    left[46400:46720] = _tone(0.02)  # a click at 2.9 s
    left[47200:47360] = _tone(0.01)  # and its rebound at 2.95 s
    right[16000 * 2 + 4800 : 16000 * 3] = _tone(0.7)  # the reply, 300 ms after the words
    (turn,) = voice_to_voice(left, right, merge_gap_s=1.5)
    assert turn.speech_end_s == 2.0 and turn.latency_ms == 300.0 and not turn.answered_early


def test_a_short_sound_close_to_speech_is_kept() -> None:
    """A consonant's release 100 ms after a word is part of the speech."""
    left = np.zeros(16000 * 4, np.int16)
    right = np.zeros_like(left)
    left[16000:32000] = _tone(1.0)
    left[33600:34240] = _tone(0.04)  # 2.1-2.14 s
    (turn,) = voice_to_voice(left, right)
    assert turn.speech_end_s == 2.14


def test_a_short_word_said_alone_is_speech() -> None:
    left = np.zeros(16000 * 3, np.int16)
    left[16000:18400] = _tone(0.15)  # "yes": 150 ms
    (turn,) = voice_to_voice(left, np.zeros_like(left), min_speech_s=0.1)
    assert turn.speech_start_s == 1.0 and abs(turn.speech_end_s - 1.15) < 1e-9
