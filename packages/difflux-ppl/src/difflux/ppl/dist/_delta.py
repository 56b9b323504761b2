r"""The Delta distribution: a point mass."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import difflux.core as dx

from . import constraints
from ._util import Shape, as_params, shape_of, sum_rightmost
from .distribution import Distribution


class Delta(Distribution):
    r"""A point mass at ``v``: every sample equals ``v``.

    ``log_prob(x)`` is ``log_density`` where ``x == v`` (over the whole event)
    and :math:`-\infty` elsewhere. Models use it to record a deterministic
    value as a sample site, optionally with a log-density term (the
    log-Jacobian of a reparameterisation, say).

    Args:
        v: the location, whose rightmost ``event_dim`` axes form the event.
        log_density: added to ``log_prob`` at ``v``.
        event_dim: the number of event axes.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "v": constraints.dependent,
        "log_density": constraints.real,
    }
    reparametrized_params = ("v", "log_density")

    def __init__(
        self, v: Any = 0.0, log_density: Any = 0.0, event_dim: int = 0, *, validate_args: bool | None = None
    ) -> None:
        self.v, self.log_density = as_params(v, log_density)
        shape = shape_of(self.v)
        if event_dim > len(shape):
            raise ValueError(f"Delta: event_dim {event_dim} exceeds the number of axes of v, shape {shape}")
        split = len(shape) - event_dim
        super().__init__(shape[:split], shape[split:], validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(constraints.real, self.event_dim) if self.event_dim else constraints.real

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        return dx.broadcast_to(self.v, self.shape(sample_shape))

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        log_mass = dx.where(value == self.v, 0.0, -math.inf)
        return sum_rightmost(log_mass, self.event_dim) + self.log_density

    @property
    def mean(self) -> Any:
        return self.v

    @property
    def variance(self) -> Any:
        return dx.zeros_like(self.v)
