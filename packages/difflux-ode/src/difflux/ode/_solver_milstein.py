"""The Milstein method for Itô SDEs with diagonal noise."""

from __future__ import annotations

import dataclasses
from typing import Any

import difflux.core as dx

from ._sde import AbstractSDESolver, Diffusion, Drift


@dataclasses.dataclass(frozen=True)
class Milstein(AbstractSDESolver):
    """The Milstein method for diagonal noise (``g_i`` depends on ``y_i`` only).

    .. math::

        y_{1,i} = y_i + f_i \\, dt + g_i \\, dW_i
                  + \\tfrac{1}{2} g_i \\, \\partial_{y_i} g_i \\, (dW_i^2 - dt)

    Strong order 1 and weak order 1 for Itô SDEs with diagonal noise. The
    derivative ``dg_i/dy_i`` comes from one ``dx.jvp`` of the diffusion with
    a tangent of ones, which is the diagonal of its Jacobian exactly when
    the noise is diagonal. Reference: P. E. Kloeden and E. Platen,
    Numerical Solution of Stochastic Differential Equations (Springer,
    1992), Section 10.3.
    """

    strong_order = 1.0
    weak_order = 1.0
    diagonal_only = True

    def step(self, drift: Drift, diffusion: Diffusion, t: Any, y: Any, dt: float, dw: Any, diagonal: bool) -> Any:
        g, dg = dx.jvp(lambda state: diffusion(t, state), (y,), (dx.ones_like(y),))
        return y + drift(t, y) * dt + g * dw + 0.5 * g * dg * (dw * dw - dt)
