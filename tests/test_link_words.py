"""Words through the virtual headset: short confirmations come back once each, with and without loss.

The link itself neither repeats nor drops audio (the received stream is the sent one plus concealed frames,
counted); the repeats once heard here ("five five" as "5 5 5 5", "ten of clubs" three times) were Whisper's
decoder looping on a short window, which the STT now re-reads with the stock window (see WhisperSTT._suspect).
"""

from __future__ import annotations

import numpy as np
import pytest

from companion.stt.text import normalize
from companion.transcribe import through_headset


@pytest.mark.slow
@pytest.mark.parametrize("loss", [0.0, 0.02])
async def test_short_commands_through_the_link_keep_their_words(whisper_stt, synth_speech, loss):
    pad = np.zeros(4800, np.int16)
    for said, heard in [("Five five.", "five five"), ("Ten of clubs.", "ten of clubs"), ("Yes.", "yes")]:
        pcm = np.concatenate([pad, synth_speech(said), pad])
        carried, counters = await through_headset(pcm, codec="opus", loss=loss)
        result = await whisper_stt.atranscribe(carried)
        assert normalize(result.text) == heard, (said, result, counters)
