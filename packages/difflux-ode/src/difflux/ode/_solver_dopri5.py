"""The Dormand-Prince 5(4) pair with Shampine's dense output."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

from ._runge_kutta import AbstractRungeKutta
from ._tableau import ButcherTableau

_B = [Fraction(35, 384), 0, Fraction(500, 1113), Fraction(125, 192), Fraction(-2187, 6784), Fraction(11, 84), 0]
_B_HAT = [
    Fraction(5179, 57600),
    0,
    Fraction(7571, 16695),
    Fraction(393, 640),
    Fraction(-92097, 339200),
    Fraction(187, 2100),
    Fraction(1, 40),
]

# Shampine's dense-output weights, as in Hairer's DOPRI5 code (routine
# CONTD5); index i multiplies stage k_{i+1}, and stage 2 has weight 0.
_DENSE = [
    Fraction(-12715105075, 11282082432),
    0,
    Fraction(87487479700, 32700410799),
    Fraction(-10690763975, 1880347072),
    Fraction(701980252875, 199316789632),
    Fraction(-1453857185, 822651844),
    Fraction(69997945, 29380423),
]


@dataclasses.dataclass(frozen=True)
class Dopri5(AbstractRungeKutta):
    """The Dormand-Prince 5(4) embedded pair (``ode45`` in MATLAB, ``RK45`` in SciPy).

    Order 5, embedded order 4, 7 stages, FSAL, with Shampine's fourth-order
    continuous extension as interpolant. References: J. R. Dormand and
    P. J. Prince, A family of embedded Runge-Kutta formulae, Journal of
    Computational and Applied Mathematics 6 (1980), 19-26, the pair
    RK5(4)7M; the dense output of L. F. Shampine, Some practical
    Runge-Kutta formulas, Mathematics of Computation 46 (1986), 135-150,
    in the form of Hairer, Norsett and Wanner, Solving ODEs I (2nd ed.),
    Section II.6.
    """

    tableau = ButcherTableau.build(
        c=[0, "1/5", "3/10", "4/5", "8/9", 1, 1],
        a=[
            [],
            ["1/5"],
            ["3/40", "9/40"],
            ["44/45", "-56/15", "32/9"],
            ["19372/6561", "-25360/2187", "64448/6561", "-212/729"],
            ["9017/3168", "-355/33", "46732/5247", "49/176", "-5103/18656"],
            _B[:6],
        ],
        b=_B,
        b_error=[Fraction(b) - Fraction(b_hat) for b, b_hat in zip(_B, _B_HAT)],
    )
    order = 5
    embedded_order = 4

    def interpolate(self, y0: Any, y1: Any, f0: Any, f1: Any, h: Any, ks: Any, theta: Any) -> Any:
        # y(theta) = r1 + theta (r2 + (1 - theta) (r3 + theta (r4 + (1 - theta) r5))).
        r2 = y1 - y0
        r3 = h * f0 - r2
        r4 = r2 - h * f1 - r3
        r5 = None
        for i, d in enumerate(_DENSE):
            if d != 0:
                term = float(d) * ks[..., i, :]
                r5 = term if r5 is None else r5 + term
        r5 = h * r5
        one_minus = 1.0 - theta
        return y0 + theta * (r2 + one_minus * (r3 + theta * (r4 + one_minus * r5)))
