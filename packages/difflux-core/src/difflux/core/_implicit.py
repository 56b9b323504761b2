"""Implicit differentiation of roots and fixed points.

When ``x*(theta)`` is defined by an optimality condition
``F(x*(theta), theta) = 0``, the implicit function theorem gives its
derivative without differentiating the solver's iterations:

    A dx* = -B dtheta,    A = dF/dx,    B = dF/dtheta,    both at (x*, theta).

Forward mode solves ``A w = -B t`` for each tangent ``t``. Reverse mode solves
the adjoint system ``A^T u = g`` and returns ``theta_bar = -B^T u``, a
vector-Jacobian product of ``F``. ``A`` and ``B`` are only ever applied
through difflux's own JVPs and VJPs of ``F`` (or materialised from them for a
dense solve), so any differentiable ``F`` works and the rules differentiate
again. This is the recipe of Blondel et al., "Efficient and Modular Implicit
Differentiation", NeurIPS 2022.

``custom_root`` attaches these rules to any solver. ``root`` and
``fixed_point`` pair them with built-in solvers: Newton's method and plain
fixed-point iteration.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ._api import _is_float_leaf, jacobian, jvp, pullback
from ._backend import backend_of_value, namespace
from ._core import value_of
from ._custom import CustomRuleError, _Call, _CustomFunction, has_tracer
from ._dispatch import shape_of
from ._ops_creation import asarray, ones_like, zeros_like
from ._ops_elementwise import add, divide, equal, multiply, negative, subtract, where
from ._ops_manipulation import concat, stack
from ._ops_matmul import vecdot
from ._ops_shape import reshape
from ._tree import tree_flatten, tree_leaves, tree_map, tree_unflatten

LinearSolve = Callable[[Callable[[Any], Any], Any], Any]


# --------------------------------------------------------------------------
# Flat vectors of structures
# --------------------------------------------------------------------------


def _ravel(tree: Any, what: str) -> tuple[Any, Callable[[Any], Any]]:
    """Concatenate the float leaves of ``tree`` into one vector.

    Returns the vector and the function mapping a vector back to ``tree``'s
    structure. Written in difflux operations, so tracers pass through.
    """
    leaves, treedef = tree_flatten(tree)
    if not leaves:
        raise ValueError(f"{what} is empty; the solver needs at least one unknown")
    for leaf in leaves:
        if not _is_float_leaf(leaf):
            raise TypeError(
                f"{what} has a leaf of type {type(value_of(leaf)).__name__}; every leaf of the unknowns "
                "and of the optimality function's output must be a float array."
            )
    leaves = [asarray(leaf) if isinstance(leaf, float) else leaf for leaf in leaves]
    shapes = [shape_of(leaf) for leaf in leaves]
    sizes = [math.prod(shape) for shape in shapes]
    vector = (
        reshape(leaves[0], (sizes[0],))
        if len(leaves) == 1
        else concat([reshape(leaf, (size,)) for leaf, size in zip(leaves, sizes)])
    )

    def unravel(v: Any) -> Any:
        if len(leaves) == 1:
            return tree_unflatten(treedef, [reshape(v, shapes[0])])
        pieces, start = [], 0
        for shape, size in zip(shapes, sizes):
            pieces.append(reshape(v[start : start + size], shape))
            start += size
        return tree_unflatten(treedef, pieces)

    return vector, unravel


def _split_floats(tree: Any) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    """The float leaves of ``tree`` and a function rebuilding ``tree`` from new ones."""
    leaves, treedef = tree_flatten(tree)
    positions = [i for i, leaf in enumerate(leaves) if _is_float_leaf(leaf)]

    def rebuild(floats: list[Any]) -> Any:
        new = list(leaves)
        for i, value in zip(positions, floats):
            new[i] = value
        return tree_unflatten(treedef, new)

    return [leaves[i] for i in positions], rebuild


# --------------------------------------------------------------------------
# Linear solvers: solve(matvec, b) -> x with matvec(x) = b
# --------------------------------------------------------------------------


def _dense_solve(matvec: Callable[[Any], Any], b: Any) -> Any:
    """Materialise the matrix column by column (one ``matvec`` each) and solve.

    The cost is ``n`` products plus one dense factorisation, which suits
    systems of up to a few hundred unknowns.
    """
    from .linalg import solve

    n = shape_of(b)[0]
    eye = namespace(backend_of_value(value_of(b)) or "numpy").eye(n, dtype=value_of(b).dtype)
    columns = [matvec(eye[i]) for i in range(n)]
    return solve(stack(columns, axis=1), b)


def _safe_divide(a: Any, b: Any) -> Any:
    """``a / b``, and 0 where ``b`` is 0 (the iteration has then converged)."""
    zero = equal(b, 0.0)
    return where(zero, 0.0, divide(a, where(zero, 1.0, b)))


def _is_concrete(x: Any) -> bool:
    jax = sys.modules.get("jax")
    return jax is None or not isinstance(value_of(x), jax.core.Tracer)


def _bicgstab(matvec: Callable[[Any], Any], b: Any, rtol: float | None = None, maxiter: int | None = None) -> Any:
    """Solve ``matvec(x) = b`` by BiCGSTAB (van der Vorst, 1992), matrix-free.

    Stops once ``|r| <= rtol |b|`` (``rtol`` defaults to ``eps^0.75`` of
    ``b``'s dtype). The loop is unrolled in difflux operations, so it
    differentiates again. Inside ``jax.jit`` all ``maxiter`` iterations run
    (default ``2n``, at most 200), and the iterate stays frozen after
    convergence.
    """
    n = shape_of(b)[0]
    if rtol is None:
        rtol = float(np.finfo(value_of(b).dtype).eps) ** 0.75
    if maxiter is None:
        maxiter = min(2 * n, 200)
    xp = namespace(backend_of_value(value_of(b)) or "numpy")
    threshold = rtol * xp.sqrt(xp.sum(value_of(b) ** 2))
    concrete = _is_concrete(b)

    x = zeros_like(b)
    r = b
    r_hat = value_of(b)  # any fixed vector with (r_hat, r0) != 0 will do
    one = ones_like(xp.sum(value_of(b)))  # a scalar of b's backend, so no NumPy value meets a JAX one
    rho, alpha, omega = one, one, one
    p = v = zeros_like(b)
    for _ in range(maxiter):
        done = xp.sqrt(xp.sum(value_of(r) ** 2)) <= threshold
        if concrete and bool(done):
            break
        rho_next = vecdot(r_hat, r)
        beta = multiply(_safe_divide(rho_next, rho), _safe_divide(alpha, omega))
        p = add(r, multiply(beta, subtract(p, multiply(omega, v))))
        v = matvec(p)
        alpha = _safe_divide(rho_next, vecdot(r_hat, v))
        s = subtract(r, multiply(alpha, v))
        t = matvec(s)
        omega = _safe_divide(vecdot(t, s), vecdot(t, t))
        x_next = add(x, add(multiply(alpha, p), multiply(omega, s)))
        r_next = subtract(s, multiply(omega, t))
        rho = rho_next
        if concrete:
            x, r = x_next, r_next
        else:
            x, r = where(done, x, x_next), where(done, r, r_next)
    return x


_LINEAR_SOLVES: dict[str, LinearSolve] = {"dense": _dense_solve, "bicgstab": _bicgstab}


def _linear_solve(linear_solve: str | LinearSolve) -> LinearSolve:
    if callable(linear_solve):
        return linear_solve
    if linear_solve not in _LINEAR_SOLVES:
        raise ValueError(
            f"linear_solve must be one of {sorted(_LINEAR_SOLVES)} or a function solve(matvec, b), got {linear_solve!r}"
        )
    return _LINEAR_SOLVES[linear_solve]


# --------------------------------------------------------------------------
# The implicit function
# --------------------------------------------------------------------------


class _ImplicitFunction(_CustomFunction):
    """``solver(x0, theta) -> x*`` with derivatives from the implicit function theorem."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    def __init__(
        self, solver: Callable[..., Any], optimality_fn: Callable[..., Any], linear_solve: str | LinearSolve
    ) -> None:
        super().__init__(self._checked(solver))
        self.solver = solver
        self.optimality_fn = optimality_fn
        self.linear_solve = _linear_solve(linear_solve)

    def _checked(self, solver: Callable[..., Any]) -> Callable[..., Any]:
        def solve(x0: Any, theta: Any) -> Any:
            x = solver(x0, theta)
            # A Python float in the solution would count as a constant, so it
            # becomes an array of the arguments' backend.
            backends = [backend_of_value(value_of(leaf)) for leaf in tree_leaves((x0, theta))]
            backend = next((name for name in backends if name is not None), None)
            x = tree_map(lambda leaf: asarray(leaf, backend=backend) if type(leaf) is float else leaf, x)
            # The solver runs on values no transformation traces, so a tracer
            # in its output comes from a closure.
            if has_tracer(tree_leaves(x)):
                raise CustomRuleError(
                    f"the solver or optimality function {getattr(solver, '__qualname__', solver)!r} closes over "
                    "a value being differentiated, so implicit differentiation cannot give its derivative. "
                    "Pass that value inside theta."
                )
            return x

        return solve

    @property
    def _name(self) -> str:
        return f"implicit solver {getattr(self.solver, '__qualname__', self.solver)!r}"

    def _has_vjp(self) -> bool:
        return True

    def _has_jvp(self) -> bool:
        return True

    def _primal_and_residuals(self, args: tuple[Any, ...], nested: bool) -> tuple[Any, Any]:
        x = self._dispatch(args)
        return x, (x, args[1])

    def _residual_map(self, x: Any, theta: Any) -> tuple[Any, Any, Callable[[Any], Any]]:
        """Return ``x`` as a vector, ``v -> F(v, theta)`` on vectors, and the
        function rebuilding ``F``'s output structure from a vector."""
        x_flat, unravel_x = _ravel(x, "the solution")
        f_flat, unravel_f = _ravel(self.optimality_fn(x, theta), "the optimality function's output")
        if shape_of(f_flat) != shape_of(x_flat):
            raise ValueError(
                f"the optimality function returns {shape_of(f_flat)[0]} values for {shape_of(x_flat)[0]} "
                "unknowns; implicit differentiation needs a square system (as many equations as unknowns)."
            )

        def residual(v: Any) -> Any:
            return _ravel(self.optimality_fn(unravel_x(v), theta), "the optimality function's output")[0]

        return x_flat, residual, unravel_f

    def _backward(self, nondiff: tuple[Any, ...], residuals: Any, g: Any) -> Any:
        x, theta = residuals
        x_flat, residual, unravel_f = self._residual_map(x, theta)
        g_flat, _ = _ravel(g, "the output cotangent")

        # Adjoint system A^T u = g, with A^T v a VJP of F in x.
        _, pull_x = pullback(residual, x_flat)
        u = self.linear_solve(lambda v: pull_x(v)[0], g_flat)

        # theta_bar = -B^T u, a VJP of F in theta.
        _, pull_theta = pullback(lambda th: self.optimality_fn(x, th), theta)
        theta_bar = tree_map(negative, pull_theta(unravel_f(u))[0])
        return (None, theta_bar)

    def _primal_and_tangent(
        self, call: _Call, primals: tuple[Any, ...], tangents: tuple[Any, ...], args: tuple[Any, ...], nested: bool
    ) -> tuple[Any, Any]:
        x = self._dispatch(args)
        theta = primals[1]
        x_flat, residual, _ = self._residual_map(x, theta)

        # B t, a JVP of F in theta (over theta's float leaves only).
        theta_floats, rebuild_theta = _split_floats(theta)
        tangent_floats, _ = _split_floats(tangents[1])
        _, f_tangent = jvp(
            lambda *floats: self.optimality_fn(x, rebuild_theta(list(floats))), theta_floats, tangent_floats
        )
        b_t, _ = _ravel(f_tangent, "the optimality function's tangent")

        # A w = -B t, with A w a JVP of F in x.
        w = self.linear_solve(lambda v: jvp(residual, (x_flat,), (v,))[1], negative(b_t))
        _, unravel_x = _ravel(x, "the solution")
        return x, unravel_x(w)


def custom_root(
    optimality_fn: Callable[[Any, Any], Any], *, linear_solve: str | LinearSolve = "dense"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a root solver differentiable by the implicit function theorem.

    Decorates ``solver(x0, theta) -> x`` returning a root of
    ``optimality_fn(x, theta)``. The decorated solver's derivative with respect
    to ``theta`` is ``dx/dtheta = -(dF/dx)^{-1} dF/dtheta`` at the returned
    ``x``, in forward and reverse mode and at any order. The solver itself is
    never differentiated, so it may use any code. The derivative with respect
    to ``x0`` is zero.

    Args:
        optimality_fn: ``F(x, theta)``, written in difflux operations, zero at
            the solution. Its output may be any structure with as many
            values as ``x``.
        linear_solve: how to solve the linear systems with ``dF/dx``:
            ``"dense"`` (materialise it with one JVP or VJP per unknown and
            call ``dx.linalg.solve``), ``"bicgstab"`` (matrix-free BiCGSTAB,
            unrolled, for larger systems), or a function ``solve(matvec, b)``.

    ``x`` and ``theta`` may be structures (their float leaves are the
    unknowns and the parameters). Values the derivative should flow to must be
    inside ``theta``, not closed over by ``F`` or the solver.

    Reference: Blondel et al., "Efficient and Modular Implicit
    Differentiation", NeurIPS 2022.

    Examples:
        >>> import difflux.core as dx
        >>> def F(x, a):
        ...     return x * x - a
        >>> @dx.custom_root(F)
        ... def sqrt_by_bisection(x0, a):
        ...     lo, hi = 0.0, max(1.0, float(a))
        ...     for _ in range(60):
        ...         mid = 0.5 * (lo + hi)
        ...         lo, hi = (mid, hi) if mid * mid < float(a) else (lo, mid)
        ...     return dx.asarray(0.5 * (lo + hi))
        >>> round(float(dx.grad(lambda a: sqrt_by_bisection(1.0, a))(4.0)), 6)
        0.25
    """

    def decorate(solver: Callable[..., Any]) -> Callable[..., Any]:
        return _ImplicitFunction(solver, optimality_fn, linear_solve)

    return decorate


# --------------------------------------------------------------------------
# Built-in solvers
# --------------------------------------------------------------------------


def _iterate(update: Callable[[Any], Any], v0: Any, tol: float, maxiter: int, what: str) -> Any:
    """Run ``v <- update(v)`` until ``max|dv| <= tol (1 + max|v|)``.

    Eagerly, an iteration that does not converge raises. Inside ``jax.jit``
    the loop is a ``jax.lax.while_loop`` and a solution that has not
    converged after ``maxiter`` steps is returned as NaN.
    """
    backend = backend_of_value(value_of(v0)) or "numpy"
    xp = namespace(backend)

    def relative_step(v: Any, v_next: Any) -> Any:
        return xp.max(xp.abs(v_next - v)) / (1.0 + xp.max(xp.abs(v_next)))

    if _is_concrete(v0):
        v = v0
        step = math.inf
        for _ in range(maxiter):
            v_next = update(v)
            step = float(relative_step(v, v_next))
            v = v_next
            if not math.isfinite(step):
                raise FloatingPointError(
                    f"{what} produced a non-finite iterate; start closer to the solution or check that the "
                    "problem has one."
                )
            if step <= tol:
                return v
        raise RuntimeError(
            f"{what} did not converge in {maxiter} iterations (last relative step {step:.3g}, tolerance "
            f"{tol:.3g}); raise maxiter, loosen tol, or start closer to the solution."
        )

    import jax

    def cond(state: tuple[Any, Any, Any]) -> Any:
        _, step, k = state
        return (k < maxiter) & ~(step <= tol)

    def body(state: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
        v, _, k = state
        v_next = update(v)
        return v_next, relative_step(v, v_next), k + 1

    init = (v0, xp.asarray(xp.inf, dtype=v0.dtype), 0)
    v, step, _ = jax.lax.while_loop(cond, body, init)
    return xp.where(step <= tol, v, xp.nan)


def _default_tol(x: Any, power: float) -> float:
    leaves = tree_leaves(x)
    dtype = getattr(value_of(leaves[0]), "dtype", np.float64) if leaves else np.float64
    if not np.issubdtype(dtype, np.floating):
        dtype = np.float64
    return float(np.finfo(dtype).eps) ** power


def _check_no_closure(fun: Callable[..., Any], value: Any, name: str) -> None:
    if has_tracer(tree_leaves(value)):
        raise CustomRuleError(
            f"{name}'s function {getattr(fun, '__qualname__', fun)!r} closes over a value being differentiated, "
            "so implicit differentiation cannot give its derivative. Pass that value inside theta."
        )


def _newton(residual_of: Callable[[Any], Any], x0: Any, tol: float, maxiter: int, what: str) -> Any:
    """Newton's method on the flattened unknowns, with a dense Jacobian."""
    from .linalg import solve

    x0_flat, unravel = _ravel(x0, "x0")
    residual = lambda v: _ravel(residual_of(unravel(v)), "the function's output")[0]  # noqa: E731
    if shape_of(residual(x0_flat)) != shape_of(x0_flat):
        raise ValueError(
            f"{what}: the function returns {shape_of(residual(x0_flat))[0]} values for {shape_of(x0_flat)[0]} "
            "unknowns; Newton's method needs as many equations as unknowns."
        )

    def update(v: Any) -> Any:
        return subtract(v, solve(jacobian(residual, mode="forward")(v), residual(v)))

    return unravel(_iterate(update, x0_flat, tol, maxiter, what))


def _fixed_point_iteration(map_of: Callable[[Any], Any], x0: Any, tol: float, maxiter: int, what: str) -> Any:
    x0_flat, unravel = _ravel(x0, "x0")
    return unravel(_iterate(lambda v: _ravel(map_of(unravel(v)), "the map's output")[0], x0_flat, tol, maxiter, what))


def root(
    F: Callable[[Any, Any], Any],  # noqa: N803 (the mathematical name)
    x0: Any,
    theta: Any,
    *,
    solver: str | Callable[[Callable[[Any], Any], Any], Any] = "newton",
    linear_solve: str | LinearSolve = "dense",
    tol: float | None = None,
    maxiter: int = 50,
) -> Any:
    """Solve ``F(x, theta) = 0`` for ``x``, differentiable in ``theta`` by the
    implicit function theorem.

    Args:
        F: the equations, written in difflux operations; its output has as
            many values as ``x``.
        x0: the starting point (an array or a structure of arrays).
        theta: the parameters (any structure). Derivatives flow to its float
            leaves only, so any value that ``F`` depends on and that needs a
            derivative belongs here rather than in a closure.
        solver: ``"newton"`` (Newton's method with a dense Jacobian, for up to
            a few hundred unknowns) or a function ``solver(fun, x0) -> x``
            finding a root of ``fun(x) = F(x, theta)``.
        linear_solve: how the derivative rules solve with ``dF/dx``; see
            :func:`custom_root`.
        tol: Newton stops once the relative step ``max|dx| / (1 + max|x|)`` is
            at most ``tol``; default ``sqrt(eps)`` of ``x0``'s dtype, which
            after the last quadratically convergent step leaves an error near
            ``eps``.
        maxiter: the maximum number of Newton steps.

    Returns:
        the solution, with ``x0``'s structure. A Newton iteration that does not
        converge raises ``RuntimeError``; inside ``jax.jit``, where it cannot
        raise, it returns NaN.

    Examples:
        >>> import difflux.core as dx
        >>> sqrt = lambda a: dx.root(lambda x, a: x * x - a, dx.asarray(1.0), a)
        >>> float(sqrt(4.0)), float(dx.grad(sqrt)(4.0))
        (2.0, 0.25)
    """
    if tol is None:
        tol = _default_tol(x0, 0.5)

    def solve(x_start: Any, th: Any) -> Any:
        _check_no_closure(F, F(x_start, th), "dx.root")
        fun = lambda x: F(x, th)  # noqa: E731
        if solver == "newton":
            return _newton(fun, x_start, tol, maxiter, "dx.root (Newton's method)")
        if callable(solver):
            return solver(fun, x_start)
        raise ValueError(f"dx.root: solver must be 'newton' or a function solver(fun, x0), got {solver!r}")

    return custom_root(F, linear_solve=linear_solve)(solve)(x0, theta)


def fixed_point(
    T: Callable[[Any, Any], Any],  # noqa: N803 (the mathematical name)
    x0: Any,
    theta: Any,
    *,
    solver: str | Callable[[Callable[[Any], Any], Any], Any] = "iterate",
    linear_solve: str | LinearSolve = "dense",
    tol: float | None = None,
    maxiter: int = 500,
) -> Any:
    """Find ``x = T(x, theta)``, differentiable in ``theta`` by the implicit
    function theorem applied to ``F(x, theta) = T(x, theta) - x``.

    Args:
        T: the map, written in difflux operations; its output has ``x``'s
            structure.
        x0: the starting point (an array or a structure of arrays).
        theta: the parameters (any structure), as in :func:`root`.
        solver: ``"iterate"`` (``x <- T(x, theta)``, which converges when
            ``T`` is a contraction near the fixed point), ``"newton"``
            (Newton's method on ``F``), or a function ``solver(fun, x0) -> x``
            finding a fixed point of ``fun(x) = T(x, theta)``.
        linear_solve: how the derivative rules solve with ``dF/dx = dT/dx - I``;
            see :func:`custom_root`.
        tol: stop once the relative step ``max|dx| / (1 + max|x|)`` is at most
            ``tol``; default ``100 eps`` of ``x0``'s dtype for iteration and
            ``sqrt(eps)`` for Newton.
        maxiter: the maximum number of iterations.

    Returns:
        the fixed point, with ``x0``'s structure. Non-convergence raises
        ``RuntimeError`` (NaN inside ``jax.jit``).

    Examples:
        >>> import difflux.core as dx
        >>> x = dx.fixed_point(lambda x, a: dx.cos(a * x), dx.asarray(0.5), 1.0)
        >>> round(float(x), 6)
        0.739085
    """
    if solver not in ("iterate", "newton") and not callable(solver):
        raise ValueError(
            f"dx.fixed_point: solver must be 'iterate', 'newton' or a function solver(fun, x0), got {solver!r}"
        )
    if tol is None:
        tol = _default_tol(x0, 0.5) if solver == "newton" else 100 * _default_tol(x0, 1.0)

    def residual(x: Any, th: Any) -> Any:
        return tree_map(subtract, T(x, th), x)

    def solve(x_start: Any, th: Any) -> Any:
        _check_no_closure(T, T(x_start, th), "dx.fixed_point")
        fun = lambda x: T(x, th)  # noqa: E731
        if solver == "iterate":
            return _fixed_point_iteration(fun, x_start, tol, maxiter, "dx.fixed_point (iteration)")
        if solver == "newton":
            return _newton(lambda x: residual(x, th), x_start, tol, maxiter, "dx.fixed_point (Newton's method)")
        assert callable(solver)
        return solver(fun, x_start)

    return custom_root(residual, linear_solve=linear_solve)(solve)(x0, theta)


__all__ = ["custom_root", "fixed_point", "root"]
