"""difflux.ppl: probabilistic programming on NumPy and JAX.

``from difflux import ppl`` gives the modelling primitives, effect handlers,
distributions (``ppl.dist``), inference (``ppl.MCMC``, ``ppl.NUTS``,
``ppl.HMC``, ``ppl.SVI``, ``ppl.Predictive``) and diagnostics.
"""

from . import diagnostics, dist, handlers, infer
from ._arviz import to_arviz
from ._module_prior import module, random_module
from ._primitives import deterministic, factor, param, plate, prng_key, sample
from ._summary import summary
from .infer import HMC, MCMC, NUTS, SVI, Predictive, Trace_ELBO
