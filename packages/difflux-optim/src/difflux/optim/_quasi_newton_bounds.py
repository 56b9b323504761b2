"""Bound constraints ``lower <= x <= upper`` for L-BFGS-B: parsing and the box.

``bounds`` takes the forms SciPy's ``minimize`` takes, and structures:

* a pair ``(lower, upper)``. Each side is ``None`` (unbounded), a number
  (the same bound for every coordinate), or an array of the shape of ``x0``
  or one that broadcasts to it. For a structured ``x0`` a side may also be
  a structure like ``x0`` whose leaves are any of these;
* a sequence of ``(low, high)`` pairs, one per coordinate of the flattened
  ``x0``, with ``None`` for no bound (SciPy's sequence form);
* an object with ``lb`` and ``ub`` attributes, such as ``scipy.optimize.Bounds``.

A list or tuple of ``n`` pairs of numbers, with ``n`` the number of
coordinates, is read as the per-coordinate form, so for ``n == 2`` pass the
pair form as arrays (``(np.array(lower), np.array(upper))``).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core._tree_paths import structure_mismatch

from ._quasi_newton_tree import FlatView, backend_name


class Box:
    """The box ``lower <= x <= upper`` on flat vectors, with infinite entries where unbounded."""

    def __init__(self, lower: Any, upper: Any) -> None:
        self.lower = lower
        self.upper = upper

    def project(self, x: Any) -> Any:
        """Return the nearest point of the box: ``x`` clipped coordinate by coordinate."""
        return dx.minimum(dx.maximum(x, self.lower), self.upper)

    def max_step(self, x: Any, direction: Any) -> Any:
        """Return the largest ``a >= 0`` with ``x + a * direction`` in the box (``inf`` if none limits it)."""
        moving = direction != 0.0
        safe = dx.where(moving, direction, 1.0)
        room = dx.where(direction > 0.0, self.upper - x, self.lower - x)
        ratios = dx.where(moving, room / safe, math.inf)
        return dx.min(ratios)


def _is_scalar(value: Any) -> bool:
    return value is None or (isinstance(value, int | float | np.number) and not isinstance(value, bool))


def _is_coordinate_pairs(bounds: Any, size: int) -> bool:
    """Return whether ``bounds`` is SciPy's sequence of ``(low, high)`` pairs, one per coordinate."""
    if not isinstance(bounds, list | tuple) or len(bounds) != size:
        return False
    return all(isinstance(pair, list | tuple) and len(pair) == 2 and all(map(_is_scalar, pair)) for pair in bounds)


def _is_traced(x: Any) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.core.Tracer)


def _side_vector(side: Any, fill: float, view: FlatView, backend: str, owner: str, name: str) -> Any:
    """Return one side of the bounds (``lower`` or ``upper``) as a flat vector."""

    def piece(value: Any, shape: tuple[int, ...], where: str) -> Any:
        if value is None:
            value = fill
        if isinstance(value, bool) or not (_is_scalar(value) or dx.is_array(value) or isinstance(value, list | tuple)):
            raise TypeError(
                f"{owner}: the {name} bound of {where} is a {type(value).__name__}; bounds must be numbers, "
                "arrays or None."
            )
        array = dx.astype(dx.asarray(value, backend=backend), view.dtype)
        try:
            np.broadcast_shapes(tuple(array.shape), shape)
        except ValueError:
            raise ValueError(
                f"{owner}: the {name} bound of {where} has shape {tuple(array.shape)}, which does not "
                f"broadcast to the shape {shape} of {where}."
            ) from None
        return dx.reshape(dx.broadcast_to(array, shape), (-1,))

    if _is_scalar(side) or (len(view.shapes) == 1 and (dx.is_array(side) or isinstance(side, list | tuple))):
        pieces = [piece(side, shape, leaf_name) for shape, leaf_name in zip(view.shapes, view.names)]
    else:
        leaves, treedef = dx.tree_flatten(side, is_leaf=lambda v: v is None)
        if treedef != view.treedef:
            raise ValueError(
                f"{owner}: {structure_mismatch(name + ' bounds', treedef, view.treedef, 'parameters in x0')}. Give each side of the bounds the structure of x0 (None for no bound), a single number, or None."
            )
        pieces = [piece(leaf, shape, leaf_name) for leaf, shape, leaf_name in zip(leaves, view.shapes, view.names)]
    return pieces[0] if len(pieces) == 1 else dx.concat(pieces)


def _check_concrete(lower: Any, upper: Any, view: FlatView, owner: str) -> None:
    """Raise ValueError where a lower bound exceeds its upper bound, or either is NaN."""
    low = np.asarray(lower)
    high = np.asarray(upper)
    for index in np.flatnonzero(np.isnan(low) | np.isnan(high)):
        raise ValueError(
            f"{owner}: the bounds of {view.locate(int(index))} contain NaN ({low[index]}, {high[index]}). "
            "Use None or an infinite value for a missing bound."
        )
    for index in np.flatnonzero((low > high) | (low == math.inf) | (high == -math.inf)):
        raise ValueError(
            f"{owner}: the bounds of {view.locate(int(index))} (coordinate {int(index)}) are empty: lower "
            f"{low[index]} and upper {high[index]}. Each lower bound must be at most its upper bound, "
            "lower bounds below +inf and upper bounds above -inf."
        )


def parse_bounds(bounds: Any, view: FlatView, owner: str) -> tuple[Any, Any]:
    """Return ``bounds`` as flat ``(lower, upper)`` vectors of x0's dtype and backend.

    Concrete bounds are checked (lower at most upper, no NaN). Bounds traced
    inside ``dx.jit`` cannot be checked before the compiled function runs.
    """
    backend = backend_name(view.leaves[0])
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):
        lower_side, upper_side = bounds.lb, bounds.ub
    elif _is_coordinate_pairs(bounds, view.size):
        lower_side = np.array([-math.inf if low is None else float(low) for low, _ in bounds])
        upper_side = np.array([math.inf if high is None else float(high) for _, high in bounds])
        lower = dx.astype(dx.asarray(lower_side, backend=backend), view.dtype)
        upper = dx.astype(dx.asarray(upper_side, backend=backend), view.dtype)
        _check_concrete(lower, upper, view, owner)
        return lower, upper
    elif isinstance(bounds, list | tuple) and len(bounds) == 2:
        lower_side, upper_side = bounds
    else:
        described = (
            f"a {type(bounds).__name__} of length {len(bounds)}" if isinstance(bounds, list | tuple) else repr(bounds)
        )
        raise ValueError(
            f"{owner}: bounds must be a pair (lower, upper), a sequence of {view.size} (low, high) pairs "
            f"(one per coordinate of x0), or an object with lb and ub attributes; got {described}."
        )
    lower = _side_vector(lower_side, -math.inf, view, backend, owner, "lower")
    upper = _side_vector(upper_side, math.inf, view, backend, owner, "upper")
    if not (_is_traced(lower) or _is_traced(upper)):
        _check_concrete(lower, upper, view, owner)
    # NOTE: traced bounds (an argument of a function under dx.jit) are not
    # checked; an empty box then gives a solution outside it.
    return lower, upper
