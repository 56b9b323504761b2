"""Predictive: prior and posterior predictive draws, their shapes and values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import difflux.core as dx
import difflux.optim as optim
from difflux import ppl
from difflux.ppl import dist
from difflux.ppl.dist import constraints

X = np.array([-1.0, 0.0, 2.0])


def regression(x, y=None):
    slope = ppl.sample("slope", dist.Normal(0.0, 1.0))
    noise = ppl.sample("noise", dist.HalfNormal(0.5))
    ppl.deterministic("twice_slope", 2.0 * slope)
    with ppl.plate("data", x.shape[0]):
        ppl.sample("y", dist.Normal(slope * x, noise), obs=y)


def _x(backend):
    return dx.asarray(X, backend=backend)


def test_prior_predictive_shapes_and_moments(backend: str) -> None:
    draws = ppl.Predictive(regression, num_samples=2000)(dx.random.key(0, backend=backend), _x(backend))
    assert sorted(draws) == ["noise", "slope", "twice_slope", "y"]
    assert tuple(draws["slope"].shape) == (2000,)
    assert tuple(draws["y"].shape) == (2000, 3)
    slope, y = np.asarray(draws["slope"]), np.asarray(draws["y"])
    np.testing.assert_allclose(np.asarray(draws["twice_slope"]), 2.0 * slope, rtol=1e-12)
    # Var(y_i) = x_i^2 Var(slope) + E[noise^2] = x_i^2 + 0.25.
    np.testing.assert_allclose(y.var(axis=0), X**2 + 0.25, rtol=0.12)
    assert abs(slope.mean()) < 0.1


def test_posterior_predictive_uses_samples(backend: str) -> None:
    samples = {
        "slope": dx.asarray(np.array([1.0, -2.0, 0.5, 3.0]), backend=backend),
        "noise": dx.asarray(np.array([1e-3, 1e-3, 1e-3, 1e-3]), backend=backend),
    }
    draws = ppl.Predictive(regression, samples)(dx.random.key(1, backend=backend), _x(backend))
    assert sorted(draws) == ["twice_slope", "y"]
    assert tuple(draws["y"].shape) == (4, 3)
    np.testing.assert_allclose(np.asarray(draws["twice_slope"]), [2.0, -4.0, 1.0, 6.0])
    expected_mean = np.outer([1.0, -2.0, 0.5, 3.0], X)
    np.testing.assert_allclose(np.asarray(draws["y"]), expected_mean, atol=5e-3)


def test_return_sites(backend: str) -> None:
    samples = {"slope": dx.asarray(np.array([1.0, 2.0]), backend=backend)}
    predictive = ppl.Predictive(regression, samples, return_sites=["slope", "y"])
    draws = predictive(dx.random.key(0, backend=backend), _x(backend))
    assert sorted(draws) == ["slope", "y"]
    np.testing.assert_allclose(np.asarray(draws["slope"]), [1.0, 2.0])
    with pytest.raises(KeyError, match="nope"):
        ppl.Predictive(regression, samples, return_sites=["nope"])(dx.random.key(0, backend=backend), _x(backend))


def test_draws_reproducible(backend: str) -> None:
    predictive = ppl.Predictive(regression, num_samples=5)
    first = predictive(dx.random.key(3, backend=backend), _x(backend))
    again = predictive(dx.random.key(3, backend=backend), _x(backend))
    other = predictive(dx.random.key(4, backend=backend), _x(backend))
    np.testing.assert_array_equal(np.asarray(first["y"]), np.asarray(again["y"]))
    assert not np.allclose(np.asarray(first["y"]), np.asarray(other["y"]))


def test_predictive_with_guide(backend: str) -> None:
    def guide(x, y=None):
        loc = ppl.param("loc", 0.0)
        ppl.sample("slope", dist.Normal(loc, 0.01))
        scale = ppl.param("noise_value", 0.2, constraint=constraints.positive)
        ppl.sample("noise", dist.LogNormal(dx.log(scale), 0.01))

    params = {"loc": dx.asarray(1.5, backend=backend), "noise_value": dx.asarray(0.2, backend=backend)}
    predictive = ppl.Predictive(regression, guide=guide, params=params, num_samples=300)
    draws = predictive(dx.random.key(0, backend=backend), _x(backend))
    assert sorted(draws) == ["noise", "slope", "twice_slope", "y"]
    np.testing.assert_allclose(float(dx.mean(draws["slope"])), 1.5, atol=0.01)
    residual = np.asarray(draws["y"]) - np.outer(np.asarray(draws["slope"]), X)
    np.testing.assert_allclose(residual.std(), 0.2, rtol=0.1)


def test_predictive_with_autoguide(backend: str) -> None:
    from difflux.ppl.infer.autoguide import AutoNormal

    guide = AutoNormal(regression)
    y = dx.asarray(np.array([-1.0, 0.1, 2.1]), backend=backend)
    svi = ppl.SVI(regression, guide, optim.Adam(0.05))
    result = svi.run(dx.random.key(0, backend=backend), 5, _x(backend), y, progress_bar=False)
    draws = ppl.Predictive(regression, guide=guide, params=result.params, num_samples=7)(
        dx.random.key(1, backend=backend), _x(backend)
    )
    assert sorted(draws) == ["noise", "slope", "twice_slope", "y"]
    assert tuple(draws["y"].shape) == (7, 3)


def test_predictive_argument_errors(backend: str) -> None:
    with pytest.raises(ValueError, match="num_samples"):
        ppl.Predictive(regression)
    with pytest.raises(ValueError, match="disagree"):
        ppl.Predictive(regression, {"slope": np.zeros(3), "noise": np.ones(2)})
    with pytest.raises(ValueError, match="omit num_samples"):
        ppl.Predictive(regression, {"slope": np.zeros(3)}, num_samples=4)
    with pytest.raises(ValueError, match="leading sample axis"):
        ppl.Predictive(regression, {"slope": np.float64(1.0)})
    with pytest.raises(ValueError, match="not both"):
        ppl.Predictive(regression, {"slope": np.zeros(3)}, guide=regression)


def test_log_likelihood_pointwise(backend: str) -> None:
    slopes, noises = np.array([1.0, -0.5, 2.0]), np.array([0.3, 0.6, 1.1])
    samples = {"slope": dx.asarray(slopes, backend=backend), "noise": dx.asarray(noises, backend=backend)}
    y = np.array([-0.8, 0.2, 1.9])
    result = ppl.infer.log_likelihood(regression, samples, _x(backend), dx.asarray(y, backend=backend))
    assert sorted(result) == ["y"]
    assert tuple(result["y"].shape) == (3, 3)
    expected = stats.norm.logpdf(y[None, :], slopes[:, None] * X[None, :], noises[:, None])
    np.testing.assert_allclose(np.asarray(result["y"]), expected, rtol=1e-12)


def test_log_likelihood_rejects_ragged_samples(backend: str) -> None:
    samples = {"slope": np.zeros(3), "noise": np.ones(2)}
    with pytest.raises(ValueError, match="common leading sample axis"):
        ppl.infer.log_likelihood(regression, samples, _x(backend))
