"""``Predictive``: draws from the prior predictive and posterior predictive distributions.

Each draw runs the model once under ``seed`` with one set of values
substituted for its latent sites: those of one posterior sample, of one
draw from a fitted guide, or none at all (prior predictive). The sites
that were not substituted, usually the observations (pass ``obs=None``
to the model) and deterministic sites, are returned stacked along a
leading axis of size ``num_samples``. On JAX the draws are vectorised
with ``dx.vmap``; on NumPy they run one after another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core._backend import backend_of_value
from difflux.core._core import value_of

from ..handlers import seed, substitute, trace
from ._init_strategy import is_latent
from ._util import backend_scope, site_log_prob

__all__ = ["Predictive", "log_likelihood"]


class Predictive:
    """Draw predictive samples of a model's sites.

    Args:
        model: the model.
        posterior_samples: a dict from site name to an array of samples
            with a leading axis of size ``num_samples`` (such as
            ``mcmc.get_samples()``).
        guide: a fitted guide to draw the latent sites from, instead of
            ``posterior_samples``.
        params: the guide's (and model's) ``param`` values, such as
            ``SVI.run(...).params``.
        num_samples: the number of draws; required for prior predictive
            draws and with a guide, taken from ``posterior_samples``
            otherwise.
        return_sites: the names of the sites to return. By default: every
            sample site not given in ``posterior_samples`` and every
            deterministic site, and with a guide also the guide's draws.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import ppl
        >>> def model():
        ...     mu = ppl.sample("mu", ppl.dist.Normal(0.0, 1.0))
        ...     ppl.sample("y", ppl.dist.Normal(mu, 1.0))
        >>> draws = ppl.Predictive(model, num_samples=100)(dx.random.key(0, backend="numpy"))
        >>> draws["y"].shape
        (100,)
    """

    def __init__(
        self,
        model: Callable[..., Any],
        posterior_samples: dict[str, Any] | None = None,
        *,
        guide: Callable[..., Any] | None = None,
        params: dict[str, Any] | None = None,
        num_samples: int | None = None,
        return_sites: Sequence[str] | None = None,
    ) -> None:
        if posterior_samples is not None and guide is not None:
            raise ValueError("Predictive takes posterior_samples or a guide, not both")
        posterior_samples = dict(posterior_samples or {})
        sizes = {name: int(np.shape(value_of(v))[0]) for name, v in posterior_samples.items() if np.ndim(value_of(v))}
        scalars = [name for name, v in posterior_samples.items() if not np.ndim(value_of(v))]
        if scalars:
            raise ValueError(
                f"posterior_samples {scalars} have no leading sample axis; every entry needs shape (num_samples, ...)"
            )
        if len(set(sizes.values())) > 1:
            raise ValueError(f"posterior_samples disagree on the number of samples: {sizes}")
        if sizes:
            inferred = next(iter(sizes.values()))
            if num_samples is not None and num_samples != inferred:
                raise ValueError(
                    f"num_samples={num_samples} but posterior_samples hold {inferred} samples; omit num_samples"
                )
            num_samples = inferred
        if num_samples is None:
            raise ValueError("Predictive needs num_samples for prior predictive draws and with a guide")
        self.model = model
        self.posterior_samples = posterior_samples
        self.guide = guide
        self.params = dict(params or {})
        self.num_samples = int(num_samples)
        self.return_sites = None if return_sites is None else list(return_sites)

    def _draw(self, key: Any, samples: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Run the guide (if any) and the model once with ``samples`` substituted; return the chosen sites."""
        key_model, key_guide = dx.random.split(key)
        latent = dict(samples)
        guide_sites: dict[str, Any] = {}
        if self.guide is not None:
            guided = substitute(seed(self.guide, rng_seed=key_guide), data=self.params)
            guide_trace = trace(guided).get_trace(*args, **kwargs)
            guide_sites = {n: s["value"] for n, s in guide_trace.items() if is_latent(s)}
            latent.update(guide_sites)

        model = substitute(seed(self.model, rng_seed=key_model), data={**self.params, **latent})
        model_trace = trace(model).get_trace(*args, **kwargs)

        if self.return_sites is not None:
            missing = [name for name in self.return_sites if name not in model_trace and name not in guide_sites]
            if missing:
                raise KeyError(f"return_sites names {missing}, which the model and guide do not have")
            values = {**guide_sites, **{n: s["value"] for n, s in model_trace.items()}}
            return {name: values[name] for name in self.return_sites}

        out = dict(guide_sites)
        for name, site in model_trace.items():
            predicted = site["type"] == "sample" and name not in samples and not site["infer"].get("is_auxiliary")
            if predicted or site["type"] == "deterministic":
                out[name] = site["value"]
        return out

    def __call__(self, rng_key: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Return a dict from site name to ``num_samples`` stacked draws.

        Args:
            rng_key: a key from ``dx.random.key``.
            *args: the model's positional arguments (pass the observations
                as ``None`` to predict them).
            **kwargs: its keyword arguments.
        """
        keys = dx.random.split(rng_key, self.num_samples)
        with backend_scope(rng_key):
            if backend_of_value(value_of(keys)) == "jax":
                draw = dx.vmap(lambda key, samples: self._draw(key, samples, args, kwargs))
                return draw(keys, self.posterior_samples)

            draws = []
            for i in range(self.num_samples):
                sample = {name: value[i] for name, value in self.posterior_samples.items()}
                draws.append(self._draw(keys[i], sample, args, kwargs))
            return {name: dx.stack([draw[name] for draw in draws]) for name in draws[0]}


def log_likelihood(
    model: Callable[..., Any], posterior_samples: dict[str, Any], *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """Return the log density of every observed site at every posterior sample.

    Model comparison (WAIC, PSIS-LOO in ArviZ) needs these pointwise terms.

    Args:
        model: the model, called with ``args`` and ``kwargs`` (which hold
            the observations).
        posterior_samples: a dict from latent site name to samples with a
            leading axis of size ``num_samples``.
        *args: the model's positional arguments.
        **kwargs: its keyword arguments.

    Returns:
        A dict from observed site name to an array of shape
        ``(num_samples,) + batch_shape``: ``log_prob`` of each observation,
        with the site's mask and scale applied.
    """
    sizes = {int(np.shape(value_of(v))[0]) for v in posterior_samples.values()}
    if len(sizes) != 1:
        raise ValueError(
            "log_likelihood needs posterior_samples with one common leading sample axis, got shapes "
            f"{ {name: tuple(np.shape(value_of(v))) for name, v in posterior_samples.items()} }"
        )
    num_samples = sizes.pop()

    def single(sample: dict[str, Any]) -> dict[str, Any]:
        model_trace = trace(substitute(model, data=sample)).get_trace(*args, **kwargs)
        return {
            name: site_log_prob(site)
            for name, site in model_trace.items()
            if site["type"] == "sample" and site["is_observed"] and not site["infer"].get("is_auxiliary")
        }

    with backend_scope(posterior_samples):
        if any(backend_of_value(value_of(v)) == "jax" for v in posterior_samples.values()):
            return dx.vmap(single)(posterior_samples)
        rows = [single({name: v[i] for name, v in posterior_samples.items()}) for i in range(num_samples)]
        return {name: dx.stack([row[name] for row in rows]) for name in rows[0]}
