"""The iteration that BFGS, L-BFGS and L-BFGS-B share.

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

The state of a run is a :class:`QuasiNewtonState`; ``minimize`` loops over it
with ``dx.while_loop``, and ``init``/``step`` expose one iteration at a time.
Branches are ``dx.where`` selections, so one code path runs as Python on
NumPy, as ``jax.lax`` on JAX, and inside ``dx.jit``. A method subclasses
:class:`QuasiNewton` and writes ``init_memory``, ``direction`` and
``update``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx

from ._line_search import strong_wolfe
from ._quasi_newton_bounds import Box, parse_bounds
from ._quasi_newton_result import RUNNING, MinimizeResult, Status
from ._quasi_newton_tree import FlatView


class QuasiNewtonState(dx.Module):
    """The state of a quasi-Newton run between iterations (see :meth:`QuasiNewton.step`).

    Attributes:
        x: the current point, flattened to one vector.
        f: the objective at ``x``.
        g: its gradient at ``x``, flattened.
        grad_norm: the infinity norm of the (projected) gradient.
        memory: the method's curvature information.
        empty: whether the memory contains no curvature pair.
        n_iter: the number of accepted steps.
        n_fev: the number of evaluations of the objective and its gradient.
        status: ``-1`` while running, else a :class:`Status` code.
        lower: the flat lower bounds, or ``None`` without bounds.
        upper: the flat upper bounds, or ``None``.
        view: the layout of ``x0``, to unflatten ``x`` and ``g``.
    """

    x: Any
    f: Any
    g: Any
    grad_norm: Any
    memory: Any
    empty: Any
    n_iter: Any
    n_fev: Any
    status: Any
    lower: Any
    upper: Any
    view: FlatView = dx.field(static=True)

    @property
    def params(self) -> Any:
        """The current point with the structure of ``x0``."""
        return self.view.unravel(self.x)

    @property
    def done(self) -> bool:
        """Whether the run has stopped (needs a concrete ``status``, so not inside ``dx.jit``)."""
        return bool(self.status != RUNNING)

    @property
    def box(self) -> Box | None:
        return None if self.lower is None else Box(self.lower, self.upper)


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

        ``empty`` is true while the memory contains no pair.
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

    def init(
        self, fun: Callable[..., Any], x0: Any, *, args: tuple[Any, ...] = (), bounds: Any = None
    ) -> QuasiNewtonState:
        """Evaluate ``fun`` at ``x0`` and return the state before the first iteration.

        With :meth:`step` and :meth:`result` this runs the method one
        iteration at a time, to log progress or stop on a criterion of your
        own. The arguments are those of :meth:`minimize`.

        Examples:
            >>> import numpy as np
            >>> import difflux.core as dx
            >>> from difflux import optim
            >>> def rosenbrock(x):
            ...     return dx.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
            >>> solver = optim.LBFGS(tol=1e-8)
            >>> state = solver.init(rosenbrock, np.array([-1.2, 1.0]))
            >>> while not state.done:
            ...     state = solver.step(rosenbrock, state)
            >>> np.round(state.params, 6).tolist(), bool(solver.result(state).success)
            ([1.0, 1.0], True)
        """
        view, lower, upper = self._check_arguments(f"{type(self).__name__}.init", fun, x0, args, bounds)
        return self._start(fun, view, lower, upper, args)

    def step(self, fun: Callable[..., Any], state: QuasiNewtonState, *, args: tuple[Any, ...] = ()) -> QuasiNewtonState:
        """Run one iteration; a state that has stopped comes back unchanged.

        An iteration is one line search: usually an accepted step, or, after
        a failed search with a non-empty memory, the cleared memory. ``fun``
        and ``args`` must be those given to :meth:`init`. ``dx.jit(solver.step)``
        compiles it on JAX.
        """
        evaluate = state.view.value_and_grad(fun, args)
        return dx.cond(state.status == RUNNING, lambda s: self._iterate(s, evaluate), lambda s: s, state)

    def result(self, state: QuasiNewtonState) -> MinimizeResult:
        """Return the result for ``state``, with ``x`` and ``grad`` in the structure of ``x0``."""
        status = state.status
        return MinimizeResult(
            x=state.view.unravel(state.x),
            fun=state.f,
            grad=state.view.unravel(state.g),
            grad_norm=state.grad_norm,
            n_iter=state.n_iter,
            n_fev=state.n_fev,
            success=(status == int(Status.CONVERGED)) | (status == int(Status.SMALL_REDUCTION)),
            status=status,
            method=self.name,
            tol=float(self.tol),
            ftol=float(self.ftol),
            max_iter=int(self.max_iter),
        )

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
        _, lower, upper = self._check_arguments(f"{type(self).__name__}.minimize", fun, x0, args, bounds)
        run = _solve_jit if jit else _solve
        return run(self, fun, x0, lower, upper, args)

    def solve(self, fun: Callable[..., Any], x0: Any, lower: Any, upper: Any, args: tuple[Any, ...]) -> MinimizeResult:
        """Run the whole iteration; ``lower`` and ``upper`` are flat bound vectors or ``None``."""
        view = FlatView(x0, type(self).__name__)
        evaluate = view.value_and_grad(fun, args)
        state = self._start(fun, view, lower, upper, args)
        final = dx.while_loop(lambda s: s.status == RUNNING, lambda s: self._iterate(s, evaluate), state)
        return self.result(final)

    # The iteration -------------------------------------------------------------

    def _check_arguments(self, owner: str, fun: Any, x0: Any, args: Any, bounds: Any) -> tuple[FlatView, Any, Any]:
        """Validate the arguments of a run; return x0's layout and the flat bounds."""
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
        return view, lower, upper

    def _start(
        self, fun: Callable[..., Any], view: FlatView, lower: Any, upper: Any, args: tuple[Any, ...]
    ) -> QuasiNewtonState:
        """Return the state at ``x0`` (projected onto the box), stopped if it is not finite or converged."""
        x = view.initial_vector()
        box = None if lower is None else Box(lower, upper)
        if box is not None:
            x = box.project(x)

        f, g = view.value_and_grad(fun, args)(x)
        grad_norm = self.grad_norm(x, g, box)
        ints = dx.zeros_like(f, dtype=dx.int32)
        finite = dx.isfinite(f) & dx.all(dx.isfinite(g))
        not_converged = RUNNING if self.max_iter > 0 else int(Status.MAX_ITER)
        status = dx.where(
            finite,
            dx.where(grad_norm <= self.tol, int(Status.CONVERGED), not_converged),
            int(Status.NON_FINITE),
        )
        return QuasiNewtonState(
            x=x,
            f=f,
            g=g,
            grad_norm=grad_norm,
            memory=self.init_memory(x),
            empty=dx.ones_like(f, dtype=dx.bool),
            n_iter=ints,
            n_fev=ints + 1,
            status=dx.astype(status, dx.int32),
            lower=lower,
            upper=upper,
            view=view,
        )

    def _iterate(self, state: QuasiNewtonState, evaluate: Callable[[Any], Any]) -> QuasiNewtonState:
        x, f, g, memory, empty = state.x, state.f, state.g, state.memory, state.empty
        box = state.box

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
        new_empty = dx.where(accepted, empty & ~kept, True)

        reduction = f - search.fun
        scale = dx.maximum(dx.maximum(dx.abs(f), dx.abs(search.fun)), 1.0)
        x = dx.where(accepted, search.x, x)
        f = dx.where(accepted, search.fun, f)
        g = dx.where(accepted, search.grad, g)
        grad_norm = self.grad_norm(x, g, box)
        n_iter = state.n_iter + dx.astype(accepted, dx.int32)

        # The tests in order of precedence, as the codes of an accepted step.
        # ftol = 0 turns the reduction test off: a step that rounding leaves
        # without any decrease does not count as convergence.
        status = dx.where(n_iter >= self.max_iter, int(Status.MAX_ITER), RUNNING)
        if self.ftol > 0.0:
            status = dx.where(reduction <= self.ftol * scale, int(Status.SMALL_REDUCTION), status)
        status = dx.where(grad_norm <= self.tol, int(Status.CONVERGED), status)
        status = dx.where(accepted, status, dx.where(empty, int(Status.LINE_SEARCH_FAILED), RUNNING))

        return dx.replace(
            state,
            x=x,
            f=f,
            g=g,
            grad_norm=grad_norm,
            memory=memory,
            empty=new_empty,
            n_iter=n_iter,
            n_fev=state.n_fev + search.n_fev,
            status=dx.astype(status, dx.int32),
        )


def _solve(
    method: QuasiNewton, fun: Callable[..., Any], x0: Any, lower: Any, upper: Any, args: tuple[Any, ...]
) -> MinimizeResult:
    return method.solve(fun, x0, lower, upper, args)


# The method (compared by value) and fun (by identity) are static, so they key
# the cache of compiled runs. x0, the bounds and the array leaves of args are traced.
_solve_jit = dx.jit(_solve)
