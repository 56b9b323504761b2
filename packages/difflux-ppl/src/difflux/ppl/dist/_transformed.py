r"""Distributions of transformed random variables, and LogNormal.

If :math:`X \sim p_X` and :math:`Y = T(X)` for a bijection :math:`T`, then
:math:`\log p_Y(y) = \log p_X(T^{-1}(y)) - \log|\det J_T(T^{-1}(y))|`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import difflux.core as dx

from . import constraints
from ._util import Shape, as_params, broadcast_shapes, shape_of, sum_rightmost
from .distribution import Distribution, broadcast_to_batch
from .transforms import ComposeTransform, ExpTransform, Transform

__all__ = ["LogNormal", "TransformedDistribution"]


class TransformedDistribution(Distribution):
    """The distribution of ``T(x)`` for ``x`` drawn from ``base_distribution``.

    Args:
        base_distribution: the distribution of ``x``.
        transforms: one transform or a list applied in order.

    The event shape grows to the transforms' codomain event dimension (for
    example a ``StickBreakingTransform`` of a vector makes one simplex
    event). ``cdf`` and ``icdf`` exist for monotone scalar transforms.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(
        self,
        base_distribution: Distribution,
        transforms: Transform | Sequence[Transform],
        *,
        validate_args: bool | None = None,
    ) -> None:
        parts = [transforms] if isinstance(transforms, Transform) else list(transforms)
        if isinstance(base_distribution, TransformedDistribution):
            parts = base_distribution.transforms + parts
            base_distribution = base_distribution.base_dist
        self.base_dist = base_distribution
        self.transforms = parts
        transform = ComposeTransform(parts)
        base_shape = base_distribution.batch_shape + base_distribution.event_shape
        base_event_dim = len(base_distribution.event_shape)
        event_dim = max(transform.codomain.event_dim, base_event_dim)
        domain_event_dim = transform.domain.event_dim
        if domain_event_dim > len(base_shape):
            raise ValueError(
                f"TransformedDistribution: the transforms need inputs with at least {domain_event_dim} axes, "
                f"but the base distribution's shape is {base_shape}"
            )
        shape = transform.forward_shape(base_shape)
        # Axes the base treats as batch but the transforms consume as event become event axes.
        event_dim = max(event_dim, transform.codomain.event_dim + max(base_event_dim - domain_event_dim, 0))
        split = len(shape) - event_dim
        self._transform = transform
        self._base_event_dim = base_event_dim
        super().__init__(shape[:split], shape[split:], validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        codomain = self._transform.codomain
        extra = self.event_dim - codomain.event_dim
        return constraints.independent(codomain, extra) if extra > 0 else codomain

    @property
    def reparametrized_params(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.base_dist.reparametrized_params

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        return self._transform(self.base_dist.sample(key, sample_shape))

    def sample_with_intermediates(self, key: Any, sample_shape: Shape = ()) -> tuple[Any, list[Any]]:
        x = self.base_dist.sample(key, sample_shape)
        intermediates = []
        for part in self.transforms:
            x_next = part(x)
            intermediates.append([x_next, None])
            x = x_next
        return x, intermediates

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        event_dim = self.event_dim
        total: Any = 0.0
        y = value
        for part in reversed(self.transforms):
            x = part.inv(y)
            log_det = part.log_abs_det_jacobian(x, y)
            total = total - sum_rightmost(log_det, event_dim - part.codomain.event_dim)
            event_dim = event_dim - part.codomain.event_dim + part.domain.event_dim
            y = x
        base = sum_rightmost(self.base_dist.log_prob(y), event_dim - self._base_event_dim)
        return base + total

    def _monotone_sign(self) -> int:
        sign = self._transform.sign
        if sign is None or self.event_dim != 0:
            raise NotImplementedError(
                "cdf and icdf of a TransformedDistribution need scalar transforms of known monotonicity, and "
                f"{self._transform!r} is not one"
            )
        return sign

    def cdf(self, value: Any) -> Any:
        sign = self._monotone_sign()
        base_cdf = self.base_dist.cdf(self._transform.inv(value))
        return base_cdf if sign == 1 else 1.0 - base_cdf

    def icdf(self, q: Any) -> Any:
        sign = self._monotone_sign()
        return self._transform(self.base_dist.icdf(q if sign == 1 else 1.0 - q))


class LogNormal(TransformedDistribution):
    r"""The log-normal distribution: :math:`e^X` for :math:`X \sim \mathcal{N}(\mu, \sigma^2)`.

    .. math:: p(x) = \frac{1}{x \sigma \sqrt{2\pi}} \exp\left(-\frac{(\log x - \mu)^2}{2\sigma^2}\right), \quad x > 0

    SciPy's ``lognorm(s=scale, scale=exp(loc))``.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real,
        "scale": constraints.positive,
    }

    def __init__(self, loc: Any = 0.0, scale: Any = 1.0, *, validate_args: bool | None = None) -> None:
        from ._continuous import Normal

        self.loc, self.scale = as_params(loc, scale)
        base = Normal(self.loc, self.scale, validate_args=False)
        super().__init__(base, ExpTransform(), validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.positive

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        positive = value > 0
        safe = dx.where(positive, value, 1.0)
        log_x = dx.log(safe)
        z = (log_x - self.loc) / self.scale
        log_density = -0.5 * z * z - dx.log(self.scale) - 0.5 * math.log(2 * math.pi) - log_x
        return dx.where(positive, log_density, -math.inf)

    def cdf(self, value: Any) -> Any:
        positive = value > 0
        return dx.where(positive, dx.ndtr((dx.log(dx.where(positive, value, 1.0)) - self.loc) / self.scale), 0.0)

    @property
    def mean(self) -> Any:
        shape = broadcast_shapes(shape_of(self.loc), shape_of(self.scale))
        return broadcast_to_batch(dx.exp(self.loc + 0.5 * self.scale * self.scale), shape)

    @property
    def variance(self) -> Any:
        s2 = self.scale * self.scale
        shape = broadcast_shapes(shape_of(self.loc), shape_of(self.scale))
        return broadcast_to_batch(dx.expm1(s2) * dx.exp(2.0 * self.loc + s2), shape)

    def entropy(self) -> Any:
        return self.loc + 0.5 + 0.5 * math.log(2 * math.pi) + dx.log(self.scale)
