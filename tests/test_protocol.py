"""The shared wire format: parsers never crash, framing accounts for every packet, codecs round-trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from companion.protocol import (
    Button,
    Capabilities,
    CodecId,
    DeviceState,
    FlowStatus,
    Msg,
    Packetizer,
    Profile,
    ProtocolError,
    Reassembler,
    TruncatedPacket,
    parse_battery,
    parse_omi_button,
    parse_omi_codec,
    parse_packet,
)
from companion.protocol import messages as pm
from companion.protocol.codecs import StreamDecoder, make_decoder, make_encoder, mulaw_decode, mulaw_encode
from companion.protocol.framing import seq_diff
from companion.protocol.messages import decode_control

PARSERS = [
    lambda b: parse_packet(b, Profile.COMPANION),
    lambda b: parse_packet(b, Profile.OMI),
    decode_control,
    FlowStatus.decode,
    Capabilities.decode,
    parse_battery,
    parse_omi_button,
    parse_omi_codec,
]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(range(len(PARSERS))))
def test_parsers_raise_only_protocol_errors(data: bytes, which: int) -> None:
    try:
        PARSERS[which](data)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=60), max_size=80), st.sampled_from(list(Profile)))
def test_reassembler_counts_every_packet(packets: list[bytes], profile: Profile) -> None:
    r = Reassembler(profile, CodecId.PCM16_16K)
    for p in packets:
        r.feed(p)
    r.flush()
    c = r.counters
    accounted = c.packets_received + c.packets_duplicate + c.packets_late + c.packets_malformed
    assert accounted == len(packets)


TYPED = [
    pm.SetState(DeviceState.SPEAKING),
    pm.SetVolume(55),
    pm.Abort(),
    pm.SetCodecs(CodecId.OPUS_16K_20MS, CodecId.PCM16_16K),
    pm.Listen(True),
    pm.Tts(pm.TtsPhase.SENTENCE_START),
    pm.TimeSync(1_800_000_000),
    pm.ButtonReport(Button.DOUBLE_TAP),
    pm.StateReport(DeviceState.IDLE),
    pm.VolumeReport(0),
    pm.CodecsReport(CodecId.MULAW_8K, CodecId.PCM16_16K),
    pm.PlaybackReport(pm.PlaybackEvent.DRAINED),
    pm.ErrorReport(3, "codec not supported"),
]


def test_every_message_type_has_one_class_and_round_trips() -> None:
    assert {type(x).TYPE for x in TYPED} == set(Msg)
    for x in TYPED:
        assert pm.message_class(x.TYPE) is type(x)
        assert decode_control(x.encode()) == x


def test_typed_messages_keep_the_documented_bytes() -> None:
    assert pm.SetVolume(55).encode() == b"\x02\x01\x37"
    assert pm.Abort().encode() == b"\x03\x00"
    assert pm.TimeSync(1).encode() == b"\x07\x04\x01\x00\x00\x00"
    assert pm.ErrorReport(2, "x" * 300).encode()[:3] == b"\x86\xc9\x02"  # text cut at 200 bytes
    assert pm.StateReport(DeviceState.IDLE) != pm.SetState(DeviceState.IDLE)
    with pytest.raises(ProtocolError):
        pm.SetVolume(101).encode()


@pytest.mark.parametrize(
    "data",
    [b"\x02\x01\x65", b"\x01\x01\x09", b"\x03\x01\x00", b"\x04\x02\x15\x63", b"\x7f\x00", b"\x81\x02\x01"],
)
def test_bad_control_messages_are_typed_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_control(data)


def test_capabilities_round_trip_and_rejects_trailing_bytes() -> None:
    caps = Capabilities(
        (1, 4, 2), True, True, True, False, (CodecId.OPUS_16K_20MS,), (CodecId.PCM16_16K,), 400
    )
    assert Capabilities.decode(caps.encode()) == caps
    with pytest.raises(ProtocolError):
        Capabilities.decode(caps.encode() + b"\x00")


def test_flow_status_carries_the_mic_position_or_not() -> None:
    old = FlowStatus(credits=40, buffered_ms=200, underruns=3, capacity_frames=25)
    assert len(old.encode()) == 10 and FlowStatus.decode(old.encode()) == old  # headsets without it
    new = FlowStatus(40, 200, 3, 25, mic_samples=(1 << 32) + 320)
    assert new.encode()[10:] == (320).to_bytes(4, "little")  # u32, wraps
    assert FlowStatus.decode(new.encode()).mic_samples == 320
    with pytest.raises(TruncatedPacket):
        FlowStatus.decode(new.encode()[:12])


def test_seq_diff_wraps() -> None:
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(100, 90) == 10


def _impair(packets: list[bytes], seed: int, loss: float, dup: float, reorder: float):
    """An independent model of a lossy radio and the ground truth it knows."""
    rng = random.Random(seed)
    delivered: list[bytes] = []
    held: bytes | None = None
    for i, p in enumerate(packets):
        if i > 0 and rng.random() < loss:  # a receiver cannot know of packets lost before the first
            continue
        if held is None and rng.random() < reorder:
            held = p
            continue
        delivered.append(p)
        if rng.random() < dup:
            delivered.append(p)
        if held is not None:
            delivered.append(held)
            held = None
    if held is not None:
        delivered.append(held)
    # Ground truth from what went over the air, by the documented definitions.
    seqs = [int.from_bytes(p[:2], "little") for p in delivered]
    seen: set[int] = set()
    highest = -1
    dups = reordered = 0
    for s in seqs:
        if s in seen:
            dups += 1
            continue
        if s < highest:
            reordered += 1
        highest = max(highest, s)
        seen.add(s)
    lost = len(packets) - len(seen)
    return delivered, lost, dups, reordered


@pytest.mark.parametrize("loss", [0.0, 0.02, 0.05, 0.10])
@pytest.mark.parametrize("mtu", [23, 247])
@pytest.mark.parametrize("profile", list(Profile))
def test_counts_equal_injected_impairments(loss: float, mtu: int, profile: Profile) -> None:
    pk = Packetizer(profile, mtu, CodecId.PCM16_16K)
    frames = [np.full(320, i, dtype=np.int16).tobytes() for i in range(150)]
    packets = [p for f in frames for p in pk.packetize(f)]
    tail = [p for f in frames[:12] for p in pk.packetize(f)]  # clean tail so every hole gets decided
    delivered, lost, dups, reordered = _impair(
        packets, seed=int(loss * 1000) + mtu, loss=loss, dup=0.02, reorder=0.02
    )
    r = Reassembler(profile, CodecId.PCM16_16K)
    out = []
    for p in delivered + tail:
        out += r.feed(p)
    out += r.flush()
    c = r.counters
    assert (c.packets_lost, c.packets_duplicate, c.packets_reordered) == (lost, dups, reordered)
    assert c.packets_late <= c.packets_reordered
    if profile is Profile.COMPANION:
        # Every frame is either decoded intact or concealed one-for-one.
        assert len(out) == len(frames) + 12
        good = [f for f in out if not f.lost]
        assert all(len(set(f.payload)) <= 2 for f in good)


def test_sequence_wraps_without_loss() -> None:
    pk = Packetizer(Profile.COMPANION, 247, CodecId.PCM16_16K, first_seq=65530)
    r = Reassembler(Profile.COMPANION)
    out = []
    for i in range(20):
        for p in pk.packetize(np.full(320, i, dtype=np.int16).tobytes()):
            out += r.feed(p)
    assert r.counters.packets_lost == 0 and len(out) == 20


def test_pcm16_round_trip_bit_exact() -> None:
    rng = np.random.default_rng(1)
    pcm = rng.integers(-32768, 32767, 320, dtype=np.int16)
    enc, dec = make_encoder(CodecId.PCM16_16K), make_decoder(CodecId.PCM16_16K)
    assert np.array_equal(dec.decode(enc.encode(pcm)), pcm)


def test_mulaw_matches_g711_reference_points() -> None:
    # Reference values from ITU-T G.711 (Sun g711.c): 0 -> 0xFF, max -> 0x80, min -> 0x00.
    assert mulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == bytes([0xFF, 0x80, 0x00])
    x = np.linspace(-30000, 30000, 2000).astype(np.int16)
    y = mulaw_decode(mulaw_encode(x))
    assert np.max(np.abs(x.astype(int) - y) / (np.abs(x) + 64)) < 0.07


def _snr_db(ref: np.ndarray, out: np.ndarray) -> float:
    noise = ref.astype(float) - out.astype(float)
    return 10 * np.log10(np.sum(ref.astype(float) ** 2) / max(np.sum(noise**2), 1e-9))


# Waveform SNR after an Opus round trip on real speech at 32 kbit/s. CELT (restricted low delay, what Omi
# firmware sends) keeps the waveform closely (measured 10.8-12.9 dB); SILK (voip, our default for its FEC)
# codes speech parametrically and scores lower on this metric (measured 7.4-8.3 dB) at equal intelligibility.
@pytest.mark.parametrize(("application", "min_snr_db"), [("lowdelay", 10.0), ("voip", 6.5)])
@pytest.mark.parametrize("codec", [CodecId.OPUS_16K_10MS, CodecId.OPUS_16K_20MS, CodecId.OPUS_16K_60MS])
def test_opus_round_trip_snr(codec: CodecId, application: str, min_snr_db: float, speech_set) -> None:
    pcm = speech_set[0].pcm()[: 16000 * 3]
    enc = make_encoder(codec, bitrate=32000, application=application)
    dec = StreamDecoder(codec)
    from companion.protocol.framing import Frame

    n = enc.frame_samples
    frames = [Frame(codec, enc.encode(pcm[i : i + n])) for i in range(0, len(pcm) - n + 1, n)]
    out = np.concatenate(dec.decode(frames))
    # Opus delays its output by a few ms: align before comparing.
    best = max(_snr_db(pcm[: len(out) - d], out[d:]) for d in range(0, 200))
    assert best > min_snr_db, best


def test_opus_conceals_lost_frames_with_fec(speech_set) -> None:
    from companion.protocol.framing import Frame

    codec = CodecId.OPUS_16K_20MS
    pcm = speech_set[0].pcm()[: 16000 * 2]
    enc = make_encoder(codec)
    frames = [Frame(codec, enc.encode(pcm[i : i + 320])) for i in range(0, len(pcm) - 319, 320)]
    damaged = [Frame(codec, None) if i % 10 == 5 else f for i, f in enumerate(frames)]
    out = StreamDecoder(codec).decode(damaged)
    assert len(out) == len(frames)
    assert all(len(x) == 320 for x in out)
    # Concealed frames carry signal (FEC/PLC), not silence.
    assert np.mean([np.abs(out[i]).mean() for i in range(5, len(out), 10)]) > 50


def test_first_packet_overtaken_by_the_second_is_reordered_not_duplicate() -> None:
    pk = Packetizer(Profile.COMPANION, 247, CodecId.PCM16_16K)
    packets = [pk.packetize(np.full(320, i, dtype=np.int16).tobytes())[0] for i in range(4)]
    r = Reassembler(Profile.COMPANION)
    for p in [packets[1], packets[0], packets[2], packets[3], packets[2]]:
        r.feed(p)
    c = r.counters
    assert (c.packets_reordered, c.packets_late, c.packets_duplicate, c.packets_lost) == (1, 1, 1, 0)
