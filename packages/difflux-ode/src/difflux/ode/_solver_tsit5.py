"""Tsitouras' 5(4) pair with its free fourth-order interpolant."""

from __future__ import annotations

import dataclasses
from typing import Any

from ._runge_kutta import AbstractRungeKutta
from ._tableau import ButcherTableau

# Tsitouras publishes the coefficients as decimals, which satisfy the
# consistency sums and order conditions only to within about 1e-14. The
# tableau's tolerance allows for that.
_A = [
    [],
    ["0.161"],
    ["-0.008480655492356989", "0.335480655492357"],
    ["2.897153057105493", "-6.359448489975075", "4.3622954328695815"],
    ["5.325864828439257", "-11.748883564062828", "7.4955393428898365", "-0.09249506636175525"],
    ["5.86145544294642", "-12.92096931784711", "8.159367898576159", "-0.071584973281401", "-0.028269050394068383"],
    [
        "0.09646076681806523",
        "0.01",
        "0.4798896504144996",
        "1.379008574103742",
        "-3.290069515436081",
        "2.324710524099774",
    ],
]

# Interpolant weights b_i(theta) = theta^2 * p_i(theta) for i >= 2 (and
# theta * p_1(theta) for the first stage); y(theta) = y0 + h sum_i b_i(theta) k_i.
# The values of b_i(1) are the weights b, which the tests check.


def _interpolant_weights(theta: Any) -> list[Any]:
    t2 = theta * theta
    return [
        -1.0530884977290216
        * theta
        * (theta - 1.3299890189751412)
        * (t2 - 1.4364028541716351 * theta + 0.7139816917074209),
        0.1017 * t2 * (t2 - 2.1966568338249754 * theta + 1.2949852507374631),
        2.490627285651252793 * t2 * (t2 - 2.38535645472061657 * theta + 1.57803468208092486),
        -16.54810288924490272 * (theta - 1.21712927295533244) * (theta - 0.61620406037800089) * t2,
        47.37952196281928122 * (theta - 1.203071208372362603) * (theta - 0.658047292653547382) * t2,
        -34.87065786149660974 * (theta - 1.2) * (theta - 0.666666666666666667) * t2,
        2.5 * (theta - 1.0) * (theta - 0.6) * t2,
    ]


@dataclasses.dataclass(frozen=True)
class Tsit5(AbstractRungeKutta):
    """Tsitouras' 5(4) embedded pair, the default solver.

    Order 5, embedded order 4, 7 stages, FSAL, with the method's own
    fourth-order interpolant (no extra stages). Its error constants are
    smaller than those of :class:`Dopri5` for the same cost. Reference:
    Ch. Tsitouras, Runge-Kutta pairs of order 5(4) satisfying only the
    first column simplifying assumption, Computers and Mathematics with
    Applications 62 (2011), 770-775, which gives the tableau and the
    interpolant's polynomials.
    """

    tableau = ButcherTableau.build(
        c=[0, "0.161", "0.327", "0.9", "0.9800255409045097", 1, 1],
        a=_A,
        b=[*_A[6], 0],
        b_error=[
            "0.001780011052226",
            "0.000816434459657",
            "-0.007880878010262",
            "0.144711007173263",
            "-0.582357165452555",
            "0.458082105929187",
            "-0.015151515151515152",
        ],
        tolerance=1e-14,
    )
    order = 5
    embedded_order = 4

    def interpolate(self, y0: Any, y1: Any, f0: Any, f1: Any, h: Any, ks: Any, theta: Any) -> Any:
        total = None
        for i, weight in enumerate(_interpolant_weights(theta)):
            term = weight * ks[..., i, :]
            total = term if total is None else total + term
        return y0 + h * total
