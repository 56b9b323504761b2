"""``difflux.ppl.dist``: probability distributions, constraints and bijections.

The API follows NumPyro's ``numpyro.distributions``: the same class names,
parameter names, shape conventions (``sample_shape + batch_shape +
event_shape``) and semantics, so a NumPyro model ports by changing imports.
Parameters may be difflux tracers, so gradients flow through ``log_prob``,
and through ``sample`` for distributions with ``has_rsample``.

Example:
    >>> import difflux.core as dx
    >>> from difflux.ppl import dist
    >>> d = dist.Normal(dx.zeros(3), 1.0)
    >>> d.batch_shape, d.sample(dx.random.key(0), (2,)).shape
    ((3,), (2, 3))
    >>> d.to_event(1).log_prob(dx.zeros(3)).shape
    ()
"""

from . import constraints, transforms
from ._biject import ConstraintRegistry, biject_to
from ._continuous import Cauchy, Exponential, HalfCauchy, HalfNormal, Laplace, Logistic, Normal, Uniform, Weibull
from ._continuous_gamma import Beta, Gamma, InverseGamma, StudentT
from ._transformed import LogNormal, TransformedDistribution
from .distribution import (
    Distribution,
    ExpandedDistribution,
    Independent,
    MaskedDistribution,
    enable_validation,
    validation_enabled,
)

__all__ = [
    "Beta",
    "Cauchy",
    "ConstraintRegistry",
    "Distribution",
    "ExpandedDistribution",
    "Exponential",
    "Gamma",
    "HalfCauchy",
    "HalfNormal",
    "Independent",
    "InverseGamma",
    "Laplace",
    "LogNormal",
    "Logistic",
    "MaskedDistribution",
    "Normal",
    "StudentT",
    "TransformedDistribution",
    "Uniform",
    "Weibull",
    "biject_to",
    "constraints",
    "enable_validation",
    "transforms",
    "validation_enabled",
]
