"""OpenAIBackend against a real OpenAI-compatible server (llama_cpp.server + Gemma 3 270M).

A few error statuses the real server cannot be made to send on demand (503, 429, 401, 404) come from a
minimal HTTP responder in this file that only counts requests and answers with a fixed status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest

from companion.llm.base import LLMResponseError, LLMTimeout, LLMUnavailable, Message
from companion.llm.openai_backend import OpenAIBackend
from tests.fixtures.llama_server import free_port

PROMPT = [
    Message("system", "You are a helpful assistant that tells long stories."),
    Message("user", "Tell me a long story about a cat who lives in a lighthouse."),
]


def backend(url: str, **kwargs: object) -> OpenAIBackend:
    kwargs.setdefault("max_tokens", 12)
    kwargs.setdefault("temperature", 0.0)
    return OpenAIBackend(url, "gemma-3-270m", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def llm(llama_server: str) -> AsyncIterator[OpenAIBackend]:
    b = backend(llama_server)
    yield b
    await b.aclose()


@pytest.mark.slow
async def test_streams_several_deltas(llm: OpenAIBackend) -> None:
    async with contextlib.aclosing(llm.stream(PROMPT)) as deltas:
        received = [d async for d in deltas]
    assert len(received) > 1, received
    assert all(isinstance(d, str) and d for d in received)
    assert "".join(received).strip()


@pytest.mark.slow
async def test_models_lists_the_served_model(llm: OpenAIBackend) -> None:
    models = await llm.models()
    assert len(models) == 1 and models[0].endswith(".gguf")


async def _first_deltas(stream: AsyncIterator[str], n: int) -> list[str]:
    got = []
    async for d in stream:
        got.append(d)
        if len(got) == n:
            break
    return got


@pytest.mark.slow
async def test_cancel_mid_stream_is_prompt_and_server_recovers(llama_server: str) -> None:
    long = backend(llama_server, max_tokens=400, temperature=0.8)
    got: list[str] = []
    three = asyncio.Event()

    async def consume() -> None:
        async with contextlib.aclosing(long.stream(PROMPT)) as deltas:
            async for d in deltas:
                got.append(d)
                if len(got) == 3:
                    three.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three.wait(), 30)
    t0 = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cancel_s = time.perf_counter() - t0
    assert cancel_s < 0.2, f"cancel took {cancel_s * 1000:.0f} ms"

    # The server noticed the disconnect and stopped generating the 400 tokens: the next request's
    # first token comes long before the abandoned reply could have finished (~0.1 s per token here).
    t0 = time.perf_counter()
    nxt = backend(llama_server, max_tokens=6)
    async with contextlib.aclosing(nxt.stream(PROMPT)) as deltas:
        first = await anext(deltas)
        first_s = time.perf_counter() - t0
        rest = [d async for d in deltas]
    assert (first + "".join(rest)).strip()
    assert first_s < 15, f"next request waited {first_s:.1f} s: the cancelled generation kept running"
    await long.aclose()
    await nxt.aclose()


@pytest.mark.slow
async def test_aclose_of_the_stream_stops_promptly(llama_server: str) -> None:
    long = backend(llama_server, max_tokens=400, temperature=0.8)
    stream = long.stream(PROMPT)
    assert len(await _first_deltas(stream, 2)) == 2
    t0 = time.perf_counter()
    await stream.aclose()
    assert time.perf_counter() - t0 < 0.2
    after = backend(llama_server, max_tokens=4)
    async with contextlib.aclosing(after.stream(PROMPT)) as deltas:
        assert [d async for d in deltas]
    await long.aclose()
    await after.aclose()


@pytest.mark.slow
async def test_server_rejection_raises_response_error_after_bounded_retries(llama_server: str) -> None:
    # llama_cpp.server answers a parameter it cannot validate with HTTP 500; 5xx is retried twice.
    bad = backend(llama_server, extra_body={"top_k": "not-a-number"}, max_retries=2, retry_backoff_s=0.05)
    with pytest.raises(LLMResponseError) as info:
        async with contextlib.aclosing(bad.stream(PROMPT)) as deltas:
            [d async for d in deltas]
    assert info.value.status == 500
    assert info.value.attempts == 3
    assert "top_k" in (info.value.server_message or "")
    assert "HTTP 500" in str(info.value)
    await bad.aclose()


@pytest.mark.slow
async def test_prompt_longer_than_the_context_is_a_response_error(llama_server: str) -> None:
    # Streaming, the server sends 200 OK and then ends the stream without a reply.
    b = backend(llama_server, max_retries=0)
    with pytest.raises(LLMResponseError) as info:
        async with contextlib.aclosing(b.stream([Message("user", "word " * 1500)])) as deltas:
            [d async for d in deltas]
    assert info.value.attempts == 1
    assert "without any reply" in str(info.value)
    await b.aclose()


async def test_unreachable_url_raises_unavailable_quickly_with_a_helpful_message() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    b = backend(url, max_retries=2, retry_backoff_s=0.05)
    t0 = time.perf_counter()
    with pytest.raises(LLMUnavailable) as info:
        async with contextlib.aclosing(b.stream(PROMPT)) as deltas:
            [d async for d in deltas]
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, elapsed
    message = str(info.value)
    assert url in message and "Start it" in message and "base_url" in message
    assert info.value.url == url
    assert info.value.attempts == 3
    await b.aclose()


@pytest.mark.slow
async def test_tiny_first_token_timeout_raises_timeout(llama_server: str) -> None:
    b = backend(llama_server, first_token_timeout_s=0.001)
    with pytest.raises(LLMTimeout):
        async with contextlib.aclosing(b.stream(PROMPT)) as deltas:
            [d async for d in deltas]
    await b.aclose()


@pytest.mark.slow
async def test_overall_timeout_ends_a_long_reply(llama_server: str) -> None:
    b = backend(llama_server, max_tokens=400, temperature=0.8, timeout_s=1.5)
    received: list[str] = []
    t0 = time.perf_counter()
    with pytest.raises(LLMTimeout, match="timeout"):
        async with contextlib.aclosing(b.stream(PROMPT)) as deltas:
            async for d in deltas:
                received.append(d)
    elapsed = time.perf_counter() - t0
    assert 1.4 < elapsed < 2.5, elapsed
    await b.aclose()
    # the server is free again
    ok = backend(llama_server, max_tokens=4)
    async with contextlib.aclosing(ok.stream(PROMPT)) as deltas:
        assert [d async for d in deltas]
    await ok.aclose()


# --------------------------------------------------------------------------- fixed-status responder


class StatusServer:
    """Answers every HTTP request with one status and a JSON error body; counts the requests."""

    def __init__(self, status: int, headers: dict[str, str] | None = None, silent: bool = False) -> None:
        self.status, self.headers, self.silent = status, headers or {}, silent
        self.requests = 0
        self.server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                await reader.readexactly(length)
                self.requests += 1
                if self.silent:
                    await asyncio.sleep(3600)
                body = json.dumps({"error": {"message": f"status {self.status} from the test server"}})
                extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
                writer.write(
                    f"HTTP/1.1 {self.status} X\r\ncontent-type: application/json\r\n{extra}"
                    f"content-length: {len(body)}\r\n\r\n{body}".encode()
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


async def _drain(b: OpenAIBackend) -> list[str]:
    async with contextlib.aclosing(b.stream(PROMPT)) as deltas:
        return [d async for d in deltas]


async def test_5xx_is_retried_exactly_max_retries_times() -> None:
    server = StatusServer(503)
    async with server as url:
        b = backend(url, max_retries=2, retry_backoff_s=0.05)
        with pytest.raises(LLMResponseError) as info:
            await _drain(b)
        await b.aclose()
    assert server.requests == 3
    assert info.value.status == 503 and info.value.attempts == 3
    assert "status 503 from the test server" in str(info.value)


async def test_429_honours_retry_after() -> None:
    server = StatusServer(429, {"retry-after": "0.3"})
    async with server as url:
        b = backend(url, max_retries=2, retry_backoff_s=0.0)
        t0 = time.perf_counter()
        with pytest.raises(LLMResponseError) as info:
            await _drain(b)
        elapsed = time.perf_counter() - t0
        await b.aclose()
    assert server.requests == 3 and info.value.status == 429
    assert elapsed >= 0.6, elapsed


@pytest.mark.parametrize(("status", "hint"), [(401, "API key"), (404, "model name")])
async def test_client_errors_are_not_retried_and_explain(status: int, hint: str) -> None:
    server = StatusServer(status)
    async with server as url:
        b = backend(url, max_retries=2)
        with pytest.raises(LLMResponseError) as info:
            await _drain(b)
        await b.aclose()
    assert server.requests == 1 and info.value.status == status and info.value.attempts == 1
    assert hint in str(info.value)


async def test_silent_server_hits_the_first_token_timeout() -> None:
    server = StatusServer(200, silent=True)
    async with server as url:
        b = backend(url, first_token_timeout_s=0.5)
        t0 = time.perf_counter()
        with pytest.raises(LLMTimeout):
            await _drain(b)
        elapsed = time.perf_counter() - t0
        await b.aclose()
    assert 0.45 < elapsed < 1.5, elapsed
    assert server.requests == 1


def test_bad_arguments_are_rejected_with_reasons() -> None:
    with pytest.raises(ValueError, match="base_url"):
        OpenAIBackend("localhost:8080", "m")
    with pytest.raises(ValueError, match="model"):
        OpenAIBackend("http://127.0.0.1:8080/v1", " ")
    with pytest.raises(ValueError, match="max_retries"):
        OpenAIBackend("http://127.0.0.1:8080/v1", "m", max_retries=-1)
    with pytest.raises(ValueError, match="first_token_timeout_s"):
        OpenAIBackend("http://127.0.0.1:8080/v1", "m", first_token_timeout_s=0)
