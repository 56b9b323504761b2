"""Inference: model log densities, initialisation, SVI, autoguides and predictive draws.

``ppl.infer.util`` holds what samplers build on: ``initialize_model``
(a starting point, ``potential_fn`` and ``postprocess_fn``),
``log_density`` and ``potential_energy``.
"""

from . import autoguide, util
from ._elbo import Trace_ELBO
from ._hmc import HMC, HMCState
from ._init_strategy import init_to_mean, init_to_median, init_to_sample, init_to_uniform, init_to_value
from ._mcmc import MCMC
from ._nuts import NUTS
from ._predictive import Predictive, log_likelihood
from ._svi import SVI, SVIRunResult, SVIState
from ._util import ModelInfo, initialize_model, log_density, potential_energy

__all__ = [
    "HMC",
    "MCMC",
    "NUTS",
    "HMCState",
    "SVI",
    "ModelInfo",
    "Predictive",
    "SVIRunResult",
    "SVIState",
    "Trace_ELBO",
    "autoguide",
    "init_to_mean",
    "init_to_median",
    "init_to_sample",
    "init_to_uniform",
    "init_to_value",
    "initialize_model",
    "log_density",
    "log_likelihood",
    "potential_energy",
    "util",
]
