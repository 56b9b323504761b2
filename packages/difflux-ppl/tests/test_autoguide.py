"""Autoguides: each recovers a known posterior (mean, covariance, MAP, inverse Hessian)."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
import difflux.optim as optim
from difflux import ppl
from difflux.ppl import dist
from difflux.ppl.infer import initialize_model
from difflux.ppl.infer.autoguide import AutoDelta, AutoLaplaceApproximation, AutoMultivariateNormal, AutoNormal

Y = np.array([0.3, -0.4, 1.2, 0.8, 1.5])
PRIOR_LOC, PRIOR_SCALE, NOISE = 1.0, 2.0, 0.7
POST_PRECISION = 1 / PRIOR_SCALE**2 + len(Y) / NOISE**2
POST_MEAN = (PRIOR_LOC / PRIOR_SCALE**2 + Y.sum() / NOISE**2) / POST_PRECISION
POST_SD = POST_PRECISION**-0.5
GAMMA_SHAPE, GAMMA_RATE = 3.0, 2.0


def conjugate(y):
    mu = ppl.sample("mu", dist.Normal(PRIOR_LOC, PRIOR_SCALE))
    with ppl.plate("data", y.shape[0]):
        ppl.sample("y", dist.Normal(mu, NOISE), obs=y)


def with_positive(y):
    conjugate(y)
    ppl.sample("tau", dist.Gamma(GAMMA_SHAPE, GAMMA_RATE))


RHO = 0.8


def correlated():
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    ppl.sample("z", dist.Normal(RHO * x, np.sqrt(1 - RHO**2)))


def _fit(model, guide, backend, steps, *args, lr=0.05, particles=1, seed=0):
    # A decaying learning rate lets the noisy ELBO gradients settle.
    schedule = optim.polynomial_decay(lr, lr / 25, steps)
    svi = ppl.SVI(model, guide, optim.Adam(schedule), loss=ppl.Trace_ELBO(num_particles=particles))
    return svi.run(dx.random.key(seed, backend=backend), steps, *args, progress_bar=False)


def test_auto_normal_recovers_conjugate_posterior(backend: str) -> None:
    guide = AutoNormal(conjugate)
    result = _fit(conjugate, guide, backend, 600, dx.asarray(Y, backend=backend), particles=4)
    assert sorted(result.params) == ["mu_auto_loc", "mu_auto_scale"]
    np.testing.assert_allclose(float(result.params["mu_auto_loc"]), POST_MEAN, atol=0.05)
    np.testing.assert_allclose(float(result.params["mu_auto_scale"]) ** 2, POST_SD**2, rtol=0.25)

    median = guide.median(result.params)
    np.testing.assert_allclose(float(median["mu"]), float(result.params["mu_auto_loc"]))
    draws = guide.sample_posterior(dx.random.key(1, backend=backend), result.params, (4000,))
    assert tuple(draws["mu"].shape) == (4000,)
    np.testing.assert_allclose(float(dx.mean(draws["mu"])), float(result.params["mu_auto_loc"]), atol=0.03)
    np.testing.assert_allclose(float(dx.std(draws["mu"])), float(result.params["mu_auto_scale"]), rtol=0.05)


def test_auto_normal_constrained_site(backend: str) -> None:
    guide = AutoNormal(with_positive)
    result = _fit(with_positive, guide, backend, 20, dx.asarray(Y, backend=backend))
    draws = guide.sample_posterior(dx.random.key(2, backend=backend), result.params, (50, 2))
    assert tuple(draws["tau"].shape) == (50, 2)
    assert float(dx.min(draws["tau"])) > 0.0
    np.testing.assert_allclose(
        float(guide.median(result.params)["tau"]), np.exp(float(result.params["tau_auto_loc"])), rtol=1e-12
    )


def test_auto_multivariate_normal_recovers_covariance(backend: str) -> None:
    guide = AutoMultivariateNormal(correlated)
    result = _fit(correlated, guide, backend, 600, particles=4)
    covariance = np.asarray(guide.covariance(result.params))
    np.testing.assert_allclose(covariance, [[1.0, RHO], [RHO, 1.0]], atol=0.07)
    np.testing.assert_allclose(np.asarray(result.params["auto_loc"]), [0.0, 0.0], atol=0.07)
    draws = guide.sample_posterior(dx.random.key(1, backend=backend), result.params, (3000,))
    sample_corr = np.corrcoef(np.asarray(draws["x"]), np.asarray(draws["z"]))[0, 1]
    expected_corr = covariance[0, 1] / np.sqrt(covariance[0, 0] * covariance[1, 1])
    np.testing.assert_allclose(sample_corr, expected_corr, atol=0.03)


def test_auto_delta_finds_map(backend: str) -> None:
    guide = AutoDelta(with_positive)
    result = _fit(with_positive, guide, backend, 600, dx.asarray(Y, backend=backend), lr=0.1)
    # The posterior of mu is normal, so its mode is its mean; the Gamma(3, 2)
    # mode in constrained space is (shape - 1) / rate.
    np.testing.assert_allclose(float(result.params["mu_auto_loc"]), POST_MEAN, atol=1e-3)
    np.testing.assert_allclose(float(result.params["tau_auto_loc"]), (GAMMA_SHAPE - 1) / GAMMA_RATE, atol=1e-3)
    draws = guide.sample_posterior(dx.random.key(0, backend=backend), result.params, (3,))
    np.testing.assert_allclose(np.asarray(draws["tau"]), np.full(3, float(result.params["tau_auto_loc"])))
    assert guide.median(result.params)["mu"] is result.params["mu_auto_loc"]


def test_laplace_covariance_is_inverse_hessian(backend: str) -> None:
    guide = AutoLaplaceApproximation(with_positive)
    y = dx.asarray(Y, backend=backend)
    result = _fit(with_positive, guide, backend, 600, y, lr=0.1)
    loc = np.asarray(result.params["auto_loc"])
    # In unconstrained space u = log(tau), the log joint of tau is
    # shape * u - rate * exp(u) + const, maximal at exp(u) = shape / rate.
    np.testing.assert_allclose(loc, [POST_MEAN, np.log(GAMMA_SHAPE / GAMMA_RATE)], atol=1e-3)

    # The Hessian of the potential by central differences of its gradient.
    with dx.backend(backend):
        info = initialize_model(dx.random.key(0), with_positive, (y,))
    grad = dx.grad(info.potential_fn)

    def grad_at(point):
        g = grad({"mu": dx.asarray(point[0], backend=backend), "tau": dx.asarray(point[1], backend=backend)})
        return np.array([float(g["mu"]), float(g["tau"])])

    step = 1e-5
    hessian = np.stack([(grad_at(loc + step * e) - grad_at(loc - step * e)) / (2 * step) for e in np.eye(2)])
    covariance = np.asarray(guide.covariance(result.params))
    np.testing.assert_allclose(covariance, np.linalg.inv(hessian), rtol=1e-5, atol=1e-8)
    # Closed forms: the normal posterior's variance, and 1 / shape for log(tau).
    np.testing.assert_allclose(np.diag(covariance), [POST_SD**2, 1 / GAMMA_SHAPE], rtol=1e-3)

    draws = guide.sample_posterior(dx.random.key(3, backend=backend), result.params, (4000,))
    np.testing.assert_allclose(float(dx.std(dx.log(draws["tau"]))), np.sqrt(1 / GAMMA_SHAPE), rtol=0.05)
    np.testing.assert_allclose(float(guide.median(result.params)["tau"]), GAMMA_SHAPE / GAMMA_RATE, rtol=1e-3)


def test_autoguide_before_fit_raises() -> None:
    guide = AutoNormal(conjugate)
    with pytest.raises(RuntimeError, match="not seen the model"):
        guide.median({})


def test_autoguide_rejects_subsampled_latent(backend: str) -> None:
    def local(y):
        with ppl.plate("data", 10, subsample_size=3):
            ppl.sample("z", dist.Normal(0.0, 1.0))

    guide = AutoNormal(local)
    svi = ppl.SVI(local, guide, optim.Adam(0.1))
    with pytest.raises(NotImplementedError, match="subsampling"):
        svi.init(dx.random.key(0, backend=backend), None)
    assert guide.sites is None


def test_autoguide_prototype_hidden_from_outer_trace(backend: str) -> None:
    guide = AutoNormal(conjugate)
    y = dx.asarray(Y, backend=backend)
    with dx.backend(backend):
        tr = ppl.handlers.trace(ppl.handlers.seed(guide, rng_seed=dx.random.key(0))).get_trace(y)
    assert "y" not in tr
    assert {"mu", "mu_auto_loc", "mu_auto_scale"} <= set(tr)


def test_init_scale_validated() -> None:
    with pytest.raises(ValueError, match="init_scale"):
        AutoNormal(conjugate, init_scale=0.0)
    with pytest.raises(ValueError, match="init_scale"):
        AutoMultivariateNormal(conjugate, init_scale=-1.0)


def _exact_loss(model, guide, params, backend, *args):
    """Return the loss of ``guide`` at constrained ``params`` for three different keys."""
    ppl.SVI(model, guide, optim.Adam(0.1)).init(dx.random.key(0, backend=backend), *args)
    params = {name: dx.asarray(value, backend=backend) for name, value in params.items()}
    elbo = ppl.Trace_ELBO()
    return [float(elbo.loss(dx.random.key(seed, backend=backend), params, model, guide, *args)) for seed in range(3)]


def test_auto_normal_exact_posterior_gives_log_evidence(backend: str) -> None:
    # A LogNormal prior is a normal in the unconstrained space log(tau), so
    # AutoNormal represents it exactly. Then log p(tau) - log q(tau) = log p() = 0
    # for every draw, which checks the guide's Jacobian correction.
    def lognormal():
        ppl.sample("tau", dist.LogNormal(0.3, 0.6))

    params = {"tau_auto_loc": 0.3, "tau_auto_scale": 0.6}
    np.testing.assert_allclose(_exact_loss(lognormal, AutoNormal(lognormal), params, backend), 0.0, atol=1e-12)


def test_auto_multivariate_normal_exact_posterior(backend: str) -> None:
    scale_tril = np.linalg.cholesky(np.array([[1.0, RHO], [RHO, 1.0]]))
    params = {"auto_loc": np.zeros(2), "auto_scale_tril": scale_tril}
    guide = AutoMultivariateNormal(correlated)
    np.testing.assert_allclose(_exact_loss(correlated, guide, params, backend), 0.0, atol=1e-12)
