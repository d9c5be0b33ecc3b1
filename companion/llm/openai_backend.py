"""Streaming chat over any OpenAI-compatible `/chat/completions` server (`openai.AsyncOpenAI`).

Only `base_url`, `model` and the API key differ between providers:

- OpenAI: `https://api.openai.com/v1`, model `gpt-4o-mini`, key from `OPENAI_API_KEY`.
- Ollama: `http://127.0.0.1:11434/v1`, model `llama3.2:3b`, no key.
- vLLM: `http://127.0.0.1:8000/v1`, model `Qwen/Qwen2.5-1.5B-Instruct`, no key (or its `--api-key`).
- llama.cpp (`llama-server` or `python -m llama_cpp.server`): `http://127.0.0.1:8080/v1`, any model name.
- LM Studio: `http://127.0.0.1:1234/v1`, the loaded model, no key.
- Doubao (Volcengine Ark): `https://ark.cn-beijing.volces.com/api/v3`, model `doubao-seed-1-6-flash-250828`
  or an `ep-...` endpoint id, the Ark API key.
- DeepSeek: `https://api.deepseek.com/v1`, model `deepseek-chat`, a DeepSeek key.
- Kimi (Moonshot): `https://api.moonshot.ai/v1`, model `kimi-k2-turbo-preview`, a Moonshot key.

    backend = OpenAIBackend("http://127.0.0.1:11434/v1", "llama3.2:3b")
    async with contextlib.aclosing(backend.stream(messages)) as deltas:
        async for text in deltas:
            ...
    await backend.aclose()

Retries: bounded (`max_retries`) and only before the first token, for connection errors, HTTP 5xx and
429 (honouring `Retry-After`), with exponential backoff; once text has been streamed an error surfaces
at once, since a retry would repeat words the wearer already heard. The client's own retries are off
because they cannot see failures after the response headers.

Timeouts: `connect_timeout_s` (TCP/TLS connect), `first_token_timeout_s` (request start -> first text,
retries included; also the longest silence allowed between chunks) and `timeout_s` (the whole reply).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import openai

from companion.aio import request_policy
from companion.llm.base import LLMError, LLMResponseError, LLMTimeout, LLMUnavailable, Message
from companion.redact import redact_url

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

NO_KEY_PLACEHOLDER = "sk-no-key-required"  # local servers ignore the key, the client insists on one
MAX_RETRY_AFTER_S = 5.0
_START_HINT = (
    "Start it (for example `ollama serve`, or `python -m llama_cpp.server --model MODEL.gguf --port 8080`), "
    "or point the companion's LLM base_url at a running OpenAI-compatible server; leave the LLM unset "
    "to use the built-in offline skills."
)


class _Retryable(Exception):
    """Internal: an attempt failed before the first token in a way worth retrying."""

    def __init__(self, error: LLMError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class OpenAIBackend:
    """An `LLMBackend` for OpenAI-compatible servers (see the module docstring for providers)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 3.0,
        first_token_timeout_s: float = 20.0,
        max_retries: int = 2,
        retry_backoff_s: float = 0.25,
        temperature: float | None = 0.7,
        max_tokens: int | None = 256,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        parts = urlsplit(base_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"base_url must be an http(s) URL such as http://127.0.0.1:8080/v1, got {base_url!r}"
            )
        if not model or not model.strip():
            raise ValueError("model must name the server's model (any name for llama.cpp servers)")
        for arg, value in (
            ("timeout_s", timeout_s),
            ("connect_timeout_s", connect_timeout_s),
            ("first_token_timeout_s", first_token_timeout_s),
        ):
            if not value > 0:
                raise ValueError(f"{arg} must be > 0 seconds, got {value!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if retry_backoff_s < 0:
            raise ValueError(f"retry_backoff_s must be >= 0, got {retry_backoff_s!r}")
        if temperature is not None and not 0 <= temperature <= 2:
            raise ValueError(f"temperature must be within 0..2, got {temperature!r}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens!r}")

        self.base_url = redact_url(base_url.rstrip("/"))  # for messages: never user:password@
        self.model = model
        self.name = f"openai:{model}@{parts.netloc.rpartition('@')[2]}"
        self.timeout_s = timeout_s
        self.first_token_timeout_s = first_token_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self._params: dict[str, Any] = {}
        if temperature is not None:
            self._params["temperature"] = temperature
        if max_tokens is not None:
            self._params["max_tokens"] = max_tokens
        if extra_body:
            self._params["extra_body"] = dict(extra_body)
        self._client = openai.AsyncOpenAI(
            base_url=base_url.rstrip("/"),
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or NO_KEY_PLACEHOLDER,
            max_retries=0,
            timeout=openai.Timeout(first_token_timeout_s, connect=connect_timeout_s, pool=connect_timeout_s),
        )

    async def stream(self, messages: list[Message]) -> AsyncGenerator[str, None]:
        """Stream the reply's text deltas. Close the generator (or cancel) to stop and free the connection."""
        if not messages:
            raise ValueError("messages is empty: give at least one user message")
        payload = [_wire(m) for m in messages]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        first_deadline = min(deadline, loop.time() + self.first_token_timeout_s)
        chunks, first, finished = await self._open(payload, first_deadline)
        if chunks is None:
            return
        try:
            yield first
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    if not finished:
                        raise LLMResponseError(
                            f"{self.name}: the server ended the stream mid-reply without a finish reason"
                        ) from None
                    return
                except TimeoutError:
                    raise LLMTimeout(
                        f"{self.name}: the reply took longer than timeout_s={self.timeout_s:g} s"
                    ) from None
                except openai.OpenAIError as e:
                    raise self._error(e, mid_stream=True) from e
                finished = finished or _finish_reason(chunk) is not None
                text = _delta_text(chunk)
                if text:
                    yield text
        finally:
            await chunks.close()

    async def models(self) -> list[str]:
        """The model ids the server offers (a cheap reachability check for `companion doctor`)."""
        try:
            async with asyncio.timeout(self.first_token_timeout_s):
                page = await self._client.models.list()
        except TimeoutError:
            raise LLMTimeout(
                f"{self.name}: GET /models did not answer within {self.first_token_timeout_s:g} s"
            ) from None
        except openai.OpenAIError as e:
            raise self._error(e) from e
        return [m.id for m in page.data]

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.close()

    # ------------------------------------------------------------------ internals

    async def _open(
        self, payload: list[ChatCompletionMessageParam], first_deadline: float
    ) -> tuple[openai.AsyncStream[Any] | None, str, bool]:
        """Start the request and wait for the first text delta, retrying before it as allowed."""
        retrying = request_policy(
            _Retryable,
            max_retries=self.max_retries,
            backoff_s=self.retry_backoff_s,
            deadline=first_deadline,
            retry_after=lambda exc: exc.retry_after if isinstance(exc, _Retryable) else None,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        return await self._attempt(payload, first_deadline)
                    except _Retryable as failure:
                        failure.error.attempts = attempt.retry_state.attempt_number
                        raise
                    except LLMError as error:
                        error.attempts = attempt.retry_state.attempt_number
                        raise
        except _Retryable as failure:  # the policy gave up: the last attempt's error
            raise failure.error from failure.__cause__
        raise AssertionError("unreachable: the retry policy returns or raises")  # pragma: no cover

    async def _attempt(
        self, payload: list[ChatCompletionMessageParam], first_deadline: float
    ) -> tuple[openai.AsyncStream[Any] | None, str, bool]:
        """One request: the open stream, its first text and whether it already finished.

        (None, "", True) is an empty but complete reply.
        """
        chunks: openai.AsyncStream[Any] | None = None
        try:
            async with asyncio.timeout_at(first_deadline):
                try:
                    chunks = await self._client.chat.completions.create(
                        model=self.model, messages=payload, stream=True, **self._params
                    )
                    _check_event_stream(self.name, chunks)
                except openai.APIStatusError as e:
                    if e.status_code == 429 or e.status_code >= 500:
                        raise _Retryable(self._error(e), _retry_after(e)) from e
                    raise self._error(e) from e
                except openai.APITimeoutError as e:
                    if _is_connect_timeout(e):
                        raise _Retryable(self._error(e)) from e
                    raise self._error(e) from e
                except openai.APIConnectionError as e:
                    raise _Retryable(self._error(e)) from e
                finished = False
                while True:
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        if finished:
                            return None, "", True  # an empty reply is a valid reply
                        # llama.cpp answers an over-long prompt this way when streaming
                        raise _Retryable(
                            LLMResponseError(
                                f"{self.name}: the server ended the stream without any reply; its log "
                                "says why (a prompt longer than its context window?)"
                            )
                        ) from None
                    except openai.APITimeoutError as e:
                        raise self._error(e) from e
                    except openai.APIConnectionError as e:
                        # Headers came, then the body broke before any text: retry, but the server
                        # is reachable, so this is not LLMUnavailable.
                        raise _Retryable(
                            LLMResponseError(
                                f"{self.name}: the server broke the stream before sending any text "
                                f"({_cause(e)}); its log says why"
                            )
                        ) from e
                    except openai.OpenAIError as e:
                        raise self._error(e) from e
                    finished = finished or _finish_reason(chunk) is not None
                    text = _delta_text(chunk)
                    if text:
                        opened, chunks = chunks, None  # handed over: stream() closes it
                        return opened, text, finished
        except TimeoutError:
            raise LLMTimeout(
                f"{self.name}: no reply text within first_token_timeout_s={self.first_token_timeout_s:g} s"
            ) from None
        finally:
            if chunks is not None:
                await chunks.close()

    def _error(self, e: openai.OpenAIError, *, mid_stream: bool = False) -> LLMError:
        """Translate an openai exception into the companion's typed errors with a useful message."""
        if isinstance(e, openai.APITimeoutError):
            if _is_connect_timeout(e):
                return LLMUnavailable(
                    f"The language model server at {self.base_url} did not accept a connection within "
                    f"{self.connect_timeout_s:g} s. {_START_HINT}",
                    url=self.base_url,
                )
            return LLMTimeout(f"{self.name}: the server went silent for {self.first_token_timeout_s:g} s")
        if isinstance(e, openai.APIConnectionError):
            if mid_stream:
                return LLMUnavailable(
                    f"Lost the connection to the language model server at {self.base_url} mid-reply "
                    f"({_cause(e)}).",
                    url=self.base_url,
                )
            return LLMUnavailable(
                f"Cannot reach the language model server at {self.base_url} ({_cause(e)}). {_START_HINT}",
                url=self.base_url,
            )
        if isinstance(e, openai.APIStatusError):
            server_message = _server_message(e.body)
            hint = ""
            if e.status_code in (401, 403):
                hint = " Check the API key (the api_key setting or OPENAI_API_KEY)."
            elif e.status_code == 404:
                hint = (
                    f" Check the model name {self.model!r} and that base_url includes the API prefix "
                    "(usually /v1; /api/v3 for Volcengine Ark)."
                )
            return LLMResponseError(
                f"{self.name}: HTTP {e.status_code}: {server_message or 'no message'}.{hint}",
                status=e.status_code,
                server_message=server_message,
            )
        if isinstance(e, openai.APIError):
            server_message = _server_message(e.body) or e.message
            return LLMResponseError(
                f"{self.name}: {server_message}", status=None, server_message=server_message
            )
        return LLMResponseError(f"{self.name}: {e}", status=None)


def _wire(m: Message) -> ChatCompletionMessageParam:
    """The wire form of one message (``Message.as_dict()``), typed per role as the client expects."""
    if m.role == "system":
        return {"role": "system", "content": m.content}
    if m.role == "assistant":
        return {"role": "assistant", "content": m.content}
    return {"role": "user", "content": m.content}


def _check_event_stream(name: str, chunks: Any) -> None:
    """A web page (HTML 200: a proxy's login page, base_url pointing at a web UI) is not a reply."""
    response = getattr(chunks, "response", None)
    if response is None:
        return
    kind = response.headers.get("content-type", "")
    if "html" in kind.lower():
        raise LLMResponseError(
            f"{name}: the server answered with a web page ({kind.split(';')[0]}), not a chat stream: "
            "check that base_url is the API's address (usually ending in /v1)",
            status=response.status_code,
        )


def _delta_text(chunk: Any) -> str:
    """The text of one streamed chunk (empty for role-only, usage-only or finish chunks)."""
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return ""
    delta = getattr(choices[0], "delta", None)
    return (getattr(delta, "content", None) or "") if delta is not None else ""


def _finish_reason(chunk: Any) -> str | None:
    choices = getattr(chunk, "choices", None) or []
    return getattr(choices[0], "finish_reason", None) if choices else None


def _retry_after(e: openai.APIStatusError) -> float | None:
    value = e.response.headers.get("retry-after")
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _is_connect_timeout(e: BaseException) -> bool:
    return type(e.__cause__).__name__ in ("ConnectTimeout", "PoolTimeout")


def _cause(e: BaseException) -> str:
    cause = e.__cause__ or e.__context__
    text = str(cause) if cause is not None else ""
    return text or (type(cause).__name__ if cause is not None else str(e))


def _server_message(body: object) -> str | None:
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("detail") or body.get("error")
        if isinstance(message, Mapping):
            message = message.get("message")
        text = str(message) if message else None
    else:
        text = str(body) if body else None
    if text and len(text) > 300:
        text = text[:300] + "..."
    return text
