"""Shampine and Reichelt's Rosenbrock 2(3) method (``ode23s``)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import difflux.core as dx

from ._rosenbrock import AbstractRosenbrock
from ._runge_kutta import VectorField

_D = 1.0 / (2.0 + math.sqrt(2.0))
_E32 = 6.0 + math.sqrt(2.0)


@dataclasses.dataclass(frozen=True)
class Rosenbrock23(AbstractRosenbrock):
    """Shampine and Reichelt's Rosenbrock method of order 2 with a third-order error estimate.

    With ``d = 1 / (2 + sqrt 2)``, ``W = I - h d J`` and ``T = df/dt``:

        k1 = W^{-1} (f(t, y) + h d T)
        k2 = W^{-1} (f(t + h/2, y + h/2 k1) - k1) + k1
        y1 = y + h k2
        k3 = W^{-1} (f(t + h, y1) - (6 + sqrt 2) (k2 - F1) - 2 (k1 - F0) + h d T)
        err = h / 6 (k1 - 2 k2 + k3)

    with ``F0``, ``F1`` the two evaluations above. Order 2, L-stable, 3
    stages (2 evaluations of ``f`` per step, as the last is reused by the
    next step), one Jacobian and one LU factorisation per step. Its
    interpolant ``y(t + theta h) = y + h (theta (1 - theta) k1 + theta
    (theta - 2 d) k2) / (1 - 2 d)`` is of order 2. Suited to loose
    tolerances. Reference: L. F. Shampine and M. W. Reichelt, The MATLAB ODE
    Suite, SIAM Journal on Scientific Computing 18 (1997), 1-22.
    """

    order = 2
    # The estimate is the local error of the order-2 solution, O(h^3), so
    # the controller's exponent is 1/3, as for a 2(1) pair.
    embedded_order = 2

    @property
    def dense_stages(self) -> int:
        return 3

    @property
    def evaluations_besides_jacobian(self) -> int:
        return 3  # f at the midpoint and at t + h, and the JVP for df/dt

    def step_with_state(
        self, f: VectorField, t: Any, y: Any, f0: Any, h: Any, state: dict[str, Any]
    ) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        y1, y_error, ks, f1 = self.step(f, t, y, f0, h)
        return y1, y_error, ks, f1, state

    def step(self, f: VectorField, t: Any, y: Any, f0: Any, h: Any) -> tuple[Any, Any, Any, Any]:
        jacobian, time_derivative = self.linearise(f, t, y)
        hd_t = (h * _D) * time_derivative
        w_matrix, factors = self.factor(jacobian, h * _D)

        k1 = self.solve_w(w_matrix, factors, f0 + hd_t)
        f_mid = f(t + 0.5 * h, y + (0.5 * h) * k1)
        k2 = self.solve_w(w_matrix, factors, f_mid - k1) + k1
        y1 = y + h * k2
        f1 = f(t + h, y1)
        k3 = self.solve_w(w_matrix, factors, f1 - _E32 * (k2 - f_mid) - 2.0 * (k1 - f0) + hd_t)

        y_error = (h / 6.0) * (k1 - 2.0 * k2 + k3)
        ks = dx.stack([k1, k2, k3])
        return y1, y_error, ks, f1

    def interpolate(self, y0: Any, y1: Any, f0: Any, f1: Any, h: Any, ks: Any, theta: Any) -> Any:
        k1, k2 = ks[..., 0, :], ks[..., 1, :]
        scale = 1.0 / (1.0 - 2.0 * _D)
        return y0 + h * ((theta * (1.0 - theta) * scale) * k1 + (theta * (theta - 2.0 * _D) * scale) * k2)
