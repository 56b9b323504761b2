"""The explicit midpoint method."""

from __future__ import annotations

import dataclasses

from ._runge_kutta import AbstractRungeKutta
from ._tableau import ButcherTableau


@dataclasses.dataclass(frozen=True)
class Midpoint(AbstractRungeKutta):
    """The explicit midpoint rule: one Euler half step, then a full step with its slope.

    Order 2, fixed step, 2 stages, not FSAL, cubic Hermite interpolant.
    Tableau: ``c = (0, 1/2)``, ``a21 = 1/2``, ``b = (0, 1)``. Reference:
    Hairer, Norsett and Wanner, Solving ODEs I (2nd ed.), Section II.1,
    equation (1.7) (Runge 1895).
    """

    tableau = ButcherTableau.build(c=[0, "1/2"], a=[[], ["1/2"]], b=[0, 1])
    order = 2
