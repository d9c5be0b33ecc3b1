"""`companion doctor` for remote engines: is each configured STT/TTS endpoint reachable, and does it have
what the configuration asks for?

One result per endpoint (`stt[0]`, `stt[1]`, `tts[0]` ...), all probed at once with a short timeout. An
endpoint that is down while another one of the same engine answers is a warning (failover covers it);
every endpoint of an engine down is a failure, since every turn would end in the spoken fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from companion.config import Config
from companion.redact import redact, redact_url


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    name: str  # stt[0], tts[1]
    url: str  # redacted
    ok: bool
    detail: str
    advice: str = ""
    model_missing: bool = False  # reachable, but without the configured model or voice


async def check_wyoming_stt(url: str, timeout_s: float) -> tuple[bool, str, bool]:
    """(reachable and offers ASR, what it offers, a model is missing)."""
    from companion.remote.clients import WyomingClient

    info = await asyncio.wait_for(WyomingClient(url, connect_timeout_s=timeout_s).describe(), timeout_s)
    if not info.asr:
        return False, "answers describe but offers no speech recognition", False
    models = [m for program in info.asr for m in program.models]
    installed = [m.name for m in models if m.installed]
    programs = ", ".join(p.name for p in info.asr)
    if not installed:
        return True, f"{programs}: no installed model", True
    english = [m.name for m in models if m.installed and (not m.languages or "en" in m.languages)]
    if not english:
        return True, f"{programs}: models {', '.join(installed)}, none for English", True
    return True, f"{programs}: model {', '.join(english)}", False


async def check_wyoming_tts(url: str, voice: str | None, timeout_s: float) -> tuple[bool, str, bool]:
    from companion.remote.clients import WyomingClient

    info = await asyncio.wait_for(WyomingClient(url, connect_timeout_s=timeout_s).describe(), timeout_s)
    if not info.tts:
        return False, "answers describe but offers no text to speech", False
    voices = [v.name for program in info.tts for v in program.voices if v.installed]
    programs = ", ".join(p.name for p in info.tts)
    if not voices:
        return True, f"{programs}: no installed voice", True
    if voice and voice not in voices:
        return True, f"{programs}: no voice {voice!r} (has {', '.join(voices[:5])})", True
    return True, f"{programs}: voice {voice or voices[0]}", False


async def check_openai_models(base_url: str, model: str | None, timeout_s: float) -> tuple[bool, str, bool]:
    """GET {base_url}/models: reachable, and `model` listed (servers that list nothing are given the benefit
    of the doubt)."""
    import httpx

    async with httpx.AsyncClient(timeout=timeout_s) as http:
        reply = await http.get(f"{base_url.rstrip('/')}/models")
    if reply.status_code >= 400:
        return False, f"GET /models: HTTP {reply.status_code}", False
    try:
        listed = [str(m.get("id")) for m in reply.json().get("data", [])]
    except (ValueError, AttributeError):
        return True, "answers, but /models is not an OpenAI model list", False
    if model and listed and model not in listed:
        return True, f"no model {model!r} (has {', '.join(listed[:5])})", True
    return True, f"model {model}" if model else "answers", False


async def _one(name: str, url: str, probe: Awaitable[tuple[bool, str, bool]], advice: str) -> EndpointCheck:
    shown = redact_url(url)
    try:
        ok, detail, missing = await probe
    except TimeoutError:
        return EndpointCheck(name, shown, False, f"{shown}: no answer in time", advice)
    except Exception as exc:  # refused, reset, DNS, protocol errors: all say "not usable"
        text = str(exc) or type(exc).__name__
        return EndpointCheck(name, shown, False, f"{shown}: {redact(text)}", advice)
    hint = "check the server's model or voice, or the configured name" if missing else ""
    return EndpointCheck(name, shown, ok, f"{shown}: {detail}", advice if not ok else hint, missing)


async def check_remote_engines(config: Config, timeout_s: float = 3.0) -> list[EndpointCheck]:
    """Probe every configured remote STT and TTS endpoint at once (the LLM has its own check)."""
    jobs = []
    stt, tts = config.stt, config.tts
    if stt.engine == "wyoming":
        start = "start the server (e.g. wyoming-faster-whisper, or companion serve) or fix stt.urls"
        for i, url in enumerate(stt.urls):
            jobs.append(_one(f"stt[{i}]", url, check_wyoming_stt(url, timeout_s), start))
    elif stt.engine == "openai":
        start = "start the server (e.g. faster-whisper-server) or fix stt.urls (base URL ending in /v1)"
        for i, url in enumerate(stt.urls):
            jobs.append(_one(f"stt[{i}]", url, check_openai_models(url, stt.remote_model, timeout_s), start))
    if tts.engine == "wyoming":
        start = "start the server (e.g. wyoming-piper, or companion serve) or fix tts.urls"
        for i, url in enumerate(tts.urls):
            jobs.append(_one(f"tts[{i}]", url, check_wyoming_tts(url, tts.voice, timeout_s), start))
    elif tts.engine == "openai" and tts.base_url:
        start = "start the server or fix tts.base_url"
        jobs.append(
            _one("tts[0]", tts.base_url, check_openai_models(tts.base_url, tts.model, timeout_s), start)
        )
    return list(await asyncio.gather(*jobs))


def status_of(check: EndpointCheck, others: list[EndpointCheck]) -> str:
    """ok | warn | fail for one endpoint, given all endpoints of its engine (`others`, itself included)."""
    if check.ok:
        return "warn" if check.model_missing else "ok"
    return "warn" if any(o.ok for o in others) else "fail"
