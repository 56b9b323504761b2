r"""Finite mixtures: MixtureSameFamily and MixtureGeneral, and the ``Mixture`` constructor.

.. math:: p(x) = \sum_k w_k\, p_k(x), \qquad \log p(x) = \operatorname{logsumexp}_k (\log w_k + \log p_k(x))

The weights come from a ``Categorical`` mixing distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import difflux.core as dx

from . import constraints
from ._discrete import Categorical
from ._util import Shape, broadcast_shapes, shape_of
from .distribution import Distribution


def _check_mixing(mixing_distribution: Any, name: str) -> None:
    if not isinstance(mixing_distribution, Categorical):
        raise TypeError(f"{name} needs a Categorical mixing distribution, got {type(mixing_distribution).__name__}")


class MixtureSameFamily(Distribution):
    """A mixture whose components are one batched distribution, the last batch axis indexing components.

    Args:
        mixing_distribution: a ``Categorical`` over :math:`K` components,
            batch shape broadcastable to ``batch_shape``.
        component_distribution: a distribution with batch shape
            ``batch_shape + (K,)``.

    Example:
        >>> import numpy as np
        >>> from difflux.ppl import dist
        >>> mix = dist.MixtureSameFamily(
        ...     dist.Categorical(np.array([0.3, 0.7])), dist.Normal(np.array([-1.0, 1.0]), 0.5)
        ... )
        >>> mix.batch_shape, round(float(mix.mean), 6)
        ((), 0.4)
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(
        self,
        mixing_distribution: Categorical,
        component_distribution: Distribution,
        *,
        validate_args: bool | None = None,
    ) -> None:
        _check_mixing(mixing_distribution, "MixtureSameFamily")
        components = component_distribution.batch_shape
        if not components:
            raise ValueError(
                "MixtureSameFamily needs a component distribution whose last batch axis indexes components"
            )
        k = mixing_distribution.num_categories
        if components[-1] != k:
            raise ValueError(
                f"MixtureSameFamily: the mixing distribution has {k} categories but the component distribution's "
                f"last batch axis has size {components[-1]} (batch shape {components})"
            )
        self.mixing_distribution = mixing_distribution
        self.component_distribution = component_distribution
        batch_shape = broadcast_shapes(mixing_distribution.batch_shape, components[:-1])
        super().__init__(batch_shape, component_distribution.event_shape, validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return self.component_distribution.support

    @property
    def is_discrete(self) -> bool:
        return self.component_distribution.is_discrete

    def _log_weights(self) -> Any:
        """Return the log-weights, shape ``batch_shape + (K,)``."""
        return self.mixing_distribution.logits

    def _expand_weights(self, weights: Any) -> Any:
        """Append one axis per event axis, so ``weights`` broadcast against component values."""
        for _ in range(self.event_dim):
            weights = dx.expand_dims(weights, axis=-1)
        return weights

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        # Insert the component axis in front of the event axes of value.
        component_value = dx.expand_dims(value, axis=len(shape_of(value)) - self.event_dim)
        component_log_prob = self.component_distribution.log_prob(component_value)
        return dx.logsumexp(component_log_prob + self._log_weights(), axis=-1)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        key_component, key_index = dx.random.split(key)
        samples = self.component_distribution.expand(self.batch_shape + (self.mixing_distribution.num_categories,))
        samples = samples.sample(key_component, sample_shape)
        index = self.mixing_distribution.expand(self.batch_shape).sample(key_index, sample_shape)
        index = self._expand_weights(dx.expand_dims(index, axis=-1))
        index = dx.broadcast_to(index, shape_of(index)[: len(shape_of(samples)) - self.event_dim] + self.event_shape)
        axis = -1 - self.event_dim
        return dx.squeeze(dx.take_along_axis(samples, index, axis=axis), axis=axis)

    def cdf(self, value: Any) -> Any:
        if self.event_dim:
            raise NotImplementedError("MixtureSameFamily.cdf exists for univariate components only")
        component_cdf = self.component_distribution.cdf(dx.expand_dims(value, axis=-1))
        return dx.sum(component_cdf * self.mixing_distribution.probs, axis=-1)

    @property
    def mean(self) -> Any:
        weights = self._expand_weights(self.mixing_distribution.probs)
        return dx.sum(weights * self.component_distribution.mean, axis=-1 - self.event_dim)

    @property
    def variance(self) -> Any:
        weights = self._expand_weights(self.mixing_distribution.probs)
        mean = self.component_distribution.mean
        second_moment = dx.sum(weights * (self.component_distribution.variance + mean * mean), axis=-1 - self.event_dim)
        overall = self.mean
        return second_moment - overall * overall


class MixtureGeneral(Distribution):
    """A mixture of a list of distributions with equal batch and event shapes (possibly different families).

    Args:
        mixing_distribution: a ``Categorical`` over ``len(component_distributions)`` components.
        component_distributions: the components.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}

    def __init__(
        self,
        mixing_distribution: Categorical,
        component_distributions: Sequence[Distribution],
        *,
        validate_args: bool | None = None,
    ) -> None:
        _check_mixing(mixing_distribution, "MixtureGeneral")
        components = list(component_distributions)
        if len(components) != mixing_distribution.num_categories:
            raise ValueError(
                f"MixtureGeneral: {len(components)} components but the mixing distribution has "
                f"{mixing_distribution.num_categories} categories"
            )
        event_shapes = {c.event_shape for c in components}
        if len(event_shapes) != 1:
            raise ValueError(f"MixtureGeneral needs components with one event shape, got {sorted(event_shapes)}")
        self.mixing_distribution = mixing_distribution
        self.component_distributions = components
        batch_shape = broadcast_shapes(mixing_distribution.batch_shape, *[c.batch_shape for c in components])
        super().__init__(batch_shape, components[0].event_shape, validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return self.component_distributions[0].support

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        stacked = dx.stack([c.log_prob(value) for c in self.component_distributions], axis=-1)
        return dx.logsumexp(stacked + self.mixing_distribution.logits, axis=-1)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        keys = dx.random.split(key, len(self.component_distributions) + 1)
        draws = [
            c.expand(self.batch_shape).sample(keys[i], sample_shape) for i, c in enumerate(self.component_distributions)
        ]
        samples = dx.stack(draws, axis=len(sample_shape) + len(self.batch_shape))
        index = self.mixing_distribution.expand(self.batch_shape).sample(keys[-1], sample_shape)
        index = dx.expand_dims(index, axis=-1)
        for _ in range(self.event_dim):
            index = dx.expand_dims(index, axis=-1)
        index = dx.broadcast_to(index, shape_of(index)[: len(shape_of(samples)) - self.event_dim] + self.event_shape)
        axis = -1 - self.event_dim
        return dx.squeeze(dx.take_along_axis(samples, index, axis=axis), axis=axis)

    @property
    def mean(self) -> Any:
        return dx.sum(self._stacked("mean") * self._weights(), axis=-1)

    @property
    def variance(self) -> Any:
        # The law of total variance: E[Var] + Var[E] over the components.
        means = self._stacked("mean")
        weights = self._weights()
        second_moment = dx.sum(weights * (self._stacked("variance") + means * means), axis=-1)
        overall = dx.sum(weights * means, axis=-1)
        return second_moment - overall * overall

    def _stacked(self, moment: str) -> Any:
        """Stack one moment of every component on a new last axis."""
        shape = self.batch_shape + self.event_shape
        return dx.stack([dx.broadcast_to(getattr(c, moment), shape) for c in self.component_distributions], axis=-1)

    def _weights(self) -> Any:
        """Return the mixing probabilities with axes to broadcast against the event."""
        weights = self.mixing_distribution.probs
        for _ in range(self.event_dim):
            weights = dx.expand_dims(weights, axis=-2)
        return weights


def Mixture(  # noqa: N802 (NumPyro's name)
    mixing_distribution: Categorical,
    component_distributions: Distribution | Sequence[Distribution],
    *,
    validate_args: bool | None = None,
) -> Distribution:
    """Build a mixture: ``MixtureSameFamily`` for one batched component distribution, ``MixtureGeneral`` for a list."""
    if isinstance(component_distributions, Distribution):
        return MixtureSameFamily(mixing_distribution, component_distributions, validate_args=validate_args)
    return MixtureGeneral(mixing_distribution, component_distributions, validate_args=validate_args)
