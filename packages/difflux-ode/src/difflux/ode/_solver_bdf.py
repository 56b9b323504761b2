"""BDF: the variable-order numerical differentiation formulas (NDF) of Shampine and Reichelt.

The solver carries the backward differences ``D[j] = nabla^j y_n`` of the
last accepted states, scaled to one step size, in a fixed array of
``MAX_ORDER + 3`` rows. A step of order ``k`` predicts
``y0 = sum_{j<=k} D[j]`` and solves for the correction ``d = y_{n+1} - y0``

    (1 - kappa_k) gamma_k d + sum_{j=1..k} gamma_j D[j] = h f(t_{n+1}, y0 + d),
    gamma_j = 1 + 1/2 + ... + 1/j,

by simplified Newton with ``W = I - (h / alpha_k) J``, ``alpha_k = (1 -
kappa_k) gamma_k``. The local error estimate is ``(kappa_k gamma_k + 1 /
(k + 1)) d``. With all ``kappa_k = 0`` these are the backward
differentiation formulas. The NDF coefficients ``kappa_k`` (-0.1850,
-1/9, -0.0823, -0.0415 and 0 for orders 1 to 5) shrink the error
constants of orders 1 to 4 at a small cost in stability. They are those
of L. F. Shampine and M. W. Reichelt, The MATLAB ODE Suite, SIAM J. Sci.
Comput. 18 (1997), 1-22, as SciPy 1.17 lists them in
``scipy/integrate/_ivp/bdf.py``.

The step size stays constant between changes ("quasi-constant" steps). It
changes after a rejected step, and after ``k + 1`` equal accepted steps,
when the solver compares the error estimates of orders ``k - 1``, ``k``
and ``k + 1`` and takes the order that allows the largest next step. A
change of step size by a factor ``r`` rescales the differences with the
matrix ``(R(r) U)^T``, ``R(r)_ij = prod_{m=1..i} (m - 1 - r j) / m``,
``U = R(1)``. The Jacobian is computed at the first step and after a
Newton iteration fails with an old one. ``W`` is factored again only when
``h / alpha_k`` or the Jacobian changes. So most steps cost two or three
evaluations of ``f`` and as many solves with old factors.

Each step runs in one of two forms with the same arithmetic:

* on plain NumPy values, with the order as a Python integer and NumPy and
  LAPACK calls;
* on any other values (JAX arrays, tracers of ``dx.grad`` or ``dx.jit``,
  ``dx.vmap`` batches), with the order as an integer array that selects
  each order's matrices from stacked tables, so one traced step serves
  every order.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

import difflux.core as dx

from ._newton import _newton_numpy, iteration_matrix, lu_factor, newton_stage, state_jacobian
from ._runge_kutta import AbstractRungeKutta, VectorField

MAX_ORDER = 5
_ROWS = MAX_ORDER + 3  # the differences 0 .. k + 2 that a step of order k reads and writes
_DENSE_ROWS = MAX_ORDER + 1  # the differences 0 .. k of the interpolating polynomial
_MIN_FACTOR = 0.2
_MAX_FACTOR = 10.0

# Index k contains the coefficient of order k, for k = 0 .. _ROWS - 1. Order
# 0 does not exist and orders above MAX_ORDER are never used. Their entries
# only keep the masked arithmetic of the traced step finite.
_NDF_KAPPA = np.array([0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0, 0.0, 0.0])
_GAMMA = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, _ROWS))])
_ALPHA = (1.0 - _NDF_KAPPA) * _GAMMA
_ERROR_CONSTANT = _NDF_KAPPA * _GAMMA + 1.0 / np.arange(1, _ROWS + 1)


# --------------------------------------------------------------------------
# The matrices of every order, as tables indexed by the order
# --------------------------------------------------------------------------


def _order_tables() -> dict[str, np.ndarray]:
    """Return the matrices of orders ``0 .. _ROWS - 1``, stacked along a first axis of length ``_ROWS``.

    * ``prediction[k]`` (2 x _ROWS): ``prediction[k] @ D`` is the predictor
      ``sum_{j<=k} D[j]`` and ``psi = sum_{1<=j<=k} gamma_j D[j] / alpha_k``.
    * ``update[k]`` (_ROWS x _ROWS) and ``added[k]`` (_ROWS): the differences
      after an accepted step are ``update[k] @ D + added[k] d^T``. For
      ``i <= k`` the new ``D[i]`` is ``D[i] + ... + D[k] + d``, row ``k + 1``
      becomes ``d``, row ``k + 2`` becomes ``d - D[k + 1]`` and later rows stay.
    * ``neighbours[k]`` (2 x _ROWS) selects ``D[k]`` and ``D[k + 2]``, whose
      multiples estimate the errors of orders ``k - 1`` and ``k + 1``.
    * ``block[k]`` and ``u_matrix[k]`` (_DENSE_ROWS square): the rows and
      columns ``<= k``, and ``U = R(1)`` there with the identity elsewhere.
    * ``alpha[k]``, ``error_constants[k]`` (of orders ``k - 1``, ``k`` and
      ``k + 1``) and ``exponents[k]``: ``-1 / (k, k + 1, k + 2)``, the
      exponents of the step-size factors that those orders' errors allow.
    """
    rows = np.arange(_ROWS)
    i, j = rows[:, None], rows[None, :]
    dense = np.arange(_DENSE_ROWS)
    u_full = np.ones((_DENSE_ROWS, _DENSE_ROWS))
    for m in range(1, _DENSE_ROWS):
        u_full[m] = u_full[m - 1] * ((m - 1 - dense) / m)
    tables: dict[str, list[np.ndarray]] = {name: [] for name in ("prediction", "update", "added", "neighbours")}
    tables.update(block=[], u_matrix=[], alpha=[], error_constants=[], exponents=[])
    padded_error = np.concatenate([[0.0], _ERROR_CONSTANT, [0.0]])
    for k in range(_ROWS):
        gamma = np.where((rows >= 1) & (rows <= k), _GAMMA, 0.0) / _ALPHA[k] if k > 0 else np.zeros(_ROWS)
        tables["prediction"].append(np.stack([np.where(rows <= k, 1.0, 0.0), gamma]))
        summed = (i <= k) & (j >= i) & (j <= k)
        kept = (i > k + 2) & (j == i)
        previous = (i == k + 2) & (j == k + 1)
        tables["update"].append(np.where(summed | kept, 1.0, 0.0) - np.where(previous, 1.0, 0.0))
        tables["added"].append(np.where(rows <= k + 2, 1.0, 0.0))
        tables["neighbours"].append(np.stack([np.where(rows == k, 1.0, 0.0), np.where(rows == k + 2, 1.0, 0.0)]))
        block = (dense[:, None] <= k) & (dense[None, :] <= k)
        tables["block"].append(np.where(block, 1.0, 0.0))
        tables["u_matrix"].append(np.where(block, u_full, np.eye(_DENSE_ROWS)))
        tables["alpha"].append(np.asarray(_ALPHA[k]))
        tables["error_constants"].append(padded_error[k : k + 3])
        tables["exponents"].append(-1.0 / np.arange(k, k + 3) if k > 0 else np.zeros(3))
    return {name: np.stack(values) for name, values in tables.items()}


_TABLES = _order_tables()


@functools.cache
def _numpy_tables(dtype: np.dtype) -> dict[str, np.ndarray]:
    """Return the order tables and coefficients in ``dtype``, for the step on NumPy."""
    return {name: table.astype(dtype) for name, table in _TABLES.items()}


@functools.cache
def _numpy_order(order: int, dtype: np.dtype) -> tuple[Any, ...]:
    """Return the entries of :func:`_numpy_tables` that a step of ``order`` reads, in ``dtype``.

    The coefficients are Python floats for float64 (the same numbers) and
    NumPy scalars otherwise.
    """
    tables = _numpy_tables(dtype)
    scalar = float if dtype == np.float64 else dtype.type
    error_constants = tuple(scalar(value) for value in tables["error_constants"][order])
    return (
        tables["prediction"][order],
        tables["update"][order],
        tables["neighbours"][order],
        tables["u_matrix"][order],
        scalar(tables["alpha"][order]),
        error_constants,
        tables["exponents"][order],
    )


def _select(table: np.ndarray, one_hot: Any, like: Any) -> Any:
    """Return ``table[k]`` for the order ``k`` that ``one_hot`` marks, on the backend and dtype of ``like``.

    The contraction with a one-hot vector picks the entry exactly, also for
    a traced order and under ``dx.vmap``.
    """
    flat = dx.asarray(table.reshape(_ROWS, -1), dtype=like.dtype, backend=_backend(like))
    return dx.reshape(one_hot[None, :] @ flat, table.shape[1:])


def _rescale_matrix(order_one_hot: Any, factor: Any, like: Any) -> Any:
    """Return ``(R(factor) U)^T`` on the differences ``0 .. k`` and the identity on the rest (``_DENSE_ROWS`` square).

    ``R(r)_ij = prod_{m=1..i} (m - 1 - r j) / m`` and ``U = R(1)``.
    """
    columns = dx.asarray(np.arange(_DENSE_ROWS), dtype=like.dtype, backend=_backend(like))
    rows = [dx.ones_like(columns * factor)]
    for m in range(1, _DENSE_ROWS):
        rows.append(rows[-1] * ((m - 1 - factor * columns) / m))
    block = _select(_TABLES["block"], order_one_hot, like)
    identity = dx.asarray(np.eye(_DENSE_ROWS), dtype=like.dtype, backend=_backend(like))
    r_matrix = block * dx.stack(rows) + (1.0 - block) * identity
    return dx.matrix_transpose(r_matrix @ _select(_TABLES["u_matrix"], order_one_hot, like))


def _rescale_numpy(differences: np.ndarray, order: int, factor: Any, u_matrix: np.ndarray) -> np.ndarray:
    """Return ``differences`` rescaled by ``factor`` as :func:`_rescale_matrix` does, on the first ``order + 1`` rows."""
    size = order + 1
    columns = np.arange(size, dtype=differences.dtype)
    rows = [np.ones(size, dtype=differences.dtype)]
    for m in range(1, size):
        rows.append(rows[-1] * ((m - 1 - factor * columns) / m))
    transform = (np.stack(rows) @ u_matrix[:size, :size]).T
    rescaled = differences.copy()
    rescaled[:size] = transform @ differences[:size]
    return rescaled


def _rms(x: Any) -> Any:
    return dx.sqrt(dx.mean(x * x))


def _rms_numpy(x: np.ndarray) -> Any:
    # np.mean is add.reduce divided by the count, without its argument handling.
    return np.sqrt(np.add.reduce(x * x) / x.shape[0])


def _backend(like: Any) -> str:
    return dx.backend_of(like) or "numpy"


_PLAIN_TYPES = frozenset({np.ndarray, np.float64, np.float32, np.float16, np.int32, np.int64, np.bool_})


def _all_numpy(*values: Any) -> bool:
    """Return whether every value is a NumPy array or a NumPy scalar of a common type (else the general step runs)."""
    return all(type(value) in _PLAIN_TYPES for value in values)


# --------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BDF(AbstractRungeKutta):
    """Variable-order (1 to 5) BDF for stiff problems, in the NDF form of MATLAB's ``ode15s``.

    The method of ``ode15s`` and of SciPy's ``solve_ivp(method="BDF")``:
    the numerical differentiation formulas of Shampine and Reichelt on
    quasi-constant steps, with the order chosen from the error estimates
    of the neighbouring orders. It needs fewer evaluations of ``f`` per
    step than the one-step implicit methods and computes the Jacobian
    only when the Newton iteration fails to converge, so it suits problems
    whose Jacobian is expensive. Orders 1 and 2 are L-stable. Orders 3, 4
    and 5 are stable only in sectors of half-angle 80, 66 and 51 degrees
    around the negative real axis (the tests compute these angles), so
    stiff problems with eigenvalues near the imaginary axis suit
    :class:`Kvaerno5` or :class:`Rodas5P` better.

    The step size is the solver's own choice: the ``controller`` of
    :func:`solve` is not used. The dense output and ``SaveAt(ts=...)``
    interpolate with the polynomial through the last ``k + 1`` states.

    Attributes:
        jacobian: ``jacobian(t, y)`` returning ``df/dy`` on the flat state
            (shape ``(d, d)``), or ``None`` to compute it with ``dx.jacfwd``.
            It receives the flattened ``y`` and no ``args``: close over them.
        max_order: the highest order used, 1 to 5.
        kappa: the Newton convergence threshold on the scaled norm
            (tolerances ``atol + rtol |y|``), where 1 is the error tolerance.
            It is unrelated to the NDF coefficients ``kappa_k``.
        max_newton_iterations: iterations per step before a Newton failure.
        max_newton_failures: consecutive Newton failures that stop the solve.
    """

    jacobian: Callable[[Any, Any], Any] | None = None
    max_order: int = MAX_ORDER
    kappa: float = 0.05
    max_newton_iterations: int = 4
    max_newton_failures: int = 10

    # The first steps have order 1, and solve sizes the first step by it.
    order = 1

    def __post_init__(self) -> None:
        if isinstance(self.max_order, bool) or not isinstance(self.max_order, int) or not 1 <= self.max_order <= 5:
            raise ValueError(f"BDF: max_order must be an integer from 1 to {MAX_ORDER}, got {self.max_order!r}")
        if not self.kappa > 0:
            raise ValueError(f"BDF: kappa must be positive, got {self.kappa}")
        if self.max_newton_iterations < 1 or self.max_newton_failures < 1:
            raise ValueError(
                "BDF: max_newton_iterations and max_newton_failures must be at least 1, got "
                f"{self.max_newton_iterations} and {self.max_newton_failures}"
            )

    @property
    def adaptive(self) -> bool:
        return True

    @property
    def dense_stages(self) -> int:
        return _DENSE_ROWS

    @property
    def function_evaluations_per_step(self) -> int:
        return 0  # counted in the carried state: Newton iterations vary per step

    def init_state(self, f: VectorField, t0: Any, y0: Any, f0: Any, rtol: float, atol: float) -> dict[str, Any]:
        zero = dx.zeros_like(t0)
        count = dx.astype(zero, dx.int32)
        yes = zero == 0.0
        d = y0.shape[0]
        # D[1] = f0 is the first difference for a step of size 1, and the
        # first step rescales it to its own size.
        empty = dx.asarray(np.zeros((_ROWS - 2, d)), dtype=y0.dtype, backend=_backend(y0))
        differences = dx.concat([y0[None, :], f0[None, :], empty])
        jacobian = dx.zeros_like(y0)[:, None] * dx.zeros_like(y0)[None, :]
        lu, piv = lu_factor(iteration_matrix(jacobian, zero))
        return {
            "differences": differences,
            "step_of_differences": zero + 1.0,
            "order": count + 1,
            "equal_steps": count,
            # The outcome of the step just tried, read by update_state and step_size_factor.
            "next_differences": differences,
            "next_order": count + 1,
            "order_selected": ~yes,
            "factor_accepted": zero + 1.0,
            "safety": zero + 1.0,
            # The Jacobian and the factors of W = I - c J, c = h / alpha_k.
            "jacobian": jacobian,
            "lu": lu,
            "piv": piv,
            "c_lu": zero,
            "jacobian_stale": yes,  # no Jacobian yet: the first step computes it
            "jacobian_fresh": ~yes,
            "converged": yes,
            "newton_failures": count,
            "num_fevals": count,
            "num_jacobians": count,
            "num_lu": count,
            "rtol": zero + rtol,
            "atol": zero + atol,
        }

    def step_with_state(
        self, f: VectorField, t: Any, y: Any, f0: Any, h: Any, state: dict[str, Any]
    ) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        if _all_numpy(t, y, h, *state.values()):
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                result = self._step_numpy(f, t, y, h, state)
            if result is not None:
                return result
        with np.errstate(divide="ignore"):
            return self._step_general(f, t, y, h, state)

    def update_state(self, state: dict[str, Any], accepted: Any) -> dict[str, Any]:
        converged = state["converged"]
        new_state = dict(state)
        if _all_numpy(accepted, converged, state["jacobian_fresh"], state["order_selected"]):
            # Concrete flags: pick without dispatching difflux operations.
            if accepted:
                new_state["differences"] = state["next_differences"]
                new_state["order"] = state["next_order"]
                new_state["equal_steps"] = np.int32(0 if state["order_selected"] else state["equal_steps"] + 1)
            new_state["jacobian_stale"] = np.bool_(not converged and not state["jacobian_fresh"])
            new_state["newton_failures"] = np.int32(0 if converged else state["newton_failures"] + 1)
            return new_state
        new_state["differences"] = dx.where(accepted, state["next_differences"], state["differences"])
        new_state["order"] = dx.where(accepted, state["next_order"], state["order"])
        equal_steps = dx.where(state["order_selected"], 0, state["equal_steps"] + 1)
        new_state["equal_steps"] = dx.astype(dx.where(accepted, equal_steps, state["equal_steps"]), dx.int32)
        # A failure with an old Jacobian is retried with a new one, and one
        # with a fresh Jacobian only needs the smaller step.
        new_state["jacobian_stale"] = (~converged) & (~state["jacobian_fresh"])
        new_state["newton_failures"] = dx.where(converged, 0, state["newton_failures"] + 1)
        return new_state

    def step_size_factor(self, state: dict[str, Any], ratio: Any, accepted: Any) -> Any:
        # After a rejected step the error allows the factor safety *
        # ratio^(-1 / (k + 1)), at least _MIN_FACTOR. A Newton failure with
        # an old Jacobian retries the step size with a new one, and one with
        # a fresh Jacobian halves it.
        if _all_numpy(ratio, accepted, state["converged"], state["order"]):
            if accepted:
                return state["factor_accepted"]
            if not state["converged"]:
                return state["factor_accepted"].dtype.type(0.5 if state["jacobian_fresh"] else 1.0)
            shrink = state["safety"] * ratio ** (-1.0 / (int(state["order"]) + 1))
            return np.maximum(state["factor_accepted"].dtype.type(_MIN_FACTOR), shrink)
        exponent = -1.0 / dx.astype(state["order"] + 1, ratio.dtype)
        shrink = dx.maximum(_MIN_FACTOR, state["safety"] * ratio**exponent)
        failed = dx.where(state["jacobian_fresh"], 0.5, 1.0)
        rejected = dx.where(state["converged"], shrink, failed)
        return dx.astype(dx.where(accepted, state["factor_accepted"], rejected), ratio.dtype)

    def failed(self, state: dict[str, Any]) -> Any:
        return state["newton_failures"] >= self.max_newton_failures

    def statistics(self, state: dict[str, Any], num_steps: Any) -> dict[str, Any]:
        # dx.jacfwd costs one JVP, about one evaluation of f, per state entry.
        per_jacobian = 0 if self.jacobian is not None else state["jacobian"].shape[0]
        return {
            "num_fevals": state["num_fevals"] + state["num_jacobians"] * per_jacobian,
            "num_jacobians": state["num_jacobians"],
            "num_lu": state["num_lu"],
        }

    def interpolate(self, y0: Any, y1: Any, f0: Any, f1: Any, h: Any, ks: Any, theta: Any) -> Any:
        # ks contains the differences D[0..k] after the step (zero above k), so
        # y(t1 + (theta - 1) h) = y1 + sum_j D[j] prod_{m<j} (theta - 1 + m) / (m + 1).
        value = y1
        weight = None
        for j in range(1, _DENSE_ROWS):
            term = (theta + (j - 2)) / j
            weight = term if weight is None else weight * term
            value = value + weight * ks[..., j, :]
        return value

    # ----------------------------------------------------------------------
    # The step on any backend
    # ----------------------------------------------------------------------

    def _step_general(
        self, f: VectorField, t: Any, y: Any, h: Any, state: dict[str, Any]
    ) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        order = state["order"]
        orders = dx.asarray(np.arange(_ROWS), dtype=order.dtype, backend=_backend(y))
        one_hot = dx.astype(dx.equal(orders, order), y.dtype)

        # Rescale the differences when h differs from their step size.
        rescale = h != state["step_of_differences"]
        factor = dx.where(rescale, h / state["step_of_differences"], 1.0)
        head = _rescale_matrix(one_hot, factor, y) @ state["differences"][:_DENSE_ROWS]
        differences = dx.where(rescale, dx.concat([head, state["differences"][_DENSE_ROWS:]]), state["differences"])
        equal_steps = dx.astype(dx.where(rescale, 0, state["equal_steps"]), dx.int32)

        predicted = _select(_TABLES["prediction"], one_hot, y) @ differences
        y_predicted, psi = predicted[0], predicted[1]
        c = h / _select(_TABLES["alpha"], one_hot, y)
        t_new = t + h

        # Refresh the Jacobian and the factorisation of W only when needed.
        stale = state["jacobian_stale"]
        jacobian = dx.cond(
            stale, lambda: dx.stop_gradient(state_jacobian(f, t, y, self.jacobian)), lambda: state["jacobian"]
        )
        c_fixed = dx.stop_gradient(c)
        refactor = stale | (c_fixed != state["c_lu"])
        w_matrix = dx.stop_gradient(iteration_matrix(jacobian, c_fixed))
        lu, piv = dx.cond(refactor, lambda: lu_factor(w_matrix), lambda: (state["lu"], state["piv"]))
        w_used = dx.stop_gradient(dx.where(refactor, w_matrix, iteration_matrix(jacobian, state["c_lu"])))

        rhs = y_predicted - psi
        scale = dx.stop_gradient(state["atol"] + state["rtol"] * dx.abs(y_predicted))
        z, converged, iterations, _ = newton_stage(
            f,
            t_new,
            rhs,
            c,
            y_predicted,
            w_used,
            (lu, piv),
            scale,
            self.kappa,
            self.max_newton_iterations,
            self.jacobian,
        )
        # The flag and the count come out of dx.while_loop as tracers that
        # carry no derivative, and dx.where has no pullback for a traced condition.
        converged, iterations = dx.stop_gradient((converged, iterations))
        correction = z - y_predicted
        f1 = (z - rhs) / c
        error_constants = _select(_TABLES["error_constants"], one_hot, y)
        y_error = dx.where(converged, error_constants[1] * correction, float("inf"))

        update = _select(_TABLES["update"], one_hot, y)
        added = _select(_TABLES["added"], one_hot, y)
        next_differences = update @ differences + added[:, None] * correction[None, :]
        ks = _select(_TABLES["prediction"], one_hot, y)[0, :_DENSE_ROWS, None] * next_differences[:_DENSE_ROWS]

        # The next order and step size, without derivatives.
        error_scale = dx.stop_gradient(state["atol"] + state["rtol"] * dx.maximum(dx.abs(y), dx.abs(z)))
        neighbours = dx.stop_gradient(_select(_TABLES["neighbours"], one_hot, y) @ next_differences)
        candidates = dx.stack(
            [
                _rms(error_constants[0] * neighbours[0] / error_scale),
                _rms(dx.stop_gradient(y_error) / error_scale),
                _rms(error_constants[2] * neighbours[1] / error_scale),
            ]
        )
        available = dx.stack([order > 1, order > 0, order < self.max_order])
        norms = dx.where(available, candidates, float("inf"))
        factors = norms ** _select(_TABLES["exponents"], one_hot, y)
        best = dx.max(factors)
        change = equal_steps >= order
        delta = dx.where(factors[0] == best, -1, dx.where(factors[1] == best, 0, 1))
        safety = 0.9 * (2 * self.max_newton_iterations + 1) / (2 * self.max_newton_iterations + iterations)
        factor_accepted = dx.where(change, dx.minimum(_MAX_FACTOR, safety * best), 1.0)

        new_state = dict(state)
        new_state.update(
            differences=differences,
            step_of_differences=h,
            equal_steps=equal_steps,
            next_differences=next_differences,
            next_order=dx.astype(dx.where(change, order + delta, order), dx.int32),
            order_selected=change,
            factor_accepted=dx.astype(factor_accepted, y.dtype),
            safety=dx.astype(safety, y.dtype),
            jacobian=jacobian,
            lu=lu,
            piv=piv,
            c_lu=dx.where(refactor, c_fixed, state["c_lu"]),
            jacobian_fresh=stale,
            converged=converged,
            num_fevals=state["num_fevals"] + iterations,
            num_jacobians=state["num_jacobians"] + dx.astype(stale, dx.int32),
            num_lu=state["num_lu"] + dx.astype(refactor, dx.int32),
        )
        return z, y_error, ks, f1, new_state

    # ----------------------------------------------------------------------
    # The step on plain NumPy values
    # ----------------------------------------------------------------------

    def _step_numpy(
        self, f: VectorField, t: Any, y: np.ndarray, h: Any, state: dict[str, Any]
    ) -> tuple[Any, Any, Any, Any, dict[str, Any]] | None:
        """Take the step of :meth:`_step_general` with NumPy calls; ``None`` if ``f`` returns a non-NumPy value."""
        order = int(state["order"])
        dtype = y.dtype
        prediction, update, neighbour_rows, u_matrix, alpha, error_constants, exponents = _numpy_order(order, dtype)
        # Python floats are IEEE doubles, so for float64 they give the same
        # numbers as NumPy scalars at a fraction of the cost per operation.
        scalar = float if dtype == np.float64 else dtype.type
        h = scalar(h)
        step_of_differences = scalar(state["step_of_differences"])
        atol, rtol = scalar(state["atol"]), scalar(state["rtol"])

        differences = state["differences"]
        equal_steps = int(state["equal_steps"])
        if h != step_of_differences:
            differences = _rescale_numpy(differences, order, h / step_of_differences, u_matrix)
            equal_steps = 0

        predicted = prediction @ differences
        y_predicted, psi = predicted[0], predicted[1]
        c = h / alpha
        t_new = dtype.type(scalar(t) + h)

        stale = bool(state["jacobian_stale"])
        jacobian = state["jacobian"]
        if stale:
            jacobian = state_jacobian(f, t, y, self.jacobian)
            if type(jacobian) is not np.ndarray:
                return None
        c_lu = scalar(state["c_lu"])
        refactor = stale or c != c_lu
        lu, piv = state["lu"], state["piv"]
        if refactor:
            lu, piv = lu_factor(np.eye(y.shape[0], dtype=dtype) - c * jacobian)
            c_lu = c

        rhs = y_predicted - psi
        scale = atol + rtol * np.abs(y_predicted)
        result = _newton_numpy(f, t_new, rhs, c, y_predicted, (lu, piv), scale, self.kappa, self.max_newton_iterations)
        if result is None:
            return None
        z, converged, iterations, _ = result
        correction = z - y_predicted
        f1 = (z - rhs) / c
        if converged:
            y_error = error_constants[1] * correction
        else:
            y_error = np.full_like(z, np.inf)

        # The rows 0 .. k + 2 of the update add the correction (``added``).
        next_differences = update @ differences
        next_differences[: order + 3] += correction
        ks = next_differences[:_DENSE_ROWS].copy()
        ks[order + 1 :] = 0.0

        # The next order and step size, when the order may change. The
        # factor after a rejection comes from the loop's error ratio.
        safety = 0.9 * (2 * self.max_newton_iterations + 1) / (2 * self.max_newton_iterations + int(iterations))
        change = equal_steps >= order
        next_order = order
        factor_accepted = 1.0
        if change:
            error_scale = atol + rtol * np.maximum(np.abs(y), np.abs(z))
            norm = _rms_numpy(y_error / error_scale)
            neighbours = neighbour_rows @ next_differences
            lower = _rms_numpy(error_constants[0] * neighbours[0] / error_scale) if order > 1 else np.inf
            upper = _rms_numpy(error_constants[2] * neighbours[1] / error_scale) if order < self.max_order else np.inf
            factors = np.array([lower, norm, upper], dtype=dtype) ** exponents
            best = factors.max()
            if factors[0] == best:
                next_order = order - 1
            elif factors[1] != best:
                next_order = order + 1
            factor_accepted = np.minimum(_MAX_FACTOR, safety * best)

        new_state = dict(state)
        new_state.update(
            differences=differences,
            step_of_differences=dtype.type(h),
            equal_steps=np.int32(equal_steps),
            next_differences=next_differences,
            next_order=np.int32(next_order),
            order_selected=np.bool_(change),
            factor_accepted=dtype.type(factor_accepted),
            safety=dtype.type(safety),
            jacobian=jacobian,
            lu=lu,
            piv=piv,
            c_lu=dtype.type(c_lu),
            jacobian_fresh=np.bool_(stale),
            converged=converged,
            num_fevals=np.int32(state["num_fevals"] + iterations),
            num_jacobians=np.int32(state["num_jacobians"] + stale),
            num_lu=np.int32(state["num_lu"] + refactor),
        )
        return z, y_error, ks, f1, new_state
