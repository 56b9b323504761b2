"""ppl.to_arviz: the InferenceData groups, shapes and values, and the error without ArviZ."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import difflux.core as dx
from difflux import ppl


def finished_run() -> ppl.MCMC:
    mcmc = ppl.MCMC(
        ppl.NUTS(potential_fn=lambda z: 0.5 * dx.sum(z["x"] ** 2)),
        num_warmup=20,
        num_samples=15,
        num_chains=2,
        progress_bar=False,
    )
    mcmc.run(dx.random.key(0, backend="numpy"), init_params={"x": np.zeros((2, 3))})
    return mcmc


def test_inference_data_groups() -> None:
    pytest.importorskip("arviz")
    mcmc = finished_run()
    data = ppl.to_arviz(mcmc)
    posterior = data.posterior["x"].values
    assert posterior.shape == (2, 15, 3)
    np.testing.assert_array_equal(posterior, np.asarray(mcmc.get_samples(group_by_chain=True)["x"]))
    stats = data.sample_stats
    for name in ("diverging", "energy", "acceptance_rate", "step_size", "n_steps", "lp"):
        assert stats[name].values.shape == (2, 15)
    np.testing.assert_array_equal(stats["diverging"].values, np.asarray(mcmc.divergences()))
    np.testing.assert_allclose(stats["lp"].values, -0.5 * (posterior**2).sum(-1))


def test_missing_arviz_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    mcmc = finished_run()
    monkeypatch.setitem(sys.modules, "arviz", None)
    with pytest.raises(ImportError, match=r"difflux-ppl\[arviz\]"):
        ppl.to_arviz(mcmc)
