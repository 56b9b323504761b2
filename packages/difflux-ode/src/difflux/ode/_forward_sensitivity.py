"""Forward sensitivities: integrate ``S = dy/d(y0, p)`` with the state.

With ``p`` the parameters raveled into one vector of length ``P`` and ``d``
the state size, ``S(t)`` has shape ``(d, d + P)`` and satisfies

    S' = J_y S + [0 | J_p],    S(t0) = [I | 0].

Column ``j`` of the right-hand side is one ``dx.jvp`` of ``f`` along
``(S[:, j], e_j)``; ``dx.vmap`` takes all columns at once. The solve
carries the transpose ``S^T``, one column per row, so that ``dx.vmap`` maps
its leading axis and no step transposes it.

The step-size controller sees only the state, as CVODES allows with its
option ``errconS = false``: the solve carries ``eps * S`` with a tiny power
of two ``eps``, whose error is negligible next to the tolerance, and the
tolerances shrink by ``sqrt(1 + N)`` for ``N`` columns, which undoes the
dilution of the RMS error norm by the ``d * N`` extra entries. So the solve
takes the steps that the state alone takes, and ``S`` is the derivative of
the Runge-Kutta solution on those steps. The reverse pass
is then a product: ``g^T S(t_k)`` summed over the saved times gives the
cotangents of ``y0`` and ``p``. The time cotangents are ``g_k . f(t_k, y_k)``
at the saved times and ``-(g^T S_y0) . f(t0, y0)`` at ``t0``, because moving
``t0`` shifts the solution by ``-S_y0 f(t0, y0)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import difflux.core as dx

from ._saveat import SaveAt
from ._sensitivity_solve import FlatProblem, constant


def _ravel_theta(theta: list[Any], like: Any) -> tuple[Any, Any]:
    """Return the parameters as one vector in the state's dtype and the map back to the list."""
    shapes = [tuple(p.shape) for p in theta]
    sizes = [math.prod(shape) for shape in shapes]
    dtypes = [p.dtype for p in theta]
    parts = [dx.reshape(dx.astype(p, like.dtype) if p.dtype != like.dtype else p, (-1,)) for p in theta]
    vector = dx.concat(parts) if parts else constant(like, np.zeros(0))

    def unravel(vector: Any) -> list[Any]:
        leaves, offset = [], 0
        for shape, size, dtype in zip(shapes, sizes, dtypes):
            leaf = dx.reshape(vector[..., offset : offset + size], (*vector.shape[:-1], *shape))
            leaves.append(dx.astype(leaf, dtype) if leaf.dtype != dtype else leaf)
            offset += size
        return leaves

    return vector, unravel


# A power of two, so the scaling is exact; small enough that the scaled
# sensitivities' error estimate stays far below the tolerances, large enough
# that float32 sensitivities of order 1e-20 stay normal numbers.
_SCALE = 2.0**-40


def fwd(problem: FlatProblem, y0: Any, t0: Any, t1: Any, ts: Any, theta: Any) -> tuple[Any, Any]:
    theta_vector, unravel_theta = _ravel_theta(theta, y0)
    d, num_params = y0.shape[0], theta_vector.shape[0]
    columns = d + num_params
    # The parameter part of each column's tangent, one row per column: [0 | I_P]^T.
    selector = constant(y0, _SCALE * np.concatenate([np.zeros((d, num_params)), np.eye(num_params)], axis=0))

    def field(t: Any, state: Any, theta_vector: Any) -> Any:
        y, sensitivity = state

        def rhs(y: Any, theta_vector: Any) -> Any:
            return problem.field(t, y, unravel_theta(theta_vector))

        def column(s: Any, e: Any) -> Any:
            return dx.jvp(rhs, (y, theta_vector), (s, e))[1]

        return rhs(y, theta_vector), dx.vmap(column)(sensitivity, selector)

    identity = constant(y0, _SCALE * np.concatenate([np.eye(d), np.zeros((num_params, d))], axis=0))
    dilution = math.sqrt(1 + columns)
    tolerances = {"rtol": problem.options["rtol"] / dilution, "atol": problem.options["atol"] / dilution}
    saveat = SaveAt(ts=ts, t1=True)
    solution = problem.inner_solve(field, (y0, identity), (t0, t1), theta_vector, saveat=saveat, **tolerances)
    states, scaled = solution.ys
    sensitivities = scaled * (1.0 / _SCALE)
    count = 0 if ts is None else ts.shape[0]
    out = {
        "ys": states[:count] if count else None,
        "y1": states[count],
        "t_end": solution.ts[count],
        "status": solution.status,
        "stats": solution.stats,
    }
    assert sensitivities.shape[1:] == (columns, d)
    return out, (y0, t0, t1, ts, theta, out["ys"], out["y1"], sensitivities)


def bwd(method: Any, problem: FlatProblem, residuals: Any, g: dict[str, Any]) -> tuple[Any, ...]:
    y0, t0, t1, ts, theta, ys, y1, sensitivities = residuals
    d = y0.shape[0]
    _, unravel_theta = _ravel_theta(theta, y0)

    # Rows of sensitivities: S^T at each time of ts, then at t1.
    if ts is None:
        cotangents = g["y1"][None]
    else:
        cotangents = dx.concat([g["ys"], g["y1"][None]])
    total = dx.einsum("nd,ncd->c", cotangents, sensitivities)
    g_y0 = total[:d]
    g_theta = unravel_theta(total[d:]) if theta else []

    g_t0 = -dx.sum(g_y0 * problem.field(t0, y0, theta))
    g_t1 = dx.sum(g["y1"] * problem.field(t1, y1, theta))
    g_ts = None
    if ts is not None:
        rates = dx.vmap(lambda t, y: problem.field(t, y, theta))(ts, ys)
        g_ts = dx.sum(g["ys"] * rates, axis=1)
    return g_y0, g_t0, g_t1, g_ts, g_theta
