r"""Univariate continuous distributions with location-scale or closed-form samplers.

Each class declares ``arg_constraints`` and ``support``, draws reparameterised
samples (gradients flow from a sample to the parameters), and gives
``log_prob``, ``mean``, ``variance``, ``cdf`` and ``icdf`` in closed form.
Parameters broadcast against each other to form the batch shape.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx

from . import constraints
from ._util import Shape, as_params, broadcast_shapes, shape_of
from .distribution import Distribution, broadcast_to_batch

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_PI = math.log(math.pi)


def _sample_shape(dist: Distribution, sample_shape: Shape) -> Shape:
    return dist.shape(sample_shape)


def _noise(key: Any, like: Any, shape: Shape, kind: str = "normal") -> Any:
    """Draw standard noise of ``shape`` in ``like``'s dtype (the key's default for a NumPy scalar parameter)."""
    # A scalar parameter is a float64 NumPy scalar whatever the backend, and
    # asking JAX for float64 without x64 enabled would warn on every draw.
    dtype = None if isinstance(like, np.generic) else getattr(like, "dtype", None)
    if kind == "normal":
        return dx.random.normal(key, shape, dtype=dtype)
    if kind == "uniform":
        return dx.random.uniform(key, shape, dtype=dtype)
    if kind == "exponential":
        return dx.random.exponential(key, shape, dtype=dtype)
    raise ValueError(kind)


def _open_unit_uniform(key: Any, like: Any, shape: Shape) -> Any:
    """Draw uniforms on the open interval (0, 1), so their logs and quantiles stay finite."""
    u = _noise(key, like, shape, "uniform")
    tiny = float(dx.finfo(u.dtype).tiny)
    return dx.clip(u, tiny, 1.0 - float(dx.finfo(u.dtype).eps) / 2)


class _LocationScale(Distribution):
    """Base class of the distributions of ``loc + scale * Z`` for a fixed standard variable ``Z``.

    A subclass gives ``Z``'s log-density, cdf and quantile function
    (``_standard_log_prob``, ``_standard_cdf``, ``_standard_icdf``) and its
    entropy and variance (``_standard_entropy``, ``_standard_variance``).
    ``_standard_sample`` draws ``Z`` by inversion of open-interval uniforms
    unless the subclass overrides it.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    support = constraints.real
    reparametrized_params: tuple[str, ...] = ("loc", "scale")
    _standard_entropy: ClassVar[float]
    _standard_variance: ClassVar[float]

    def __init__(self, loc: Any = 0.0, scale: Any = 1.0, *, validate_args: bool | None = None) -> None:
        self.loc, self.scale = as_params(loc, scale)
        super().__init__(broadcast_shapes(shape_of(self.loc), shape_of(self.scale)), validate_args=validate_args)

    def _standard_sample(self, key: Any, shape: Shape) -> Any:
        return self._standard_icdf(_open_unit_uniform(key, self.loc, shape))

    def _standard_log_prob(self, z: Any) -> Any:
        raise NotImplementedError

    def _standard_cdf(self, z: Any) -> Any:
        raise NotImplementedError

    def _standard_icdf(self, q: Any) -> Any:
        raise NotImplementedError

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        eps = self._standard_sample(key, _sample_shape(self, sample_shape))
        return self.loc + self.scale * eps

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return self._standard_log_prob(z) - dx.log(self.scale)

    def cdf(self, value: Any) -> Any:
        return self._standard_cdf((value - self.loc) / self.scale)

    def icdf(self, q: Any) -> Any:
        return self.loc + self.scale * self._standard_icdf(q)

    def entropy(self) -> Any:
        return broadcast_to_batch(self._standard_entropy + dx.log(self.scale), self.batch_shape)

    @property
    def mean(self) -> Any:
        return broadcast_to_batch(self.loc, self.batch_shape)

    @property
    def variance(self) -> Any:
        return broadcast_to_batch(self.scale * self.scale * self._standard_variance, self.batch_shape)


class Normal(_LocationScale):
    r"""The normal distribution.

    .. math:: p(x) = \frac{1}{\sigma\sqrt{2\pi}} \exp\left(-\frac{(x - \mu)^2}{2\sigma^2}\right)

    Args:
        loc: the mean :math:`\mu`.
        scale: the standard deviation :math:`\sigma > 0`.

    Example:
        >>> import difflux.core as dx
        >>> from difflux.ppl import dist
        >>> d = dist.Normal(0.0, 1.0)
        >>> round(float(d.log_prob(0.0)), 6)
        -0.918939
    """

    _standard_entropy = 0.5 + 0.5 * _LOG_2PI
    _standard_variance = 1.0

    def _standard_sample(self, key: Any, shape: Shape) -> Any:
        return _noise(key, self.loc, shape)

    def _standard_log_prob(self, z: Any) -> Any:
        return -0.5 * z * z - 0.5 * _LOG_2PI

    def _standard_cdf(self, z: Any) -> Any:
        return dx.ndtr(z)

    def _standard_icdf(self, q: Any) -> Any:
        return dx.ndtri(q)


class _HalfScale(Distribution):
    """Base class of the distributions of ``scale * Z`` for a fixed standard variable ``Z >= 0``.

    A subclass gives ``Z``'s log-density on ``[0, inf)``, cdf and quantile
    function (``_standard_log_prob``, ``_standard_cdf``, ``_standard_icdf``).
    ``_standard_sample`` draws ``Z`` by inversion of open-interval uniforms
    unless the subclass overrides it.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {"scale": constraints.positive}
    support = constraints.nonnegative
    reparametrized_params: tuple[str, ...] = ("scale",)

    def __init__(self, scale: Any = 1.0, *, validate_args: bool | None = None) -> None:
        (self.scale,) = as_params(scale)
        super().__init__(shape_of(self.scale), validate_args=validate_args)

    def _standard_sample(self, key: Any, shape: Shape) -> Any:
        return self._standard_icdf(_open_unit_uniform(key, self.scale, shape))

    def _standard_log_prob(self, z: Any) -> Any:
        raise NotImplementedError

    def _standard_cdf(self, z: Any) -> Any:
        raise NotImplementedError

    def _standard_icdf(self, q: Any) -> Any:
        raise NotImplementedError

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        return self.scale * self._standard_sample(key, _sample_shape(self, sample_shape))

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        z = value / self.scale
        return dx.where(value >= 0, self._standard_log_prob(z) - dx.log(self.scale), -math.inf)

    def cdf(self, value: Any) -> Any:
        return self._standard_cdf(dx.clip(value, 0.0, None) / self.scale)

    def icdf(self, q: Any) -> Any:
        return self.scale * self._standard_icdf(q)


class HalfNormal(_HalfScale):
    r"""The half-normal distribution: :math:`|X|` for :math:`X \sim \mathcal{N}(0, \sigma^2)`.

    .. math:: p(x) = \frac{\sqrt{2}}{\sigma\sqrt{\pi}} \exp\left(-\frac{x^2}{2\sigma^2}\right), \quad x \ge 0

    Args:
        scale: :math:`\sigma > 0`.
    """

    def _standard_sample(self, key: Any, shape: Shape) -> Any:
        return dx.abs(_noise(key, self.scale, shape))

    def _standard_log_prob(self, z: Any) -> Any:
        return 0.5 * math.log(2.0 / math.pi) - 0.5 * z * z

    def _standard_cdf(self, z: Any) -> Any:
        return dx.erf(z / math.sqrt(2.0))

    def _standard_icdf(self, q: Any) -> Any:
        return dx.ndtri((1.0 + q) / 2.0)

    @property
    def mean(self) -> Any:
        return self.scale * math.sqrt(2.0 / math.pi)

    @property
    def variance(self) -> Any:
        return self.scale * self.scale * (1.0 - 2.0 / math.pi)


class Exponential(Distribution):
    r"""The exponential distribution, :math:`p(x) = \lambda e^{-\lambda x}` for :math:`x \ge 0`.

    Args:
        rate: :math:`\lambda > 0`.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {"rate": constraints.positive}
    support = constraints.nonnegative
    reparametrized_params: tuple[str, ...] = ("rate",)

    def __init__(self, rate: Any = 1.0, *, validate_args: bool | None = None) -> None:
        (self.rate,) = as_params(rate)
        super().__init__(shape_of(self.rate), validate_args=validate_args)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        return _noise(key, self.rate, _sample_shape(self, sample_shape), "exponential") / self.rate

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        return dx.where(value >= 0, dx.log(self.rate) - self.rate * value, -math.inf)

    def cdf(self, value: Any) -> Any:
        return -dx.expm1(-self.rate * dx.clip(value, 0.0, None))

    def icdf(self, q: Any) -> Any:
        return -dx.log1p(-q) / self.rate

    def entropy(self) -> Any:
        return 1.0 - dx.log(self.rate)

    @property
    def mean(self) -> Any:
        return 1.0 / self.rate

    @property
    def variance(self) -> Any:
        return 1.0 / (self.rate * self.rate)


class Uniform(Distribution):
    r"""The uniform distribution on :math:`[\mathrm{low}, \mathrm{high})`, :math:`p(x) = 1 / (\mathrm{high} - \mathrm{low})`.

    ``log_prob`` is :math:`-\infty` outside the support.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "low": constraints.dependent,
        "high": constraints.dependent,
    }
    reparametrized_params: tuple[str, ...] = ("low", "high")

    def __init__(self, low: Any = 0.0, high: Any = 1.0, *, validate_args: bool | None = None) -> None:
        self.low, self.high = as_params(low, high)
        super().__init__(broadcast_shapes(shape_of(self.low), shape_of(self.high)), validate_args=validate_args)

    def _validate_parameters(self) -> None:
        from ._util import is_traced, to_numpy

        if is_traced(self.low) or is_traced(self.high):
            return
        low, high = to_numpy(dx.stop_gradient(self.low)), to_numpy(dx.stop_gradient(self.high))
        if not (low < high).all():
            raise ValueError(
                f"Uniform got invalid parameters low = {low} and high = {high}: low must be less than high"
            )

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.interval(self.low, self.high)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        u = _noise(key, self.low, _sample_shape(self, sample_shape), "uniform")
        return self.low + (self.high - self.low) * u

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        inside = (value >= self.low) & (value <= self.high)
        return dx.where(inside, -dx.log(self.high - self.low), -math.inf)

    def cdf(self, value: Any) -> Any:
        return dx.clip((value - self.low) / (self.high - self.low), 0.0, 1.0)

    def icdf(self, q: Any) -> Any:
        return self.low + q * (self.high - self.low)

    def entropy(self) -> Any:
        return dx.log(self.high - self.low)

    @property
    def mean(self) -> Any:
        return (self.low + self.high) / 2.0

    @property
    def variance(self) -> Any:
        width = self.high - self.low
        return width * width / 12.0


class Cauchy(_LocationScale):
    r"""The Cauchy distribution, :math:`p(x) = \frac{1}{\pi\gamma\,(1 + ((x - x_0)/\gamma)^2)}`.

    Its mean and variance do not exist and are returned as NaN, as NumPyro
    and SciPy do.

    Args:
        loc: the median :math:`x_0`.
        scale: the half width :math:`\gamma > 0`.
    """

    _standard_entropy = math.log(4.0 * math.pi)

    def _standard_log_prob(self, z: Any) -> Any:
        return -_LOG_PI - dx.log1p(z * z)

    def _standard_cdf(self, z: Any) -> Any:
        return 0.5 + dx.atan(z) / math.pi

    def _standard_icdf(self, q: Any) -> Any:
        return dx.tan(math.pi * (q - 0.5))

    @property
    def mean(self) -> Any:
        return dx.full_like(broadcast_to_batch(self.loc + 0.0 * self.scale, self.batch_shape), math.nan)

    @property
    def variance(self) -> Any:
        return dx.full_like(broadcast_to_batch(self.loc + 0.0 * self.scale, self.batch_shape), math.nan)


class HalfCauchy(_HalfScale):
    r"""The half-Cauchy distribution: :math:`|X|` for :math:`X \sim \mathrm{Cauchy}(0, \gamma)`.

    .. math:: p(x) = \frac{2}{\pi\gamma\,(1 + (x/\gamma)^2)}, \quad x \ge 0

    Its mean and variance are infinite.
    """

    def _standard_log_prob(self, z: Any) -> Any:
        return math.log(2.0) - _LOG_PI - dx.log1p(z * z)

    def _standard_cdf(self, z: Any) -> Any:
        return 2.0 * dx.atan(z) / math.pi

    def _standard_icdf(self, q: Any) -> Any:
        return dx.tan(0.5 * math.pi * q)

    @property
    def mean(self) -> Any:
        return dx.full_like(self.scale, math.inf)

    @property
    def variance(self) -> Any:
        return dx.full_like(self.scale, math.inf)


class Laplace(_LocationScale):
    r"""The Laplace distribution, :math:`p(x) = \frac{1}{2b} e^{-|x - \mu| / b}`.

    Args:
        loc: the location :math:`\mu`.
        scale: :math:`b > 0`.
    """

    _standard_entropy = 1.0 + math.log(2.0)
    _standard_variance = 2.0

    def _standard_log_prob(self, z: Any) -> Any:
        return -math.log(2.0) - dx.abs(z)

    def _standard_cdf(self, z: Any) -> Any:
        return 0.5 - 0.5 * dx.sign(z) * dx.expm1(-dx.abs(z))

    def _standard_icdf(self, q: Any) -> Any:
        centred = q - 0.5
        return -dx.sign(centred) * dx.log1p(-2.0 * dx.abs(centred))


class Logistic(_LocationScale):
    r"""The logistic distribution, :math:`p(x) = \frac{e^{-z}}{s (1 + e^{-z})^2}` with :math:`z = (x - \mu)/s`."""

    _standard_entropy = 2.0
    _standard_variance = math.pi**2 / 3.0

    def _standard_log_prob(self, z: Any) -> Any:
        return -z - 2.0 * dx.softplus(-z)

    def _standard_cdf(self, z: Any) -> Any:
        return dx.sigmoid(z)

    def _standard_icdf(self, q: Any) -> Any:
        return dx.log(q) - dx.log1p(-q)


class Weibull(Distribution):
    r"""The Weibull distribution, :math:`p(x) = \frac{k}{\lambda} (x/\lambda)^{k-1} e^{-(x/\lambda)^k}` for :math:`x \ge 0`.

    Args:
        scale: :math:`\lambda > 0`.
        concentration: the shape :math:`k > 0`.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "scale": constraints.positive,
        "concentration": constraints.positive,
    }
    support = constraints.nonnegative
    reparametrized_params: tuple[str, ...] = ("scale", "concentration")

    def __init__(self, scale: Any, concentration: Any, *, validate_args: bool | None = None) -> None:
        self.scale, self.concentration = as_params(scale, concentration)
        shape = broadcast_shapes(shape_of(self.scale), shape_of(self.concentration))
        super().__init__(shape, validate_args=validate_args)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        e = _noise(key, self.scale, _sample_shape(self, sample_shape), "exponential")
        return self.scale * dx.pow(e, 1.0 / self.concentration)

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        k = self.concentration
        z = dx.where(value >= 0, value, 0.0) / self.scale
        log_density = dx.log(k) - dx.log(self.scale) + dx.xlogy(k - 1.0, z) - dx.pow(z, k)
        return dx.where(value >= 0, log_density, -math.inf)

    def cdf(self, value: Any) -> Any:
        return -dx.expm1(-dx.pow(dx.clip(value, 0.0, None) / self.scale, self.concentration))

    def icdf(self, q: Any) -> Any:
        return self.scale * dx.pow(-dx.log1p(-q), 1.0 / self.concentration)

    @property
    def mean(self) -> Any:
        return self.scale * dx.exp(dx.lgamma(1.0 + 1.0 / self.concentration))

    @property
    def variance(self) -> Any:
        k = self.concentration
        first = dx.exp(dx.lgamma(1.0 + 1.0 / k))
        return self.scale * self.scale * (dx.exp(dx.lgamma(1.0 + 2.0 / k)) - first * first)
