"""The backsolve adjoint: integrate the state backwards together with the adjoint.

For a loss ``L`` of the saved states, the adjoint ``a(t) = dL/dy(t)`` and the
parameter cotangent ``g_p`` satisfy, between saved times,

    a' = -a^T df/dy,    g_p' = -a^T df/dp,

and ``a`` jumps by the output cotangent at each saved time. The backward
pass visits the segments ``[t_k, t_{k+1}]`` from the last one, inside one
``dx.scan``. Each segment is one ``solve`` of ``(y, a, g_p)`` from
``t_{k+1}`` to ``t_k``, starting ``y`` from the forward solution at
``t_{k+1}``. The time cotangents are ``g_k . f(t_k, y_k)`` at a saved time and
``-a(t0) . f(t0, y0)`` at ``t0``.
"""

from __future__ import annotations

from typing import Any

import difflux.core as dx

from ._runge_kutta import rolled_stages
from ._saveat import SaveAt
from ._sensitivity_solve import (
    FlatProblem,
    _outputs,
    backward_tolerances,
    knots,
    split_time_cotangents,
    zeros_theta,
)


def fwd(problem: FlatProblem, y0: Any, t0: Any, t1: Any, ts: Any, theta: Any) -> tuple[Any, Any]:
    solution = problem.inner_solve(problem.field, y0, (t0, t1), theta, saveat=SaveAt(ts=ts, t1=True))
    out = _outputs(solution, ts)
    return out, (y0, t0, t1, ts, theta, out["ys"], out["y1"])


def adjoint_field(problem: FlatProblem) -> Any:
    """Return the vector field of ``(y, a, g_p)`` for the backward solve."""

    def field(t: Any, state: Any, theta: Any) -> Any:
        y, a, _ = state
        f_y, pull = dx.pullback(lambda y, theta: problem.field(t, y, theta), y, theta)
        a_y, a_theta = pull(a)
        a_theta = [dx.zeros_like(p) if c is None else c for p, c in zip(theta, a_theta)]
        return f_y, -a_y, [-dx.astype(c, y.dtype) if c.dtype != y.dtype else -c for c in a_theta]

    return field


def bwd(method: Any, problem: FlatProblem, residuals: Any, g: dict[str, Any]) -> tuple[Any, ...]:
    y0, t0, t1, ts, theta, ys, y1 = residuals
    times, states, cotangents = knots(t0, t1, ts, y0, ys, y1, g["ys"], g["y1"])
    field = adjoint_field(problem)
    changes = backward_tolerances(method)

    def segment(carry: Any, x: Any) -> tuple[Any, Any]:
        a, g_theta = carry
        t_high, t_low, y_high, g_high = x
        a = a + g_high
        time_cotangent = dx.sum(g_high * problem.field(t_high, y_high, theta))
        solution = problem.inner_solve(field, (y_high, a, g_theta), (t_high, t_low), theta, **changes)
        _, a, g_theta = solution.ys
        return (a[0], [g[0] for g in g_theta]), time_cotangent

    init = (dx.zeros_like(y0), zeros_theta(theta, y0))
    xs = (times[1:], times[:-1], states[1:], cotangents[1:])
    # The backward solves trace their stages in a loop, because the augmented
    # field contains the vector field and its transpose, and XLA on CPU emits
    # each stage's matrix products as separate machine code. In
    # benchmarks/bench_neural_ode.py this cut the gradient's compile time by
    # 17% to 30%, and each backward step ran about 1.7x slower.
    with rolled_stages():
        (a, g_theta), time_cotangents = dx.scan(segment, init, xs, reverse=True)

    g_t0 = -dx.sum(a * problem.field(t0, y0, theta))
    g_ts, g_t1 = split_time_cotangents(ts, time_cotangents)
    g_theta = [dx.astype(c, p.dtype) if c.dtype != p.dtype else c for c, p in zip(g_theta, theta)]
    return a, g_t0, g_t1, g_ts, g_theta
