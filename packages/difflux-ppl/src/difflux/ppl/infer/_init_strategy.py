"""Initialisation strategies: where inference starts the latent sites of a model.

A strategy is a function of a site message that returns the site's initial
value in constrained space, or ``None`` to leave the site alone (observed
sites, other site types). ``initialize_model`` and the autoguides run the
model under ``substitute(seed(model, key), substitute_fn=strategy)``, so the
message carries a random key in ``msg["kwargs"]["rng_key"]``. Called with
options only (``init_to_uniform(radius=1.0)``), a strategy returns itself
with those options bound. The names follow NumPyro.
"""

from __future__ import annotations

import functools
from typing import Any

import difflux.core as dx

from ..dist import biject_to

__all__ = ["init_to_median", "init_to_mean", "init_to_sample", "init_to_uniform", "init_to_value"]

Site = dict[str, Any]


def is_latent(site: Site) -> bool:
    """Return whether ``site`` is an unobserved sample site (a latent variable)."""
    return site["type"] == "sample" and not site["is_observed"] and not site["infer"].get("is_auxiliary", False)


def _initialisable(site: Site) -> bool:
    # Discrete sites are left to their prior draw, so that initialize_model
    # can name them in its error.
    return is_latent(site) and not getattr(site["fn"].support, "is_discrete", False)


def _draw(site: Site, key: Any, sample_shape: tuple[int, ...] = ()) -> Any:
    shape = tuple(sample_shape) + tuple(site["kwargs"].get("sample_shape", ()))
    return site["fn"].sample(key, shape)


def _site_key(site: Site) -> Any:
    key = site["kwargs"].get("rng_key")
    if key is None:
        raise RuntimeError(
            f"initialising site {site['name']!r} needs a random key; run the model under "
            "ppl.handlers.seed before applying an init strategy"
        )
    return key


def init_to_uniform(site: Site | None = None, radius: float = 2.0) -> Any:
    """Start each latent site at ``biject_to(support)(u)`` with ``u`` uniform on ``(-radius, radius)``.

    This is the default of ``initialize_model``: it spreads chains over a
    region of typical scale in unconstrained space without looking at the
    prior's location.
    """
    if site is None:
        return functools.partial(init_to_uniform, radius=radius)
    if not _initialisable(site):
        return None
    key_prototype, key_uniform = dx.random.split(_site_key(site))
    prototype = _draw(site, key_prototype)
    transform = biject_to(site["fn"].support)
    unconstrained_shape = tuple(transform.inv(prototype).shape)
    u = dx.random.uniform(key_uniform, unconstrained_shape, minval=-radius, maxval=radius)
    return transform(dx.astype(u, prototype.dtype))


def init_to_median(site: Site | None = None, num_samples: int = 15) -> Any:
    """Start each latent site at the element-wise median of ``num_samples`` prior draws."""
    if site is None:
        return functools.partial(init_to_median, num_samples=num_samples)
    if not _initialisable(site):
        return None
    draws = dx.sort(_draw(site, _site_key(site), (num_samples,)), axis=0)
    return draws[num_samples // 2]


def init_to_mean(site: Site | None = None) -> Any:
    """Start each latent site at its prior mean, or at its median where the mean is undefined."""
    if site is None:
        return init_to_mean
    if not _initialisable(site):
        return None
    try:
        mean = site["fn"].mean
    except (AttributeError, NotImplementedError):
        return init_to_median(site)
    shape = tuple(site["kwargs"].get("sample_shape", ())) + tuple(site["fn"].batch_shape + site["fn"].event_shape)
    return dx.broadcast_to(mean, shape)


def init_to_sample(site: Site | None = None) -> Any:
    """Start each latent site at one draw from its prior."""
    if site is None:
        return init_to_sample
    if not _initialisable(site):
        return None
    return _draw(site, _site_key(site))


def init_to_value(site: Site | None = None, values: dict[str, Any] | None = None) -> Any:
    """Start the latent sites named in ``values`` there and the others as ``init_to_uniform`` does.

    Args:
        site: the site message (omit it to bind ``values``).
        values: a dict from site name to initial value, in constrained space.
    """
    if site is None:
        return functools.partial(init_to_value, values=dict(values or {}))
    if not _initialisable(site):
        return None
    if values is not None and site["name"] in values:
        return values[site["name"]]
    return init_to_uniform(site)
