"""The outcome of a quasi-Newton run: the status codes and :class:`MinimizeResult`."""

from __future__ import annotations

import enum
import sys
from typing import Any

import difflux.core as dx

# The status of a run that has not stopped yet (never in a MinimizeResult).
RUNNING = -1


class Status(enum.IntEnum):
    """The reason a quasi-Newton run stopped (``MinimizeResult.status``)."""

    #: The (projected) gradient's infinity norm is at most ``tol``.
    CONVERGED = 0
    #: ``max_iter`` iterations ran without convergence.
    MAX_ITER = 1
    #: No step satisfying the strong Wolfe conditions was found, even along
    #: steepest descent; often ``tol`` is below what rounding allows.
    LINE_SEARCH_FAILED = 2
    #: The objective or its gradient is not finite at ``x0``.
    NON_FINITE = 3
    #: A step lowered the objective by at most ``ftol * max(|f|, 1)``.
    SMALL_REDUCTION = 4


class MinimizeResult(dx.Module):
    """The outcome of :func:`minimize` or of a method's ``minimize``.

    Attributes:
        x: the solution, with the structure of ``x0``.
        fun: the objective at ``x``.
        grad: the gradient at ``x``, with the structure of ``x0``.
        grad_norm: the infinity norm of the gradient at ``x``; with bounds,
            of the projected gradient ``P(x - grad) - x``.
        n_iter: the number of iterations (accepted steps).
        n_fev: the number of evaluations of the objective and its gradient.
        success: whether the run converged (``status`` 0 or 4).
        status: a :class:`Status` code.
        method: the method's name.
        tol: the convergence tolerance on ``grad_norm``.
        ftol: the tolerance on the relative reduction of the objective.
        max_iter: the iteration limit.

    Every array attribute is an array (0-d for the scalars), so results pass
    out of ``dx.jit``; ``message`` turns ``status`` into words.
    """

    x: Any
    fun: Any
    grad: Any
    grad_norm: Any
    n_iter: Any
    n_fev: Any
    success: Any
    status: Any
    method: str = dx.field(static=True)
    tol: float = dx.field(static=True)
    ftol: float = dx.field(static=True)
    max_iter: int = dx.field(static=True)

    @property
    def message(self) -> str:
        """Why the run stopped, in words."""
        jax = sys.modules.get("jax")
        if jax is not None and isinstance(self.status, jax.core.Tracer):
            return "unknown until the compiled function runs: status is traced inside dx.jit"
        status = int(self.status)
        if status == Status.CONVERGED:
            return f"gradient norm {float(self.grad_norm):.1e} below tol {self.tol:.0e}"
        if status == Status.MAX_ITER:
            return f"maximum number of iterations reached (max_iter={self.max_iter})"
        if status == Status.LINE_SEARCH_FAILED:
            return "line search failed to find a point satisfying the strong Wolfe conditions"
        if status == Status.NON_FINITE:
            return f"the objective or its gradient is not finite at x0 (objective {float(self.fun)})"
        if status == Status.SMALL_REDUCTION:
            return f"relative reduction of the objective below ftol {self.ftol:.1e}"
        return f"unknown status {status}"
