"""The Euler-Maruyama method for Itô SDEs."""

from __future__ import annotations

import dataclasses
from typing import Any

from ._sde import AbstractSDESolver, Diffusion, Drift, noise_term


@dataclasses.dataclass(frozen=True)
class EulerMaruyama(AbstractSDESolver):
    """The Euler-Maruyama method: ``y1 = y + f(t, y) dt + g(t, y) dW``.

    Strong order 0.5 and weak order 1 for Itô SDEs with general noise;
    strong order 1 where the noise is additive (``g`` independent of ``y``).
    One drift and one diffusion evaluation per step. Reference: P. E.
    Kloeden and E. Platen, Numerical Solution of Stochastic Differential
    Equations (Springer, 1992), Section 10.2.
    """

    strong_order = 0.5
    weak_order = 1.0

    def step(self, drift: Drift, diffusion: Diffusion, t: Any, y: Any, dt: float, dw: Any, diagonal: bool) -> Any:
        return y + drift(t, y) * dt + noise_term(diffusion(t, y), dw, diagonal)
