"""Distributions that wrap another: broadcast batches, reinterpreted batch axes, masks.

Made by :meth:`Distribution.expand`, :meth:`Distribution.to_event` and
:meth:`Distribution.mask`, and public through :mod:`difflux.ppl.dist`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

import difflux.core as dx

from . import constraints
from ._util import Shape, shape_of, sum_rightmost
from .distribution import Distribution, _shape_tuple, broadcast_to_batch


class ExpandedDistribution(Distribution):
    """``base_dist`` broadcast to a larger ``batch_shape``, made by :meth:`Distribution.expand`."""

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(self, base_dist: Distribution, batch_shape: Shape = ()) -> None:
        batch_shape = _shape_tuple(batch_shape)
        try:
            broadcast = tuple(np.broadcast_shapes(base_dist.batch_shape, batch_shape))
        except ValueError:
            broadcast = None
        if broadcast != batch_shape:
            raise ValueError(
                f"cannot expand {type(base_dist).__name__} with batch shape {base_dist.batch_shape} to "
                f"{batch_shape}: the existing batch shape must broadcast to the new one"
            )
        if isinstance(base_dist, ExpandedDistribution):
            base_dist = base_dist.base_dist
        self.base_dist = base_dist
        super().__init__(batch_shape, base_dist.event_shape, validate_args=False)
        self._validate_args = base_dist._validate_args

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return self.base_dist.support

    @property
    def reparametrized_params(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.base_dist.reparametrized_params

    @property
    def has_enumerate_support(self) -> bool:  # type: ignore[override]
        return self.base_dist.has_enumerate_support

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        sample_shape = _shape_tuple(sample_shape)
        base = self.base_dist.batch_shape
        extra = len(self.batch_shape) - len(base)
        # Axes the base lacks are drawn as sample axes. Axes where the base has
        # size 1 and the new batch does not are drawn as extra sample axes too
        # ("interstitial"), then moved into the place of the size-1 axis.
        interstitial = [i for i, size in enumerate(base) if size == 1 and self.batch_shape[extra + i] != 1]
        draw_shape = sample_shape + self.batch_shape[:extra] + tuple(self.batch_shape[extra + i] for i in interstitial)
        x = self.base_dist.sample(key, draw_shape)
        if not interstitial:
            return x
        lead = len(sample_shape) + extra
        kept = [i for i in range(len(base)) if i not in interstitial]
        # Drop the size-1 base axes, then put each interstitial axis where its base axis was.
        x = dx.reshape(x, tuple(x.shape[: lead + len(interstitial)]) + tuple(base[i] for i in kept) + self.event_shape)
        position = {i: lead + j for j, i in enumerate(interstitial)}
        position.update({i: lead + len(interstitial) + j for j, i in enumerate(kept)})
        order = list(range(lead)) + [position[i] for i in range(len(base))]
        order += list(range(lead + len(base), lead + len(base) + self.event_dim))
        return dx.permute_dims(x, tuple(order))

    def log_prob(self, value: Any) -> Any:
        log_prob = self.base_dist.log_prob(value)
        shape = tuple(np.broadcast_shapes(shape_of(log_prob), self.batch_shape))
        return broadcast_to_batch(log_prob, shape)

    def cdf(self, value: Any) -> Any:
        return broadcast_to_batch(self.base_dist.cdf(value), np.broadcast_shapes(shape_of(value), self.batch_shape))

    def icdf(self, q: Any) -> Any:
        return broadcast_to_batch(self.base_dist.icdf(q), np.broadcast_shapes(shape_of(q), self.batch_shape))

    def enumerate_support(self, expand: bool = True) -> Any:
        values = self.base_dist.enumerate_support(expand=False)
        if not expand:
            return values
        return dx.broadcast_to(values, values.shape[:1] + self.batch_shape + self.event_shape)

    @property
    def mean(self) -> Any:
        return broadcast_to_batch(self.base_dist.mean, self.batch_shape + self.event_shape)

    @property
    def variance(self) -> Any:
        return broadcast_to_batch(self.base_dist.variance, self.batch_shape + self.event_shape)

    def entropy(self) -> Any:
        return broadcast_to_batch(self.base_dist.entropy(), self.batch_shape)

    def __repr__(self) -> str:
        return f"{self.base_dist!r}.expand({self.batch_shape})"


class Independent(Distribution):
    """Reinterpret the rightmost ``reinterpreted_batch_ndims`` batch axes of ``base_dist`` as event axes.

    ``log_prob`` sums the base log-densities over those axes. Most useful for
    a vector of independent scalars that forms one observation:
    ``Independent(Normal(zeros(3), 1.0), 1)`` has batch shape ``()`` and event
    shape ``(3,)``. Also written ``base_dist.to_event(n)``.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(self, base_dist: Distribution, reinterpreted_batch_ndims: int, *, validate_args: bool | None = None):
        n = reinterpreted_batch_ndims
        if not isinstance(n, int) or n < 0 or n > len(base_dist.batch_shape):
            raise ValueError(
                f"Independent: reinterpreted_batch_ndims must be an int in [0, {len(base_dist.batch_shape)}] "
                f"(the number of batch axes of {type(base_dist).__name__}), got {n!r}"
            )
        self.base_dist = base_dist
        self.reinterpreted_batch_ndims = n
        split = len(base_dist.batch_shape) - n
        super().__init__(
            base_dist.batch_shape[:split],
            base_dist.batch_shape[split:] + base_dist.event_shape,
            validate_args=validate_args,
        )

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(self.base_dist.support, self.reinterpreted_batch_ndims)

    @property
    def reparametrized_params(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.base_dist.reparametrized_params

    @property
    def has_enumerate_support(self) -> bool:  # type: ignore[override]
        return False

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        return self.base_dist.sample(key, sample_shape)

    def log_prob(self, value: Any) -> Any:
        return sum_rightmost(self.base_dist.log_prob(value), self.reinterpreted_batch_ndims)

    @property
    def mean(self) -> Any:
        return self.base_dist.mean

    @property
    def variance(self) -> Any:
        return self.base_dist.variance

    def entropy(self) -> Any:
        return sum_rightmost(self.base_dist.entropy(), self.reinterpreted_batch_ndims)

    def __repr__(self) -> str:
        return f"Independent({self.base_dist!r}, {self.reinterpreted_batch_ndims})"


class MaskedDistribution(Distribution):
    """``base_dist`` with ``log_prob`` set to 0 where ``mask`` is ``False``, made by :meth:`Distribution.mask`."""

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(self, base_dist: Distribution, mask: Any) -> None:
        self.base_dist = base_dist
        self._mask = mask
        batch_shape = tuple(np.broadcast_shapes(shape_of(mask), base_dist.batch_shape))
        super().__init__(batch_shape, base_dist.event_shape, validate_args=False)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return self.base_dist.support

    @property
    def reparametrized_params(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.base_dist.reparametrized_params

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        return self.base_dist.expand(self.batch_shape).sample(key, sample_shape)

    def log_prob(self, value: Any) -> Any:
        log_prob = self.base_dist.log_prob(value)
        if isinstance(self._mask, bool):
            return log_prob if self._mask else dx.zeros_like(log_prob)
        return dx.where(self._mask, log_prob, 0.0)

    @property
    def mean(self) -> Any:
        return self.base_dist.mean

    @property
    def variance(self) -> Any:
        return self.base_dist.variance
