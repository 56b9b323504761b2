"""NUTS on models with known posteriors: conjugate closed forms and eight schools by quadrature."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

import difflux.core as dx
from difflux import ppl
from difflux.ppl import dist

BACKENDS_JAX_SLOW = ["numpy", pytest.param("jax", marks=pytest.mark.slow)]


def run_model(model, backend: str, *args, num_chains=1, num_warmup=200, num_samples=500, seed=0):
    mcmc = ppl.MCMC(
        ppl.NUTS(model),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(dx.random.key(seed, backend=backend), *args)
    return {name: np.asarray(value) for name, value in mcmc.get_samples(group_by_chain=True).items()}


def assert_mean(draws: np.ndarray, expected: np.ndarray | float, name: str) -> None:
    """The posterior mean is within four Monte Carlo standard errors of ``expected``."""
    error = ppl.diagnostics.mcse(draws, "mean")
    estimate = draws.reshape(-1, *draws.shape[2:]).mean(0)
    assert np.all(np.abs(estimate - expected) < 4 * error), (name, estimate, expected, error)


def assert_variance(draws: np.ndarray, expected: np.ndarray | float, name: str) -> None:
    """The posterior variance is within four standard errors, ``var * sqrt(2 / ess_sd)`` for near-normal draws."""
    pooled = draws.reshape(-1, *draws.shape[2:])
    error = np.asarray(expected) * np.sqrt(2.0 / ppl.diagnostics.ess(draws, "sd"))
    assert np.all(np.abs(pooled.var(0) - expected) < 4 * error), (name, pooled.var(0), expected, error)


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
def test_normal_normal(backend: str) -> None:
    data = np.random.default_rng(0).normal(1.5, 2.0, size=20)
    prior_mean, prior_sd, noise_sd = 0.0, 3.0, 2.0

    def model(y):
        mu = ppl.sample("mu", dist.Normal(prior_mean, prior_sd))
        with ppl.plate("data", y.shape[0]):
            ppl.sample("y", dist.Normal(mu, noise_sd), obs=y)

    precision = 1 / prior_sd**2 + len(data) / noise_sd**2
    posterior_mean = (prior_mean / prior_sd**2 + data.sum() / noise_sd**2) / precision
    draws = run_model(model, backend, dx.asarray(data, backend=backend))["mu"]
    assert_mean(draws, posterior_mean, "mu")
    assert_variance(draws, 1 / precision, "mu")


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
def test_beta_binomial(backend: str) -> None:
    def model(successes):
        p = ppl.sample("p", dist.Beta(2.0, 3.0))
        ppl.sample("k", dist.Binomial(30, probs=p), obs=successes)

    draws = run_model(model, backend, dx.asarray(12.0, backend=backend))["p"]
    posterior = stats.beta(2 + 12, 3 + 18)
    assert_mean(draws, posterior.mean(), "p")
    assert_variance(draws, posterior.var(), "p")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_linear_regression_normal_inverse_gamma(backend: str) -> None:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(30, 2))
    targets = features @ np.array([1.0, -0.5]) + rng.normal(scale=0.7, size=30)
    prior_scale = np.array([2.0, 2.0])  # beta ~ Normal(0, sigma^2 diag(prior_scale^2))
    shape, rate = 3.0, 2.0  # sigma^2 ~ InverseGamma(shape, rate)

    def model(x, y):
        sigma2 = ppl.sample("sigma2", dist.InverseGamma(shape, rate))
        scale = dx.sqrt(sigma2) * dx.asarray(prior_scale, backend=backend)
        beta = ppl.sample("beta", dist.Normal(dx.zeros(2, backend=backend), scale).to_event(1))
        with ppl.plate("data", y.shape[0]):
            ppl.sample("y", dist.Normal(dx.matmul(x, beta), dx.sqrt(sigma2)), obs=y)

    # Conjugate update: V_n = (V_0^-1 + X^T X)^-1, m_n = V_n X^T y, a_n = a_0 + n/2,
    # b_n = b_0 + (y^T y - m_n^T V_n^-1 m_n) / 2; E[beta] = m_n, Cov[beta] = b_n / (a_n - 1) V_n.
    posterior_cov = np.linalg.inv(np.diag(1 / prior_scale**2) + features.T @ features)
    posterior_mean = posterior_cov @ features.T @ targets
    shape_n = shape + len(targets) / 2
    rate_n = rate + 0.5 * (targets @ targets - posterior_mean @ np.linalg.solve(posterior_cov, posterior_mean))

    samples = run_model(
        model, backend, dx.asarray(features, backend=backend), dx.asarray(targets, backend=backend), num_samples=800
    )
    assert_mean(samples["beta"], posterior_mean, "beta")
    assert_variance(samples["beta"], rate_n / (shape_n - 1) * np.diag(posterior_cov), "beta")
    assert_mean(samples["sigma2"], rate_n / (shape_n - 1), "sigma2")


def eight_schools_data() -> tuple[np.ndarray, np.ndarray]:
    with (Path(__file__).parent / "data" / "eight_schools.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return np.array([float(r["y"]) for r in rows]), np.array([float(r["sigma"]) for r in rows])


def eight_schools_posterior_means(
    y: np.ndarray, sigma: np.ndarray, mu_sd: float, tau_scale: float
) -> dict[str, np.ndarray]:
    """Posterior means of mu, tau and theta by quadrature over tau (mu and theta integrate in closed form).

    Given tau, y_j ~ Normal(mu, sigma_j^2 + tau^2) with mu ~ Normal(0, mu_sd^2) is a Gaussian
    model, so p(y | tau), E[mu | tau, y] and E[theta_j | tau, y] have closed forms.
    """

    def conditional(tau: float) -> tuple[float, float, np.ndarray]:
        variance = sigma**2 + tau**2
        covariance = np.diag(variance) + mu_sd**2
        marginal = stats.multivariate_normal.logpdf(y, mean=np.zeros(len(y)), cov=covariance)  # pyright: ignore[reportCallIssue, reportArgumentType]
        log_density = marginal + stats.halfcauchy.logpdf(tau, scale=tau_scale)
        mu_variance = 1 / (1 / mu_sd**2 + np.sum(1 / variance))
        mu_mean = mu_variance * np.sum(y / variance)
        theta_mean = (y / sigma**2 + mu_mean / tau**2) / (1 / sigma**2 + 1 / tau**2)
        return log_density, mu_mean, theta_mean

    shift = conditional(3.0)[0]

    def weight(tau: float) -> float:
        return float(np.exp(conditional(tau)[0] - shift))

    norm = integrate.quad(weight, 0, np.inf, limit=200)[0]
    tau_mean = integrate.quad(lambda t: t * weight(t), 0, np.inf, limit=200)[0] / norm
    mu_mean = integrate.quad(lambda t: conditional(t)[1] * weight(t), 0, np.inf, limit=200)[0] / norm
    theta_mean = np.array(
        [
            integrate.quad(lambda t, j=j: conditional(t)[2][j] * weight(t), 0, np.inf, limit=200)[0] / norm
            for j in range(len(y))
        ]
    )
    return {"mu": np.asarray(mu_mean), "tau": np.asarray(tau_mean), "theta": theta_mean}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_eight_schools_non_centred(backend: str) -> None:
    y, sigma = eight_schools_data()

    def model(scale, observed):
        mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
        tau = ppl.sample("tau", dist.HalfCauchy(5.0))
        with ppl.plate("schools", 8):
            theta_tilde = ppl.sample("theta_tilde", dist.Normal(0.0, 1.0))
            theta = ppl.deterministic("theta", mu + tau * theta_tilde)
            ppl.sample("y", dist.Normal(theta, scale), obs=observed)

    samples = run_model(
        model,
        backend,
        dx.asarray(sigma, backend=backend),
        dx.asarray(y, backend=backend),
        num_chains=4,
        num_warmup=500,
        num_samples=1000,
    )
    expected = eight_schools_posterior_means(y, sigma, 5.0, 5.0)
    for name in ("mu", "tau", "theta"):
        assert_mean(samples[name], expected[name], name)
    assert np.all(ppl.diagnostics.split_rhat(samples["tau"]) < 1.02)
