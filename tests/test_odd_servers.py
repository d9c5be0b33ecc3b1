"""Servers that answer with the wrong thing: `doctor` reports them, the LLM backend names the real cause;
and the demo's turn limit outlasts the LLM's own timeout."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from companion.config import Config, load_config
from companion.demo import turn_limit_s
from companion.doctor import check_llm
from companion.llm.base import LLMResponseError, Message
from companion.llm.openai_backend import OpenAIBackend

HTML = b"<!doctype html><html><head><title>Sign in</title></head><body>Please sign in</body></html>"


class FixedServer:
    """Answers every HTTP request with 200, ``content_type`` and ``body`` (a proxy's login page, a web UI)."""

    def __init__(self, content_type: str, body: bytes) -> None:
        self.content_type, self.body = content_type, body
        self.server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                length = next(
                    (
                        int(x.split(":", 1)[1])
                        for x in head.split("\r\n")
                        if x.lower().startswith("content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                writer.write(
                    f"HTTP/1.1 200 OK\r\ncontent-type: {self.content_type}\r\n"
                    f"content-length: {len(self.body)}\r\n\r\n".encode()
                    + self.body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


def _openai_config(url: str) -> Config:
    return load_config(None, {"COMPANION_LLM__BACKEND": "openai", "COMPANION_LLM__BASE_URL": url})


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=utf-8", HTML),
        ("text/plain", b"hello"),
        ("application/json", b"{not json"),
        ("application/json", b'{"object": "list", "data": "nope"}'),
        ("application/json", b"[1, 2, 3]"),
    ],
)
async def test_doctor_survives_a_models_endpoint_that_is_not_openai(content_type: str, body: bytes) -> None:
    async with FixedServer(content_type, body) as url:
        check = await check_llm(_openai_config(url))
    assert check.status in ("warn", "fail")
    assert "/models" in check.detail or "model list" in check.detail


async def test_an_html_200_is_not_blamed_on_the_context_window() -> None:
    async with FixedServer("text/html", HTML) as url:
        backend = OpenAIBackend(url, "m", max_retries=0)
        with pytest.raises(LLMResponseError) as info:
            async with contextlib.aclosing(backend.stream([Message("user", "hi")])) as deltas:
                async for _ in deltas:
                    pass
        await backend.aclose()
    message = str(info.value)
    assert "web page" in message and "base_url" in message
    assert "context" not in message


def test_the_demo_turn_limit_outlasts_the_llm_timeout() -> None:
    for timeout in (5.0, 30.0, 120.0):
        cfg = load_config(None, {"COMPANION_LLM__TIMEOUT_S": str(timeout)})
        # the LLM may take its whole timeout, then the apology is spoken: the turn must not end first
        assert turn_limit_s(cfg) >= cfg.llm.timeout_s + cfg.turn.max_utterance_s + 10
