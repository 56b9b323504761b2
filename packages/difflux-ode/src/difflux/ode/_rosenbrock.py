"""Rosenbrock (linearly implicit) methods: no Newton iteration, one factorisation per step.

A Rosenbrock step replaces the nonlinear stage equations of an implicit
Runge-Kutta method by linear ones with the exact Jacobian ``J = df/dy`` and
``T = df/dt`` at the start of the step. Every step computes ``J`` and ``T``
afresh (``dx.jacfwd`` and one JVP, or the user's ``jacobian``) and factors
``W = I - h d J`` once for all its stages.

The derivative of a step follows ``J`` as well, so reverse mode through a
Rosenbrock solve differentiates ``f`` twice. The linear solves reuse the
factorisation in their derivative rules (``_newton.lu_solve``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import difflux.core as dx

from ._newton import iteration_matrix, lu_factor, lu_solve, state_jacobian
from ._runge_kutta import AbstractRungeKutta, VectorField


@dataclasses.dataclass(frozen=True)
class AbstractRosenbrock(AbstractRungeKutta):
    """Base class of the Rosenbrock solvers.

    Attributes:
        jacobian: ``jacobian(t, y)`` returning ``df/dy`` on the flat state
            (shape ``(d, d)``), or ``None`` to compute it with ``dx.jacfwd``.
            It receives the flattened ``y`` and no ``args``: close over them.
    """

    jacobian: Callable[[Any, Any], Any] | None = None

    @property
    def adaptive(self) -> bool:
        return True

    def linearise(self, f: VectorField, t: Any, y: Any) -> tuple[Any, Any]:
        """Return ``(J, T)``: ``df/dy`` and ``df/dt`` at ``(t, y)``."""
        jacobian = state_jacobian(f, t, y, self.jacobian)
        _, time_derivative = dx.jvp(lambda time: f(time, y), (t,), (dx.ones_like(t),))
        return jacobian, time_derivative

    def factor(self, jacobian: Any, h_d: Any) -> tuple[Any, tuple[Any, Any]]:
        """Return ``W = I - h d J`` and its LU factors."""
        w_matrix = iteration_matrix(jacobian, h_d)
        return w_matrix, lu_factor(w_matrix)

    @staticmethod
    def solve_w(w_matrix: Any, factors: tuple[Any, Any], b: Any) -> Any:
        """Return ``W^{-1} b`` from the factors."""
        return lu_solve(w_matrix, factors, b)

    @property
    def evaluations_besides_jacobian(self) -> int:
        """Calls of ``f`` per step outside the Jacobian, ``df/dt`` counted as one."""
        raise NotImplementedError

    def statistics(self, state: dict[str, Any], num_steps: Any) -> dict[str, Any]:
        # Each step computes one Jacobian (one JVP per state entry with
        # dx.jacfwd) and one factorisation.
        size = 0 if self.jacobian is not None else state["size"].shape[0]
        return {
            "num_fevals": num_steps * (self.evaluations_besides_jacobian + size),
            "num_jacobians": num_steps,
            "num_lu": num_steps,
        }

    def init_state(self, f: VectorField, t0: Any, y0: Any, f0: Any, rtol: float, atol: float) -> dict[str, Any]:
        # Only the state's size is needed, for the statistics.
        return {"size": dx.zeros_like(y0)}
