"""Timing helpers shared by the benchmarks.

Competitors are timed in alternating rounds (difflux, peer, difflux, ...)
and each gets the minimum over rounds of the mean time per call within a
round. Alternating keeps a burst of load on the machine from favouring one
side, and the minimum is the least noisy estimate of the cost itself, as
Python's ``timeit`` documentation recommends.
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


def time_interleaved(fns: dict[str, Callable[[], Any]], *, number: int, rounds: int = 15) -> dict[str, float]:
    """Return the minimum seconds per call of each function, timed in alternating rounds."""
    for fn in fns.values():
        fn()
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / number)
    return best


def time_once(fn: Callable[[], Any]) -> float:
    """Return the seconds taken by one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
