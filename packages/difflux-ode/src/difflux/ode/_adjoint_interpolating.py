"""The interpolating adjoint: the backward pass reads ``y(t)`` from the forward dense output.

The adjoint equations are those of the backsolve adjoint
(``_adjoint_backsolve.py``), but the backward solve carries only ``a`` and
``g_p``. ``y(t)`` comes from the interpolants of the forward steps, so the
backward pass never integrates the state against its stable direction. The
forward pass keeps ``max_steps + 1`` rows of states, derivatives and stages.
"""

from __future__ import annotations

from typing import Any

import difflux.core as dx

from ._saveat import SaveAt
from ._sensitivity_solve import (
    FlatProblem,
    _outputs,
    backward_tolerances,
    knots,
    split_time_cotangents,
    zeros_theta,
)
from ._solution import Solution


def fwd(problem: FlatProblem, y0: Any, t0: Any, t1: Any, ts: Any, theta: Any) -> tuple[Any, Any]:
    solution = problem.inner_solve(problem.field, y0, (t0, t1), theta, saveat=SaveAt(ts=ts, t1=True, dense=True))
    out = _outputs(solution, ts)
    return out, (y0, t0, t1, ts, theta, out["ys"], out["y1"], solution.dense)


def bwd(method: Any, problem: FlatProblem, residuals: Any, g: dict[str, Any]) -> tuple[Any, ...]:
    y0, t0, t1, ts, theta, ys, y1, dense = residuals
    solver = problem.options["solver"]
    trajectory = Solution(
        ts=None, ys=None, stats={}, status=None, dense=dense, interpolate=solver.interpolate, unravel=_identity
    )

    def field(t: Any, state: Any, theta: Any) -> Any:
        a, _ = state
        y = trajectory.evaluate(t)
        _, pull = dx.pullback(lambda y, theta: problem.field(t, y, theta), y, theta)
        a_y, a_theta = pull(a)
        a_theta = [dx.zeros_like(p) if c is None else c for p, c in zip(theta, a_theta)]
        return -a_y, [-dx.astype(c, a.dtype) if c.dtype != a.dtype else -c for c in a_theta]

    times, states, cotangents = knots(t0, t1, ts, y0, ys, y1, g["ys"], g["y1"])
    changes = backward_tolerances(method)

    def segment(carry: Any, x: Any) -> tuple[Any, Any]:
        a, g_theta = carry
        t_high, t_low, y_high, g_high = x
        a = a + g_high
        time_cotangent = dx.sum(g_high * problem.field(t_high, y_high, theta))
        solution = problem.inner_solve(field, (a, g_theta), (t_high, t_low), theta, **changes)
        a, g_theta = solution.ys
        return (a[0], [g[0] for g in g_theta]), time_cotangent

    init = (dx.zeros_like(y0), zeros_theta(theta, y0))
    xs = (times[1:], times[:-1], states[1:], cotangents[1:])
    (a, g_theta), time_cotangents = dx.scan(segment, init, xs, reverse=True)

    g_t0 = -dx.sum(a * problem.field(t0, y0, theta))
    g_ts, g_t1 = split_time_cotangents(ts, time_cotangents)
    g_theta = [dx.astype(c, p.dtype) if c.dtype != p.dtype else c for c, p in zip(g_theta, theta)]
    return a, g_t0, g_t1, g_ts, g_theta


def _identity(values: Any) -> Any:
    return values
