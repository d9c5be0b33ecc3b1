"""numpy's BLAS runs on one thread once a speech model is loaded: its idle threads would otherwise spin on
the cores the models need (companion/blas.py); the models' own pools keep their threads."""

from __future__ import annotations

import json
import subprocess
import sys

from threadpoolctl import threadpool_info

from companion.blas import single_threaded_blas

_REPORT = """
import json
from threadpoolctl import threadpool_info
import numpy
before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
from companion.stt.smart_turn import SmartTurn
model = SmartTurn.shared()
model.probability(numpy.zeros(1600, numpy.int16))
after = {p["user_api"]: p["num_threads"] for p in threadpool_info()}
print(json.dumps({"before": before, "after": after}))
"""


def _pools(api: str) -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == api]


def test_blas_is_limited_to_one_thread_and_openmp_is_left_alone() -> None:
    openmp = _pools("openmp")
    single_threaded_blas.cache_clear()
    had = single_threaded_blas()
    assert had is not None and had >= 1  # numpy's wheel ships OpenBLAS, which threadpoolctl knows
    assert _pools("blas") and all(n == 1 for n in _pools("blas"))
    assert _pools("openmp") == openmp  # CTranslate2's encoder threads are not ours to change
    assert single_threaded_blas() == had  # once per process


def test_loading_smart_turn_in_a_fresh_process_limits_blas(smart_turn) -> None:
    done = subprocess.run([sys.executable, "-c", _REPORT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["after"]["blas"] == 1
    assert report["before"] and report["before"][0] >= 1
