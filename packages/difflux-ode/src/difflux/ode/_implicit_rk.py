"""ESDIRK methods: diagonally implicit Runge-Kutta with an explicit first stage.

Stage ``i`` solves ``z_i = y + h sum_{j<i} a_ij k_j + h gamma k_i`` with
``k_i = f(t + c_i h, z_i)`` by simplified Newton (``_newton.py``). All
stages share the diagonal ``gamma``, so one factorisation of
``W = I - h gamma J`` serves every stage, and it is kept from step to step:

* the Jacobian ``J`` is recomputed when a Newton iteration failed with a
  Jacobian from an earlier step, and after an accepted step whose Newton
  iterations contracted slowly (rate above ``jacobian_rate``);
* ``W`` is refactored when ``J`` was recomputed or when ``h`` differs from
  the step size of the last factorisation by more than ``refactor_ratio``.

A step whose Newton iteration fails is rejected with an infinite error
estimate, which makes the controller cut the step size. ``max_newton_failures``
consecutive failures stop the solve with ``Status.NEWTON_FAILED``.
NOTE: with constant steps (``adaptive=False``) no step is rejected, so the
result of a failed Newton iteration is kept until ``max_newton_failures``
failures in a row stop the solve.

The Kvaerno methods are stiffly accurate: the last stage is the solution,
and ``k_s = (z_s - rhs_s) / (h gamma)`` is taken as ``f(t + h, y1)`` without
evaluating ``f`` again. Unlike ``f(t + h, z_s)``, this form does not
multiply the Newton iteration's error by the large Jacobian of a stiff
problem.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx

from ._newton import iteration_matrix, lu_factor, lu_solve, newton_stage, state_jacobian
from ._runge_kutta import AbstractRungeKutta, VectorField

Number = Fraction | int | str | float


def _fraction(value: Number) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(value)


@dataclasses.dataclass(frozen=True)
class ESDIRKTableau:
    """The coefficients of an ESDIRK method.

    Attributes:
        c: nodes, ``c[0] == 0``.
        a: rows of the stage matrix including the diagonal; row ``i`` has
            ``i + 1`` entries, row 0 is ``(0,)`` and the diagonal of every
            other row is ``gamma``.
        b: weights of the solution.
        b_error: ``b - b_hat``, the weights of the error estimate.
        predictor: rows ``alpha_i`` (``i`` entries, summing to 1) of the
            first guess ``k_i ~ sum_j alpha_ij k_j`` for each implicit stage.
        tolerance: how far consistency sums may be from exact; positive
            for methods published as decimals.
    """

    c: tuple[Fraction, ...]
    a: tuple[tuple[Fraction, ...], ...]
    b: tuple[Fraction, ...]
    b_error: tuple[Fraction, ...]
    predictor: tuple[tuple[Fraction, ...], ...]
    tolerance: float = 0.0

    @classmethod
    def build(
        cls,
        c: Sequence[Number],
        a: Sequence[Sequence[Number]],
        b: Sequence[Number],
        b_error: Sequence[Number],
        predictor: Sequence[Sequence[Number]],
        tolerance: float = 0.0,
    ) -> ESDIRKTableau:
        """Convert the coefficients to fractions and validate them."""
        tableau = cls(
            c=tuple(_fraction(x) for x in c),
            a=tuple(tuple(_fraction(x) for x in row) for row in a),
            b=tuple(_fraction(x) for x in b),
            b_error=tuple(_fraction(x) for x in b_error),
            predictor=tuple(tuple(_fraction(x) for x in row) for row in predictor),
            tolerance=tolerance,
        )
        tableau.validate()
        return tableau

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def gamma(self) -> Fraction:
        """The shared diagonal entry."""
        return self.a[1][1]

    def validate(self) -> None:
        """Raise ``ValueError`` if the tableau's shape or consistency sums are wrong."""
        s = self.stages
        if len(self.a) != s or any(len(row) != i + 1 for i, row in enumerate(self.a)):
            raise ValueError(f"ESDIRKTableau: a must have rows of lengths 1..{s}, got {[len(r) for r in self.a]}")
        if self.c[0] != 0 or self.a[0] != (0,):
            raise ValueError("ESDIRKTableau: the first stage must be explicit (c[0] == 0 and a[0] == (0,))")
        if any(row[-1] != self.gamma for row in self.a[1:]):
            raise ValueError(f"ESDIRKTableau: every implicit stage needs the diagonal gamma = {float(self.gamma)}")
        if len(self.b) != s or len(self.b_error) != s:
            raise ValueError(f"ESDIRKTableau: b and b_error need {s} entries, one per stage")
        if len(self.predictor) != s - 1 or any(len(row) != i + 1 for i, row in enumerate(self.predictor)):
            raise ValueError("ESDIRKTableau: predictor needs one row per implicit stage, row i with i + 1 entries")
        for i, row in enumerate(self.a):
            if abs(float(sum(row, Fraction(0)) - self.c[i])) > self.tolerance:
                raise ValueError(
                    f"ESDIRKTableau: row {i} of a sums to {float(sum(row))}, not c[{i}] = {float(self.c[i])}"
                )
        if abs(float(sum(self.b, Fraction(0)) - 1)) > self.tolerance:
            raise ValueError(f"ESDIRKTableau: the weights b sum to {float(sum(self.b))}, not 1")
        if abs(float(sum(self.b_error, Fraction(0)))) > self.tolerance:
            raise ValueError(f"ESDIRKTableau: the error weights sum to {float(sum(self.b_error))}, not 0")

    @property
    def stiffly_accurate(self) -> bool:
        """Whether ``b`` is the last row of ``a``, so the last stage is the solution."""
        return self.a[-1] == self.b and self.c[-1] == 1


@dataclasses.dataclass(frozen=True)
class AbstractESDIRK(AbstractRungeKutta):
    """Base class of the ESDIRK solvers (:class:`Kvaerno3`, :class:`Kvaerno4`, :class:`Kvaerno5`, :class:`ImplicitEuler`).

    Attributes:
        jacobian: ``jacobian(t, y)`` returning ``df/dy`` on the flat state
            (shape ``(d, d)``), or ``None`` to compute it with ``dx.jacfwd``.
            It receives the flattened ``y`` and no ``args``: close over them.
            NOTE: a Jacobian far off the true one can make the Newton
            updates tiny, which passes the convergence test early with a
            wrong stage value.
        kappa: the Newton convergence threshold on the scaled norm
            (tolerances ``atol + rtol |z|``), where 1 is the error tolerance.
        max_newton_iterations: iterations per stage before a Newton failure.
        max_newton_failures: consecutive Newton failures that stop the solve.
        jacobian_rate: recompute the Jacobian after an accepted step whose
            Newton iterations contracted more slowly than this.
        refactor_ratio: refactor ``W`` when ``h`` differs from that of the
            last factorisation by more than this relative amount.
    """

    tableau: ClassVar[ESDIRKTableau]  # type: ignore[assignment]
    filter_error: ClassVar[bool] = False

    jacobian: Callable[[Any, Any], Any] | None = None
    kappa: float = 0.05
    max_newton_iterations: int = 10
    max_newton_failures: int = 10
    jacobian_rate: float = 0.1
    refactor_ratio: float = 0.2

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not self.kappa > 0:
            raise ValueError(f"{name}: kappa must be positive, got {self.kappa}")
        if self.max_newton_iterations < 1 or self.max_newton_failures < 1:
            raise ValueError(
                f"{name}: max_newton_iterations must be at least 1 and max_newton_failures at least 1, got "
                f"{self.max_newton_iterations} and {self.max_newton_failures}"
            )
        if not self.refactor_ratio >= 0 or not self.jacobian_rate >= 0:
            raise ValueError(
                f"{name}: refactor_ratio and jacobian_rate must be non-negative, got "
                f"{self.refactor_ratio} and {self.jacobian_rate}"
            )

    @property
    def adaptive(self) -> bool:
        return True

    @property
    def function_evaluations_per_step(self) -> int:
        return 0  # counted in the carried state: Newton iterations vary per step

    def init_state(self, f: VectorField, t0: Any, y0: Any, f0: Any, rtol: float, atol: float) -> dict[str, Any]:
        zero = dx.zeros_like(t0)
        count = dx.astype(zero, dx.int32)
        jacobian = dx.zeros_like(y0)[:, None] * dx.zeros_like(y0)[None, :]
        lu, piv = lu_factor(iteration_matrix(jacobian, zero))
        yes = zero == 0.0
        return {
            "jacobian": jacobian,
            "lu": lu,
            "piv": piv,
            "h_lu": zero,
            "jacobian_stale": yes,  # no Jacobian yet: the first step computes it
            "jacobian_fresh": ~yes,
            "converged": yes,
            "rate": zero,
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
        tableau = self.tableau
        gamma = float(tableau.gamma)
        h_gamma = h * gamma

        # Refresh the Jacobian and the factorisation of W only when needed.
        stale = state["jacobian_stale"]
        jacobian = dx.cond(
            stale, lambda: dx.stop_gradient(state_jacobian(f, t, y, self.jacobian)), lambda: state["jacobian"]
        )
        drift = dx.abs(h - state["h_lu"]) > self.refactor_ratio * dx.abs(h)
        refactor = stale | drift
        w_matrix = dx.stop_gradient(iteration_matrix(jacobian, h_gamma))
        lu, piv = dx.cond(refactor, lambda: lu_factor(w_matrix), lambda: (state["lu"], state["piv"]))
        w_used = dx.stop_gradient(dx.where(refactor, w_matrix, iteration_matrix(jacobian, state["h_lu"] * gamma)))
        factors = (lu, piv)

        # The stages, each from its predicted value.
        scale = dx.stop_gradient(state["atol"] + state["rtol"] * dx.abs(y))
        ks = [f0]
        converged = dx.ones_like(h) > 0.0
        evaluations = dx.astype(dx.zeros_like(h), dx.int32)
        rate = dx.zeros_like(h)
        z = y
        for i in range(1, tableau.stages):
            rhs = _combine(y, h, tableau.a[i][:i], ks)
            guess = _combine(None, 1.0, tableau.predictor[i - 1], ks)
            z0 = rhs + h_gamma * guess
            t_stage = t + float(tableau.c[i]) * h
            z, ok, iterations, stage_rate = newton_stage(
                f,
                t_stage,
                rhs,
                h_gamma,
                z0,
                w_used,
                factors,
                scale,
                self.kappa,
                self.max_newton_iterations,
                self.jacobian,
            )
            converged = converged & ok
            evaluations = evaluations + iterations
            rate = dx.maximum(rate, stage_rate)
            ks.append((z - rhs) / h_gamma)

        y1 = z if tableau.stiffly_accurate else _combine(y, h, tableau.b, ks)
        f1 = ks[-1] if tableau.stiffly_accurate else f(t + h, y1)
        if not tableau.stiffly_accurate:
            evaluations = evaluations + 1
        y_error = _combine(None, h, tableau.b_error, ks)
        if self.filter_error:
            # The filter W^{-1} err damps the estimate's stiff components, which
            # the explicit-Euler difference would otherwise inflate by |h lambda|.
            y_error = lu_solve(w_used, factors, y_error)
        y_error = dx.where(converged, y_error, float("inf"))

        new_state = dict(state)
        new_state.update(
            jacobian=jacobian,
            lu=lu,
            piv=piv,
            h_lu=dx.where(refactor, h, state["h_lu"]),
            jacobian_fresh=stale,
            converged=converged,
            rate=rate,
            num_fevals=state["num_fevals"] + evaluations,
            num_jacobians=state["num_jacobians"] + dx.astype(stale, dx.int32),
            num_lu=state["num_lu"] + dx.astype(refactor, dx.int32),
        )
        return y1, y_error, dx.stack(ks), f1, new_state

    def update_state(self, state: dict[str, Any], accepted: Any) -> dict[str, Any]:
        converged = state["converged"]
        # A failure with an old Jacobian is retried with a new one; one with a
        # fresh Jacobian only needs the smaller step the controller chooses.
        retry = (~converged) & (~state["jacobian_fresh"])
        slow = accepted & (state["rate"] > self.jacobian_rate)
        new_state = dict(state)
        new_state["jacobian_stale"] = retry | slow
        new_state["newton_failures"] = dx.where(converged, 0, state["newton_failures"] + 1)
        return new_state

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


def _combine(y: Any, h: Any, weights: Sequence[Fraction], ks: list[Any]) -> Any:
    """Return ``y + h * sum_j weights[j] * ks[j]``, skipping zero weights (``y = None`` means 0)."""
    total = None
    for w, k in zip(weights, ks):
        if w != 0:
            term = float(w) * k
            total = term if total is None else total + term
    if total is None:
        return y if y is not None else dx.zeros_like(ks[0])
    return total * h if y is None else y + h * total


def tableau_arrays(tableau: ESDIRKTableau) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(c, a, b)`` as float64 arrays, ``a`` as a full lower-triangular matrix."""
    s = tableau.stages
    a = np.zeros((s, s))
    for i, row in enumerate(tableau.a):
        a[i, : len(row)] = [float(x) for x in row]
    return np.array([float(x) for x in tableau.c]), a, np.array([float(x) for x in tableau.b])
