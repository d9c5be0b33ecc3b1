"""A pool of equivalent endpoints (inference servers) with failover and health checks.

Requests go to the first healthy endpoint in the configured order (the first is the preferred one: a
GPU box before a spare laptop). A failed request marks its endpoint down and the same request moves on to
the next one, within one overall deadline, so a dead server costs a turn one connection attempt rather
than a timeout. Endpoints that are down are probed in the background (`probe_interval_s`) and come back
as soon as a probe succeeds; when every endpoint is down, each new request still tries them all (the next
turn retries), so a server that comes back is used at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from companion.aio import cancel_and_wait

log = logging.getLogger(__name__)

C = TypeVar("C")  # a client of one endpoint
R = TypeVar("R")


class AllEndpointsFailed(RuntimeError):
    """Every endpoint failed (or the deadline ran out); the message lists each one's error."""


@dataclass(eq=False)
class Endpoint(Generic[C]):
    """One server: its URL, a client for it, and what we know of its health."""

    url: str
    client: C
    healthy: bool = True
    failures: int = 0
    last_error: str = ""
    since: float = field(default_factory=time.monotonic)

    def mark(self, ok: bool, error: str = "") -> None:
        if ok != self.healthy:
            log.warning("%s is %s%s", self.url, "back up" if ok else "down", f": {error}" if error else "")
            self.since = time.monotonic()
        self.healthy = ok
        self.failures = 0 if ok else self.failures + 1
        self.last_error = error


class EndpointPool(Generic[C]):
    """Endpoints of one engine; `call()` runs a request with failover; `start()` runs the health prober.

    `probe(client)` raises when the endpoint is not usable (a Wyoming `describe`, an HTTP health check).
    """

    def __init__(
        self,
        name: str,
        endpoints: list[Endpoint[C]],
        probe: Callable[[C], Awaitable[object]],
        *,
        deadline_s: float = 1.5,
        probe_interval_s: float = 2.0,
        probe_timeout_s: float = 1.0,
    ) -> None:
        if not endpoints:
            raise ValueError(f"{name}: at least one endpoint URL is needed")
        self.name = name
        self.endpoints = endpoints
        self.probe = probe
        self.deadline_s = deadline_s
        self.probe_interval_s = probe_interval_s
        self.probe_timeout_s = probe_timeout_s
        self._prober: asyncio.Task[None] | None = None

    def order(self) -> list[Endpoint[C]]:
        """Healthy endpoints first (in configured order), then the ones that are down."""
        return [e for e in self.endpoints if e.healthy] + [e for e in self.endpoints if not e.healthy]

    async def call(self, request: Callable[[C], Awaitable[R]], *, deadline_s: float | None = None) -> R:
        """`request(client)` on the first endpoint that answers within the deadline."""
        budget = self.deadline_s if deadline_s is None else deadline_s
        t_end = time.monotonic() + budget
        errors: list[str] = []
        for endpoint in self.order():
            left = t_end - time.monotonic()
            if left <= 0:
                errors.append(f"{endpoint.url}: not tried, {budget:.1f} s deadline passed")
                continue
            try:
                async with asyncio.timeout(left):
                    result = await request(endpoint.client)
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                endpoint.mark(False, f"no answer within {left:.2f} s")
                errors.append(f"{endpoint.url}: timed out")
            except Exception as exc:  # connection refused/reset, protocol errors, server errors
                endpoint.mark(False, _describe(exc))
                errors.append(f"{endpoint.url}: {_describe(exc)}")
            else:
                endpoint.mark(True)
                return result
        raise AllEndpointsFailed(f"{self.name}: every endpoint failed: " + "; ".join(errors))

    async def check(self, endpoint: Endpoint[C]) -> bool:
        """Probe one endpoint now and record the outcome."""
        try:
            async with asyncio.timeout(self.probe_timeout_s):
                await self.probe(endpoint.client)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            endpoint.mark(
                False, "no answer to the health check" if isinstance(exc, TimeoutError) else _describe(exc)
            )
            return False
        endpoint.mark(True)
        return True

    async def check_all(self) -> list[bool]:
        return list(await asyncio.gather(*(self.check(e) for e in self.endpoints)))

    def start(self) -> None:
        """Probe endpoints that are down every `probe_interval_s` until `aclose()`."""
        if self._prober is None:
            self._prober = asyncio.create_task(self._probe_loop(), name=f"health-{self.name}")

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval_s)
            down = [e for e in self.endpoints if not e.healthy]
            if down:
                await asyncio.gather(*(self.check(e) for e in down))

    def status(self) -> list[dict[str, object]]:
        return [
            {"url": e.url, "healthy": e.healthy, "failures": e.failures, "last_error": e.last_error}
            for e in self.endpoints
        ]

    async def aclose(self) -> None:
        task, self._prober = self._prober, None
        if task is not None:
            await cancel_and_wait(task)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
