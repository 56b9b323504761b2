"""NUTS on potential functions: moments, dense metric adaptation, divergences and tree depth."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import difflux.core as dx
from conftest import HAS_JAX
from difflux import ppl

COVARIANCE = np.array([[1.0, 1.5], [1.5, 4.0]])

# Each JAX run compiles the sampler (several seconds), so the longer JAX runs are marked slow.
BACKENDS_JAX_SLOW = ["numpy", pytest.param("jax", marks=pytest.mark.slow)]


def run_nuts(backend: str, potential, init, *, num_chains=1, num_warmup=400, num_samples=600, seed=0, **kwargs):
    kernel = ppl.NUTS(potential_fn=potential, **kwargs)
    mcmc = ppl.MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(
        dx.random.key(seed, backend=backend),
        init_params=dx.asarray(np.asarray(init, dtype=float), backend=backend),
        extra_fields=("accept_prob", "num_steps", "diverging"),
    )
    return mcmc


def assert_moments(draws: np.ndarray, mean: np.ndarray, covariance: np.ndarray) -> None:
    """Check the mean and variances against the truth within four Monte Carlo standard errors."""
    pooled = draws.reshape(-1, draws.shape[-1])
    ess = ppl.diagnostics.ess(draws, "mean")
    sd = np.sqrt(np.diag(covariance))
    mean_error = sd / np.sqrt(ess)
    assert np.all(np.abs(pooled.mean(0) - mean) < 4 * mean_error), (pooled.mean(0), mean, mean_error)
    variance_error = np.diag(covariance) * np.sqrt(2.0 / ppl.diagnostics.ess(draws, "sd"))
    assert np.all(np.abs(pooled.var(0) - np.diag(covariance)) < 4 * variance_error), (pooled.var(0), variance_error)


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
def test_nuts_standard_normal(backend: str) -> None:
    mcmc = run_nuts(
        backend, lambda z: 0.5 * dx.sum(z**2), np.full((2, 3), 1.0), num_chains=2, num_warmup=200, num_samples=400
    )
    draws = np.asarray(mcmc.get_samples(group_by_chain=True))
    assert draws.shape == (2, 400, 3)
    assert_moments(draws, np.zeros(3), np.eye(3))
    assert np.all(ppl.diagnostics.split_rhat(draws) < 1.02)
    assert not np.any(np.asarray(mcmc.get_extra_fields()["diverging"]))


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
def test_nuts_correlated_gaussian_dense_mass(backend: str) -> None:
    precision = dx.asarray(np.linalg.inv(COVARIANCE), backend=backend)
    mean = np.array([1.0, -2.0])
    shift = dx.asarray(mean, backend=backend)

    def potential(z):
        centred = z - shift
        return 0.5 * dx.sum(centred * dx.matmul(precision, centred))

    mcmc = run_nuts(backend, potential, np.zeros(2), num_warmup=400, num_samples=600, dense_mass=True)
    draws = np.asarray(mcmc.get_samples(group_by_chain=True))
    assert_moments(draws, mean, COVARIANCE)

    # The adapted inverse mass matrix estimates the posterior covariance.
    assert mcmc.last_state is not None
    inverse_mass = np.asarray(mcmc.last_state.adapt_state.inverse_mass_matrix)[0]
    np.testing.assert_allclose(inverse_mass, COVARIANCE, rtol=0.35, atol=0.3)
    # With the covariance as metric the target is isotropic: a few leapfrog steps suffice.
    assert np.median(np.asarray(mcmc.get_extra_fields()["num_steps"])) <= 7


@pytest.mark.parametrize("target", [0.65, 0.9])
def test_dual_averaging_hits_target_acceptance(target: float) -> None:
    # Dual averaging drives the mean acceptance statistic of the warm-up iterates to the target.
    # After warm-up the averaged step size is smaller, so the acceptance is higher (as in Stan).
    scales = np.array([1.0, 10.0, 0.1])
    precision = dx.asarray(1.0 / scales**2, backend="numpy")
    kernel = ppl.NUTS(
        potential_fn=lambda z: 0.5 * dx.sum(z**2 * precision),
        inverse_mass_matrix=scales**2,
        adapt_mass_matrix=False,
        target_accept_prob=target,
    )
    num_warmup = 500
    state = kernel.init(dx.random.key(2, backend="numpy"), num_warmup, init_params=np.ones(3))
    warmup_accept = []
    for _ in range(num_warmup):
        state = kernel.sample(state)
        warmup_accept.append(float(state.accept_prob))
    assert abs(np.mean(warmup_accept[100:]) - target) < 0.05, np.mean(warmup_accept[100:])

    after = []
    for _ in range(200):
        state = kernel.sample(state)
        after.append(float(state.accept_prob))
    assert np.mean(after) > target - 0.05


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
def test_funnel_reports_divergences(backend: str) -> None:
    # Neal's funnel in the centred parametrisation: y ~ Normal(0, 3), x_i ~ Normal(0, exp(y / 2)).
    def potential(z):
        y, x = z[0], z[1:]
        return y**2 / 18.0 + 0.5 * dx.sum(x**2) * dx.exp(-y) + 0.5 * (z.shape[0] - 1) * y

    # A fixed step of 1 is stable where the scale of x, exp(y / 2), is near 1. It diverges in
    # the neck (y below about -2), which the chains soon reach, and each of 13 seeds tried gave
    # over 70 divergences. Adapting the step would make divergences rare and seed-dependent.
    mcmc = run_nuts(
        backend,
        potential,
        np.zeros((2, 10)),
        num_chains=2,
        num_warmup=0,
        num_samples=200,
        seed=1,
        step_size=1.0,
        adapt_step_size=False,
        adapt_mass_matrix=False,
    )
    divergences = np.asarray(mcmc.divergences())
    assert divergences.sum() > 0
    np.testing.assert_array_equal(divergences, np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"]))


def test_max_tree_depth_bounds_steps(backend: str) -> None:
    # A very small fixed step size on a wide target: every trajectory hits the depth limit.
    kernel = ppl.NUTS(
        potential_fn=lambda z: 0.5 * dx.sum(z**2) / 100.0,
        step_size=1e-3,
        adapt_step_size=False,
        max_tree_depth=4,
    )
    mcmc = ppl.MCMC(kernel, num_warmup=0, num_samples=10, progress_bar=False)
    mcmc.run(dx.random.key(0, backend=backend), init_params=dx.zeros(2, backend=backend), extra_fields=("num_steps",))
    np.testing.assert_array_equal(np.asarray(mcmc.get_extra_fields()["num_steps"]), 2**4 - 1)


def test_nuts_rejects_bad_tree_depth() -> None:
    with pytest.raises(ValueError, match="max_tree_depth"):
        ppl.NUTS(potential_fn=lambda z: z, max_tree_depth=0)


def test_nuts_single_chain_api() -> None:
    kernel = ppl.NUTS(potential_fn=lambda z: 0.5 * dx.sum(z**2))
    state = kernel.init(dx.random.key(0, backend="numpy"), 10, init_params=np.ones(2))
    for _ in range(3):
        state = kernel.sample(state)
    assert int(state.i) == 3
    assert np.isfinite(np.asarray(state.z)).all()


def test_divergent_leaf_raises_no_numpy_warning() -> None:
    # A step of 1000 from the origin overflows exp: the leaf's energy is infinite, which
    # marks the transition divergent, and NumPy must not warn about the overflow.
    def potential(z):
        return dx.sum(dx.exp(3.0 * z) + dx.exp(-3.0 * z))

    kernel = ppl.NUTS(potential_fn=potential, step_size=1000.0, adapt_step_size=False, adapt_mass_matrix=False)
    state = kernel.init(dx.random.key(0, backend="numpy"), 0, init_params=np.zeros(5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state = kernel.sample(state)
    assert bool(state.diverging)
    assert int(state.num_steps) == 1


_FLOAT32_SCRIPT = """
import jax
import numpy as np
import difflux.core as dx
from difflux import ppl
from difflux.ppl import dist

def model(y):
    mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
    ppl.sample("y", dist.Normal(mu, 1.0), obs=y)

assert not jax.config.jax_enable_x64
y = dx.asarray(np.array([0.3, 1.2, -0.4, 0.8], np.float32), backend="jax")
mcmc = ppl.MCMC(ppl.NUTS(model), num_warmup=200, num_samples=400, num_chains=2, progress_bar=False)
mcmc.run(dx.random.key(0, backend="jax"), y)
draws = np.asarray(mcmc.get_samples()["mu"])
print(draws.dtype, draws.mean())
"""


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_nuts_on_jax_float32():
    # JAX's default: 32-bit types. A fresh process, because the tests enable float64.
    env = {key: value for key, value in os.environ.items() if key != "JAX_ENABLE_X64"}
    result = subprocess.run(
        [sys.executable, "-c", _FLOAT32_SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dtype, mean = result.stdout.split()
    assert dtype == "float32"
    # Conjugate posterior of mu: mean sum(y) / (4 + 1/25), sd 1 / sqrt(4.04).
    assert abs(float(mean) - 1.9 / 4.04) < 0.15
