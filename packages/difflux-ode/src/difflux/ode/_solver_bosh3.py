"""The Bogacki-Shampine 3(2) pair."""

from __future__ import annotations

import dataclasses

from ._runge_kutta import AbstractRungeKutta
from ._tableau import ButcherTableau


@dataclasses.dataclass(frozen=True)
class Bosh3(AbstractRungeKutta):
    """The Bogacki-Shampine 3(2) embedded pair (``ode23`` in MATLAB, ``RK23`` in SciPy).

    Order 3, embedded order 2, 4 stages, FSAL, cubic Hermite interpolant
    (third order, which matches the method). Reference: P. Bogacki and
    L. F. Shampine, A 3(2) pair of Runge-Kutta formulas, Applied
    Mathematics Letters 2 (1989), 321-325.
    """

    # b_hat = (7/24, 1/4, 1/3, 1/8); b_error = b - b_hat.
    tableau = ButcherTableau.build(
        c=[0, "1/2", "3/4", 1],
        a=[[], ["1/2"], [0, "3/4"], ["2/9", "1/3", "4/9"]],
        b=["2/9", "1/3", "4/9", 0],
        b_error=["-5/72", "1/12", "1/9", "-1/8"],
    )
    order = 3
    embedded_order = 2
