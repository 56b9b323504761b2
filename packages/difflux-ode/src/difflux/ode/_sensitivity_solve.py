"""The solve seen by the continuous sensitivity methods, and its ``custom_vjp``.

``solve`` hands a problem to :func:`solve_with_sensitivity` when the
sensitivity method is not :class:`RecursiveCheckpointAdjoint`. The problem is
put in flat form: the state is one vector, and the float leaves of
``(vector_field, args)`` are a list ``theta`` of parameter arrays. The other
leaves are static. One ``dx.custom_vjp`` function maps
``(y0, t0, t1, ts, theta)`` to the states at ``ts`` and ``t1``, and each
method supplies its ``fwd``/``bwd`` pair.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core._api import _is_float_leaf

from ._saveat import SaveAt
from ._sensitivity import (
    AbstractSensitivity,
    BacksolveAdjoint,
    ForwardSensitivity,
    InterpolatingAdjoint,
    RecursiveCheckpointAdjoint,
)
from ._solution import Solution


def _is_none(x: Any) -> bool:
    return x is None


class FlatProblem:
    """A problem with a flat state and its float parameters split off as ``theta``.

    Attributes:
        field: ``field(t, y, theta)``, the vector field on flat vectors.
        options: the keyword arguments of the inner ``solve`` calls (solver,
            tolerances, step control, ``max_steps``, ``throw``).
    """

    def __init__(
        self,
        vector_field: Callable[..., Any],
        args: Any,
        y0: Any,
        options: dict[str, Any],
    ) -> None:
        from ._solve import _flat_vector_field, _ravel

        self.y0, self.unravel, shapes, treedef = _ravel(y0)
        leaves, self._params_def = dx.tree_flatten((vector_field, args), is_leaf=_is_none)
        self._float_positions = [i for i, leaf in enumerate(leaves) if _is_float_leaf(leaf)]
        self._leaves = list(leaves)
        backend = dx.backend_of(self.y0) or "numpy"  # not the array, which dx.vmap may batch
        # Python floats become arrays, so each parameter has a shape and a cotangent.
        self.theta = [
            leaves[i] if dx.is_array(leaves[i]) else dx.asarray(leaves[i], dtype=self.y0.dtype, backend=backend)
            for i in self._float_positions
        ]
        self.options = options

        def field(t: Any, y: Any, theta: list[Any]) -> Any:
            vector_field, args = self.rebuild(theta)
            return _flat_vector_field(vector_field, args, self.unravel, shapes, treedef)(t, y)

        self.field = field

    def rebuild(self, theta: list[Any]) -> tuple[Any, Any]:
        """Return ``(vector_field, args)`` with ``theta`` at the float leaves."""
        leaves = list(self._leaves)
        for i, value in zip(self._float_positions, theta):
            leaves[i] = value
        return dx.tree_unflatten(self._params_def, leaves)

    def inner_solve(
        self, field: Callable[..., Any], y0: Any, t_span: tuple[Any, Any], args: Any, **changes: Any
    ) -> Any:
        """Solve a flat problem with the checkpointed loop and this problem's options."""
        from ._solve import solve

        options = dict(self.options)
        options.update(changes)
        return solve(field, y0, t_span, args, sensitivity=RecursiveCheckpointAdjoint(), **options)


# --------------------------------------------------------------------------
# The differentiable map (y0, t0, t1, ts, theta) -> saved states
# --------------------------------------------------------------------------


def _solve_saved(
    method: AbstractSensitivity, problem: FlatProblem, y0: Any, t0: Any, t1: Any, ts: Any, theta: Any
) -> Any:
    """Return ``{"ys": states at ts, "y1": state at t1, "t_end", "status", "stats"}``."""
    saveat = SaveAt(ts=ts, t1=True)
    solution = problem.inner_solve(problem.field, y0, (t0, t1), theta, saveat=saveat)
    return _outputs(solution, ts)


def _outputs(solution: Solution, ts: Any) -> dict[str, Any]:
    count = 0 if ts is None else ts.shape[0]
    return {
        "ys": solution.ys[:count] if count else None,
        "y1": solution.ys[count],
        "t_end": solution.ts[count],
        "status": solution.status,
        "stats": solution.stats,
    }


def _fwd(method: AbstractSensitivity, problem: FlatProblem, y0: Any, t0: Any, t1: Any, ts: Any, theta: Any) -> Any:
    return _method_module(method).fwd(problem, y0, t0, t1, ts, theta)


def _bwd(method: AbstractSensitivity, problem: FlatProblem, residuals: Any, g: dict[str, Any]) -> Any:
    return _method_module(method).bwd(method, problem, residuals, g)


saved_values = dx.custom_vjp(_solve_saved, nondiff_argnums=(0, 1))
saved_values.defvjp(_fwd, _bwd)


def _method_module(method: AbstractSensitivity) -> Any:
    if isinstance(method, BacksolveAdjoint):
        from . import _adjoint_backsolve

        return _adjoint_backsolve
    if isinstance(method, InterpolatingAdjoint):
        from . import _adjoint_interpolating

        return _adjoint_interpolating
    if isinstance(method, ForwardSensitivity):
        from . import _forward_sensitivity

        return _forward_sensitivity
    raise TypeError(
        f"solve: sensitivity must be RecursiveCheckpointAdjoint, BacksolveAdjoint, InterpolatingAdjoint, "
        f"ForwardSensitivity or None, got {method!r}"
    )


# --------------------------------------------------------------------------
# The entry point from solve
# --------------------------------------------------------------------------


def solve_with_sensitivity(
    method: AbstractSensitivity,
    vector_field: Callable[..., Any],
    y0: Any,
    t_span: tuple[Any, Any],
    args: Any,
    saveat: SaveAt,
    options: dict[str, Any],
) -> Solution:
    """Solve with a continuous sensitivity method; the values match ``solve``'s, the derivatives come from ``method``."""
    from ._solve import _save_times

    _method_module(method)
    if saveat.steps or saveat.dense:
        raise NotImplementedError(
            f"solve: {type(method).__name__} differentiates the values at t0, SaveAt.ts and t1 only, "
            "not SaveAt(steps=True) or SaveAt(dense=True). Use sensitivity=ode.RecursiveCheckpointAdjoint() "
            "for those outputs."
        )

    problem = FlatProblem(vector_field, args, y0, options)
    zero = dx.zeros_like(problem.y0[0])
    t0 = zero + t_span[0]
    t1 = zero + t_span[1]
    ts = None if saveat.ts is None else _save_times(zero, saveat.ts)
    out = saved_values(method, problem, problem.y0, t0, t1, ts, problem.theta)

    ts_parts, ys_parts = [], []
    if saveat.t0:
        ts_parts.append(t0[None])
        ys_parts.append(problem.y0[None])
    if ts is not None:
        ts_parts.append(ts)
        ys_parts.append(out["ys"])
    if saveat.t1:
        final_ok = out["status"] == 0
        ts_parts.append(dx.where(final_ok, t1, out["t_end"])[None])
        ys_parts.append(dx.where(final_ok, out["y1"], float("nan"))[None])
    times = ts_parts[0] if len(ts_parts) == 1 else dx.concat(ts_parts)
    values = ys_parts[0] if len(ys_parts) == 1 else dx.concat(ys_parts)
    return Solution(
        ts=times,
        ys=problem.unravel(values),
        stats=out["stats"],
        status=out["status"],
        dense=None,
        interpolate=options["solver"].interpolate,
        unravel=problem.unravel,
    )


# --------------------------------------------------------------------------
# Helpers shared by the adjoint methods
# --------------------------------------------------------------------------


def knots(t0: Any, t1: Any, ts: Any, y0: Any, ys: Any, y1: Any, g_ys: Any, g_y1: Any) -> tuple[Any, Any, Any]:
    """Return the times ``[t0, *ts, t1]``, the states there and the output cotangents (zero at ``t0``)."""
    if ts is None:
        return dx.stack([t0, t1]), dx.stack([y0, y1]), dx.stack([dx.zeros_like(y0), g_y1])
    times = dx.concat([t0[None], ts, t1[None]])
    states = dx.concat([y0[None], ys, y1[None]])
    cotangents = dx.concat([dx.zeros_like(y0)[None], g_ys, g_y1[None]])
    return times, states, cotangents


def split_time_cotangents(ts: Any, time_cotangents: Any) -> tuple[Any, Any]:
    """Split the cotangents at ``[*ts, t1]`` into those of ``ts`` and of ``t1``."""
    count = 0 if ts is None else ts.shape[0]
    return (time_cotangents[:count] if count else None), time_cotangents[count]


def backward_tolerances(method: Any) -> dict[str, Any]:
    """Return the tolerances of the backward solves that ``method`` overrides."""
    changes = {}
    if method.rtol is not None:
        changes["rtol"] = method.rtol
    if method.atol is not None:
        changes["atol"] = method.atol
    return changes


def zeros_theta(theta: list[Any], like: Any) -> list[Any]:
    """Return zero accumulators for the parameters' cotangents, in the state's dtype."""
    return [dx.zeros_like(dx.astype(p, like.dtype)) if p.dtype != like.dtype else dx.zeros_like(p) for p in theta]


def constant(like: Any, values: np.ndarray) -> Any:
    """Convert NumPy ``values`` to an array on the backend and dtype of ``like``."""
    return dx.asarray(values, dtype=like.dtype, backend=dx.backend_of(like) or "numpy")
