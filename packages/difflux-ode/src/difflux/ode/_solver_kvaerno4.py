"""Kvaerno's ESDIRK 4(3) method."""

from __future__ import annotations

import dataclasses

import numpy as np

from ._implicit_rk import AbstractESDIRK, ESDIRKTableau

# The coefficients are Kvaerno's closed forms in gamma = 0.5728160625,
# evaluated in double precision, as Diffrax 0.7.2 transcribes them. The
# tests check the order conditions and L-stability.
_GAMMA = 0.5728160625


def _poly(*coefficients: float) -> float:
    return float(np.polyval(coefficients, _GAMMA))


_A31 = _poly(144, -180, 81, -15, 1) * _GAMMA / _poly(12, -6, 1) ** 2
_A32 = _poly(-36, 39, -15, 2) * _GAMMA / _poly(12, -6, 1) ** 2
_A41 = _poly(-144, 396, -330, 117, -18, 1) / (12 * _GAMMA**2 * _poly(12, -9, 2))
_A42 = _poly(72, -126, 69, -15, 1) / (12 * _GAMMA**2 * _poly(3, -1))
_A43 = (_poly(-6, 6, -1) * _poly(12, -6, 1) ** 2) / (12 * _GAMMA**2 * _poly(12, -9, 2) * _poly(3, -1))
_A51 = _poly(288, -312, 120, -18, 1) / (48 * _GAMMA**2 * _poly(12, -9, 2))
_A52 = _poly(24, -12, 1) / (48 * _GAMMA**2 * _poly(3, -1))
_A53 = -(_poly(12, -6, 1) ** 3) / (48 * _GAMMA**2 * _poly(3, -1) * _poly(12, -9, 2) * _poly(6, -6, 1))
_A54 = _poly(-24, 36, -12, 1) / _poly(24, -24, 4)
_C2 = 2 * _GAMMA
_C3 = _GAMMA + _A31 + _A32
# Predictors extrapolate linearly through the last two stages.
_THETA1 = _C3 / _C2
_THETA2 = (1 - _C2) / (_C3 - _C2)


@dataclasses.dataclass(frozen=True)
class Kvaerno4(AbstractESDIRK):
    """Kvaerno's ESDIRK 4(3) pair.

    Order 4, embedded order 3, 5 stages (4 implicit), L-stable, stiffly
    accurate (the solution is the last stage, the embedded solution the
    fourth, both at ``c = 1``). Cubic Hermite interpolant. Reference: A.
    Kvaerno, Singly diagonally implicit Runge-Kutta methods with an explicit
    first stage, BIT Numerical Mathematics 44 (2004), 489-502.
    """

    tableau = ESDIRKTableau.build(
        c=[0, _C2, _C3, 1, 1],
        a=[
            [0],
            [_GAMMA, _GAMMA],
            [_A31, _A32, _GAMMA],
            [_A41, _A42, _A43, _GAMMA],
            [_A51, _A52, _A53, _A54, _GAMMA],
        ],
        b=[_A51, _A52, _A53, _A54, _GAMMA],
        b_error=[_A51 - _A41, _A52 - _A42, _A53 - _A43, _A54 - _GAMMA, _GAMMA],
        predictor=[[1], [1 - _THETA1, _THETA1], [0, 1 - _THETA2, _THETA2], [_A41, _A42, _A43, _GAMMA]],
        tolerance=1e-14,
    )
    order = 4
    embedded_order = 3
