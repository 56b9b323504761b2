"""difflux.ppl: probabilistic programming on NumPy and JAX.

``from difflux import ppl`` gives the modelling primitives, effect handlers,
distributions (``ppl.dist``), inference (``ppl.MCMC``, ``ppl.NUTS``,
``ppl.HMC``, ``ppl.SVI``, ``ppl.Predictive``) and diagnostics.
"""

from . import dist
