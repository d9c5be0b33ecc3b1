"""Any OpenAI-compatible `/audio/speech` server (OpenAI, Kokoro-FastAPI, openedai-speech, ...).

We ask for `response_format="pcm"` (raw little-endian int16 mono, 24 kHz on OpenAI) and resample the
body to 16 kHz while it streams, so playback can start before the server has finished.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import numpy as np

from companion.tts.base import SAMPLE_RATE, StreamResampler, TTSError, VoiceNotAvailable, check_text

if TYPE_CHECKING:
    from openai import AsyncOpenAI

log = logging.getLogger(__name__)

_INSTALL = "pip install openai (or: pip install 'companion[llm]')"
_READ_SIZE = 4800  # bytes: 100 ms of 24 kHz int16


class OpenAISpeechTTS:
    """Streams speech from an OpenAI-compatible server and resamples it to 16 kHz."""

    name = "openai"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        base_url: str,
        model: str,
        voice: str,
        api_key: str | None = None,
        *,
        pcm_rate: int = 24000,
        speed: float | None = None,
        timeout: float = 30.0,
    ) -> None:
        """`pcm_rate`: the rate the server's "pcm" format uses (24000 for OpenAI and most clones)."""
        try:
            import openai  # noqa: F401
        except ImportError as e:
            raise VoiceNotAvailable(f"the openai client is not installed: {_INSTALL}") from e
        for arg, value in (("base_url", base_url), ("model", model), ("voice", voice)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{arg} must be a non-empty string, got {value!r}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL such as http://host:8000/v1, got {base_url!r}")
        if not 8000 <= pcm_rate <= 48000:
            raise ValueError(f"pcm_rate must be between 8000 and 48000 Hz, got {pcm_rate}")
        if speed is not None and not 0.25 <= speed <= 4.0:
            raise ValueError(f"speed must be between 0.25 and 4.0, got {speed}")
        self.base_url, self.model, self.voice = base_url, model, voice
        self.pcm_rate, self.speed, self.timeout = pcm_rate, speed, timeout
        self._api_key = api_key
        self._client: AsyncOpenAI | None = None

    def load(self) -> None:
        """Create the HTTP client (no request is made: servers often have no cheap health check)."""
        if self._client is None:
            from openai import AsyncOpenAI

            # Local servers take any key but the client insists on one: OPENAI_API_KEY or a placeholder.
            key = self._api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
            self._client = AsyncOpenAI(
                base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=1
            )

    async def stream(self, text: str) -> AsyncGenerator[np.ndarray, None]:
        """Yield 16 kHz chunks as the server's PCM body arrives."""
        import openai

        text = check_text(text)
        if self._client is None:
            raise TTSError("OpenAISpeechTTS.load() must be called before stream()")
        if not text:
            return
        extra: dict[str, Any] = {} if self.speed is None else {"speed": self.speed}
        resampler = StreamResampler(self.pcm_rate)
        try:
            async with self._client.audio.speech.with_streaming_response.create(
                model=self.model, voice=self.voice, input=text, response_format="pcm", **extra
            ) as response:
                pending = b""
                async for data in response.iter_bytes(_READ_SIZE):
                    pending += data
                    usable = len(pending) - len(pending) % 2  # a read may end mid-sample
                    if usable:
                        out = resampler.push(np.frombuffer(pending[:usable], dtype="<i2"))
                        pending = pending[usable:]
                        if out.size:
                            yield out
        except openai.APIStatusError as e:
            raise TTSError(f"speech server {self.base_url} answered {e.status_code}: {e.message}") from e
        except openai.APIConnectionError as e:
            raise TTSError(f"cannot reach speech server {self.base_url}: {e}") from e
        except openai.OpenAIError as e:
            raise TTSError(f"speech request failed: {e}") from e
        tail = resampler.finish()
        if tail.size:
            yield tail

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
