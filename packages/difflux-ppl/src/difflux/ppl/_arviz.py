"""``to_arviz``: export an MCMC run as an ArviZ ``InferenceData``."""

from __future__ import annotations

from typing import Any

import numpy as np

# MCMC's per-draw statistics under the names of ArviZ's sample_stats schema.
_SAMPLE_STATS = {
    "diverging": "diverging",
    "energy": "energy",
    "accept_prob": "acceptance_rate",
    "step_size": "step_size",
    "num_steps": "n_steps",
}


def to_arviz(mcmc: Any, coords: dict[str, Any] | None = None, dims: dict[str, list[str]] | None = None) -> Any:
    """Return the draws and sampler statistics of a finished ``MCMC`` run as ``arviz.InferenceData``.

    The ``posterior`` group contains the samples (constrained sites and
    deterministic values for a model, the parameters for ``potential_fn``)
    with dimensions ``(chain, draw, ...)``. The ``sample_stats`` group contains
    ``diverging``, ``energy``, ``acceptance_rate``, ``step_size``,
    ``n_steps`` and ``lp`` (the log density, minus the potential energy).

    Args:
        mcmc: an :class:`MCMC` after ``run``.
        coords: ArviZ coordinates, passed to ``arviz.from_dict``.
        dims: ArviZ dimension names per variable, passed to ``arviz.from_dict``.

    Raises:
        ImportError: ArviZ is not installed; install the ``arviz`` extra.
    """
    try:
        # ArviZ is an optional extra, absent from the lint environment.
        import arviz  # pyright: ignore[reportMissingImports]
    except ImportError as error:
        raise ImportError(
            "ppl.to_arviz needs ArviZ, which is not installed; install it with "
            "`pip install difflux-ppl[arviz]` (or `pip install arviz`)"
        ) from error

    samples = mcmc.get_samples(group_by_chain=True)
    if not isinstance(samples, dict):
        samples = {"x": samples}
    posterior = {name: np.asarray(values) for name, values in samples.items()}
    recorded = mcmc.sampler_stats()
    stats = {arviz_name: np.asarray(recorded[name]) for name, arviz_name in _SAMPLE_STATS.items()}
    stats["lp"] = -np.asarray(recorded["potential_energy"])
    return arviz.from_dict(posterior=posterior, sample_stats=stats, coords=coords, dims=dims)
