"""The implicit (backward) Euler method."""

from __future__ import annotations

import dataclasses

from ._implicit_rk import AbstractESDIRK, ESDIRKTableau


@dataclasses.dataclass(frozen=True)
class ImplicitEuler(AbstractESDIRK):
    """The implicit Euler method ``y1 = y0 + h f(t0 + h, y1)``, written as a two-stage ESDIRK.

    Order 1, L-stable, stiffly accurate, cubic Hermite interpolant. The
    error estimate is the difference to explicit Euler, ``h (k2 - k1)``,
    passed through the filter ``(I - h J)^{-1}`` so that stiff components
    do not inflate it: on ``y' = lambda y`` the raw difference grows like
    ``|h lambda|`` times the filtered one.
    """

    tableau = ESDIRKTableau.build(
        c=[0, 1],
        a=[[0], [0, 1]],
        b=[0, 1],
        b_error=[-1, 1],
        predictor=[[1]],
    )
    order = 1
    embedded_order = 1
    filter_error = True
