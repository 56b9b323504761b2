"""Testing helpers: a finite-difference gradient checker for any backend.

``check_grads`` is the oracle every derivative rule in difflux is tested
against, and other packages use it for their own differentiable functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._api import jvp, pullback
from ._backend import backend_of_value
from ._core import value_of
from ._ops_creation import asarray
from ._tree import tree_flatten, tree_map


def _to_numpy(x: Any) -> np.ndarray:
    return np.asarray(value_of(x), dtype=np.float64)


def _inner(a: Any, b: Any) -> float:
    la, lb = tree_flatten(a)[0], tree_flatten(b)[0]
    return float(sum(np.sum(_to_numpy(x) * _to_numpy(y)) for x, y in zip(la, lb) if x is not None and y is not None))


def _random_like(tree: Any, rng: np.random.Generator) -> Any:
    def draw(x: Any) -> Any:
        value = value_of(x)
        sample = rng.standard_normal(np.shape(value))
        return asarray(sample, dtype=getattr(value, "dtype", np.float64), backend=backend_of_value(value) or "numpy")

    return tree_map(draw, tree)


def _axpy(alpha: float, v: Any, x: Any) -> Any:
    return tree_map(lambda vi, xi: xi + alpha * vi, v, x)


def _finite_difference(f: Callable[..., Any], args: Sequence[Any], directions: Sequence[Any], eps: float) -> Any:
    plus = f(*[_axpy(eps, v, x) for v, x in zip(directions, args)])
    minus = f(*[_axpy(-eps, v, x) for v, x in zip(directions, args)])
    return tree_map(lambda p, m: (_to_numpy(p) - _to_numpy(m)) / (2 * eps), plus, minus)


def check_grads(
    f: Callable[..., Any],
    args: Sequence[Any],
    order: int = 2,
    modes: Sequence[str] = ("fwd", "rev"),
    eps: float = 1e-5,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    seed: int = 0,
) -> None:
    """Check derivatives of ``f`` at ``args`` against central finite differences.

    For random directions ``v`` (inputs) and ``u`` (outputs), reverse mode is
    checked through ``<pullback(u), v>`` and forward mode through
    ``<u, jvp(v)>``, both against the finite difference of ``<u, f>`` along
    ``v``. With ``order=2`` the derivative functions themselves are checked
    again, which tests the rules' own derivatives (reverse over reverse,
    forward over forward, and the mixed pairs). Use float64 inputs.

    Raises:
        AssertionError: with the two numbers that disagree.
    """
    rng = np.random.default_rng(seed)
    args = tuple(args)
    directions = tuple(_random_like(a, rng) for a in args)
    out = f(*args)
    out_direction = _random_like(out, rng)
    expected = _inner(out_direction, _finite_difference(f, args, directions, eps))

    def compare(actual: float, mode: str) -> None:
        tolerance = atol + rtol * max(abs(expected), abs(actual)) + 10 * eps**2 * max(1.0, abs(expected))
        if not abs(actual - expected) <= tolerance:
            raise AssertionError(
                f"{mode}-mode derivative of {getattr(f, '__name__', f)} disagrees with finite differences: "
                f"{actual!r} vs {expected!r} (difference {abs(actual - expected):.3g}, tolerance {tolerance:.3g})"
            )

    if "fwd" in modes:
        _, tangent = jvp(f, args, directions)
        compare(_inner(out_direction, tangent), "forward")
    if "rev" in modes:
        _, back = pullback(f, *args)
        cotangents = back(out_direction)
        compare(sum(_inner(c, v) for c, v in zip(cotangents, directions)), "reverse")

    if order > 1:
        if "fwd" in modes:

            def tangent_of(*xs: Any) -> Any:
                return jvp(f, xs, directions)[1]

            check_grads(tangent_of, args, order - 1, modes, eps, rtol, atol, seed + 1)
        if "rev" in modes:

            def cotangent_of(*xs: Any) -> Any:
                return pullback(f, *xs)[1](out_direction)

            check_grads(cotangent_of, args, order - 1, modes, eps, rtol, atol, seed + 2)


__all__ = ["check_grads"]
