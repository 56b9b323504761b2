"""initialize_model: the potential in unconstrained space, its gradient, postprocessing and init strategies."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

import difflux.core as dx
from difflux import ppl
from difflux.ppl import dist, handlers
from difflux.ppl.infer import (
    init_to_mean,
    init_to_median,
    init_to_sample,
    init_to_uniform,
    init_to_value,
    initialize_model,
)
from difflux.ppl.infer.util import constrain_fn, log_density

Y = np.array([0.3, -0.4, 1.2, 0.8])


def model(y):
    mu = ppl.sample("mu", dist.Normal(1.0, 2.0))
    sigma = ppl.sample("sigma", dist.HalfNormal(1.5))
    p = ppl.sample("p", dist.Beta(2.0, 3.0))
    with ppl.plate("data", y.shape[0]):
        ppl.sample("y", dist.Normal(mu + p, sigma), obs=y)
    ppl.deterministic("scaled", 10.0 * p)


def potential_by_hand(u: dict[str, float]) -> float:
    mu, log_sigma, logit_p = u["mu"], u["sigma"], u["p"]
    sigma, p = np.exp(log_sigma), special.expit(logit_p)
    log_joint = (
        stats.norm.logpdf(mu, 1.0, 2.0)
        + stats.halfnorm.logpdf(sigma, scale=1.5)
        + stats.beta.logpdf(p, 2.0, 3.0)
        + stats.norm.logpdf(Y, mu + p, sigma).sum()
    )
    log_det = log_sigma + np.log(p) + np.log1p(-p)
    return -(log_joint + log_det)


def _info(backend: str, init_strategy=init_to_uniform, seed: int = 0):
    with dx.backend(backend):
        y = dx.asarray(Y, backend=backend)
        return initialize_model(dx.random.key(seed), model, (y,), init_strategy=init_strategy)


def _as_floats(params) -> dict[str, float]:
    return {name: float(value) for name, value in params.items()}


def test_potential_matches_hand_written(backend: str) -> None:
    info = _info(backend)
    assert sorted(info.params) == ["mu", "p", "sigma"]
    for point in (info.params, {"mu": 0.4, "sigma": -0.3, "p": 1.1}):
        params = {name: dx.asarray(np.float64(v), backend=backend) for name, v in _as_floats(point).items()}
        np.testing.assert_allclose(float(info.potential_fn(params)), potential_by_hand(_as_floats(params)), rtol=1e-12)


def test_potential_gradient_matches_finite_differences(backend: str) -> None:
    info = _info(backend)
    grads = dx.grad(info.potential_fn)(info.params)
    point = _as_floats(info.params)
    step = 1e-6
    for name in point:
        up, down = dict(point), dict(point)
        up[name] += step
        down[name] -= step
        numeric = (potential_by_hand(up) - potential_by_hand(down)) / (2 * step)
        np.testing.assert_allclose(float(grads[name]), numeric, rtol=1e-6, atol=1e-8)


def test_potential_and_postprocess_jit() -> None:
    pytest.importorskip("jax")
    info = _info("jax")
    energy = dx.jit(info.potential_fn)(info.params)
    np.testing.assert_allclose(float(energy), potential_by_hand(_as_floats(info.params)), rtol=1e-12)
    grads = dx.jit(dx.grad(info.potential_fn))(info.params)
    eager = dx.grad(info.potential_fn)(info.params)
    for name in grads:
        np.testing.assert_allclose(float(grads[name]), float(eager[name]), rtol=1e-12)
    values = dx.jit(info.postprocess_fn)(info.params)
    np.testing.assert_allclose(float(values["sigma"]), np.exp(float(info.params["sigma"])), rtol=1e-12)


def test_postprocess_constrains_and_adds_deterministic(backend: str) -> None:
    info = _info(backend)
    values = info.postprocess_fn(info.params)
    u = _as_floats(info.params)
    assert sorted(values) == ["mu", "p", "scaled", "sigma"]
    np.testing.assert_allclose(float(values["mu"]), u["mu"], rtol=1e-12)
    np.testing.assert_allclose(float(values["sigma"]), np.exp(u["sigma"]), rtol=1e-12)
    np.testing.assert_allclose(float(values["p"]), special.expit(u["p"]), rtol=1e-12)
    np.testing.assert_allclose(float(values["scaled"]), 10.0 * special.expit(u["p"]), rtol=1e-12)


def test_init_trace_values_match_params(backend: str) -> None:
    info = _info(backend)
    assert info.model_trace["y"]["is_observed"]
    np.testing.assert_allclose(float(info.model_trace["sigma"]["value"]), np.exp(float(info.params["sigma"])))


def test_init_to_uniform_radius(backend: str) -> None:
    for seed in range(5):
        info = _info(backend, init_to_uniform(radius=0.5), seed=seed)
        for value in _as_floats(info.params).values():
            assert -0.5 <= value <= 0.5


def test_init_to_value(backend: str) -> None:
    with dx.backend(backend):
        values = {"sigma": dx.asarray(2.0, backend=backend), "p": dx.asarray(0.25, backend=backend)}
    info = _info(backend, init_to_value(values=values))
    np.testing.assert_allclose(float(info.params["sigma"]), np.log(2.0), rtol=1e-12)
    np.testing.assert_allclose(float(info.params["p"]), special.logit(0.25), rtol=1e-12)
    assert -2.0 <= float(info.params["mu"]) <= 2.0


def test_init_to_median_near_prior_median(backend: str) -> None:
    with dx.backend(backend):

        def wide():
            ppl.sample("x", dist.Normal(100.0, 1.0))

        info = initialize_model(dx.random.key(0), wide, init_strategy=init_to_median(num_samples=31))
    assert abs(float(info.params["x"]) - 100.0) < 1.0


def test_init_to_sample_is_prior_draw(backend: str) -> None:
    with dx.backend(backend):

        def shifted():
            ppl.sample("x", dist.Normal(50.0, 0.01))

        info = initialize_model(dx.random.key(0), shifted, init_strategy=init_to_sample)
    assert abs(float(info.params["x"]) - 50.0) < 0.1


def test_dynamic_support_uses_current_value(backend: str) -> None:
    def bounded():
        a = ppl.sample("a", dist.Exponential(1.0))
        ppl.sample("b", dist.Uniform(0.0, a))

    with dx.backend(backend):
        info = initialize_model(dx.random.key(0), bounded)
    u = _as_floats(info.params)
    a = np.exp(u["a"])
    b = a * special.expit(u["b"])
    by_hand = -(
        stats.expon.logpdf(a)
        + stats.uniform.logpdf(b, 0.0, a)
        + u["a"]
        + np.log(a * special.expit(u["b"]) * (1 - special.expit(u["b"])))
    )
    np.testing.assert_allclose(float(info.potential_fn(info.params)), by_hand, rtol=1e-10)


def test_retry_gives_up_naming_sites(backend: str) -> None:
    def impossible():
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
        ppl.factor("wall", dx.log(dx.zeros_like(x)))

    with dx.backend(backend), pytest.raises(RuntimeError, match="wall"):
        initialize_model(dx.random.key(0), impossible, max_tries=3)


def test_retry_finds_finite_start(backend: str) -> None:
    def half_wall():
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
        # Finite only for x > 0, so some tries from init_to_uniform fail.
        ppl.factor("wall", dx.log(dx.maximum(x, dx.zeros_like(x))))

    with dx.backend(backend):
        info = initialize_model(dx.random.key(0), half_wall)
    assert float(info.params["x"]) > 0.0


def test_constrain_fn_and_log_density_agree(backend: str) -> None:
    info = _info(backend)
    with dx.backend(backend):
        y = dx.asarray(Y, backend=backend)
        values = constrain_fn(model, (y,), {}, info.params)
        log_joint, _ = log_density(model, (y,), {}, values)
    u = _as_floats(info.params)
    log_det = u["sigma"] + np.log(special.expit(u["p"])) + np.log1p(-special.expit(u["p"]))
    np.testing.assert_allclose(-float(log_joint) - log_det, potential_by_hand(u), rtol=1e-12)


def test_missing_site_in_params_raises(backend: str) -> None:
    info = _info(backend)
    with pytest.raises(KeyError, match="sigma"):
        info.potential_fn({"mu": info.params["mu"], "p": info.params["p"]})


def test_seeded_model_under_substitute_matches(backend: str) -> None:
    info = _info(backend)
    values = info.postprocess_fn(info.params)
    with dx.backend(backend):
        tr = handlers.trace(handlers.substitute(model, data=values)).get_trace(dx.asarray(Y, backend=backend))
    assert float(tr["mu"]["value"]) == float(values["mu"])


def test_discrete_latent_site_raises(backend: str) -> None:
    def coin():
        ppl.sample("heads", dist.Bernoulli(probs=0.3))

    with dx.backend(backend), pytest.raises(NotImplementedError, match="heads"):
        initialize_model(dx.random.key(0), coin)


def test_init_to_mean(backend: str) -> None:
    def shifted():
        ppl.sample("x", dist.Normal(7.0, 1.0))
        ppl.sample("rate", dist.Gamma(4.0, 2.0))

    with dx.backend(backend):
        info = initialize_model(dx.random.key(0), shifted, init_strategy=init_to_mean)
    np.testing.assert_allclose(float(info.params["x"]), 7.0, rtol=1e-12)
    np.testing.assert_allclose(float(info.params["rate"]), np.log(2.0), rtol=1e-12)
