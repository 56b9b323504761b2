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
    C. Runge, Ueber die numerische Aufloesung von Differentialgleichungen,
    Mathematische Annalen 46 (1895), 167-178; also Hairer, Norsett and
    Wanner, Solving ODEs I (2nd ed.), Section II.1.
    """

    tableau = ButcherTableau.build(c=[0, "1/2"], a=[[], ["1/2"]], b=[0, 1])
    order = 2
