"""Heun's second-order method (the explicit trapezoidal rule)."""

from __future__ import annotations

import dataclasses

from ._runge_kutta import AbstractRungeKutta
from ._tableau import ButcherTableau


@dataclasses.dataclass(frozen=True)
class Heun(AbstractRungeKutta):
    """Heun's method: an Euler predictor, then the trapezoidal rule.

    Order 2, fixed step, 2 stages, not FSAL, cubic Hermite interpolant.
    Tableau: ``c = (0, 1)``, ``a21 = 1``, ``b = (1/2, 1/2)``. Reference:
    Hairer, Norsett and Wanner, Solving ODEs I (2nd ed.), Section II.1.
    """

    tableau = ButcherTableau.build(c=[0, 1], a=[[], [1]], b=["1/2", "1/2"])
    order = 2
