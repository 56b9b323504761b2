r"""Discrete distributions: Bernoulli, Binomial, Categorical, Poisson, NegativeBinomial, Geometric.

Distributions of probabilities take either ``probs`` or ``logits`` (exactly
one), as in NumPyro; the other is computed on request. Samples are integer
arrays (``int64``, or ``int32`` on JAX without float64) and carry no
gradient; ``log_prob`` is differentiable in the parameters.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx

from . import constraints
from ._util import (
    Shape,
    _jax_x64,
    as_params,
    backend_of_params,
    broadcast_shapes,
    clamp_probs,
    is_traced,
    shape_of,
    to_numpy,
)
from .distribution import Distribution, broadcast_to_batch


def as_integers(x: Any) -> Any:
    """Cast samples to the default integer dtype of their backend."""
    backend = backend_of_params(x)
    return dx.astype(x, dx.int64 if backend == "numpy" or _jax_x64() else dx.int32)


def _one_of(name: str, probs: Any, logits: Any) -> None:
    if (probs is None) == (logits is None):
        raise ValueError(
            f"{name} takes exactly one of probs and logits, got {'both' if probs is not None else 'neither'}"
        )


def _open_uniform(key: Any, shape: Shape, like: Any) -> Any:
    u = dx.random.uniform(key, shape, dtype=None if isinstance(like, np.generic) else getattr(like, "dtype", None))
    return dx.clip(u, float(dx.finfo(u.dtype).tiny), 1.0)


class _BinaryProbs(Distribution):
    """Shared ``probs``/``logits`` handling of Bernoulli-like distributions (a success probability)."""

    _probs: Any
    _logits: Any

    def _set_probs(self, name: str, probs: Any, logits: Any, *others: Any) -> tuple[Any, ...]:
        _one_of(name, probs, logits)
        converted = as_params(probs if probs is not None else logits, *others)
        if probs is not None:
            self._probs, self._logits = converted[0], None
        else:
            self._probs, self._logits = None, converted[0]
        return converted

    @property
    def probs(self) -> Any:
        """The success probability."""
        return self._probs if self._probs is not None else dx.sigmoid(self._logits)

    @property
    def logits(self) -> Any:
        """The log-odds of success."""
        if self._logits is not None:
            return self._logits
        p = clamp_probs(self._probs)
        return dx.log(p) - dx.log1p(-p)

    def _log_p_and_log_q(self) -> tuple[Any, Any]:
        """Return log p and log(1 - p), computed from whichever parameter was given."""
        if self._logits is not None:
            return dx.log_sigmoid(self._logits), dx.log_sigmoid(-self._logits)
        return dx.log(self._probs), dx.log1p(-self._probs)


class Bernoulli(_BinaryProbs):
    r"""The Bernoulli distribution, :math:`P(x) = p^x (1 - p)^{1 - x}` for :math:`x \in \{0, 1\}`.

    Args:
        probs: the success probability :math:`p \in [0, 1]`.
        logits: :math:`\log(p / (1 - p))`, instead of ``probs``.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "probs": constraints.unit_interval,
        "logits": constraints.real,
    }
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, probs: Any = None, logits: Any = None, *, validate_args: bool | None = None) -> None:
        (param,) = self._set_probs("Bernoulli", probs, logits)
        super().__init__(shape_of(param), validate_args=validate_args)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        shape = self.shape(sample_shape)
        return as_integers(dx.random.bernoulli(key, dx.stop_gradient(self.probs), shape))

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        if self._logits is not None:
            log_mass = value * self._logits - dx.softplus(self._logits)
        else:
            log_mass = dx.xlogy(value, self._probs) + dx.xlog1py(1.0 - value, -self._probs)
        return dx.where((value == 0) | (value == 1), log_mass, -math.inf)

    def cdf(self, value: Any) -> Any:
        below_one = dx.where(value >= 0, 1.0 - self.probs, 0.0)
        return dx.where(value >= 1, 1.0, below_one)

    def enumerate_support(self, expand: bool = True) -> Any:
        values = dx.reshape(
            dx.asarray([0.0, 1.0], backend=backend_of_params(self.probs)), (2,) + (1,) * len(self.batch_shape)
        )
        return dx.broadcast_to(values, (2,) + self.batch_shape) if expand else values

    def entropy(self) -> Any:
        log_p, log_q = self._log_p_and_log_q()
        p = self.probs
        return -(p * log_p + (1.0 - p) * log_q)

    @property
    def mean(self) -> Any:
        return self.probs

    @property
    def variance(self) -> Any:
        p = self.probs
        return p * (1.0 - p)


class Binomial(_BinaryProbs):
    r"""The binomial distribution, :math:`P(k) = \binom{n}{k} p^k (1 - p)^{n - k}`, :math:`k = 0, \dots, n`.

    Args:
        total_count: the number of trials :math:`n` (a non-negative integer).
        probs: the success probability :math:`p`.
        logits: :math:`\log(p / (1 - p))`, instead of ``probs``.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "total_count": constraints.nonnegative_integer,
        "probs": constraints.unit_interval,
        "logits": constraints.real,
    }
    has_enumerate_support = True

    def __init__(
        self, total_count: Any = 1, probs: Any = None, logits: Any = None, *, validate_args: bool | None = None
    ) -> None:
        param, self.total_count = self._set_probs("Binomial", probs, logits, total_count)
        super().__init__(broadcast_shapes(shape_of(param), shape_of(self.total_count)), validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.integer_interval(0, self.total_count)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        n = dx.stop_gradient(self.total_count)
        return as_integers(dx.random.binomial(key, n, dx.stop_gradient(self.probs), self.shape(sample_shape)))

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        n = self.total_count
        inside = (value >= 0) & (value <= n)
        k = dx.where(inside, value, 0.0)
        log_binomial = dx.lgamma(n + 1.0) - dx.lgamma(k + 1.0) - dx.lgamma(n - k + 1.0)
        if self._logits is not None:
            log_mass = log_binomial + k * self._logits - n * dx.softplus(self._logits)
        else:
            log_mass = log_binomial + dx.xlogy(k, self._probs) + dx.xlog1py(n - k, -self._probs)
        return dx.where(inside, log_mass, -math.inf)

    def cdf(self, value: Any) -> Any:
        # P(K <= k) = I_{1-p}(n - k, k + 1), the regularised incomplete beta function.
        k = dx.floor(value)
        n = self.total_count
        inside = (k >= 0) & (k < n)
        safe_k = dx.where(inside, k, 0.0)
        tail = dx.betainc(dx.where(inside, n - safe_k, 1.0), safe_k + 1.0, 1.0 - self.probs)
        return dx.where(k >= n, 1.0, dx.where(k < 0, 0.0, tail))

    def enumerate_support(self, expand: bool = True) -> Any:
        if is_traced(self.total_count):
            raise NotImplementedError("Binomial.enumerate_support needs a concrete total_count, not one traced by jit")
        counts = np.unique(to_numpy(dx.stop_gradient(self.total_count)))
        if counts.size != 1:
            raise NotImplementedError(
                f"Binomial.enumerate_support needs one total_count for the whole batch, got {counts.tolist()}"
            )
        n = int(counts[0])
        values = dx.asarray(np.arange(n + 1, dtype=np.float64), backend=backend_of_params(self.probs))
        values = dx.reshape(values, (n + 1,) + (1,) * len(self.batch_shape))
        return dx.broadcast_to(values, (n + 1,) + self.batch_shape) if expand else values

    @property
    def mean(self) -> Any:
        return broadcast_to_batch(self.total_count * self.probs, self.batch_shape)

    @property
    def variance(self) -> Any:
        p = self.probs
        return broadcast_to_batch(self.total_count * p * (1.0 - p), self.batch_shape)


class Geometric(_BinaryProbs):
    r"""The number of failures before the first success: :math:`P(k) = (1 - p)^k p`, :math:`k = 0, 1, \dots`.

    This is NumPyro's convention. SciPy's ``geom`` counts trials (``k + 1``).
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "probs": constraints.unit_interval,
        "logits": constraints.real,
    }
    support = constraints.nonnegative_integer

    def __init__(self, probs: Any = None, logits: Any = None, *, validate_args: bool | None = None) -> None:
        (param,) = self._set_probs("Geometric", probs, logits)
        super().__init__(shape_of(param), validate_args=validate_args)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        u = _open_uniform(key, self.shape(sample_shape), self.probs)
        _, log_q = self._log_p_and_log_q()
        return as_integers(dx.floor(dx.log(u) / dx.stop_gradient(log_q)))

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        log_p, log_q = self._log_p_and_log_q()
        k = dx.where(value >= 0, value, 0.0)
        log_mass = dx.xlog1py(k, -self._probs) + log_p if self._logits is None else k * log_q + log_p
        return dx.where(value >= 0, log_mass, -math.inf)

    def cdf(self, value: Any) -> Any:
        _, log_q = self._log_p_and_log_q()
        k = dx.floor(value)
        return dx.where(k >= 0, -dx.expm1((k + 1.0) * log_q), 0.0)

    @property
    def mean(self) -> Any:
        p = self.probs
        return (1.0 - p) / p

    @property
    def variance(self) -> Any:
        p = self.probs
        return (1.0 - p) / (p * p)


class Poisson(Distribution):
    r"""The Poisson distribution, :math:`P(k) = \lambda^k e^{-\lambda} / k!`, :math:`k = 0, 1, \dots`.

    Args:
        rate: :math:`\lambda > 0`.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {"rate": constraints.positive}
    support = constraints.nonnegative_integer

    def __init__(self, rate: Any, *, validate_args: bool | None = None) -> None:
        (self.rate,) = as_params(rate)
        super().__init__(shape_of(self.rate), validate_args=validate_args)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        return as_integers(dx.random.poisson(key, dx.stop_gradient(self.rate), self.shape(sample_shape)))

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        k = dx.where(value >= 0, value, 0.0)
        return dx.where(value >= 0, dx.xlogy(k, self.rate) - self.rate - dx.lgamma(k + 1.0), -math.inf)

    def cdf(self, value: Any) -> Any:
        k = dx.floor(value)
        safe = dx.where(k >= 0, k, 0.0)
        return dx.where(k >= 0, dx.gammaincc(safe + 1.0, self.rate), 0.0)

    @property
    def mean(self) -> Any:
        return self.rate

    @property
    def variance(self) -> Any:
        return self.rate


class NegativeBinomial(_BinaryProbs):
    r"""The negative binomial distribution, parameterised as in NumPyro.

    .. math:: P(k) = \frac{\Gamma(k + r)}{k!\,\Gamma(r)} p^k (1 - p)^r, \quad k = 0, 1, \dots

    the number of successes (probability ``p`` each) before ``r`` failures,
    equivalently a Poisson count whose rate is Gamma(r, (1 - p) / p)
    distributed. SciPy's ``nbinom(r, 1 - p)``.

    Args:
        total_count: :math:`r > 0` (real-valued).
        probs: :math:`p \in [0, 1)`.
        logits: :math:`\log(p / (1 - p))`, instead of ``probs``.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "total_count": constraints.positive,
        "probs": constraints.unit_interval,
        "logits": constraints.real,
    }
    support = constraints.nonnegative_integer

    def __init__(
        self, total_count: Any, probs: Any = None, logits: Any = None, *, validate_args: bool | None = None
    ) -> None:
        param, self.total_count = self._set_probs("NegativeBinomial", probs, logits, total_count)
        super().__init__(broadcast_shapes(shape_of(param), shape_of(self.total_count)), validate_args=validate_args)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        shape = self.shape(sample_shape)
        key_gamma, key_poisson = dx.random.split(key)
        r = dx.broadcast_to(
            dx.stop_gradient(self.total_count) + dx.zeros_like(dx.stop_gradient(self.probs)), self.batch_shape
        )
        odds = dx.stop_gradient(dx.exp(self.logits))
        rate = dx.random.gamma(key_gamma, dx.broadcast_to(r, shape), shape) * odds
        return as_integers(dx.random.poisson(key_poisson, rate, shape))

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        r = self.total_count
        log_p, log_q = self._log_p_and_log_q()
        k = dx.where(value >= 0, value, 0.0)
        log_coefficient = dx.lgamma(k + r) - dx.lgamma(r) - dx.lgamma(k + 1.0)
        if self._logits is None:
            log_mass = log_coefficient + dx.xlogy(k, self._probs) + r * log_q
        else:
            log_mass = log_coefficient + k * log_p + r * log_q
        return dx.where(value >= 0, log_mass, -math.inf)

    def cdf(self, value: Any) -> Any:
        # P(K <= k) = I_{1-p}(r, k + 1), the regularised incomplete beta function.
        k = dx.floor(value)
        safe = dx.where(k >= 0, k, 0.0)
        return dx.where(k >= 0, dx.betainc(self.total_count, safe + 1.0, 1.0 - self.probs), 0.0)

    @property
    def mean(self) -> Any:
        return broadcast_to_batch(self.total_count * dx.exp(self.logits), self.batch_shape)

    @property
    def variance(self) -> Any:
        p = self.probs
        return broadcast_to_batch(self.total_count * p / ((1.0 - p) * (1.0 - p)), self.batch_shape)


def NegativeBinomialProbs(total_count: Any, probs: Any, *, validate_args: bool | None = None) -> NegativeBinomial:  # noqa: N802 (NumPyro's name)
    """Return ``NegativeBinomial(total_count, probs=probs)``."""
    return NegativeBinomial(total_count, probs=probs, validate_args=validate_args)


def NegativeBinomialLogits(total_count: Any, logits: Any, *, validate_args: bool | None = None) -> NegativeBinomial:  # noqa: N802 (NumPyro's name)
    """Return ``NegativeBinomial(total_count, logits=logits)``."""
    return NegativeBinomial(total_count, logits=logits, validate_args=validate_args)


def NegativeBinomial2(mean: Any, concentration: Any, *, validate_args: bool | None = None) -> NegativeBinomial:  # noqa: N802 (NumPyro's name)
    r"""Return the negative binomial with the given ``mean`` and ``concentration`` :math:`r`.

    The variance is :math:`\mu + \mu^2 / r`: ``probs = mean / (mean + concentration)``.
    """
    mean, concentration = as_params(mean, concentration)
    return NegativeBinomial(concentration, logits=dx.log(mean) - dx.log(concentration), validate_args=validate_args)


class Categorical(Distribution):
    r"""The categorical distribution over :math:`\{0, \dots, K - 1\}`, :math:`P(k) = p_k`.

    Args:
        probs: probabilities along the last axis (summing to one), shape
            ``batch_shape + (K,)``.
        logits: unnormalised log-probabilities, instead of ``probs``.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "probs": constraints.simplex,
        "logits": constraints.real_vector,
    }
    has_enumerate_support = True

    def __init__(self, probs: Any = None, logits: Any = None, *, validate_args: bool | None = None) -> None:
        _one_of("Categorical", probs, logits)
        (param,) = as_params(probs if probs is not None else logits)
        if len(shape_of(param)) < 1:
            raise ValueError(
                f"Categorical needs {'probs' if probs is not None else 'logits'} with a last axis of categories"
            )
        self._probs: Any = param if probs is not None else None
        self._logits: Any = param if probs is None else None
        super().__init__(shape_of(param)[:-1], validate_args=validate_args)

    @property
    def probs(self) -> Any:
        """The category probabilities, shape ``batch_shape + (K,)``."""
        return self._probs if self._probs is not None else dx.softmax(self._logits, axis=-1)

    @property
    def logits(self) -> Any:
        """The normalised log-probabilities, shape ``batch_shape + (K,)``."""
        if self._logits is not None:
            return dx.log_softmax(self._logits, axis=-1)
        return dx.log(clamp_probs(self._probs))

    @property
    def num_categories(self) -> int:
        """The number of categories :math:`K`."""
        return shape_of(self._probs if self._probs is not None else self._logits)[-1]

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.integer_interval(0, self.num_categories - 1)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        logits = dx.stop_gradient(self.logits)
        return as_integers(dx.random.categorical(key, logits, axis=-1, shape=self.shape(sample_shape)))

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        log_p = self.logits if self._logits is not None else dx.log(self._probs)
        shape = broadcast_shapes(shape_of(value), self.batch_shape)
        log_p = dx.broadcast_to(log_p, shape + (self.num_categories,))
        index = dx.broadcast_to(as_integers(value), shape)
        # Out-of-range indices (seen only without validation) are clipped to keep the gather in bounds.
        index = dx.clip(index, 0, self.num_categories - 1)
        return dx.take_along_axis(log_p, dx.expand_dims(index, axis=-1), axis=-1)[..., 0]

    def enumerate_support(self, expand: bool = True) -> Any:
        k = self.num_categories
        values = dx.asarray(np.arange(k), backend=backend_of_params(self._probs, self._logits))
        values = dx.reshape(as_integers(values), (k,) + (1,) * len(self.batch_shape))
        return dx.broadcast_to(values, (k,) + self.batch_shape) if expand else values

    def entropy(self) -> Any:
        log_p = self.logits
        return -dx.sum(dx.exp(log_p) * log_p, axis=-1)

    @property
    def mean(self) -> Any:
        return dx.full_like(dx.sum(self.probs, axis=-1), math.nan)

    @property
    def variance(self) -> Any:
        return dx.full_like(dx.sum(self.probs, axis=-1), math.nan)
