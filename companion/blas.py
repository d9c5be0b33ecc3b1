"""One BLAS thread for numpy in a process that runs the speech models.

The models' numpy work is small matrix products: the log-mel features of each Whisper pass and each
Smart Turn call (an 80 x 201 filter bank times a few hundred frames). OpenBLAS splits such a product over
one thread per core, and its idle threads then busy-wait for about 0.1 s in case more work comes. On a
2-core host that spin took the second core from the model that ran right after the features: a Smart
Turn call measured 83-103 ms with it and 62-69 ms without (docs/benchmarks.md, "CPU that was not ours").
The models keep their own thread pools (CTranslate2's OpenMP, onnxruntime's), which this leaves alone.
"""

from __future__ import annotations

import functools
import logging

__all__ = ["single_threaded_blas"]

log = logging.getLogger(__name__)


@functools.cache
def single_threaded_blas() -> int | None:
    """Limit numpy's BLAS to one thread for the rest of the process (once; later calls do nothing).

    Returns the thread count it had, or None when threadpoolctl is missing or knows no BLAS library
    loaded (then nothing changes: the models run, a little slower on a small host)."""
    import numpy  # noqa: F401 - its BLAS must be loaded for threadpoolctl to find it

    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        log.warning("threadpoolctl is missing (pip install threadpoolctl): numpy's BLAS threads left alone")
        return None

    before = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    if not before:
        log.debug("no BLAS thread pool found: numpy's threads left as they are")
        return None
    threadpool_limits(limits=1, user_api="blas")
    log.debug("numpy's BLAS limited to 1 thread (was %d)", max(before))
    return max(before)
