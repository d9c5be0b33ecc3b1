"""`companion serve`: companion's speech recognition and voice as a Wyoming server.

Home Assistant (its Wyoming integration) and any other Wyoming client can use it as an STT and a TTS
engine. One process serves many connections; they share one Whisper model and one voice, each with its
own worker thread (first come, first served), so the event loop only moves audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from functools import partial
from urllib.parse import urlparse

import numpy as np
from wyoming.server import AsyncServer, AsyncTcpServer

from companion.config import Config
from companion.engines import EngineUnavailable
from companion.wyoming.handler import CompanionEventHandler, ServeEngines
from companion.wyoming.info import build_info

log = logging.getLogger(__name__)

DEFAULT_URI = "tcp://127.0.0.1:10700"


def check_uri(uri: str) -> str:
    """A `tcp://HOST:PORT` or `unix://PATH` URI, or ValueError saying what is wrong with it."""
    parsed = urlparse(uri)
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            port = None
        if not parsed.hostname or port is None:
            raise ValueError(f"--uri {uri!r}: a tcp URI needs a host and a port, e.g. tcp://127.0.0.1:10700")
        return uri
    if parsed.scheme == "unix" and parsed.path:
        return uri
    raise ValueError(f"--uri {uri!r}: use tcp://HOST:PORT or unix:///path/to/socket")


async def load_serve_engines(config: Config, progress: Callable[[str], None]) -> ServeEngines:
    """Load Whisper and the voice concurrently in worker threads and warm both up on real speech."""
    try:
        from companion.stt import ModelNotAvailable, WhisperSTT
        from companion.tts import VoiceNotAvailable, create_tts, synthesize
    except ImportError as exc:
        raise EngineUnavailable(f"{exc.name} is missing: pip install 'companion[stt,tts]'") from exc
    if config.tts.engine == "wyoming":
        raise EngineUnavailable(
            "tts.engine: 'wyoming' names remote servers; companion serve speaks with a local voice "
            "(piper, espeak, auto) or an OpenAI-compatible one (openai)"
        )
    progress(f"loading speech recognition ({config.stt.model}) and voice ({config.tts.engine})...")
    try:
        stt = WhisperSTT(
            config.stt.model, compute_type=config.stt.compute_type, cpu_threads=config.stt.threads
        )
        options: dict[str, object] = {}
        if config.tts.voice:
            options["voice"] = config.tts.voice
        if config.tts.engine == "openai":
            options.update(base_url=config.tts.base_url, model=config.tts.model)
        tts = create_tts(config.tts.engine, **options)
        await asyncio.gather(asyncio.to_thread(stt.load), asyncio.to_thread(tts.load))
    except (ModelNotAvailable, VoiceNotAvailable) as exc:
        raise EngineUnavailable(str(exc)) from exc
    speech = await synthesize(tts, "Hello, what time is it?")
    await stt.atranscribe(speech if len(speech) else np.zeros(16000, dtype=np.int16))
    return ServeEngines(
        stt=stt, tts=tts, info=build_info(config.stt.model, tts), turn=config.turn, stt_model=config.stt.model
    )


def bound_uri(server: AsyncServer, uri: str) -> str:
    """The URI clients can use, with the real port when the requested one was 0."""
    tcp = server._server if isinstance(server, AsyncTcpServer) else None
    if isinstance(tcp, asyncio.Server) and tcp.sockets:
        host, port = tcp.sockets[0].getsockname()[:2]
        return f"tcp://{host}:{port}"
    return uri


async def run_server(
    config: Config,
    uri: str = DEFAULT_URI,
    *,
    zeroconf_name: str | None = None,
    progress: Callable[[str], None] = print,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or `stop` is set); `ready(uri)` is called once clients can connect."""
    check_uri(uri)
    engines = await load_serve_engines(config, progress)
    server = AsyncServer.from_uri(uri)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await server.start(partial(CompanionEventHandler, engines))
        except OSError as exc:
            raise EngineUnavailable(f"cannot listen on {uri}: {exc.strerror or exc}") from exc
        where = bound_uri(server, uri)
        zeroconf = await _announce(zeroconf_name, where) if zeroconf_name else None
        progress(f"wyoming server listening on {where}")
        if ready is not None:
            ready(where)
        try:
            await stop.wait()
        finally:
            if zeroconf is not None:
                await zeroconf.async_close()
            await server.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        await engines.tts.aclose()
        await engines.stt.aclose()


async def _announce(name: str, uri: str):
    """Announce the server over mDNS (`_wyoming._tcp`) so Home Assistant discovers it; needs `zeroconf`."""
    parsed = urlparse(uri)
    if parsed.scheme != "tcp" or parsed.port is None:
        raise ValueError("--zeroconf needs a tcp:// URI")
    try:
        from wyoming.zeroconf import HomeAssistantZeroconf
    except ImportError as exc:
        raise EngineUnavailable("--zeroconf needs the zeroconf package: pip install zeroconf") from exc
    host = parsed.hostname if parsed.hostname not in ("0.0.0.0", "", None) else None
    announcer = HomeAssistantZeroconf(port=parsed.port, name=name, host=host)
    await announcer.register_server()
    log.info("announced %s as %s._wyoming._tcp.local.", uri, name)
    return announcer._aiozc
