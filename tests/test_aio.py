"""The shared async plumbing: retry policies, the owned task set, the drop-oldest queue (fast, no I/O)."""

from __future__ import annotations

import asyncio

import pytest
from tenacity import RetryCallState

from companion.aio import Backoff, DropOldestQueue, TaskSet, cancel_and_wait, request_policy, wait_backoff


def _state(n: int) -> RetryCallState:
    s = RetryCallState(None, None, (), {})
    s.attempt_number = n
    return s


def test_wait_backoff_doubles_caps_and_only_shortens() -> None:
    w = wait_backoff(0.5, 3.0, jitter=0.25)
    for n, full in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (40, 3.0)]:
        for _ in range(50):
            assert full * 0.75 <= w(_state(n)) <= full
    assert wait_backoff(0.1, jitter=0)(_state(5)) == pytest.approx(1.6)
    with pytest.raises(ValueError):
        wait_backoff(2.0, 1.0)


def test_backoff_starts_over_after_reset() -> None:
    b = Backoff(wait_backoff(1.0, 8.0, jitter=0))
    assert [b.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    b.reset()
    assert b.next_delay() == 1.0


class Flaky(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("flaky")
        self.retry_after = retry_after


async def _run(policy, fails: int, exc: Exception) -> tuple[str | None, int]:
    calls = 0

    async def once() -> str:
        nonlocal calls
        calls += 1
        if calls <= fails:
            raise exc
        return "ok"

    try:
        async for attempt in policy:
            with attempt:
                return await once(), calls
    except Flaky:
        return None, calls
    raise AssertionError("unreachable")


async def test_request_policy_retries_then_gives_up_with_the_last_error() -> None:
    assert await _run(request_policy(Flaky, max_retries=2, backoff_s=0.001), 2, Flaky()) == ("ok", 3)
    assert await _run(request_policy(Flaky, max_retries=2, backoff_s=0.001), 3, Flaky()) == (None, 3)
    with pytest.raises(KeyError):  # not a retryable error: raised at once
        await _run(request_policy(Flaky, max_retries=2, backoff_s=0.001), 1, KeyError("x"))


async def test_request_policy_honours_retry_after_and_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    told = request_policy(
        Flaky, max_retries=3, backoff_s=10.0, retry_after=lambda e: getattr(e, "retry_after", None)
    )
    t0 = loop.time()
    assert await _run(told, 1, Flaky(retry_after=0.01)) == ("ok", 2)
    assert loop.time() - t0 < 1.0  # the server's 10 ms, not the 10 s backoff
    short = request_policy(Flaky, max_retries=3, backoff_s=1.0, deadline=loop.time() + 0.5)
    t0 = loop.time()
    assert await _run(short, 1, Flaky()) == (None, 1)  # a 0.75-1 s wait would pass the deadline
    assert loop.time() - t0 < 0.5


async def test_task_set_cancels_and_awaits_everything_on_close() -> None:
    tasks = TaskSet("test")
    started = asyncio.Event()
    ended: list[str] = []

    async def forever(name: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.append(name)

    a = tasks.spawn(forever("a"), "a")
    tasks.spawn(forever("b"), "b")
    done = tasks.spawn(asyncio.sleep(0), "quick")
    await done
    assert len(tasks) == 2
    await started.wait()
    await tasks.aclose()
    assert sorted(ended) == ["a", "b"] and a.cancelled() and len(tasks) == 0
    coro = forever("late")
    with pytest.raises(RuntimeError):
        tasks.spawn(coro, "late")


async def test_drop_oldest_queue_keeps_the_newest() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(3)
    for i in range(5):
        q.put_nowait(i)
    q.put_nowait(99, force=True)  # an end marker goes in beyond the limit
    assert q.dropped == 2
    assert [q.get_nowait() for _ in range(q.qsize())] == [2, 3, 4, 99]
    await q.put(7)
    assert await q.get() == 7
    with pytest.raises(ValueError):
        DropOldestQueue(0)


async def test_cancel_and_wait_ends_the_task_and_keeps_the_callers_cancellation():
    ended = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.05)  # winding down takes a while
            ended.set()

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    await cancel_and_wait(task)  # its own cancellation is expected: no error
    assert task.cancelled() and ended.is_set()

    inner = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)

    async def caller() -> str:
        await cancel_and_wait(inner)
        return "ran on"  # what suppress(CancelledError) would have let happen

    outer = asyncio.create_task(caller())
    await asyncio.sleep(0.01)  # the caller waits for the inner task to wind down
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert inner.done()


async def test_cancel_and_wait_surfaces_a_crash():
    async def crash() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(crash())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="boom"):
        await cancel_and_wait(task)
