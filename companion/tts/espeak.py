"""espeak-ng: the light fallback voice (robotic but tiny and instant), run as a subprocess.

`espeak-ng --stdout` writes a WAV stream whose header carries placeholder sizes, then PCM as it is
synthesised; we parse the header ourselves and resample the PCM to 16 kHz as it arrives.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import struct
import subprocess
from collections.abc import AsyncGenerator
from contextlib import aclosing

import numpy as np

from companion.tts.base import SAMPLE_RATE, StreamResampler, TTSError, VoiceNotAvailable, check_text

log = logging.getLogger(__name__)

_INSTALL = "apt-get install espeak-ng"
_READ_SIZE = 16384  # bytes per read: ~0.37 s of 22.05 kHz audio at most, usually less is ready
_MAX_HEADER = 4096


def _parse_wav_header(data: bytes) -> tuple[int, int] | None:
    """(sample rate, offset of the PCM data) once `data` holds the whole header, else None.

    Sizes in the header are placeholders (espeak-ng writes before it knows the length), so only the
    format and the position of the `data` chunk are used. Raises TTSError for anything but mono PCM16.
    """
    if len(data) < 12:
        return None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TTSError("espeak-ng did not produce a WAV stream")
    pos, rate = 12, None
    while len(data) >= pos + 8:
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk_id == b"data":
            if rate is None:
                raise TTSError("espeak-ng WAV stream has no fmt chunk")
            return rate, pos + 8
        if len(data) < pos + 8 + size:
            return None
        if chunk_id == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, pos + 8)
            if fmt != 1 or channels != 1 or bits != 16:
                raise TTSError(
                    f"espeak-ng produced unsupported audio (format {fmt}, {channels} ch, {bits} bit)"
                )
        pos += 8 + size + (size & 1)
    return None


class EspeakTTS:
    """espeak-ng voice through `espeak-ng --stdout`, one process per utterance."""

    name = "espeak"
    sample_rate = SAMPLE_RATE

    def __init__(self, voice: str = "en-us", rate: int = 175) -> None:
        """`voice`: an espeak-ng voice name (`espeak-ng --voices`); `rate`: words per minute (80-450)."""
        if not isinstance(voice, str) or not voice or voice.startswith("-"):
            raise ValueError(f"voice must be an espeak-ng voice name such as 'en-us', got {voice!r}")
        if not isinstance(rate, int) or not 80 <= rate <= 450:
            raise ValueError(f"rate must be words per minute between 80 and 450, got {rate!r}")
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise VoiceNotAvailable(f"espeak-ng is not installed: {_INSTALL}")
        self.binary = binary
        self.voice = voice
        self.rate = rate
        self._loaded = False

    def load(self) -> None:
        """Check that espeak-ng knows the voice (blocking; espeak-ng itself needs no loading)."""
        if self._loaded:
            return
        try:
            result = subprocess.run(
                [self.binary, "-q", "-v", self.voice, "x"], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TTSError(f"could not run espeak-ng: {e}") from e
        if result.returncode != 0:
            detail = result.stderr.strip() or f"exit status {result.returncode}"
            raise VoiceNotAvailable(
                f"espeak-ng voice {self.voice!r} is not available ({detail}); see espeak-ng --voices"
            )
        self._loaded = True

    async def stream(self, text: str) -> AsyncGenerator[np.ndarray, None]:
        """Yield 16 kHz chunks while espeak-ng is still speaking; the process is killed on cancel."""
        text = check_text(text)
        if not text:
            return
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            "--stdout",
            "--stdin",
            "-v",
            self.voice,
            "-s",
            str(self.rate),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
            proc.stdin.write(text.encode("utf-8"))
            proc.stdin.close()
            async with aclosing(self._pcm(proc.stdout)) as pcm:
                async for chunk in pcm:
                    yield chunk
            stderr = (await proc.stderr.read()).decode(errors="replace").strip()
            if await proc.wait() != 0:
                raise TTSError(f"espeak-ng failed (exit status {proc.returncode}): {stderr}")
        finally:
            if proc.returncode is None:
                proc.kill()
            # Drain the pipes rather than only wait(): a consumer that fell behind leaves stdout's
            # reader paused on a full buffer, and wait() would then never see the pipe close.
            await proc.communicate()

    async def _pcm(self, stdout: asyncio.StreamReader) -> AsyncGenerator[np.ndarray, None]:
        """Parse the WAV header, then resample the PCM body as it streams in."""
        header = b""
        parsed = None
        while parsed is None:
            data = await stdout.read(_READ_SIZE)
            if not data:
                if header:
                    raise TTSError("espeak-ng output ended inside the WAV header")
                return  # nothing spoken (the process' exit status says why)
            header += data
            parsed = _parse_wav_header(header)
            if parsed is None and len(header) > _MAX_HEADER:
                raise TTSError("espeak-ng WAV header is implausibly long")
        rate, offset = parsed
        resampler = StreamResampler(rate)
        pending = header[offset:]
        while True:
            usable = len(pending) - len(pending) % 2  # a read may end mid-sample
            if usable:
                out = resampler.push(np.frombuffer(pending[:usable], dtype="<i2"))
                pending = pending[usable:]
                if out.size:
                    yield out
            data = await stdout.read(_READ_SIZE)
            if not data:
                break
            pending += data
        tail = resampler.finish()
        if tail.size:
            yield tail

    async def aclose(self) -> None:
        """Nothing to release: each utterance's process ends with it."""
