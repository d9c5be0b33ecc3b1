"""Remote engines from the config: `[stt] engine = "wyoming" | "openai"`, `[tts] engine = "wyoming"`."""

from __future__ import annotations

from typing import Any

from companion.config import Config


def remote_stt(config: Config) -> Any:
    """A `RemoteSTT` for `[stt]`, or None when speech recognition is local."""
    if config.stt.engine == "local":
        return None
    from companion.remote.engines import RemoteSTT

    return RemoteSTT(
        config.stt.urls,
        engine=config.stt.engine,
        model=config.stt.remote_model,
        api_key=config.stt.api_key,
        deadline_s=config.stt.timeout_s,
    )


def remote_tts(config: Config) -> Any:
    """A `RemoteTTS` for `[tts] engine = "wyoming"` (with its local fallback voice), or None."""
    if config.tts.engine != "wyoming":
        return None
    from companion.remote.engines import RemoteTTS
    from companion.tts import create_tts

    fallback = None if config.tts.fallback == "none" else create_tts(config.tts.fallback)
    return RemoteTTS(config.tts.urls, fallback=fallback, deadline_s=config.tts.timeout_s)
