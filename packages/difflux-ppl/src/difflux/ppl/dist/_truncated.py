r"""The truncated normal distribution."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import difflux.core as dx

from . import constraints
from ._continuous import _open_unit_uniform
from ._util import Shape, as_params, broadcast_shapes, shape_of
from .distribution import Distribution, broadcast_to_batch

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _phi(z: Any) -> Any:
    """Return the standard normal density, 0 at infinite ``z``."""
    finite = dx.isfinite(z)
    safe = dx.where(finite, z, 0.0)
    return dx.where(finite, dx.exp(-0.5 * safe * safe - _LOG_SQRT_2PI), 0.0)


def _z_phi(z: Any) -> Any:
    """Return ``z * phi(z)``, taken as its limit 0 at infinite ``z``."""
    finite = dx.isfinite(z)
    safe = dx.where(finite, z, 0.0)
    return safe * _phi(safe) * dx.where(finite, 1.0, 0.0)


class TruncatedNormal(Distribution):
    r"""The normal distribution :math:`\mathcal{N}(\mu, \sigma^2)` restricted to ``[low, high]``.

    .. math::

        p(x) = \frac{\phi((x - \mu)/\sigma)}{\sigma\,(\Phi(\beta) - \Phi(\alpha))},
        \quad \alpha = \frac{\mathrm{low} - \mu}{\sigma},\ \beta = \frac{\mathrm{high} - \mu}{\sigma}

    ``low=None`` or ``high=None`` leaves that side unbounded. When the
    interval lies in the right tail (:math:`\alpha > 0`) the normaliser and
    the quantiles are computed from the mirrored tail, which keeps them
    accurate there. Samples are reparameterised through the quantile function.

    Args:
        loc: :math:`\mu`.
        scale: :math:`\sigma > 0`.
        low: the lower bound, or ``None``.
        high: the upper bound, or ``None``.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    reparametrized_params = ("loc", "scale", "low", "high")

    def __init__(
        self, loc: Any = 0.0, scale: Any = 1.0, *, low: Any = None, high: Any = None, validate_args: bool | None = None
    ) -> None:
        self.loc, self.scale, low, high = as_params(loc, scale, low, high)
        self.low = low if low is not None else -math.inf
        self.high = high if high is not None else math.inf
        self._has_low, self._has_high = low is not None, high is not None
        shapes = [shape_of(self.loc), shape_of(self.scale), shape_of(self.low), shape_of(self.high)]
        super().__init__(broadcast_shapes(*shapes), validate_args=validate_args)

    def _validate_parameters(self) -> None:
        from ._util import is_traced, to_numpy

        super()._validate_parameters()
        if not (self._has_low and self._has_high) or is_traced(self.low) or is_traced(self.high):
            return
        low, high = to_numpy(dx.stop_gradient(self.low)), to_numpy(dx.stop_gradient(self.high))
        if not (low < high).all():
            raise ValueError(
                f"TruncatedNormal got invalid bounds low = {low} and high = {high}: low must be less than high"
            )

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        if self._has_low and self._has_high:
            return constraints.interval(self.low, self.high)
        if self._has_low:
            return constraints.greater_than_eq(self.low)
        if self._has_high:
            return constraints.less_than(self.high)
        return constraints.real

    # A missing bound is never computed with: its standardised value would be
    # infinite, and inf * 0 terms would make gradients NaN.

    def _alpha(self) -> Any:
        return (self.low - self.loc) / self.scale

    def _beta(self) -> Any:
        return (self.high - self.loc) / self.scale

    def _right_tail(self) -> Any:
        """Whether the interval lies right of the mean, where tails are computed mirrored."""
        return self._alpha() > 0 if self._has_low else False

    def _log_normaliser(self) -> Any:
        if not self._has_high:
            return dx.log_ndtr(-self._alpha())
        if not self._has_low:
            return dx.log_ndtr(self._beta())
        alpha, beta = self._alpha(), self._beta()
        # Z = Phi(beta) - Phi(alpha), or Phi(-alpha) - Phi(-beta) in the right tail.
        right = alpha > 0
        log_upper = dx.log_ndtr(dx.where(right, -alpha, beta))
        log_lower = dx.log_ndtr(dx.where(right, -beta, alpha))
        return log_upper + dx.log(-dx.expm1(log_lower - log_upper))

    def _clip(self, z: Any) -> Any:
        return dx.clip(z, self._alpha() if self._has_low else None, self._beta() if self._has_high else None)

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        log_density = -0.5 * z * z - _LOG_SQRT_2PI - dx.log(self.scale) - self._log_normaliser()
        return dx.where((value >= self.low) & (value <= self.high), log_density, -math.inf)

    def cdf(self, value: Any) -> Any:
        z = self._clip((value - self.loc) / self.scale)
        normaliser = dx.exp(self._log_normaliser())
        below = dx.ndtr(self._alpha()) if self._has_low else 0.0
        above = dx.ndtr(-self._beta()) if self._has_high else 0.0
        from_left = (dx.ndtr(z) - below) / normaliser
        from_right = 1.0 - (dx.ndtr(-z) - above) / normaliser
        return dx.where(self._right_tail(), from_right, from_left)

    def icdf(self, q: Any) -> Any:
        normaliser = dx.exp(self._log_normaliser())
        below = dx.ndtr(self._alpha()) if self._has_low else 0.0
        above = dx.ndtr(-self._beta()) if self._has_high else 0.0
        from_left = dx.ndtri(below + q * normaliser)
        from_right = -dx.ndtri(above + (1.0 - q) * normaliser)
        z = self._clip(dx.where(self._right_tail(), from_right, from_left))
        return self.loc + self.scale * z

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        return self.icdf(_open_unit_uniform(key, self.loc, self.shape(sample_shape)))

    @property
    def mean(self) -> Any:
        normaliser = dx.exp(self._log_normaliser())
        shift = (
            (_phi(self._alpha()) if self._has_low else 0.0) - (_phi(self._beta()) if self._has_high else 0.0)
        ) / normaliser
        return broadcast_to_batch(self.loc + self.scale * shift, self.batch_shape)

    @property
    def variance(self) -> Any:
        normaliser = dx.exp(self._log_normaliser())
        alpha_terms = (_phi(self._alpha()), _z_phi(self._alpha())) if self._has_low else (0.0, 0.0)
        beta_terms = (_phi(self._beta()), _z_phi(self._beta())) if self._has_high else (0.0, 0.0)
        shift = (alpha_terms[0] - beta_terms[0]) / normaliser
        spread = (alpha_terms[1] - beta_terms[1]) / normaliser
        return broadcast_to_batch(self.scale * self.scale * (1.0 + spread - shift * shift), self.batch_shape)
