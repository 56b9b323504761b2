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
from ._delta import Delta
from ._discrete import (
    Bernoulli,
    Binomial,
    Categorical,
    Geometric,
    NegativeBinomial,
    NegativeBinomial2,
    NegativeBinomialLogits,
    NegativeBinomialProbs,
    Poisson,
)
from ._mixture import Mixture, MixtureGeneral, MixtureSameFamily
from ._multivariate import Dirichlet, LKJCholesky, MultivariateNormal
from ._transformed import LogNormal, TransformedDistribution
from ._truncated import TruncatedNormal
from .distribution import (
    Distribution,
    ExpandedDistribution,
    Independent,
    MaskedDistribution,
    enable_validation,
    validation_enabled,
)

__all__ = [
    "Bernoulli",
    "Beta",
    "Binomial",
    "Categorical",
    "Cauchy",
    "ConstraintRegistry",
    "Delta",
    "Dirichlet",
    "Distribution",
    "ExpandedDistribution",
    "Exponential",
    "Gamma",
    "Geometric",
    "HalfCauchy",
    "HalfNormal",
    "Independent",
    "InverseGamma",
    "LKJCholesky",
    "Laplace",
    "LogNormal",
    "Logistic",
    "MaskedDistribution",
    "Mixture",
    "MixtureGeneral",
    "MixtureSameFamily",
    "MultivariateNormal",
    "NegativeBinomial",
    "NegativeBinomial2",
    "NegativeBinomialLogits",
    "NegativeBinomialProbs",
    "Normal",
    "Poisson",
    "StudentT",
    "TransformedDistribution",
    "TruncatedNormal",
    "Uniform",
    "Weibull",
    "biject_to",
    "constraints",
    "enable_validation",
    "transforms",
    "validation_enabled",
]
