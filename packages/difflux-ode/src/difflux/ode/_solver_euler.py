"""The explicit Euler method."""

from __future__ import annotations

import dataclasses

from ._runge_kutta import AbstractRungeKutta
from ._tableau import ButcherTableau


@dataclasses.dataclass(frozen=True)
class Euler(AbstractRungeKutta):
    """Explicit Euler: ``y1 = y0 + h f(t0, y0)``.

    Order 1, fixed step (no error estimate), 1 stage, not FSAL, cubic
    Hermite interpolant. Reference: Hairer, Norsett and Wanner, Solving
    Ordinary Differential Equations I (2nd ed., 1993), Section II.1.
    """

    tableau = ButcherTableau.build(c=[0], a=[[]], b=[1])
    order = 1
