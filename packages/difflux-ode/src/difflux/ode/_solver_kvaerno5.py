"""Kvaerno's ESDIRK 5(4) method."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

from ._implicit_rk import AbstractESDIRK, ESDIRKTableau

# The coefficients are decimals, as Diffrax 0.7.2 transcribes them from
# Kvaerno's paper. They meet the order conditions to about 1e-15 (the
# tests check them and L-stability).
_GAMMA = "0.26"
_ROW6 = ["0.13855640231268224", 0, "-0.04245337201752043", "0.02446657898003141", "0.61943039072480676"]
_ROW7 = [
    "0.13659751177640291",
    0,
    "-0.05496908796538376",
    "-0.04118626728321046",
    "0.62993304899016403",
    "0.06962479448202728",
]


@dataclasses.dataclass(frozen=True)
class Kvaerno5(AbstractESDIRK):
    """Kvaerno's ESDIRK 5(4) pair, the stiff half of the default solver.

    Order 5, embedded order 4, 7 stages (6 implicit), L-stable, stiffly
    accurate (the solution is the last stage, the embedded solution the
    sixth, both at ``c = 1``). Cubic Hermite interpolant. Reference: A.
    Kvaerno, Singly diagonally implicit Runge-Kutta methods with an explicit
    first stage, BIT Numerical Mathematics 44 (2004), 489-502.
    """

    tableau = ESDIRKTableau.build(
        c=[0, "0.52", "1.230333209967908", "0.8957659843500759", "0.43639360985864756", 1, 1],
        a=[
            [0],
            [_GAMMA, _GAMMA],
            ["0.13", "0.84033320996790809", _GAMMA],
            ["0.22371961478320505", "0.47675532319799699", "-0.06470895363112615", _GAMMA],
            ["0.16648564323248321", "0.10450018841591720", "0.03631482272098715", "-0.13090704451073998", _GAMMA],
            [*_ROW6, _GAMMA],
            [*_ROW7, _GAMMA],
        ],
        b=[*_ROW7, _GAMMA],
        # The embedded solution is the sixth stage: b_hat = (row 6 of a, 0).
        b_error=[*(Fraction(x) - Fraction(y) for x, y in zip(_ROW7, [*_ROW6, _GAMMA])), _GAMMA],
        # Stage predictors: extrapolations through earlier stages.
        predictor=[
            [1],
            ["-1.366025403784441", "2.3660254037844357"],
            ["-0.19650552613122207", "0.8113579546496623", "0.38514757148155954"],
            ["0.10375304369958693", "0.937994698066431", "-0.04174774176601781", 0],
            ["-0.17281112873898072", "0.6235784481025847", "0.5492326806363959", 0, 0],
            [*_ROW6, _GAMMA],
        ],
        tolerance=1e-14,
    )
    order = 5
    embedded_order = 4
