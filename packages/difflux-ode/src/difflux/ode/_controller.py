"""Step-size control: the PID controller, constant steps and the initial step.

The PID controller (G. Soderlind, Digital filters in adaptive time-stepping,
ACM Transactions on Mathematical Software 29 (2003), 1-26) chooses the next
step from the last three error ratios ``r_n = ||err_n / scale||_rms``:

    h_{n+1} = h_n * clip(safety * r_n^(-beta1/k) * r_{n-1}^(-beta2/k) * r_{n-2}^(-beta3/k),
                         factor_min, factor_max)

with ``k`` the embedded order plus one. ``beta1 = 1`` alone is the classical
I controller. The defaults ``beta1 = 0.7, beta2 = -0.4`` are the PI
controller of Hairer and Wanner (Solving ODEs II, 2nd ed., Section IV.2).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import difflux.core as dx


@dataclasses.dataclass(frozen=True)
class PIDController:
    """Adapt the step size from the error ratios of the last three steps.

    Attributes:
        beta1, beta2, beta3: exponents on the current, previous and
            second-previous error ratio, each divided by the embedded order
            plus one.
        safety: factor below 1 that keeps the next step from failing.
        factor_min, factor_max: bounds of the ratio of consecutive steps.
    """

    beta1: float = 0.7
    beta2: float = -0.4
    beta3: float = 0.0
    safety: float = 0.9
    factor_min: float = 0.2
    factor_max: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.factor_min < 1 < self.factor_max:
            raise ValueError(
                f"PIDController: need 0 < factor_min < 1 < factor_max, got factor_min={self.factor_min}, "
                f"factor_max={self.factor_max}"
            )
        if not 0 < self.safety <= 1:
            raise ValueError(f"PIDController: safety must lie in (0, 1], got {self.safety}")

    def factor(self, ratio: Any, previous: Any, before_previous: Any, accepted: Any, error_order: int) -> Any:
        """Return the factor ``h_{n+1} / h_n``; after a rejected step it is at most 1."""
        tiny = 1e-10  # a zero error ratio (an exact step) would give an infinite factor
        factor = self.safety * dx.maximum(ratio, tiny) ** (-self.beta1 / error_order)
        if self.beta2 != 0:
            factor = factor * dx.maximum(previous, tiny) ** (-self.beta2 / error_order)
        if self.beta3 != 0:
            factor = factor * dx.maximum(before_previous, tiny) ** (-self.beta3 / error_order)
        factor = dx.clip(factor, self.factor_min, self.factor_max)
        return dx.where(accepted, factor, dx.minimum(factor, 1.0))


@dataclasses.dataclass(frozen=True)
class ConstantStepSize:
    """Take steps of the fixed size ``dt0`` (the last step is shortened to land on ``t1``)."""


def initial_step_size(f: Any, t0: Any, y0: Any, f0: Any, order: int, rtol: float, atol: float, direction: Any) -> Any:
    """Choose the first step size (Hairer, Norsett and Wanner, Solving ODEs I, 2nd ed., Section II.4).

    Costs one evaluation of ``f``. The result is positive; multiply by the
    direction of integration to step.
    """
    tiny = float(dx.finfo(y0.dtype).tiny)  # guards divisions by a zero norm
    scale = atol + rtol * dx.abs(y0)
    d0 = _rms(y0 / scale)
    d1 = _rms(f0 / scale)
    h0 = dx.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / dx.maximum(d1, tiny))

    y1 = y0 + direction * h0 * f0
    f1 = f(t0 + direction * h0, y1)
    d2 = _rms((f1 - f0) / scale) / h0

    largest = dx.maximum(d1, d2)
    h1 = dx.where(
        largest <= 1e-15,
        dx.maximum(1e-6, h0 * 1e-3),
        (0.01 / dx.maximum(largest, tiny)) ** (1.0 / (order + 1)),
    )
    return dx.minimum(100 * h0, h1)


def _rms(x: Any) -> Any:
    return dx.sqrt(dx.mean(x * x))
