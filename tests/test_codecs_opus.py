"""`OpusDecoder` drives libopus through opuslib-next's binding into a NumPy buffer (the idle stream's hot
path): it must give exactly what opuslib-next's own `Decoder.decode` gives, including concealment."""

from __future__ import annotations

import numpy as np
import opuslib_next
import pytest

from companion.protocol import CodecId, ProtocolError
from companion.protocol.codecs import OpusDecoder, make_encoder


@pytest.mark.parametrize("codec", [CodecId.OPUS_16K_10MS, CodecId.OPUS_16K_20MS, CodecId.OPUS_16K_60MS])
def test_decode_and_concealment_equal_opuslib(codec: CodecId, speech_set) -> None:
    pcm = speech_set[0].pcm()[: 16000 * 3]
    enc = make_encoder(codec)
    n = enc.frame_samples
    packets = [enc.encode(pcm[i : i + n]) for i in range(0, len(pcm) - n + 1, n)]
    lost = np.random.default_rng(0).random(len(packets)) < 0.1
    reference, ours = opuslib_next.Decoder(16000, 1), OpusDecoder(codec)
    for i, packet in enumerate(packets):
        if lost[i]:  # the FEC copy inside the next packet, or PLC at the end
            nxt = packets[i + 1] if i + 1 < len(packets) else None
            want = reference.decode(nxt, n, decode_fec=True) if nxt else reference.decode(b"", n)
            got = ours.conceal(nxt)
        else:
            want, got = reference.decode(packet, n), ours.decode(packet)
        assert got.dtype == np.int16 and len(got) == n
        np.testing.assert_array_equal(got, np.frombuffer(want, dtype=np.int16))
    assert lost.any()


def test_each_frame_is_its_own_array() -> None:
    """The decoder reuses one buffer for libopus; what it returns must not change with the next frame."""
    enc, dec = make_encoder(CodecId.OPUS_16K_20MS), OpusDecoder()
    tone = (8000 * np.sin(np.arange(320) * 0.2)).astype(np.int16)
    first = dec.decode(enc.encode(tone))
    kept = first.copy()
    dec.decode(enc.encode(np.zeros(320, np.int16)))
    np.testing.assert_array_equal(first, kept)
    first[:] = 0  # and it is writable, like any decoded frame


def test_a_corrupt_frame_is_a_protocol_error_and_concealment_never_raises() -> None:
    dec = OpusDecoder()
    with pytest.raises(ProtocolError, match="libopus"):
        dec.decode(b"\xff\xff\xff")
    assert len(dec.conceal(b"\xff\xff\xff")) == 320  # unusable FEC: silence of the right length
