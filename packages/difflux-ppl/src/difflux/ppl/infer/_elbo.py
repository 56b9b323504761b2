r"""The evidence lower bound (ELBO) that ``SVI`` maximises.

For a model :math:`p(x, z)` and a guide :math:`q_\phi(z)`,

.. math::

    \mathrm{ELBO}(\phi) = \mathbb{E}_{z \sim q_\phi}\left[\log p(x, z) - \log q_\phi(z)\right]
    \le \log p(x),

estimated by Monte Carlo with ``num_particles`` draws of :math:`z` from the
guide. The draws are reparametrised (written as differentiable functions of
the guide's parameters and of fixed noise), so the gradient of the estimate
is an unbiased estimate of the ELBO's gradient. The loss is the negative
ELBO.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import difflux.core as dx

from ..handlers import replay, seed
from ._util import log_density

__all__ = ["Trace_ELBO"]


class Trace_ELBO:  # noqa: N801 (NumPyro's name)
    """The Monte Carlo ELBO over whole traces of the guide and the model.

    Each particle runs the guide, then the model with the guide's draws
    replayed, and takes the difference of their log densities (masks,
    scales and plate subsampling applied).

    Args:
        num_particles: the number of draws averaged per loss evaluation.
    """

    def __init__(self, num_particles: int = 1) -> None:
        if not isinstance(num_particles, int) or num_particles < 1:
            raise ValueError(f"Trace_ELBO needs num_particles >= 1, got {num_particles!r}")
        self.num_particles = num_particles

    def loss(
        self,
        rng_key: Any,
        param_map: dict[str, Any],
        model: Callable[..., Any],
        guide: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Return the negative ELBO estimate at the constrained parameters ``param_map``."""
        keys = dx.random.split(rng_key, self.num_particles)
        # NOTE: particles run in a Python loop, so under dx.jit the compiled
        # program grows linearly with num_particles.
        total: Any = None
        for particle in range(self.num_particles):
            term = self._particle(keys[particle], param_map, model, guide, args, kwargs)
            total = term if total is None else total + term
        return -total / self.num_particles

    @staticmethod
    def _particle(
        key: Any,
        param_map: dict[str, Any],
        model: Callable[..., Any],
        guide: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        key_model, key_guide = dx.random.split(key)
        guide_log_density, guide_trace = log_density(seed(guide, rng_seed=key_guide), args, kwargs, param_map)
        replayed = replay(seed(model, rng_seed=key_model), trace=guide_trace)
        model_log_density, model_trace = log_density(replayed, args, kwargs, param_map)
        _check_guide_covers_model(model_trace, guide_trace)
        return model_log_density - guide_log_density


def _check_guide_covers_model(model_trace: dict[str, Any], guide_trace: dict[str, Any]) -> None:
    for name, site in model_trace.items():
        if site["type"] != "sample" or site["is_observed"] or site["infer"].get("is_auxiliary", False):
            continue
        if name not in guide_trace:
            raise ValueError(
                f"the latent site {name!r} of the model has no site in the guide, so the ELBO would be "
                "biased. Sample it in the guide as well, or observe it in the model with obs=..."
            )
