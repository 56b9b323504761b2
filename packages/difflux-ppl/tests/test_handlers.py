"""Effect handlers: each one's effect on sites and log densities, checked against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import difflux.core as dx
from difflux import ppl
from difflux.ppl import dist, handlers
from difflux.ppl.infer.util import log_density, site_log_prob


def model(y=None):
    mu = ppl.sample("mu", dist.Normal(1.0, 2.0))
    sigma = ppl.sample("sigma", dist.HalfNormal(1.5))
    with ppl.plate("data", 3):
        ppl.sample("y", dist.Normal(mu, sigma), obs=y)
    ppl.deterministic("shifted", mu + 1.0)


def seeded_trace(fn, backend, *args, seed=0):
    with dx.backend(backend):
        return handlers.trace(handlers.seed(fn, rng_seed=dx.random.key(seed))).get_trace(*args)


def test_trace_records_sites_in_order(backend: str) -> None:
    tr = seeded_trace(model, backend)
    assert list(tr) == ["mu", "sigma", "data", "y", "shifted"]
    assert [tr[name]["type"] for name in tr] == ["sample", "sample", "plate", "sample", "deterministic"]
    assert not tr["y"]["is_observed"]
    assert tuple(tr["y"]["value"].shape) == (3,)


def test_trace_log_probs_match_scipy(backend: str) -> None:
    tr = seeded_trace(model, backend)
    mu, sigma, y = (np.asarray(tr[name]["value"]) for name in ("mu", "sigma", "y"))
    np.testing.assert_allclose(np.asarray(site_log_prob(tr["mu"])), stats.norm.logpdf(mu, 1.0, 2.0), rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(site_log_prob(tr["sigma"])), stats.halfnorm.logpdf(sigma, scale=1.5), rtol=1e-12
    )
    np.testing.assert_allclose(np.asarray(site_log_prob(tr["y"])), stats.norm.logpdf(y, mu, sigma), rtol=1e-12)
    np.testing.assert_allclose(float(tr["shifted"]["value"]), mu + 1.0)


def test_trace_as_context_manager(backend: str) -> None:
    with dx.backend(backend), handlers.trace() as tr, handlers.seed(rng_seed=dx.random.key(0)):
        model()
    assert set(tr) == {"mu", "sigma", "data", "y", "shifted"}


def test_seed_reproducible_and_distinct(backend: str) -> None:
    first = seeded_trace(model, backend, seed=5)
    again = seeded_trace(model, backend, seed=5)
    other = seeded_trace(model, backend, seed=6)
    assert float(first["mu"]["value"]) == float(again["mu"]["value"])
    assert float(first["mu"]["value"]) != float(other["mu"]["value"])
    # Each site gets its own key, so two standard normals differ.
    two = seeded_trace(lambda: [ppl.sample(n, dist.Normal(0.0, 1.0)) for n in "ab"], backend)
    assert float(two["a"]["value"]) != float(two["b"]["value"])


def test_seed_accepts_int() -> None:
    value = handlers.seed(lambda: ppl.sample("x", dist.Normal(0.0, 1.0)), rng_seed=3)()
    assert np.shape(value) == ()


def test_seed_inside_jit_matches_eager() -> None:
    pytest.importorskip("jax")

    def draw(key):
        tr = handlers.trace(handlers.seed(model, rng_seed=key)).get_trace()
        return tr["mu"]["value"], tr["y"]["value"]

    with dx.backend("jax"):
        key = dx.random.key(2)
        eager = draw(key)
        compiled = dx.jit(draw)(key)
    np.testing.assert_allclose(np.asarray(compiled[0]), np.asarray(eager[0]), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(compiled[1]), np.asarray(eager[1]), rtol=1e-12)


def test_condition_observes(backend: str, to_backend) -> None:
    y = to_backend([0.5, 1.0, 1.5])
    mu = to_backend(0.7)
    conditioned = handlers.condition(model, data={"mu": mu})
    tr = seeded_trace(conditioned, backend, y)
    assert tr["mu"]["is_observed"]
    assert tr["mu"]["value"] is mu
    assert tr["y"]["is_observed"]

    sigma = float(tr["sigma"]["value"])
    with dx.backend(backend):
        log_joint, _ = log_density(conditioned, (y,), {}, {"sigma": tr["sigma"]["value"]})
    expected = (
        stats.norm.logpdf(0.7, 1.0, 2.0)
        + stats.halfnorm.logpdf(sigma, scale=1.5)
        + stats.norm.logpdf([0.5, 1.0, 1.5], 0.7, sigma).sum()
    )
    np.testing.assert_allclose(float(log_joint), expected, rtol=1e-12)


def test_condition_fn(backend: str, to_backend) -> None:
    value = to_backend(0.25)
    conditioned = handlers.condition(model, condition_fn=lambda msg: value if msg["name"] == "sigma" else None)
    tr = seeded_trace(conditioned, backend)
    assert tr["sigma"]["is_observed"]
    assert tr["sigma"]["value"] is value
    assert not tr["mu"]["is_observed"]


def test_substitute_keeps_site_latent(backend: str, to_backend) -> None:
    mu = to_backend(-0.3)
    tr = seeded_trace(handlers.substitute(model, data={"mu": mu}), backend)
    assert tr["mu"]["value"] is mu
    assert not tr["mu"]["is_observed"]


def test_substitute_leaves_observed_alone(backend: str, to_backend) -> None:
    y = to_backend([0.5, 1.0, 1.5])
    tr = seeded_trace(handlers.substitute(model, data={"y": to_backend([9.0, 9.0, 9.0])}), backend, y)
    assert tr["y"]["value"] is y


def test_substitute_param(backend: str, to_backend) -> None:
    new = to_backend(4.0)
    out = handlers.substitute(lambda: ppl.param("w", 1.0), data={"w": new})()
    assert out is new


def test_handlers_need_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        handlers.substitute(model)
    with pytest.raises(ValueError, match="exactly one"):
        handlers.condition(model, data={}, condition_fn=lambda msg: None)


def blocked_trace(backend, **options):
    with dx.backend(backend):
        seeded = handlers.seed(model, rng_seed=dx.random.key(0))
        return handlers.trace(handlers.block(seeded, **options)).get_trace()


def test_block_hides_sites(backend: str) -> None:
    assert list(blocked_trace(backend)) == []
    assert "mu" not in blocked_trace(backend, hide=["mu"])
    assert list(blocked_trace(backend, expose=["sigma"])) == ["sigma"]
    assert list(blocked_trace(backend, expose_types=["sample"])) == ["mu", "sigma", "y"]
    by_fn = blocked_trace(backend, hide_fn=lambda msg: msg["type"] == "deterministic")
    assert "shifted" not in by_fn
    assert "mu" in by_fn


def test_block_hides_from_outer_seed(backend: str) -> None:
    with pytest.raises(RuntimeError, match="random key"):
        seeded_trace(handlers.block(model), backend)


def test_block_still_runs_inner_handlers(backend: str, to_backend) -> None:
    mu = to_backend(0.5)
    with dx.backend(backend):
        inner = handlers.substitute(handlers.seed(model, rng_seed=dx.random.key(0)), data={"mu": mu})
        with handlers.trace() as outer:
            inner_trace = handlers.trace(inner)
            handlers.block(inner_trace)()
    value = inner_trace.trace["mu"]["value"]
    assert outer == {}
    assert value is mu


def test_scale_multiplies_log_density(backend: str, to_backend) -> None:
    y = to_backend([0.5, 1.0, 1.5])
    params = {"mu": to_backend(0.2), "sigma": to_backend(1.1)}
    with dx.backend(backend):
        plain, _ = log_density(model, (y,), {}, params)
        scaled, tr = log_density(handlers.scale(model, scale=3.0), (y,), {}, params)
        nested, _ = log_density(handlers.scale(handlers.scale(model, scale=2.0), scale=0.5), (y,), {}, params)
    assert tr["mu"]["scale"] == 3.0
    np.testing.assert_allclose(float(scaled), 3.0 * float(plain), rtol=1e-12)
    np.testing.assert_allclose(float(nested), float(plain), rtol=1e-12)


def test_scale_rejects_non_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        handlers.scale(model, scale=0.0)


def test_mask_drops_terms(backend: str, to_backend) -> None:
    y = to_backend([0.5, 1.0, 1.5])
    params = {"mu": to_backend(0.2), "sigma": to_backend(1.1)}
    with dx.backend(backend):
        keep = dx.asarray(np.array([True, False, True]), backend=backend)

        def masked_model(y):
            mu = ppl.sample("mu", dist.Normal(1.0, 2.0))
            sigma = ppl.sample("sigma", dist.HalfNormal(1.5))
            with ppl.plate("data", 3), handlers.mask(mask=keep):
                ppl.sample("y", dist.Normal(mu, sigma), obs=y)

        log_joint, _ = log_density(masked_model, (y,), {}, params)
        nothing, _ = log_density(handlers.mask(model, mask=False), (y,), {}, params)
    expected = (
        stats.norm.logpdf(0.2, 1.0, 2.0)
        + stats.halfnorm.logpdf(1.1, scale=1.5)
        + stats.norm.logpdf([0.5, 1.5], 0.2, 1.1).sum()
    )
    np.testing.assert_allclose(float(log_joint), expected, rtol=1e-12)
    assert float(nothing) == 0.0


def test_mask_rejects_non_boolean(to_backend) -> None:
    with pytest.raises(TypeError, match="bool"):
        handlers.mask(model, mask=to_backend([1.0, 0.0]))


def test_replay_uses_guide_values(backend: str) -> None:
    def guide(y=None):
        ppl.sample("mu", dist.Normal(5.0, 0.1))
        ppl.sample("sigma", dist.HalfNormal(0.1))

    guide_trace = seeded_trace(guide, backend, seed=1)
    tr = seeded_trace(handlers.replay(model, trace=guide_trace), backend, seed=2)
    assert tr["mu"]["value"] is guide_trace["mu"]["value"]
    assert tr["sigma"]["value"] is guide_trace["sigma"]["value"]
    assert "y" not in guide_trace
    assert tuple(tr["y"]["value"].shape) == (3,)


def test_replay_rejects_observed_guide_site(backend: str, to_backend) -> None:
    guide_trace = seeded_trace(handlers.condition(model, data={"mu": to_backend(0.0)}), backend)
    with pytest.raises(RuntimeError, match="observed"):
        seeded_trace(handlers.replay(model, trace=guide_trace), backend)


def test_stack_cleaned_after_exception(backend: str) -> None:
    from difflux.ppl._messenger import _STACK

    def broken():
        ppl.sample("x", dist.Normal(0.0, 1.0))
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        seeded_trace(broken, backend)
    assert _STACK == []


def test_handler_without_function_is_not_callable() -> None:
    with pytest.raises(TypeError, match="wraps no function"):
        handlers.trace()()
    with pytest.raises(TypeError, match="callable"):
        handlers.trace(3)  # type: ignore[arg-type]
