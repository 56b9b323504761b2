"""Kvaerno's ESDIRK 3(2) method."""

from __future__ import annotations

import dataclasses

import numpy as np

from ._implicit_rk import AbstractESDIRK, ESDIRKTableau

# gamma is the root near 0.4359 of 6 g^3 - 18 g^2 + 9 g - 1 = 0, the value
# that makes the method L-stable (the tests check R(-inf) = 0). The other
# coefficients are Kvaerno's closed forms in gamma.
_GAMMA = float(min((r.real for r in np.roots([6, -18, 9, -1]) if abs(r.imag) < 1e-12), key=lambda r: abs(r - 0.436)))
_A31 = (-4 * _GAMMA**2 + 6 * _GAMMA - 1) / (4 * _GAMMA)
_A32 = (-2 * _GAMMA + 1) / (4 * _GAMMA)
_A41 = (6 * _GAMMA - 1) / (12 * _GAMMA)
_A42 = -1 / ((24 * _GAMMA - 12) * _GAMMA)
_A43 = (-6 * _GAMMA**2 + 6 * _GAMMA - 1) / (6 * _GAMMA - 3)
# Predictor: stage 3 extrapolates linearly through k1 and k2 to c3 = 1.
_THETA = 1 / (2 * _GAMMA)


@dataclasses.dataclass(frozen=True)
class Kvaerno3(AbstractESDIRK):
    """Kvaerno's ESDIRK 3(2) pair.

    Order 3, embedded order 2, 4 stages (3 implicit), L-stable, stiffly
    accurate: the solution is the last stage and the embedded solution the
    third, both at ``c = 1``. Cubic Hermite interpolant. Reference: A.
    Kvaerno, Singly diagonally implicit Runge-Kutta methods with an explicit
    first stage, BIT Numerical Mathematics 44 (2004), 489-502.
    """

    tableau = ESDIRKTableau.build(
        c=[0, 2 * _GAMMA, 1, 1],
        a=[[0], [_GAMMA, _GAMMA], [_A31, _A32, _GAMMA], [_A41, _A42, _A43, _GAMMA]],
        b=[_A41, _A42, _A43, _GAMMA],
        b_error=[_A41 - _A31, _A42 - _A32, _A43 - _GAMMA, _GAMMA],
        predictor=[[1], [1 - _THETA, _THETA], [_A31, _A32, _GAMMA]],
        tolerance=1e-14,
    )
    order = 3
    embedded_order = 2
