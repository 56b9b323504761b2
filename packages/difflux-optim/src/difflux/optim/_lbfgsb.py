"""L-BFGS-B: limited-memory BFGS within a box (Byrd, Lu, Nocedal & Zhu 1995).

Reference: R. H. Byrd, P. Lu, J. Nocedal and C. Zhu, "A limited memory
algorithm for bound constrained optimization", SIAM J. Sci. Comput. 16(5),
1190-1208, 1995. Each iteration

1. builds the quadratic model ``m(z) = g.(z - x) + (z - x).B(z - x) / 2``
   with the compact limited-memory matrix ``B = theta I - W M W^T``,
   ``W = [Y, theta S]`` (section 3);
2. finds the generalised Cauchy point: the first local minimiser of the
   model along the projected steepest-descent path ``x(t) = P(x - t g)``,
   which is piecewise linear with a breakpoint where each coordinate meets
   its bound (section 4);
3. minimises the model over the coordinates still free at the Cauchy point,
   the others held at their bounds, by the direct primal method, and
   shortens that step to stay in the box (section 5.1);
4. searches the line from ``x`` to that point (and beyond, up to the edge
   of the box) for a step satisfying the strong Wolfe conditions.

The paper's Cauchy-point algorithm visits the breakpoints one by one in
order. Here the model's slope and curvature at the start of every segment
come from prefix sums over the sorted breakpoints, all at once. A mask then
picks the first segment that contains the minimiser. The result is the same
point, without a loop of data-dependent length, which suits ``jax.jit``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx

from ._lbfgs import empty_pairs, newest_ratio, push_pair
from ._quasi_newton import QuasiNewton, _check_positive_int
from ._quasi_newton_bounds import Box
from ._quasi_newton_tree import backend_name


def _solve(matrix: Any, rhs: Any) -> Any:
    """Solve ``matrix @ z = rhs``, with NaN for a singular matrix on NumPy as on JAX."""
    try:
        return dx.linalg.solve(matrix, rhs)
    except np.linalg.LinAlgError:
        # NaN makes the direction non-finite, so the line search fails and
        # the memory is cleared, as the L-BFGS-B Fortran code does when its
        # factorisation fails.
        return dx.full_like(rhs, math.nan)


def compact_form(memory: dict[str, Any], x: Any) -> tuple[Any, Any, Any]:
    """Return ``theta``, ``W`` (n by 2m) and ``M`` (2m by 2m) with ``B = theta I - W M W^T``.

    With ``S`` and ``Y`` the stored pairs as columns (oldest first),
    ``D = diag(S^T Y)`` and ``L`` the strictly lower triangle of ``S^T Y``,
    (Byrd et al. 1995, eq. 3.3-3.4)

        M = [[-D, L^T], [L, theta S^T S]]^-1.

    An empty slot has a zero row and column in that matrix. A -1 (upper
    block) or 1 (lower block) on its diagonal keeps the matrix invertible,
    and the slot's zero column of ``W`` keeps it out of ``B``.
    """
    s, y = memory["s"], memory["y"]
    m = s.shape[0]
    newest_ys, newest_yy = newest_ratio(memory)
    theta = dx.where(newest_ys > 0.0, newest_yy / dx.where(newest_ys > 0.0, newest_ys, 1.0), 1.0)

    sy = dx.matmul(s, dx.matrix_transpose(y))
    ss = dx.matmul(s, dx.matrix_transpose(s))
    diagonal = dx.linalg.diagonal(sy)
    stored = diagonal > 0.0
    identity = dx.eye(m, dtype=x.dtype, backend=backend_name(x))
    upper_left = -identity * dx.where(stored, diagonal, 1.0)[None, :]
    lower_right = theta * ss + identity * dx.astype(~stored, x.dtype)[None, :]
    lower_left = dx.tril(sy, k=-1)
    middle = dx.concat(
        [
            dx.concat([upper_left, dx.matrix_transpose(lower_left)], axis=1),
            dx.concat([lower_left, lower_right], axis=1),
        ],
        axis=0,
    )
    w = dx.concat([dx.matrix_transpose(y), theta * dx.matrix_transpose(s)], axis=1)
    m_matrix = _solve(middle, dx.eye(2 * m, dtype=x.dtype, backend=backend_name(x)))
    return theta, w, m_matrix


def _suffix_sums(v: Any) -> Any:
    """Return ``out[k] = sum(v[k:])`` along axis 0 for ``k = 0..len(v)``, the last being zero."""
    sums = dx.flip(dx.cumulative_sum(dx.flip(v, axis=0), axis=0), axis=0)
    return dx.concat([sums, dx.zeros_like(v[:1])], axis=0)


def _prefix_sums(v: Any) -> Any:
    """Return ``out[k] = sum(v[:k])`` along axis 0 for ``k = 0..len(v)``, the first being zero."""
    return dx.cumulative_sum(v, axis=0, include_initial=True)


def cauchy_point(x: Any, g: Any, box: Box, theta: Any, w: Any, m_matrix: Any) -> tuple[Any, Any]:
    """Return the generalised Cauchy point and ``c = W^T (x_cp - x)`` (Byrd et al. 1995, section 4).

    Along ``x(t) = P(x - t g)`` coordinate ``i`` stops at its bound at the
    breakpoint ``t_i``. Sorted, the breakpoints cut the path into segments.
    On segment ``k``, which starts at ``t_k``, the coordinates of the first
    ``k`` breakpoints are fixed and the direction is ``d_k = -g`` on the
    others. With ``p_k = W^T d_k`` and ``c_k = W^T (x(t_k) - x)`` the model's
    slope and curvature at the segment's start are (eq. 4.4-4.5)

        f'_k  = g.d_k + theta t_k |d_k|^2 - p_k . M c_k,   (g.d_k = -|d_k|^2)
        f''_k = theta |d_k|^2 - p_k . M p_k,

    and the model's minimiser on the segment is ``t_k - f'_k / f''_k``. The
    Cauchy point is the first segment's minimiser that lies inside its
    segment (or the start of the segment, when the slope there is already
    non-negative).
    """
    lower, upper = box.lower, box.upper
    negative = g < 0.0
    positive = g > 0.0
    safe_g = dx.where(negative | positive, g, 1.0)
    breakpoints = dx.where(negative, (x - upper) / safe_g, dx.where(positive, (x - lower) / safe_g, math.inf))

    order = dx.argsort(breakpoints)
    t_sorted = dx.take(breakpoints, order)
    g_sorted = dx.take(g, order)
    w_sorted = dx.take(w, order, axis=0)
    t_finite = dx.where(dx.isfinite(t_sorted), t_sorted, 0.0)

    # Segment k runs from start[k] to end[k], and the coordinates sorted before k are fixed on it.
    start = dx.concat([dx.zeros_like(t_sorted[:1]), t_sorted])
    end = dx.concat([t_sorted, dx.full_like(t_sorted[:1], math.inf)])
    reached = dx.isfinite(start)
    start = dx.where(reached, start, 0.0)

    free_norm2 = _suffix_sums(g_sorted * g_sorted)
    p = -_suffix_sums(g_sorted[:, None] * w_sorted)
    c = -_prefix_sums((t_finite * g_sorted)[:, None] * w_sorted) + start[:, None] * p
    mp = dx.matmul(p, m_matrix)
    slope = -free_norm2 + theta * start * free_norm2 - dx.sum(mp * c, axis=1)
    curvature = theta * free_norm2 - dx.sum(mp * p, axis=1)
    # Rounding can make the curvature of a nearly fixed path tiny or
    # negative, so it is bounded below by eps times the first segment's, as
    # in the L-BFGS-B 3.0 Fortran code (subroutine cauchy).
    eps = float(dx.finfo(x.dtype).eps)
    curvature = dx.maximum(curvature, eps * curvature[0])

    positive_curvature = curvature > 0.0
    to_minimum = dx.where(positive_curvature, -slope / dx.where(positive_curvature, curvature, 1.0), 0.0)
    stops = reached & ((to_minimum < end - start) | ~dx.isfinite(end))
    candidates = start + dx.maximum(to_minimum, 0.0)
    t_cauchy = dx.min(dx.where(stops, candidates, math.inf))

    x_cauchy = box.project(x - t_cauchy * g)
    return x_cauchy, dx.matmul(x_cauchy - x, w)


def subspace_minimum(x: Any, g: Any, box: Box, theta: Any, w: Any, m_matrix: Any, x_cauchy: Any, c: Any) -> Any:
    """Return the model's minimiser over the free coordinates, shortened to stay in the box.

    The direct primal method (Byrd et al. 1995, section 5.1): with ``Z`` the
    free coordinates at the Cauchy point, the reduced gradient is
    ``r = Z^T (g + theta (x_cp - x) - W M c)`` and the reduced Hessian
    ``theta I - Z^T W M W^T Z``, whose inverse the Sherman-Morrison-Woodbury
    formula gives (eq. 5.11):

        d = -r / theta - Z^T W (I - M W^T Z Z^T W / theta)^-1 M W^T Z r / theta^2.

    The step ``x_cp + a d`` is then cut back to the largest ``a <= 1`` that
    stays in the box. Here ``Z`` is a mask over the full vector.
    """
    free = (x_cauchy > box.lower) & (x_cauchy < box.upper)
    reduced_grad = g + theta * (x_cauchy - x) - dx.matmul(w, dx.matmul(m_matrix, c))
    reduced_grad = dx.where(free, reduced_grad, 0.0)

    w_free = dx.where(free[:, None], w, 0.0)
    size = m_matrix.shape[0]
    identity = dx.eye(size, dtype=x.dtype, backend=backend_name(x))
    inner = identity - dx.matmul(m_matrix, dx.matmul(dx.matrix_transpose(w), w_free)) / theta
    v = _solve(inner, dx.matmul(m_matrix, dx.matmul(reduced_grad, w)))
    step = -reduced_grad / theta - dx.matmul(w, v) / (theta * theta)
    step = dx.where(free, step, 0.0)

    fraction = dx.minimum(box.max_step(x_cauchy, step), 1.0)
    return box.project(x_cauchy + fraction * step)


@dataclasses.dataclass(frozen=True)
class LBFGSB(QuasiNewton):
    r"""L-BFGS-B: limited-memory BFGS for ``lower <= x <= upper``.

    Each iteration finds the generalised Cauchy point of the quadratic model
    with the compact limited-memory matrix ``B = theta I - W M W^T`` along
    the projected steepest-descent path. It then minimises the model over the
    coordinates still free there (direct primal method) and searches the
    line towards that point, up to the edge of the box, for a step satisfying
    the strong Wolfe conditions (Byrd, Lu, Nocedal & Zhu, SIAM J. Sci.
    Comput. 16(5), 1995). Convergence is measured by the projected gradient
    :math:`\|P(x - g) - x\|_\infty \le` ``tol``.

    Without bounds it is an L-BFGS method, with a different initial scaling
    from :class:`LBFGS`'s.

    Attributes:
        history_size: the number of curvature pairs kept, ``m``.
        ftol: stop when a step lowers the objective by at most
            ``ftol * max(|f_old|, |f_new|, 1)``. The default, ``2.2e-9``, is
            SciPy's (``factr = 1e7`` times the float64 machine epsilon); it
            ends runs whose gradient tolerance rounding makes unreachable.

    The other attributes are the shared settings: ``tol``, ``max_iter``,
    ``c1``, ``c2``, ``max_line_search_evals``.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> solver = optim.LBFGSB(tol=1e-10)
        >>> result = solver.minimize(lambda x: (x[0] - 2.0) ** 2 + (x[1] + 1.0) ** 2, np.zeros(2), bounds=(0.0, 1.0))
        >>> result.x.tolist()
        [1.0, 0.0]
    """

    history_size: int = 10
    ftol: float = 2.2e-9

    name: ClassVar[str] = "lbfgs-b"
    supports_bounds: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive_int(type(self).__name__, "history_size", self.history_size, 1)

    def init_memory(self, x: Any) -> Any:
        return empty_pairs(x, self.history_size)

    def direction(self, memory: Any, x: Any, grad: Any, box: Box | None) -> tuple[Any, Any]:
        if box is None:
            box = Box(dx.full_like(x, -math.inf), dx.full_like(x, math.inf))
        theta, w, m_matrix = compact_form(memory, x)
        x_cauchy, c = cauchy_point(x, grad, box, theta, w, m_matrix)
        target = subspace_minimum(x, grad, box, theta, w, m_matrix, x_cauchy, c)
        direction = target - x
        # The target lies in the box, so a step of 1 is feasible (up to rounding).
        return direction, dx.maximum(box.max_step(x, direction), 1.0)

    def first_step(self, direction: Any, empty: Any, box: Box | None) -> Any:
        """Return 1 when every coordinate has two finite bounds, else the shared rule.

        In a finite box the step of 1 reaches the minimiser of the model over
        the box, whose size bounds it, so it is tried even with an empty
        memory, as in the L-BFGS-B 3.0 Fortran code (subroutine lnsrlb).
        """
        shared = super().first_step(direction, empty, box)
        if box is None:
            return shared
        boxed = dx.all(dx.isfinite(box.lower) & dx.isfinite(box.upper))
        return dx.where(boxed, 1.0, shared)

    def update(self, memory: Any, s: Any, y: Any, kept: Any, empty: Any) -> Any:
        return push_pair(memory, s, y, kept)
