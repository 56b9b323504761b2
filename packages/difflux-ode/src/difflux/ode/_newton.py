"""Linear algebra and the simplified Newton iteration of the implicit solvers.

Implicit steps solve systems with the iteration matrix ``W = I - h gamma J``
many times per factorisation, so the matrix is factored once (LU with
partial pivoting: LAPACK's ``getrf`` through SciPy on NumPy,
``jax.scipy.linalg`` on JAX) and the factors are reused until the Jacobian
or the step size changes. Two private primitives carry this:

* ``lu_factor(a) -> (lu, piv)`` has no derivative: the solvers factor a
  matrix held under ``stop_gradient``.
* ``lu_solve(a, lu, piv, b)`` returns ``a^{-1} b`` from the factors. Its
  derivative rules are those of ``dx.linalg.solve`` (``dx = a^{-1} (db -
  da x)``) and solve with the same factors, so gradients flow to ``a``
  and ``b`` without refactoring. The factors are a function of ``a``, so
  the rule for ``a`` carries their whole derivative and the rules for
  ``lu`` give zero. Factors carried through ``dx.cond`` or
  ``dx.while_loop`` come back as tracers, and a zero rule keeps such a
  tracer from raising ``MissingRuleError``. The integer pivots have no
  derivative.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core import Primitive
from difflux.core._backend import backend_of_value
from difflux.core._core import value_of
from difflux.core._dispatch import make_impl

# --------------------------------------------------------------------------
# LU factorisation and solves
# --------------------------------------------------------------------------


@functools.cache
def _lapack_lu(dtype: np.dtype) -> tuple[Any, Any]:
    """Return LAPACK's ``getrf`` and ``getrs`` for ``dtype``, as ``scipy.linalg.lu_factor`` and ``lu_solve`` call them."""
    import scipy.linalg

    getrf, getrs = scipy.linalg.get_lapack_funcs(("getrf", "getrs"), dtype=dtype)
    return getrf, getrs


def _lu_factor_numpy(a: Any) -> tuple[Any, Any]:
    # scipy.linalg.lu_factor returns these same factors, but its argument
    # checks cost more than factoring a small matrix. A singular matrix
    # gives non-finite solves, which the Newton iteration rejects.
    lu, piv, _ = _lapack_lu(a.dtype)[0](a)
    return lu, piv


def _lu_factor_jax(a: Any) -> tuple[Any, Any]:
    import jax.scipy.linalg

    return tuple(jax.scipy.linalg.lu_factor(a))


def _lu_solve_numpy(a: Any, lu: Any, piv: Any, b: Any, *, trans: bool) -> Any:
    x, _ = _lapack_lu(lu.dtype)[1](lu, piv, b, trans=int(trans))
    return x


def _lu_solve_jax(a: Any, lu: Any, piv: Any, b: Any, *, trans: bool) -> Any:
    import jax.scipy.linalg

    return jax.scipy.linalg.lu_solve((lu, piv), b, trans=int(trans))


_lu_factor_impl = make_impl("lu_factor", _lu_factor_numpy, _lu_factor_jax)

lu_factor_p = Primitive("lu_factor", lambda a: tuple(_lu_factor_impl(a)), multiple_results=True, differentiable=False)


def _lu_solve_cotangent_a(g: Any, out: Any, a: Any, lu: Any, piv: Any, b: Any, *, trans: bool) -> Any:
    b_bar = lu_solve_p(a, lu, piv, g, trans=not trans)
    # op(a) x = b has op(a)_bar = -b_bar x^T; a_bar is its transpose when op(a) = a^T.
    return -dx.linalg.outer(out, b_bar) if trans else -dx.linalg.outer(b_bar, out)


def _lu_solve_tangent_a(t: Any, out: Any, a: Any, lu: Any, piv: Any, b: Any, *, trans: bool) -> Any:
    t = dx.matrix_transpose(t) if trans else t
    return -lu_solve_p(a, lu, piv, t @ out, trans=trans)


def _lu_solve_cotangent_factor(g: Any, out: Any, a: Any, lu: Any, piv: Any, b: Any, *, trans: bool) -> Any:
    # lu contains the factors of a, and the rule for a already carries their derivative.
    return dx.zeros_like(lu)


def _lu_solve_tangent_factor(t: Any, out: Any, a: Any, lu: Any, piv: Any, b: Any, *, trans: bool) -> Any:
    return dx.zeros_like(out)


lu_solve_p = Primitive(
    "lu_solve",
    make_impl("lu_solve", _lu_solve_numpy, _lu_solve_jax),
    pullbacks=(
        _lu_solve_cotangent_a,
        _lu_solve_cotangent_factor,
        None,  # the pivots are integers
        lambda g, out, a, lu, piv, b, *, trans: lu_solve_p(a, lu, piv, g, trans=not trans),
    ),
    jvps=(
        _lu_solve_tangent_a,
        _lu_solve_tangent_factor,
        None,
        lambda t, out, a, lu, piv, b, *, trans: lu_solve_p(a, lu, piv, t, trans=trans),
    ),
)


def lu_factor(a: Any) -> tuple[Any, Any]:
    """Factor the square matrix ``a`` (held without gradient) as ``P L U``; return ``(lu, piv)``."""
    if type(a) is np.ndarray:
        return _lu_factor_numpy(a)
    lu, piv = lu_factor_p(dx.stop_gradient(a))
    return lu, piv


def lu_solve(a: Any, factors: tuple[Any, Any], b: Any) -> Any:
    """Return ``a^{-1} b`` for a vector ``b``, given ``factors = lu_factor(a)``.

    ``a`` itself is only read by the derivative rules, so gradients reach
    ``a`` (unless it is held under ``stop_gradient``) and ``b``.
    """
    lu, piv = factors
    if type(a) is np.ndarray and type(lu) is np.ndarray and type(b) is np.ndarray:
        # Plain NumPy values need no derivative rules, so LAPACK is called directly.
        return _lu_solve_numpy(a, lu, piv, b, trans=False)
    # Factors carried through dx.while_loop come back as tracers there.
    return lu_solve_p(a, dx.stop_gradient(lu), piv, b, trans=False)


def _backend_name(x: Any) -> str:
    return backend_of_value(value_of(x)) or "numpy"


def iteration_matrix(jacobian: Any, h_gamma: Any) -> Any:
    """Return ``W = I - h gamma J``."""
    d = jacobian.shape[-1]
    identity = dx.asarray(np.eye(d), dtype=jacobian.dtype, backend=_backend_name(jacobian))
    return identity - h_gamma * jacobian


# --------------------------------------------------------------------------
# Jacobians
# --------------------------------------------------------------------------


def state_jacobian(f: Callable[[Any, Any], Any], t: Any, y: Any, user_jacobian: Callable[..., Any] | None) -> Any:
    """Return ``df/dy`` at ``(t, y)``: the user's function, or ``dx.jacfwd`` (one JVP per state entry)."""
    if user_jacobian is not None:
        jacobian = user_jacobian(t, y)
        if not dx.is_array(jacobian):
            jacobian = dx.asarray(jacobian, dtype=y.dtype, backend=_backend_name(y))
        d = y.shape[0]
        if tuple(jacobian.shape) != (d, d):
            raise ValueError(
                f"the jacobian function returned shape {tuple(jacobian.shape)}, but the state has {d} entries; "
                f"jacobian(t, y) must return the matrix df/dy of shape ({d}, {d}) on the flat state"
            )
        return jacobian
    try:
        return dx.jacfwd(lambda state: f(t, state))(y)
    except TypeError as error:
        if "difflux tracer was converted to a NumPy array" not in str(error):
            raise
        # Explicit solvers never differentiate the vector field, so a field
        # written with NumPy functions can fail here first, after the default
        # solver switched to an implicit method part-way through a solve.
        raise TypeError(
            "solve: an implicit solver (Kvaerno, Rodas, BDF, or the default AutoSwitch after it detected "
            "stiffness) computes df/dy with dx.jacfwd, and the vector field converted a difflux tracer to a "
            "NumPy array. Write the vector field with difflux operations (dx.stack, dx.exp, ...) in place of "
            "NumPy functions, give the solver a jacobian(t, y) function (ode.Kvaerno5(jacobian=...)), or "
            "choose an explicit solver such as ode.Tsit5()."
        ) from error


# --------------------------------------------------------------------------
# The simplified Newton iteration
# --------------------------------------------------------------------------


def newton_stage(
    f: Callable[[Any, Any], Any],
    t_stage: Any,
    rhs: Any,
    h_gamma: Any,
    z0: Any,
    w_matrix: Any,
    factors: tuple[Any, Any],
    scale: Any,
    kappa: float,
    max_iterations: int,
    user_jacobian: Callable[[Any, Any], Any] | None = None,
) -> tuple[Any, Any, Any, Any]:
    """Solve ``z = rhs + h gamma f(t_stage, z)`` by simplified Newton from ``z0``.

    Each iteration solves ``W dz = -(z - rhs - h gamma f(t_stage, z))`` with
    the factored ``W``. With ``theta = |dz_k| / |dz_{k-1}|`` (norms scaled
    by ``scale``), the iteration has converged when ``theta / (1 - theta)
    |dz_k| <= kappa``, an estimate of the remaining error from the
    contraction rate, or when ``|dz| <= 1e-3 kappa``. It has diverged when ``theta >= 1``,
    when a value is not finite, or after ``max_iterations`` iterations.

    Returns ``(z, converged, iterations, rate)``: the final iterate, whether
    it converged, the number of evaluations of ``f`` and the largest
    observed ``theta``. While a transformation traces the call, the
    derivative of ``z`` is that of the exact stage solution (implicit
    function theorem, see :func:`_implicit_derivative`), not that of the
    iterations.
    """
    zero = dx.zeros_like(h_gamma)
    count = dx.astype(zero, dx.int32)
    no = zero < 0.0

    def keep_going(carry: tuple[Any, ...]) -> Any:
        _, _, _, done, _, _ = carry
        return ~done

    def iterate(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        z, previous_norm, iterations, _, _, rate = carry
        residual = z - rhs - h_gamma * f(t_stage, z)
        dz = -lu_solve(w_matrix, factors, residual)
        z_new = z + dz
        norm = dx.stop_gradient(dx.sqrt(dx.mean((dz / scale) ** 2)))
        theta = dx.where(iterations > 0, norm / dx.maximum(previous_norm, 1e-300), 0.0)
        iterations = iterations + 1
        small = norm <= 1e-3 * kappa
        fast = (iterations > 1) & (theta < 1.0) & (theta / (1.0 - dx.minimum(theta, 0.999)) * norm <= kappa)
        converged = dx.isfinite(norm) & (small | fast)
        diverged = ~dx.isfinite(norm) | ((iterations > 1) & (theta >= 1.0)) | (iterations >= max_iterations)
        done_now = converged | diverged
        return z_new, norm, iterations, done_now, converged, dx.maximum(rate, theta)

    # A diverging iteration may overflow in f before it is detected. Its
    # result is rejected through the isfinite checks, so NumPy's overflow
    # warnings would only be noise.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if _plain_numpy(z0, rhs, h_gamma, t_stage, scale, *factors) and type(w_matrix) is np.ndarray:
            result = _newton_numpy(f, t_stage, rhs, h_gamma, z0, factors, scale, kappa, max_iterations)
            if result is not None:
                return result
        carry = (z0, zero + 1.0, count, no, no, zero)
        z, _, iterations, _, converged, rate = dx.while_loop(keep_going, iterate, carry, max_steps=max_iterations)

    if any(isinstance(value, dx.Tracer) for value in (rhs, h_gamma, t_stage, z0)):
        z = _implicit_derivative(f, t_stage, rhs, h_gamma, z, user_jacobian)
    return z, converged, iterations, rate


def _plain_numpy(*values: Any) -> bool:
    """Return whether every value is a NumPy array or scalar, not a tracer or a JAX array."""
    return all(isinstance(value, np.ndarray | np.generic | float | int) for value in values)


def _newton_numpy(
    f: Callable[[Any, Any], Any],
    t_stage: Any,
    rhs: np.ndarray,
    h_gamma: Any,
    z0: np.ndarray,
    factors: tuple[Any, Any],
    scale: np.ndarray,
    kappa: float,
    max_iterations: int,
) -> tuple[Any, Any, Any, Any] | None:
    """Run the iteration of :func:`newton_stage` on concrete NumPy values, in a Python loop with NumPy calls.

    It computes what ``iterate`` computes, in the same order, without the
    dispatch of difflux operations, which costs more than a small vector
    field. Returns ``None`` when ``f`` returns something other than a NumPy
    array (it closes over a traced value, say), for the general loop to run.
    """
    lu, piv = factors
    solve = _lapack_lu(lu.dtype)[1]
    dtype = np.result_type(h_gamma, z0)
    # Python floats are IEEE doubles, so for float64 they give the same
    # numbers as NumPy scalars at a fraction of the cost per operation.
    scalar, sqrt = (float, math.sqrt) if dtype == np.float64 else (dtype.type, np.sqrt)
    size = z0.shape[0]
    z = z0
    previous_norm = scalar(1.0)
    iterations = 0
    rate = scalar(0.0)
    converged = False
    while True:
        value = f(t_stage, z)
        if type(value) is not np.ndarray:
            return None
        residual = z - rhs - h_gamma * value
        # The update is -W^{-1} residual. Subtracting W^{-1} residual gives
        # the same bits as adding its negation, one operation fewer.
        step = solve(lu, piv, residual)[0]
        z = z - step
        scaled = step / scale
        # np.mean is add.reduce divided by the count, without its argument handling.
        norm = sqrt(scalar(np.add.reduce(scaled * scaled)) / size)
        # theta, the contraction rate, needs a previous iteration.
        theta = scalar(0.0)
        if iterations > 0:
            # Not max(), which returns NaN for a NaN previous norm where this gives the floor.
            theta = norm / (previous_norm if previous_norm > 1e-300 else 1e-300)
        iterations += 1
        small = norm <= 1e-3 * kappa
        fast = iterations > 1 and theta < 1.0 and theta / (1.0 - min(theta, 0.999)) * norm <= kappa
        finite = math.isfinite(norm)
        converged = finite and bool(small or fast)
        if theta > rate or theta != theta:  # the maximum, NaN included, as dx.maximum gives
            rate = theta
        previous_norm = norm
        if converged or not finite or (iterations > 1 and theta >= 1.0) or iterations >= max_iterations:
            break
    return z, np.bool_(converged), np.int32(iterations), np.asarray(rate, dtype=dtype)[()]


def _implicit_derivative(
    f: Callable[[Any, Any], Any], t_stage: Any, rhs: Any, h_gamma: Any, z: Any, user_jacobian: Any
) -> Any:
    """Return ``z`` unchanged, with the derivative of the exact stage solution attached.

    For ``G(z, theta) = z - rhs - h gamma f(t, z) = 0`` the implicit function
    theorem gives ``dz = -(dG/dz)^{-1} dG/dtheta``. The correction below has
    the value ``0`` (a residual minus itself) and exactly that derivative,
    with the exact Jacobian at ``z``, so gradients do not depend on how far
    the simplified Newton iteration went. It costs one Jacobian and one
    dense solve per stage, and runs only while a transformation traces the
    step. NOTE: ``dG/dz`` is held constant, which is exact for first
    derivatives; second derivatives miss its variation.
    """
    z_fixed = dx.stop_gradient(z)
    residual = z_fixed - rhs - h_gamma * f(t_stage, z_fixed)
    jacobian = dx.stop_gradient(state_jacobian(f, t_stage, z_fixed, user_jacobian))
    exact_matrix = dx.stop_gradient(iteration_matrix(jacobian, h_gamma))
    return z_fixed - dx.linalg.solve(exact_matrix, residual - dx.stop_gradient(residual))
