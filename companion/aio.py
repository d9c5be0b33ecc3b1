"""Shared async plumbing: named retry policies, an owned task set, a drop-oldest queue.

Retry and backoff were written three ways (tenacity in the BLE link, by hand in the MQTT bridge and the
OpenAI backend) and owned task sets and drop-oldest queues several times; one version of each lives here so
they behave alike and are tested once (tests/test_aio.py). The retry policies are tenacity's; the waits
below are tenacity wait strategies, so they plug into ``AsyncRetrying`` or, through :class:`Backoff`, into a
loop that is not one retried call (a reconnect loop whose count starts over after each good connection).

Timeouts on the reply and link paths use ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11,
wait_for returns the result and drops a cancellation that arrives in the same loop step as the awaited
thing completing (CPython gh-86296, fixed in 3.12), which lost a barge-in when the speaker's queue made
room just then.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

log = logging.getLogger(__name__)

T = TypeVar("T")


# -- retry policies ------------------------------------------------------------------------------------
class wait_backoff(wait_base):
    """``initial_s * 2**(n-1)`` capped at ``max_s``, times a random factor in ``[1 - jitter, 1]``.

    The jitter only shortens a wait, so clients that failed together spread out but none waits past the
    cap (tenacity's ``wait_exponential_jitter`` adds its jitter on top instead).
    """

    def __init__(self, initial_s: float, max_s: float = math.inf, jitter: float = 0.25) -> None:
        if initial_s < 0 or max_s < initial_s or not 0 <= jitter <= 1:
            raise ValueError("wait_backoff needs 0 <= initial_s <= max_s and 0 <= jitter <= 1")
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter

    def __call__(self, retry_state: RetryCallState) -> float:
        n = max(1, retry_state.attempt_number)
        delay = min(self.max_s, self.initial_s * 2 ** min(n - 1, 60))
        return float(delay * (1 - self.jitter * random.random()))


_NO_RETRYING = AsyncRetrying()  # RetryCallState wants one; the waits here never look at it


class Backoff:
    """The waits of a tenacity wait strategy, one per :meth:`next_delay`, for loops that are not a single
    retried call: :meth:`reset` after a success starts the sequence over."""

    def __init__(self, wait: Callable[[RetryCallState], float]) -> None:
        self._wait = wait
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        state = RetryCallState(_NO_RETRYING, None, (), {})
        state.attempt_number = self.failures
        return float(self._wait(state))

    def reset(self) -> None:
        self.failures = 0


def reconnect_policy(
    retry_on: tuple[type[BaseException], ...], *, max_s: float, first_s: float = 0.05
) -> AsyncRetrying:
    """Reconnect a radio link until it works: exponential from ``first_s``, capped at ``max_s``, plus up to
    ``first_s`` of jitter; never gives up (the link's close cancels it); the last error is re-raised."""
    return AsyncRetrying(
        wait=wait_exponential_jitter(multiplier=first_s, max=max_s, jitter=first_s),
        retry=retry_if_exception_type(retry_on),
        reraise=True,
    )


def request_policy(
    retry_on: type[BaseException],
    *,
    max_retries: int,
    backoff_s: float,
    deadline: float | None = None,
    retry_after: Callable[[BaseException], float | None] | None = None,
) -> AsyncRetrying:
    """Retry a request up to ``max_retries`` times on ``retry_on`` with :class:`wait_backoff`.

    ``retry_after(exc)`` may name the server's wait (HTTP ``Retry-After``), used instead of the backoff.
    A retry whose wait would end at or after ``deadline`` (``loop.time()``) is not made. When the policy
    stops, the last exception is re-raised as it was.
    """
    fallback = wait_backoff(backoff_s)

    def wait(state: RetryCallState) -> float:
        if retry_after is not None and state.outcome is not None:
            exc = state.outcome.exception()
            told = retry_after(exc) if exc is not None else None
            if told is not None:
                return told
        return fallback(state)

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number > max_retries:
            return True
        return deadline is not None and asyncio.get_running_loop().time() + state.upcoming_sleep >= deadline

    return AsyncRetrying(wait=wait, stop=stop, retry=retry_if_exception_type(retry_on), reraise=True)


# -- owned tasks ---------------------------------------------------------------------------------------
async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has ended; its own CancelledError is expected and swallowed.

    ``with suppress(CancelledError): await task`` would also swallow the caller's cancellation when the
    caller is cancelled during that wait (a barge-in while a reply's producer winds down), so the caller
    ran on. Here the caller's own cancellation is re-raised.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


class TaskSet:
    """Tasks with one owner: :meth:`spawn` tracks a task until it ends (logging a crash), :meth:`aclose`
    cancels every one still running and waits until they have ended, so none outlives its owner."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        if self.closed:
            coro.close()
            raise RuntimeError(f"{self.name} is closed")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s crashed", task.get_name(), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        """Cancel all tasks and wait for them (also those spawned by a task while it was cancelled)."""
        self.closed = True
        while self._tasks:
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


# -- drop-oldest queue ---------------------------------------------------------------------------------
class DropOldestQueue(asyncio.Queue[T], Generic[T]):
    """An ``asyncio.Queue`` whose :meth:`put_nowait` never fails: when ``limit`` items wait, the oldest goes
    and ``dropped`` counts it. For live data (audio, events) where the newest matters most and a producer
    (a device callback, a notification handler) must never block. ``put_nowait(..., force=True)`` adds an
    item beyond the limit (an end-of-stream marker that must not be lost)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a DropOldestQueue needs a limit of at least 1, got {limit}")
        super().__init__()
        self.limit = limit
        self.dropped = 0

    def put_nowait(self, item: T, *, force: bool = False) -> None:
        if not force:
            while self.qsize() >= self.limit:
                self.get_nowait()
                self.dropped += 1
        super().put_nowait(item)
