"""SVI and Trace_ELBO: exact ELBO values, parameter handling, fitting a hand-written guide."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import difflux.core as dx
import difflux.optim as optim
from difflux import ppl
from difflux.ppl import dist
from difflux.ppl.dist import constraints

Y = np.array([0.3, -0.4, 1.2, 0.8, 1.5])
PRIOR_LOC, PRIOR_SCALE, NOISE = 1.0, 2.0, 0.7
POST_PRECISION = 1 / PRIOR_SCALE**2 + len(Y) / NOISE**2
POST_MEAN = (PRIOR_LOC / PRIOR_SCALE**2 + Y.sum() / NOISE**2) / POST_PRECISION
POST_SD = POST_PRECISION**-0.5


def model(y):
    mu = ppl.sample("mu", dist.Normal(PRIOR_LOC, PRIOR_SCALE))
    with ppl.plate("data", y.shape[0]):
        ppl.sample("y", dist.Normal(mu, NOISE), obs=y)


def guide(y):
    loc = ppl.param("loc", 0.0)
    scale = ppl.param("scale", 1.0, constraint=constraints.positive)
    ppl.sample("mu", dist.Normal(loc, scale))


def _log_evidence() -> float:
    """Return log p(y): y is normal with mean PRIOR_LOC and covariance NOISE^2 I + PRIOR_SCALE^2 (all ones)."""
    covariance = NOISE**2 * np.eye(len(Y)) + PRIOR_SCALE**2
    frozen = stats.multivariate_normal(mean=np.full(len(Y), PRIOR_LOC), cov=covariance)  # pyright: ignore[reportArgumentType]
    return float(frozen.logpdf(Y))


def _data(backend):
    return dx.asarray(Y, backend=backend)


def test_elbo_at_exact_posterior_is_log_evidence(backend: str) -> None:
    # With q equal to the posterior, log p(y, z) - log q(z) = log p(y) for every z.
    params = {"loc": dx.asarray(POST_MEAN, backend=backend), "scale": dx.asarray(POST_SD, backend=backend)}
    log_evidence = _log_evidence()
    for particles in (1, 3):
        elbo = ppl.Trace_ELBO(num_particles=particles)
        loss = elbo.loss(dx.random.key(0, backend=backend), params, model, guide, _data(backend))
        np.testing.assert_allclose(float(loss), -log_evidence, rtol=1e-10)


def test_elbo_below_log_evidence_elsewhere(backend: str) -> None:
    params = {"loc": dx.asarray(0.0, backend=backend), "scale": dx.asarray(1.0, backend=backend)}
    log_evidence = _log_evidence()
    loss = ppl.Trace_ELBO(num_particles=50).loss(
        dx.random.key(1, backend=backend), params, model, guide, _data(backend)
    )
    assert float(loss) > -log_evidence


def test_elbo_rejects_bad_particles() -> None:
    with pytest.raises(ValueError, match="num_particles"):
        ppl.Trace_ELBO(num_particles=0)


def test_init_collects_unconstrained_params(backend: str) -> None:
    svi = ppl.SVI(model, guide, optim.Adam(0.1))
    state = svi.init(dx.random.key(0, backend=backend), _data(backend))
    assert sorted(state.params) == ["loc", "scale"]
    np.testing.assert_allclose(float(state.params["scale"]), 0.0, atol=1e-15)
    params = svi.get_params(state)
    np.testing.assert_allclose(float(params["scale"]), 1.0)


def test_init_params_override(backend: str) -> None:
    svi = ppl.SVI(model, guide, optim.Adam(0.1))
    state = svi.init(dx.random.key(0, backend=backend), _data(backend), init_params={"scale": 2.0})
    np.testing.assert_allclose(float(state.params["scale"]), np.log(2.0), rtol=1e-12)
    with pytest.raises(ValueError, match="not param sites"):
        svi.init(dx.random.key(0, backend=backend), _data(backend), init_params={"nope": 1.0})


def test_update_loss_matches_evaluate(backend: str) -> None:
    svi = ppl.SVI(model, guide, optim.Adam(0.1))
    state = svi.init(dx.random.key(0, backend=backend), _data(backend))
    evaluated = svi.evaluate(state, _data(backend))
    new_state, loss = svi.update(state, _data(backend))
    np.testing.assert_allclose(float(loss), float(evaluated), rtol=1e-12)
    assert float(new_state.params["loc"]) != float(state.params["loc"])


def test_fit_hand_written_guide(backend: str) -> None:
    svi = ppl.SVI(model, guide, optim.Adam(0.05), loss=ppl.Trace_ELBO(num_particles=4))
    result = svi.run(dx.random.key(0, backend=backend), 800, _data(backend), progress_bar=False)
    assert tuple(result.losses.shape) == (800,)
    assert float(dx.mean(result.losses[-100:])) < float(dx.mean(result.losses[:20]))
    np.testing.assert_allclose(float(result.params["loc"]), POST_MEAN, atol=0.05)
    np.testing.assert_allclose(float(result.params["scale"]), POST_SD, rtol=0.15)


def test_run_continues_from_state(backend: str) -> None:
    svi = ppl.SVI(model, guide, optim.Adam(0.05))
    first = svi.run(dx.random.key(0, backend=backend), 5, _data(backend), progress_bar=False)
    second = svi.run(dx.random.key(0, backend=backend), 5, _data(backend), progress_bar=False, init_state=first.state)
    assert float(second.state.params["loc"]) != float(first.state.params["loc"])


def test_run_with_progress_bar(backend: str) -> None:
    svi = ppl.SVI(model, guide, optim.Adam(0.05))
    result = svi.run(dx.random.key(0, backend=backend), 40, _data(backend), progress_bar=True)
    assert tuple(result.losses.shape) == (40,)


def test_model_params_are_fitted(backend: str) -> None:
    # A param site in the model (a noise level) is found and fitted by maximum likelihood.
    def noisy_model(y):
        noise = ppl.param("noise", 1.0, constraint=constraints.positive)
        mu = ppl.sample("mu", dist.Normal(PRIOR_LOC, PRIOR_SCALE))
        with ppl.plate("data", y.shape[0]):
            ppl.sample("y", dist.Normal(mu, noise), obs=y)

    svi = ppl.SVI(noisy_model, guide, optim.Adam(0.05))
    state = svi.init(dx.random.key(0, backend=backend), _data(backend))
    assert sorted(state.params) == ["loc", "noise", "scale"]


def test_guide_missing_latent_raises(backend: str) -> None:
    def empty_guide(y):
        ppl.param("unused", 0.0)

    svi = ppl.SVI(model, empty_guide, optim.Adam(0.05))
    state = svi.init(dx.random.key(0, backend=backend), _data(backend))
    with pytest.raises(ValueError, match="'mu'"):
        svi.update(state, _data(backend))


def test_svi_argument_errors(backend: str) -> None:
    with pytest.raises(TypeError, match="init and update"):
        ppl.SVI(model, guide, "adam")
    svi = ppl.SVI(model, lambda y: ppl.sample("mu", dist.Normal(0.0, 1.0)), optim.Adam(0.05))
    with pytest.raises(ValueError, match=r"no ppl\.param"):
        svi.init(dx.random.key(0, backend=backend), _data(backend))
    with pytest.raises(ValueError, match="num_steps"):
        ppl.SVI(model, guide, optim.Adam(0.05)).run(dx.random.key(0, backend=backend), 0, _data(backend))


def test_subsampled_elbo_is_unbiased(backend: str) -> None:
    # With the exact posterior as guide the full-data loss is -log p(y) for
    # every draw. The subsampled loss scales the likelihood by N / n, so its
    # mean over draws is -log p(y) as well.
    def subsampled(y):
        mu = ppl.sample("mu", dist.Normal(PRIOR_LOC, PRIOR_SCALE))
        with ppl.plate("data", y.shape[0], subsample_size=2) as idx:
            ppl.sample("y", dist.Normal(mu, NOISE), obs=y[idx])

    params = {"loc": dx.asarray(POST_MEAN, backend=backend), "scale": dx.asarray(POST_SD, backend=backend)}
    log_evidence = _log_evidence()
    y = _data(backend)
    single = dx.jit(lambda key: ppl.Trace_ELBO().loss(key, params, subsampled, guide, y))
    keys = dx.random.split(dx.random.key(0, backend=backend), 400)
    losses = np.asarray(dx.stack([single(keys[i]) for i in range(400)]))
    standard_error = losses.std() / np.sqrt(len(losses))
    assert losses.std() > 0.0
    assert abs(losses.mean() + log_evidence) < 4.0 * standard_error

    svi = ppl.SVI(subsampled, guide, optim.Adam(0.05))
    result = svi.run(dx.random.key(1, backend=backend), 5, _data(backend), progress_bar=False)
    assert bool(dx.all(dx.isfinite(result.losses)))
