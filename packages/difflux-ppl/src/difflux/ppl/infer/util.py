"""``ppl.infer.util``: model log densities and the setup that samplers build on (as ``numpyro.infer.util``)."""

from ._predictive import log_likelihood
from ._util import (
    ModelInfo,
    constrain_fn,
    initialize_model,
    log_density,
    potential_energy,
    site_log_prob,
)

__all__ = [
    "ModelInfo",
    "constrain_fn",
    "initialize_model",
    "log_density",
    "log_likelihood",
    "potential_energy",
    "site_log_prob",
]
