"""The iteration that BFGS, L-BFGS and L-BFGS-B share, and its result.

A quasi-Newton method keeps a *memory* (an inverse-Hessian matrix, or the
last curvature pairs ``s = x_{k+1} - x_k``, ``y = g_{k+1} - g_k``) and turns
it into a search direction. Everything else is common and lives here:

1. evaluate ``f`` and its gradient at ``x0`` (projected onto the box, if
   any) and stop at once when they are not finite or already converged;
2. repeat: ask the method for a direction, search it for a step that
   satisfies the strong Wolfe conditions, and store the new curvature pair.
   Stop when the (projected) gradient's infinity norm is at most ``tol``,
   when a step lowers ``f`` by at most ``ftol`` relative to ``|f|`` (the
   test of L-BFGS-B, off by default in BFGS and L-BFGS), or after
   ``max_iter`` iterations.

When a line search fails, the memory may be to blame (a poor direction from
stale curvature), so it is cleared and the iteration tried again from a
steepest-descent direction, as L-BFGS-B does (Byrd, Lu, Nocedal & Zhu 1995).
A failure with an empty memory ends the run.

The loop is a ``dx.while_loop`` over a state dict and branches are
``dx.where`` selections, so one code path runs as Python on NumPy, as
``jax.lax`` on JAX, and inside ``dx.jit``. A method subclasses
:class:`QuasiNewton` and writes ``init_memory``, ``direction`` and
``update``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx

from ._line_search import strong_wolfe
from ._quasi_newton_bounds import Box, parse_bounds
from ._quasi_newton_tree import FlatView

_RUNNING = -1


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


def curvature_kept(s: Any, y: Any, grad: Any) -> Any:
    """Return whether the step ``s`` with gradient change ``y`` is worth storing.

    The test is ``s . y > eps * (-grad . s)``, that of the L-BFGS-B 3.0
    Fortran code (``mainlb``): positive curvature keeps the approximation
    positive definite, and the margin, scaled by the decrease the step
    promised, rejects pairs that rounding has made meaningless.
    """
    ys = dx.sum(y * s)
    decrease = -dx.sum(grad * s)
    eps = float(dx.finfo(ys.dtype).eps)
    return dx.isfinite(ys) & dx.isfinite(decrease) & (ys > eps * decrease) & (ys > 0.0)


def _check_positive_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class QuasiNewton:
    """Base of the quasi-Newton methods: settings, the shared iteration and ``minimize``.

    Attributes:
        tol: stop when the infinity norm of the gradient (projected gradient
            with bounds) is at most ``tol``.
        ftol: stop when a step lowers the objective by at most
            ``ftol * max(|f_old|, |f_new|, 1)``; 0 turns the test off.
        max_iter: the maximum number of iterations.
        c1: the line search's sufficient-decrease constant.
        c2: the line search's curvature constant.
        max_line_search_evals: the maximum number of evaluations in one line search.
    """

    tol: float = 1e-5
    ftol: float = 0.0
    max_iter: int = 1000
    c1: float = 1e-4
    c2: float = 0.9
    max_line_search_evals: int = 20

    #: The name in messages and in ``MinimizeResult.method``.
    name: ClassVar[str] = "quasi-Newton"
    #: Whether the method accepts bounds.
    supports_bounds: ClassVar[bool] = False

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name in ("tol", "ftol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < math.inf:
                raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}.")
        _check_positive_int(owner, "max_iter", self.max_iter, 0)
        _check_positive_int(owner, "max_line_search_evals", self.max_line_search_evals, 1)
        if not 0.0 < self.c1 < self.c2 < 1.0:
            raise ValueError(
                f"{owner}: the line-search constants must satisfy 0 < c1 < c2 < 1, got c1={self.c1} and c2={self.c2}."
            )

    # The method: subclasses write these three ---------------------------------

    def init_memory(self, x: Any) -> Any:
        """Return the empty memory for vectors like ``x``."""
        raise NotImplementedError

    def direction(self, memory: Any, x: Any, grad: Any, box: Box | None) -> tuple[Any, Any]:
        """Return the search direction at ``x`` and the longest step allowed along it."""
        raise NotImplementedError

    def update(self, memory: Any, s: Any, y: Any, kept: Any, empty: Any) -> Any:
        """Return the memory with the curvature pair ``(s, y)`` stored if ``kept``.

        ``empty`` tells whether the memory holds no pair yet.
        """
        raise NotImplementedError

    # Shared ------------------------------------------------------------------

    def grad_norm(self, x: Any, grad: Any, box: Box | None) -> Any:
        """Return the infinity norm of the gradient, projected onto the box when there is one."""
        if box is not None:
            grad = x - box.project(x - grad)
        return dx.max(dx.abs(grad))

    def first_step(self, direction: Any, empty: Any, box: Box | None) -> Any:
        """Return the line search's first trial step along ``direction``.

        With an empty memory the direction is about steepest descent, whose
        length is no guide to a good step, so the first trial moves at most a
        distance of 1. Otherwise the quasi-Newton step, 1, is tried.
        """
        length = dx.sqrt(dx.sum(direction * direction))
        long = empty & (length > 1.0)
        return dx.where(long, 1.0 / dx.where(long, length, 1.0), 1.0)

    def minimize(
        self,
        fun: Callable[..., Any],
        x0: Any,
        *,
        args: tuple[Any, ...] = (),
        bounds: Any = None,
        jit: bool = False,
    ) -> MinimizeResult:
        """Minimise ``fun(x, *args)`` from ``x0``; see :func:`difflux.optim.minimize`."""
        owner = f"{type(self).__name__}.minimize"
        if not callable(fun):
            raise TypeError(f"{owner}: fun must be callable, got {type(fun).__name__}.")
        if not isinstance(args, tuple):
            raise TypeError(f"{owner}: args must be a tuple of extra arguments of fun, got {type(args).__name__}.")
        if bounds is not None and not self.supports_bounds:
            raise ValueError(
                f"{owner}: {self.name} does not handle bounds. Use method='lbfgs-b' (optim.LBFGSB) for "
                "bound constraints, or drop bounds."
            )
        view = FlatView(x0, owner)
        lower, upper = parse_bounds(bounds, view, owner) if bounds is not None else (None, None)
        run = _solve_jit if jit else _solve
        return run(self, fun, x0, lower, upper, args)

    def solve(self, fun: Callable[..., Any], x0: Any, lower: Any, upper: Any, args: tuple[Any, ...]) -> MinimizeResult:
        """Run the iteration; ``lower`` and ``upper`` are flat bound vectors or ``None``."""
        view = FlatView(x0, type(self).__name__)
        evaluate = view.value_and_grad(fun, args)
        x = view.initial_vector()
        box = Box(lower, upper) if lower is not None else None
        if box is not None:
            x = box.project(x)

        # The start: stop at once if it is not finite or already converged.
        f, g = evaluate(x)
        grad_norm = self.grad_norm(x, g, box)
        ints = dx.zeros_like(f, dtype=dx.int32)
        finite = dx.isfinite(f) & dx.all(dx.isfinite(g))
        not_converged = _RUNNING if self.max_iter > 0 else int(Status.MAX_ITER)
        status = dx.where(
            finite,
            dx.where(grad_norm <= self.tol, int(Status.CONVERGED), not_converged),
            int(Status.NON_FINITE),
        )
        state = {
            "x": x,
            "f": f,
            "g": g,
            "grad_norm": grad_norm,
            "memory": self.init_memory(x),
            "empty": dx.ones_like(f, dtype=dx.bool),
            "n_iter": ints,
            "n_fev": ints + 1,
            "status": dx.astype(status, dx.int32),
        }
        final = dx.while_loop(lambda s: s["status"] == _RUNNING, lambda s: self._iterate(s, evaluate, box), state)

        return MinimizeResult(
            x=view.unravel(final["x"]),
            fun=final["f"],
            grad=view.unravel(final["g"]),
            grad_norm=final["grad_norm"],
            n_iter=final["n_iter"],
            n_fev=final["n_fev"],
            success=(final["status"] == int(Status.CONVERGED)) | (final["status"] == int(Status.SMALL_REDUCTION)),
            status=final["status"],
            method=self.name,
            tol=float(self.tol),
            ftol=float(self.ftol),
            max_iter=int(self.max_iter),
        )

    def _iterate(self, state: dict[str, Any], evaluate: Callable[[Any], Any], box: Box | None) -> dict[str, Any]:
        x, f, g, memory, empty = state["x"], state["f"], state["g"], state["memory"], state["empty"]

        direction, max_step = self.direction(memory, x, g, box)
        first_step = self.first_step(direction, empty, box)
        search = strong_wolfe(
            evaluate,
            x,
            direction,
            f,
            g,
            initial_step=dx.minimum(first_step, max_step),
            max_step=max_step,
            project=None if box is None else box.project,
            c1=self.c1,
            c2=self.c2,
            max_evals=self.max_line_search_evals,
        )
        accepted = search.success

        # A successful step stores its curvature pair; a failed one clears
        # the memory, so the next iteration tries steepest descent.
        s = search.x - x
        y = search.grad - g
        kept = curvature_kept(s, y, g)
        updated = self.update(memory, s, y, kept, empty)
        cleared = self.init_memory(x)
        memory = dx.tree_map(lambda new, old: dx.where(accepted, new, old), updated, cleared)
        empty = dx.where(accepted, empty & ~kept, True)

        reduction = f - search.fun
        scale = dx.maximum(dx.maximum(dx.abs(f), dx.abs(search.fun)), 1.0)
        x = dx.where(accepted, search.x, x)
        f = dx.where(accepted, search.fun, f)
        g = dx.where(accepted, search.grad, g)
        grad_norm = self.grad_norm(x, g, box)
        n_iter = state["n_iter"] + dx.astype(accepted, dx.int32)

        # The tests in order of precedence, as the codes of an accepted step.
        # ftol = 0 turns the reduction test off: a step that rounding leaves
        # without any decrease does not count as convergence.
        status = dx.where(n_iter >= self.max_iter, int(Status.MAX_ITER), _RUNNING)
        if self.ftol > 0.0:
            status = dx.where(reduction <= self.ftol * scale, int(Status.SMALL_REDUCTION), status)
        status = dx.where(grad_norm <= self.tol, int(Status.CONVERGED), status)
        status = dx.where(accepted, status, dx.where(state["empty"], int(Status.LINE_SEARCH_FAILED), _RUNNING))
        return {
            "x": x,
            "f": f,
            "g": g,
            "grad_norm": grad_norm,
            "memory": memory,
            "empty": empty,
            "n_iter": n_iter,
            "n_fev": state["n_fev"] + search.n_fev,
            "status": dx.astype(status, dx.int32),
        }


def _solve(
    method: QuasiNewton, fun: Callable[..., Any], x0: Any, lower: Any, upper: Any, args: tuple[Any, ...]
) -> MinimizeResult:
    return method.solve(fun, x0, lower, upper, args)


# The method (compared by value) and fun (by identity) are static, so they key
# the cache of compiled runs. x0, the bounds and the array leaves of args are traced.
_solve_jit = dx.jit(_solve)
