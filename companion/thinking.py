"""A short "thinking" cue when a reply is slow to start, so a waiting wearer does not hear dead air.

The cue goes into the reply's own audio stream (before its first chunk), so it plays on whatever speaker
the reply uses, is stopped by a barge-in like the reply, and needs no second writer on the link. It plays
at most once per reply, and only when no audio came within ``delay_s``; a reply that starts in time is
passed through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

import numpy as np

#: Seconds of silence after the turn before the cue plays (the issue's "~1.5 s").
THINKING_CUE_S = 1.5


async def with_thinking_cue(
    audio: AsyncGenerator[np.ndarray, None],
    cue: np.ndarray,
    delay_s: float = THINKING_CUE_S,
    on_cue: Callable[[], None] | None = None,
) -> AsyncGenerator[np.ndarray, None]:
    """``audio`` unchanged, preceded by ``cue`` if its first chunk takes longer than ``delay_s``.

    ``on_cue`` runs when the cue is due (the session uses it to get the spoken fallback ready)."""
    async with contextlib.aclosing(audio):
        first: asyncio.Future[np.ndarray] = asyncio.ensure_future(anext(audio))
        try:
            done, _ = await asyncio.wait({first}, timeout=delay_s)
            if not done:
                if on_cue is not None:
                    on_cue()
                yield cue
            try:
                chunk = await first
            except StopAsyncIteration:
                return
        finally:
            if not first.done():
                first.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await first
        yield chunk
        async for chunk in audio:
            yield chunk
