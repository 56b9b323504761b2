"""The Laplace start of the lynx-hare study, on NumPy, against the reference posterior.

``bayes.laplace_start`` climbs from four random points to the posterior's
highest mode and returns chain starting points drawn from the Laplace
approximation there, with its covariance as NUTS's first metric. The
reference is examples/lynx_hare/reference/reference_posterior.csv
(NumPyro and Diffrax, see compute_reference.py).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

import difflux.core as dx
from difflux.ppl.infer import util as infer_util

STUDY = Path(__file__).resolve().parents[1] / "examples" / "lynx_hare"
sys.path.insert(0, str(STUDY))

import bayes  # noqa: E402 (examples/lynx_hare/bayes.py)

import run  # noqa: E402 (examples/lynx_hare/run.py)

# Sites with a log transform to unconstrained space, where the Laplace
# standard deviation of log(x) should be close to sd(x) / mean(x).
LOG_SITES = ("hare0", "lynx0", "sigma_hare", "sigma_lynx")


def reference() -> dict[str, dict[str, float]]:
    with (STUDY / "reference" / "reference_posterior.csv").open() as file:
        return {
            row["parameter"]: {k: float(v) for k, v in row.items() if k != "parameter"} for row in csv.DictReader(file)
        }


def data() -> tuple[object, object]:
    """Return the years since 1900 and the counts as NumPy-backend arrays."""
    years, counts = run.load_data()
    return dx.asarray(years - years[0], backend="numpy"), dx.asarray(counts, backend="numpy")


def test_laplace_start_is_at_the_main_mode() -> None:
    years, counts = data()
    init_params, covariance = bayes.laplace_start(years, counts, chains=4, seed=0)
    assert covariance is not None
    ref = reference()
    names = sorted(init_params)
    assert names == sorted(bayes.NAMES)

    covariance = np.asarray(covariance)
    np.testing.assert_allclose(covariance, covariance.T)
    assert np.all(np.linalg.eigvalsh(covariance) > 0)
    for name in LOG_SITES:
        laplace_sd = np.sqrt(covariance[names.index(name), names.index(name)])
        expected = ref[name]["sd"] / ref[name]["mean"]
        assert 0.67 * expected < laplace_sd < 1.5 * expected, (name, laplace_sd, expected)

    # The minor mode has alpha near 1, 6.8 reference sd from the mean, so a
    # start drawn around it would fail this check.
    for chain in range(4):
        params = {name: init_params[name][chain] for name in names}
        values = infer_util.constrain_fn(bayes.model, (years, counts), None, params)
        for name in names:
            distance = abs(float(values[name]) - ref[name]["mean"]) / ref[name]["sd"]
            assert distance < 5.0, (chain, name, float(values[name]), ref[name]["mean"])


def test_one_chain_start_shapes() -> None:
    # MCMC.run(init_params=...) with num_chains=1 takes a single chain's values.
    years, counts = data()
    init_params, _ = bayes.laplace_start(years, counts, chains=1, seed=0)
    assert {name: np.shape(value) for name, value in init_params.items()} == dict.fromkeys(bayes.NAMES, ())
