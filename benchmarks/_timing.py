"""Timing helpers shared by the benchmarks.

Each measurement is the median over ``repeats`` rounds of the mean time per
call within a round, which is robust to the occasional slow round on a
shared 2-core machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def time_call(fn: Callable[[], Any], *, number: int, repeats: int = 7, warmup: int = 3) -> float:
    """Return the median seconds per call of ``fn`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number)
    return statistics.median(rounds)


def time_once(fn: Callable[[], Any]) -> float:
    """Return the seconds taken by one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
