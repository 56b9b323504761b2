"""Timing helpers shared by the benchmarks.

Competitors are timed in alternating rounds (difflux, peer, difflux, ...)
and each gets the minimum over rounds of the mean time per call within a
round. Alternating keeps a burst of load on the machine from favouring one
side, and the minimum is the least noisy estimate of the cost itself, as
Python's ``timeit`` documentation recommends.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

# The clock every helper reads, wall time by default. set_clock("cpu")
# switches to the process's CPU time (all its threads). That leaves out the
# time other processes hold the cores, so ratios stay meaningful on a
# machine that other jobs load. It also leaves out time spent waiting, which
# these in-memory workloads with one thread per library hardly do.
_clock: Callable[[], float] = time.perf_counter


def add_clock_argument(parser: argparse.ArgumentParser) -> None:
    """Add the ``--clock wall|cpu`` option that a benchmark script passes to :func:`set_clock`."""
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or the process's CPU time for a machine that other jobs load (default: wall)",
    )


def set_clock(name: str) -> None:
    """Time with ``"wall"`` (``time.perf_counter``) or ``"cpu"`` (``time.process_time``)."""
    global _clock
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    if name not in clocks:
        raise ValueError(f"unknown clock {name!r}; use 'wall' or 'cpu'")
    _clock = clocks[name]


def time_call(fn: Callable[[], Any], *, number: int, repeats: int = 7, warmup: int = 3) -> float:
    """Return the median seconds per call of ``fn`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    rounds = []
    for _ in range(repeats):
        start = _clock()
        for _ in range(number):
            fn()
        rounds.append((_clock() - start) / number)
    return statistics.median(rounds)


def time_interleaved(fns: dict[str, Callable[[], Any]], *, number: int, rounds: int = 15) -> dict[str, float]:
    """Return the minimum seconds per call of each function, timed in alternating rounds."""
    for fn in fns.values():
        fn()
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = _clock()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (_clock() - start) / number)
    return best


def time_once(fn: Callable[[], Any]) -> float:
    """Return the seconds taken by one call of ``fn``."""
    start = _clock()
    fn()
    return _clock() - start
