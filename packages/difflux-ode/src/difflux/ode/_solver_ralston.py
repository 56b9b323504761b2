"""Ralston's second-order method."""

from __future__ import annotations

import dataclasses

from ._runge_kutta import AbstractRungeKutta
from ._tableau import ButcherTableau


@dataclasses.dataclass(frozen=True)
class Ralston(AbstractRungeKutta):
    """Ralston's method: the two-stage, second-order method with minimal error bound.

    Order 2, fixed step, 2 stages, not FSAL, cubic Hermite interpolant.
    Tableau: ``c = (0, 2/3)``, ``a21 = 2/3``, ``b = (1/4, 3/4)``.
    Reference: A. Ralston, Runge-Kutta methods with minimum error bounds,
    Mathematics of Computation 16 (1962), 431-437.
    """

    tableau = ButcherTableau.build(c=[0, "2/3"], a=[[], ["2/3"]], b=["1/4", "3/4"])
    order = 2
