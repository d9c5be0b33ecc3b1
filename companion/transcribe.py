"""`companion transcribe FILE`: speech to text, straight from the file or through a virtual headset first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np

from companion.aio import cancel_and_wait
from companion.audio.wav import SAMPLE_RATE, check_wav, load_wav
from companion.config import Config
from companion.engines import EngineUnavailable

LONG_FILE_S = 60.0  # files longer than this show progress while they are transcribed


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _stt_progress(progress: Callable[[str], None]) -> Callable[[float, float], None]:
    """Progress lines from the STT worker thread: at most one per 10 % of the file."""
    shown = [-1]

    def report(done_s: float, total_s: float) -> None:
        step = int(10 * done_s / total_s) if total_s else 10
        if step > shown[0]:
            shown[0] = step
            progress(f"transcribed {_clock(done_s)} of {_clock(total_s)} ({100 * done_s / total_s:.0f} %)")

    return report


async def _load_stt(config: Config, progress: Callable[[str], None]):
    try:
        from companion.stt import ModelNotAvailable, WhisperSTT
    except ImportError as exc:
        raise EngineUnavailable("faster-whisper is missing: pip install 'companion[stt]'") from exc
    progress(f"loading speech recognition ({config.stt.model})...")
    stt = WhisperSTT(config.stt.model, compute_type=config.stt.compute_type, cpu_threads=config.stt.threads)
    try:
        await asyncio.to_thread(stt.load)
    except ModelNotAvailable as exc:
        raise EngineUnavailable(str(exc)) from exc
    return stt


async def through_headset(pcm: np.ndarray, *, codec: str, loss: float) -> tuple[np.ndarray, dict[str, int]]:
    """What the service hears when ``pcm`` is spoken into a virtual headset and carried over BLE."""
    from companion.link.ble import BleLinkOptions
    from companion.link.sim import sim_link
    from companion.protocol import codec_by_name
    from firmware_sim import HeadsetConfig, RadioConfig, SimWorld

    mic_codec = codec_by_name(codec)
    heard: list[np.ndarray] = []
    async with SimWorld() as world:
        headset = world.add_headset(HeadsetConfig(name="Transcribe"), RadioConfig(loss=loss))
        options = BleLinkOptions(mic_codec=mic_codec, packet_budget_per_s=5000)
        async with sim_link(headset.address, options) as link:

            async def collect() -> None:
                async for chunk in link.audio():
                    heard.append(chunk.pcm)

            collector = asyncio.create_task(collect())
            try:
                started = len(heard)
                await headset.mic.say(pcm)
                await asyncio.sleep(0.3)  # the last packets in flight and the reorder window
            finally:
                await cancel_and_wait(collector)
            counters = link.counters()
    audio = np.concatenate(heard[started:]) if heard else np.zeros(0, np.int16)
    return audio, counters


async def transcribe_file(
    path: Path, config: Config, *, via_headset: bool, codec: str, loss: float, progress: Callable[[str], None]
) -> dict[str, object]:
    info = check_wav(path)  # a bad file is an error before the model loads
    long = info.seconds > LONG_FILE_S
    if long:
        progress(f"reading {path.name} ({_clock(info.seconds)} of audio)...")
    pcm = await asyncio.to_thread(load_wav, path)
    stt = await _load_stt(config, progress)
    try:
        counters: dict[str, int] | None = None
        if via_headset:
            pcm, counters = await through_headset(pcm, codec=codec, loss=loss)
        result = await stt.atranscribe(pcm, _stt_progress(progress) if long else None)
    finally:
        stt.close()
    out: dict[str, object] = {
        "text": result.text,
        "audio_s": round(len(pcm) / SAMPLE_RATE, 3),
        "stt_ms": round(result.stt_ms, 1),
    }
    if counters is not None:
        out["link"] = counters
        out["codec"] = codec
        out["loss"] = loss
    return out
