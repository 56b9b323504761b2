r"""Continuous distributions built on the Gamma function: Gamma, InverseGamma, Beta, StudentT.

Samples are reparameterised through ``dx.random.gamma``'s implicit
derivative in the shape parameter, so gradients flow from a sample to every
parameter (to first order in the shape parameters).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx

from . import constraints
from ._continuous import _noise
from ._inverse_cdf import beta_quantile, gamma_quantile
from ._util import Shape, as_params, broadcast_shapes, shape_of
from .distribution import Distribution, broadcast_to_batch


def _standard_gamma(key: Any, concentration: Any, shape: Shape) -> Any:
    """Draw Gamma(concentration, 1) samples of ``shape``, differentiable in ``concentration``."""
    dtype = None if isinstance(concentration, np.generic) else getattr(concentration, "dtype", None)
    if shape_of(concentration) != tuple(shape):
        concentration = dx.broadcast_to(concentration, tuple(shape))
    return dx.random.gamma(key, concentration, tuple(shape), dtype=dtype)


class _ConcentrationRate(Distribution):
    """Base class of the distributions with a positive ``concentration`` and ``rate`` on the positive reals."""

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "concentration": constraints.positive,
        "rate": constraints.positive,
    }
    support = constraints.positive
    reparametrized_params: tuple[str, ...] = ("concentration", "rate")

    def __init__(self, concentration: Any, rate: Any = 1.0, *, validate_args: bool | None = None) -> None:
        self.concentration, self.rate = as_params(concentration, rate)
        shape = broadcast_shapes(shape_of(self.concentration), shape_of(self.rate))
        super().__init__(shape, validate_args=validate_args)


class Gamma(_ConcentrationRate):
    r"""The Gamma distribution with shape :math:`\alpha` and rate :math:`\beta`.

    .. math:: p(x) = \frac{\beta^\alpha}{\Gamma(\alpha)} x^{\alpha - 1} e^{-\beta x}, \quad x > 0

    Args:
        concentration: the shape :math:`\alpha > 0`.
        rate: the rate :math:`\beta > 0` (SciPy's ``scale`` is ``1 / rate``).
    """

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        return _standard_gamma(key, self.concentration, self.shape(sample_shape)) / self.rate

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        a, b = self.concentration, self.rate
        log_density = dx.xlogy(a, b) + dx.xlogy(a - 1.0, value) - b * value - dx.lgamma(a)
        return dx.where(value >= 0, log_density, -math.inf)

    def cdf(self, value: Any) -> Any:
        return dx.gammainc(self.concentration, self.rate * dx.clip(value, 0.0, None))

    def icdf(self, q: Any) -> Any:
        return gamma_quantile(self.concentration, q) / self.rate

    def entropy(self) -> Any:
        a = self.concentration
        return a - dx.log(self.rate) + dx.lgamma(a) + (1.0 - a) * dx.digamma(a)

    @property
    def mean(self) -> Any:
        return broadcast_to_batch(self.concentration / self.rate, self.batch_shape)

    @property
    def variance(self) -> Any:
        return broadcast_to_batch(self.concentration / (self.rate * self.rate), self.batch_shape)


class InverseGamma(_ConcentrationRate):
    r"""The inverse-Gamma distribution: :math:`1/X` for :math:`X \sim \mathrm{Gamma}(\alpha, \beta)`.

    .. math:: p(x) = \frac{\beta^\alpha}{\Gamma(\alpha)} x^{-\alpha - 1} e^{-\beta / x}, \quad x > 0

    Args:
        concentration: the shape :math:`\alpha > 0`.
        rate: :math:`\beta > 0` (SciPy's ``scale``).
    """

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        return self.rate / _standard_gamma(key, self.concentration, self.shape(sample_shape))

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        a, b = self.concentration, self.rate
        positive = value > 0
        safe = dx.where(positive, value, 1.0)
        log_density = dx.xlogy(a, b) - dx.lgamma(a) - (a + 1.0) * dx.log(safe) - b / safe
        return dx.where(positive, log_density, -math.inf)

    def cdf(self, value: Any) -> Any:
        positive = value > 0
        safe = dx.where(positive, value, 1.0)
        return dx.where(positive, dx.gammaincc(self.concentration, self.rate / safe), 0.0)

    def icdf(self, q: Any) -> Any:
        return self.rate / gamma_quantile(self.concentration, 1.0 - q)

    @property
    def mean(self) -> Any:
        a = self.concentration
        mean = self.rate / dx.where(a > 1, a - 1.0, 1.0)
        return broadcast_to_batch(dx.where(a > 1, mean, math.inf), self.batch_shape)

    @property
    def variance(self) -> Any:
        a = self.concentration
        safe = dx.where(a > 2, a, 3.0)
        variance = self.rate * self.rate / ((safe - 1.0) * (safe - 1.0) * (safe - 2.0))
        return broadcast_to_batch(dx.where(a > 2, variance, math.inf), self.batch_shape)


class Beta(Distribution):
    r"""The Beta distribution on :math:`[0, 1]`.

    .. math:: p(x) = \frac{x^{\alpha - 1} (1 - x)^{\beta - 1}}{B(\alpha, \beta)}

    Args:
        concentration1: :math:`\alpha > 0`.
        concentration0: :math:`\beta > 0`.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
    }
    support = constraints.unit_interval
    reparametrized_params: tuple[str, ...] = ("concentration1", "concentration0")

    def __init__(self, concentration1: Any, concentration0: Any, *, validate_args: bool | None = None) -> None:
        self.concentration1, self.concentration0 = as_params(concentration1, concentration0)
        shape = broadcast_shapes(shape_of(self.concentration1), shape_of(self.concentration0))
        super().__init__(shape, validate_args=validate_args)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        shape = self.shape(sample_shape)
        key_1, key_0 = dx.random.split(key)
        x = _standard_gamma(key_1, self.concentration1, shape)
        y = _standard_gamma(key_0, self.concentration0, shape)
        return x / (x + y)

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        a, b = self.concentration1, self.concentration0
        log_density = dx.xlogy(a - 1.0, value) + dx.xlog1py(b - 1.0, -value) - dx.betaln(a, b)
        return dx.where((value >= 0) & (value <= 1), log_density, -math.inf)

    def cdf(self, value: Any) -> Any:
        return dx.betainc(self.concentration1, self.concentration0, dx.clip(value, 0.0, 1.0))

    def icdf(self, q: Any) -> Any:
        return beta_quantile(self.concentration1, self.concentration0, q)

    @property
    def mean(self) -> Any:
        a, b = self.concentration1, self.concentration0
        return broadcast_to_batch(a / (a + b), self.batch_shape)

    @property
    def variance(self) -> Any:
        a, b = self.concentration1, self.concentration0
        total = a + b
        return broadcast_to_batch(a * b / (total * total * (total + 1.0)), self.batch_shape)


class StudentT(Distribution):
    r"""Student's t distribution with :math:`\nu` degrees of freedom, location :math:`\mu` and scale :math:`\sigma`.

    .. math::

        p(x) = \frac{\Gamma(\frac{\nu+1}{2})}{\Gamma(\frac{\nu}{2})\sqrt{\nu\pi}\,\sigma}
        \left(1 + \frac{z^2}{\nu}\right)^{-\frac{\nu+1}{2}}, \quad z = \frac{x - \mu}{\sigma}

    The mean is NaN for :math:`\nu \le 1`. The variance is infinite for
    :math:`1 < \nu \le 2` and NaN for :math:`\nu \le 1`. Samples are
    :math:`\mu + \sigma Z \sqrt{\nu / V}` with :math:`V = 2\,\mathrm{Gamma}(\nu/2)`.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "df": constraints.positive,
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    support = constraints.real
    reparametrized_params: tuple[str, ...] = ("df", "loc", "scale")

    def __init__(self, df: Any, loc: Any = 0.0, scale: Any = 1.0, *, validate_args: bool | None = None) -> None:
        self.df, self.loc, self.scale = as_params(df, loc, scale)
        shape = broadcast_shapes(shape_of(self.df), shape_of(self.loc), shape_of(self.scale))
        super().__init__(shape, validate_args=validate_args)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        shape = self.shape(sample_shape)
        key_normal, key_gamma = dx.random.split(key)
        z = _noise(key_normal, self.loc, shape)
        chi2 = 2.0 * _standard_gamma(key_gamma, 0.5 * self.df, shape)
        return self.loc + self.scale * z * dx.sqrt(self.df / chi2)

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        nu = self.df
        z = (value - self.loc) / self.scale
        normaliser = dx.lgamma(0.5 * (nu + 1.0)) - dx.lgamma(0.5 * nu) - 0.5 * dx.log(nu * math.pi)
        return normaliser - dx.log(self.scale) - 0.5 * (nu + 1.0) * dx.log1p(z * z / nu)

    def cdf(self, value: Any) -> Any:
        # P(T <= t) = 1 - I_x(nu/2, 1/2) / 2 for t > 0, with x = nu / (nu + t^2), by symmetry below 0.
        nu = self.df
        z = (value - self.loc) / self.scale
        tail = 0.5 * dx.betainc(0.5 * nu, 0.5, nu / (nu + z * z))
        return dx.where(z > 0, 1.0 - tail, tail)

    def icdf(self, q: Any) -> Any:
        # y = t^2 / (nu + t^2) solves I_y(1/2, nu/2) = |2q - 1|, and w = 1 - y
        # solves I_w(nu/2, 1/2) = 2 min(q, 1 - q). Each is accurate where it is
        # small, so the smaller one gives t (y near the median, w in the tails).
        nu = self.df
        y = beta_quantile(0.5, 0.5 * nu, dx.abs(2.0 * q - 1.0))
        w = beta_quantile(0.5 * nu, 0.5, 2.0 * dx.minimum(q, 1.0 - q))
        near_median = y < 0.5
        safe_y = dx.where(near_median, y, 0.25)
        safe_w = dx.where(near_median, 0.25, w)
        magnitude = dx.sqrt(nu * dx.where(near_median, safe_y / (1.0 - safe_y), (1.0 - safe_w) / safe_w))
        return self.loc + self.scale * dx.where(q < 0.5, -magnitude, magnitude)

    @property
    def mean(self) -> Any:
        mean = broadcast_to_batch(self.loc + 0.0 * self.df, self.batch_shape)
        return dx.where(self.df > 1, mean, math.nan)

    @property
    def variance(self) -> Any:
        nu = self.df
        safe = dx.where(nu > 2, nu, 3.0)
        variance = broadcast_to_batch(self.scale * self.scale * safe / (safe - 2.0), self.batch_shape)
        return dx.where(nu > 2, variance, dx.where(nu > 1, math.inf, math.nan))
