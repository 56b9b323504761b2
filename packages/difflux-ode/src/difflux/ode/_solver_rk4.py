"""The classical fourth-order Runge-Kutta method."""

from __future__ import annotations

import dataclasses

from ._runge_kutta import AbstractRungeKutta
from ._tableau import ButcherTableau


@dataclasses.dataclass(frozen=True)
class RK4(AbstractRungeKutta):
    """The classical Runge-Kutta method ("RK4").

    Order 4, fixed step, 4 stages, not FSAL, cubic Hermite interpolant.
    Tableau: ``c = (0, 1/2, 1/2, 1)``, ``b = (1/6, 1/3, 1/3, 1/6)``.
    Reference: W. Kutta, Beitrag zur naeherungsweisen Integration totaler
    Differentialgleichungen, Zeitschrift fuer Mathematik und Physik 46
    (1901), 435-453; also Hairer, Norsett and Wanner, Solving ODEs I
    (2nd ed.), Section II.1.
    """

    tableau = ButcherTableau.build(
        c=[0, "1/2", "1/2", 1],
        a=[[], ["1/2"], [0, "1/2"], [0, 0, 1]],
        b=["1/6", "1/3", "1/3", "1/6"],
    )
    order = 4
