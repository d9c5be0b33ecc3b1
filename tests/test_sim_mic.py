"""The wearer's voice through the headset mic, over the simulated radio, decoded by a plain host:
PCM16 arrives bit-exact, Opus (companion voip and Omi CELT low delay) above a stated SNR."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from companion.protocol import Listen
from firmware_sim import HeadsetConfig, SimWorld, VoiceError
from tests.fixtures.sim import caught_up, connect_host, find_offset, snr_db, until
from tests.fixtures.speech import Utterance

# Waveform SNR after Opus is modest (a perceptual codec; SILK at 24 kbit/s least of all). Measured on the
# shared speech set: voip 8.9 dB, CELT low delay 32 kbit/s 16.0 dB, mu-law 37.0 dB (docs/simulator.md).
# The floors leave margin for where the utterance falls on the frame grid, and sit far above a broken or
# misaligned stream (<= 0 dB).
OPUS_VOIP_MIN_SNR_DB = 6.0
OPUS_CELT_MIN_SNR_DB = 12.0
MULAW_MIN_SNR_DB = 30.0


@pytest.fixture(scope="module")
def short_utterance(speech_set: list[Utterance]) -> np.ndarray:
    u = min((u for u in speech_set if u.seconds >= 1.5), key=lambda u: u.seconds)
    return u.pcm()


async def _say_and_receive(
    world: SimWorld, config: HeadsetConfig, pcm: np.ndarray
) -> tuple[np.ndarray, object]:
    hs = world.add_headset(config)
    host = await connect_host(world, hs)
    await host.listen()
    await until(lambda: host.mic_packets, 2, "the mic stream to start")
    await hs.mic.say(pcm)
    await caught_up(hs)
    decoded, reassembler = await host.decode_mic()
    await host.client.disconnect()
    return decoded, reassembler


async def test_pcm16_arrives_bit_exact(sim_world: SimWorld, short_utterance: np.ndarray) -> None:
    decoded, r = await _say_and_receive(
        sim_world, HeadsetConfig(name="Sim PCM", mic_codec="pcm16"), short_utterance
    )
    assert r.counters.packets_lost == 0 and r.counters.frames_concealed == 0  # type: ignore[attr-defined]
    start = int(np.flatnonzero(decoded)[0] - np.flatnonzero(short_utterance)[0])
    assert np.array_equal(decoded[start : start + len(short_utterance)], short_utterance)
    # silence (no mic noise configured) before and after
    assert not decoded[:start].any() and not decoded[start + len(short_utterance) :].any()


@pytest.mark.parametrize(
    ("config", "floor"),
    [
        (HeadsetConfig(name="Sim Opus"), OPUS_VOIP_MIN_SNR_DB),
        (HeadsetConfig(profile="omi", name="Omi Opus"), OPUS_CELT_MIN_SNR_DB),
        (HeadsetConfig(name="Sim Mulaw", mic_codec="mulaw"), MULAW_MIN_SNR_DB),
    ],
    ids=["companion-opus-voip", "omi-opus-celt", "companion-mulaw"],
)
async def test_lossy_codecs_decode_to_the_spoken_audio(
    sim_world: SimWorld, short_utterance: np.ndarray, config: HeadsetConfig, floor: float
) -> None:
    decoded, r = await _say_and_receive(sim_world, config, short_utterance)
    assert r.counters.packets_lost == 0  # type: ignore[attr-defined]
    offset = find_offset(decoded, short_utterance)
    snr = snr_db(short_utterance, decoded[offset : offset + len(short_utterance)])
    print(f"{config.name}: SNR {snr:.1f} dB")
    assert snr > floor, f"SNR {snr:.1f} dB"


async def test_omi_does_not_stream_below_mtu_100(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(profile="omi", name="Omi Low", mic_noise_rms=300)
    host = await connect_host(sim_world, hs, acquire_mtu=False)
    await host.listen()  # subscribing is enough for omi...
    await asyncio.sleep(0.2)  # a window in which nothing may be sent
    assert host.mic_packets == [] and not hs.streaming and hs.truth.mic.sent == 0  # ...but not at MTU 23
    await host.client._backend._acquire_mtu()  # type: ignore[attr-defined]
    await until(lambda: len(host.mic_packets) >= 5, 3, "omi to stream at the larger MTU")
    assert hs.streaming and len(host.mic_packets) >= 5
    assert all(len(p) > 3 for p in host.mic_packets)
    await host.client.disconnect()


async def test_companion_streams_only_while_listening(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(name="Sim Listen", mic_noise_rms=300)
    host = await connect_host(sim_world, hs)
    await host.subscribe_all()
    await asyncio.sleep(0.15)  # a window in which nothing may be sent
    assert host.mic_packets == [] and hs.truth.mic.sent == 0
    await host.command(Listen(True))
    await until(lambda: len(host.mic_packets) >= 5, 3, "the mic stream")
    await host.command(Listen(False))
    await caught_up(hs)
    n, sent = len(host.mic_packets), hs.truth.mic.sent
    await asyncio.sleep(0.15)  # a window in which nothing more may be sent
    assert len(host.mic_packets) == n and hs.truth.mic.sent == sent
    await host.client.disconnect()


async def test_say_returns_the_headset_time_its_last_sample_ended(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(name="Sim Clock")
    rec = hs.start_recording()
    pcm = (np.arange(8000) % 200 + 1).astype(np.int16)  # 0.5 s, never zero
    end = await hs.mic.say(pcm)
    assert end == pytest.approx(hs.clock(), abs=0.021)
    await until(lambda: rec.time_of(len(rec.left)) > end, 2, "the recording to pass the utterance")
    last = int(np.flatnonzero(rec.left)[-1])
    assert rec.time_of(last + 1) == pytest.approx(end, abs=1e-9)  # sample-exact on the headset clock
    # back to back utterances follow without a gap
    a, b = hs.mic.say(pcm), hs.mic.say(pcm)
    t_a, t_b = await asyncio.gather(a, b)
    assert t_b - t_a == pytest.approx(0.5, abs=1e-9)


async def test_bad_mic_input_is_refused(sim_world: SimWorld, tmp_path) -> None:  # type: ignore[no-untyped-def]
    hs = sim_world.add_headset(name="Sim Bad")
    with pytest.raises(VoiceError, match="int16"):
        await hs.mic.say(np.zeros(100, dtype=np.float32))
    with pytest.raises(VoiceError, match="not found"):
        await hs.mic.say_wav(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF nope")
    with pytest.raises(VoiceError, match="not a PCM WAV"):
        await hs.mic.say_wav(tmp_path / "junk.wav")


async def test_say_wav_resamples(sim_world: SimWorld, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import wave

    t = np.arange(44100) / 44100
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    path = tmp_path / "tone44k.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(np.repeat(tone, 2).tobytes())
    hs = sim_world.add_headset(name="Sim Wav")
    rec = hs.start_recording()
    await hs.mic.say_wav(path)
    voiced = rec.left[np.flatnonzero(rec.left)[0] :]
    assert abs(len(np.flatnonzero(voiced)) - 16000) < 400  # one second at 16 kHz
    spectrum = np.abs(np.fft.rfft(voiced[:16000].astype(np.float64)))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins


@pytest.mark.slow
async def test_say_text_speaks_with_piper(sim_world: SimWorld) -> None:
    hs = sim_world.add_headset(name="Sim Piper", mic_codec="pcm16")
    host = await connect_host(sim_world, hs)
    await host.listen()
    rec = hs.start_recording()
    end = await hs.mic.say_text("What time is it?")
    await until(lambda: rec.time_of(len(rec.left)) > end, 2, "the recording to pass the utterance")
    await caught_up(hs)
    voiced = np.flatnonzero(rec.left)
    seconds = (voiced[-1] - voiced[0]) / 16000
    assert 0.5 < seconds < 3.0 and rec.time_of(int(voiced[-1]) + 1) <= end + 1e-9
    decoded, _ = await host.decode_mic()
    assert np.abs(decoded).max() > 1000  # the voice reached the host
    await host.client.disconnect()
