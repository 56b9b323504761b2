"""Primitives: sample, param, deterministic, factor, prng_key and plate (broadcasting, subsampling)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import difflux.core as dx
from difflux import ppl
from difflux.ppl import dist, handlers
from difflux.ppl.infer.util import log_density


def _trace(model, backend, *args, seed=0):
    with dx.backend(backend):
        return handlers.trace(handlers.seed(model, rng_seed=dx.random.key(seed))).get_trace(*args)


def test_sample_without_key_raises() -> None:
    with pytest.raises(RuntimeError, match="seed"):
        ppl.sample("x", dist.Normal(0.0, 1.0))


def test_sample_with_rng_key(backend: str) -> None:
    with dx.backend(backend):
        key = dx.random.key(3)
        x = ppl.sample("x", dist.Normal(0.0, 1.0), rng_key=key)
        expected = dist.Normal(0.0, 1.0).sample(key)
    np.testing.assert_allclose(np.asarray(x), np.asarray(expected))


def test_sample_observed_returns_obs(backend: str, to_backend) -> None:
    y = to_backend([1.0, 2.0])
    out = ppl.sample("y", dist.Normal(0.0, 1.0), obs=y)
    assert out is y


def test_sample_rejects_non_distribution() -> None:
    with pytest.raises(TypeError, match="distribution"):
        ppl.sample("x", 1.0)


def test_sample_shape(backend: str) -> None:
    def model():
        ppl.sample("x", dist.Normal(0.0, 1.0), sample_shape=(4, 2))

    tr = _trace(model, backend)
    assert tuple(tr["x"]["value"].shape) == (4, 2)


def test_param_init_value_and_callable(backend: str, to_backend) -> None:
    init = to_backend([1.0, 2.0])
    assert ppl.param("w", init) is init

    def model():
        return ppl.param("v", lambda key: dx.random.normal(key, (3,)))

    tr = _trace(model, backend)
    assert tuple(tr["v"]["value"].shape) == (3,)
    assert tr["v"]["type"] == "param"


def test_param_needs_init_value() -> None:
    with pytest.raises(ValueError, match="init_value"):
        ppl.param("w")


def test_deterministic_recorded(backend: str) -> None:
    def model():
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
        return ppl.deterministic("twice", 2.0 * x)

    tr = _trace(model, backend)
    assert tr["twice"]["type"] == "deterministic"
    np.testing.assert_allclose(np.asarray(tr["twice"]["value"]), 2.0 * np.asarray(tr["x"]["value"]))


def test_factor_adds_to_log_density(backend: str, to_backend) -> None:
    x = to_backend(0.3)

    def model():
        ppl.sample("x", dist.Normal(0.0, 1.0), obs=x)
        ppl.factor("penalty", to_backend([-1.5, -0.5]))

    with dx.backend(backend):
        log_joint, tr = log_density(model)
    assert tr["penalty"]["is_observed"]
    np.testing.assert_allclose(float(log_joint), stats.norm.logpdf(0.3) - 2.0, rtol=1e-12)


def test_prng_key_needs_seed(backend: str) -> None:
    with pytest.raises(RuntimeError, match="seed"):
        ppl.prng_key()
    with dx.backend(backend):
        key = handlers.seed(ppl.prng_key, rng_seed=dx.random.key(0))()
    assert tuple(key.shape) == (2,)


def test_duplicate_site_name_raises(backend: str) -> None:
    def model():
        ppl.sample("x", dist.Normal(0.0, 1.0))
        ppl.sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="twice"):
        _trace(model, backend)


# --------------------------------------------------------------------------
# Plates
# --------------------------------------------------------------------------


def test_plate_broadcasts_batch_shape(backend: str) -> None:
    def model():
        with ppl.plate("outer", 3):
            a = ppl.sample("a", dist.Normal(0.0, 1.0))
            with ppl.plate("inner", 2):
                b = ppl.sample("b", dist.Normal(0.0, 1.0))
        return a, b

    tr = _trace(model, backend)
    assert tuple(tr["a"]["value"].shape) == (3,)
    assert tuple(tr["b"]["value"].shape) == (2, 3)
    assert tuple(tr["b"]["fn"].batch_shape) == (2, 3)
    assert [frame.dim for frame in tr["b"]["cond_indep_stack"]] == [-2, -1]


def test_plate_explicit_dim(backend: str) -> None:
    def model():
        with ppl.plate("rows", 4, dim=-2):
            return ppl.sample("x", dist.Normal(0.0, 1.0))

    tr = _trace(model, backend)
    assert tuple(tr["x"]["value"].shape) == (4, 1)


def test_plate_keeps_event_and_batch_dims(backend: str, to_backend) -> None:
    loc = to_backend(np.zeros(5))

    def model():
        with ppl.plate("data", 3, dim=-2):
            return ppl.sample("x", dist.Normal(loc, 1.0).to_event(1))

    tr = _trace(model, backend)
    assert tuple(tr["x"]["value"].shape) == (3, 1, 5)
    assert tuple(tr["x"]["fn"].batch_shape) == (3, 1)


def test_plate_batch_mismatch_raises(backend: str, to_backend) -> None:
    loc = to_backend(np.zeros(4))

    def model():
        with ppl.plate("data", 3):
            ppl.sample("x", dist.Normal(loc, 1.0))

    with pytest.raises(ValueError, match="does not broadcast"):
        _trace(model, backend)


def test_plate_observed_size_mismatch_raises(backend: str, to_backend) -> None:
    data = to_backend(np.zeros(10))

    def model():
        with ppl.plate("data", 5):
            ppl.sample("y", dist.Normal(0.0, 1.0), obs=data)

    with pytest.raises(ValueError, match=r"site 'y' observes a value of shape \(10,\).*plate 'data' has size 5"):
        _trace(model, backend)


def test_plate_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="positive int"):
        ppl.plate("p", 0)
    with pytest.raises(ValueError, match="exceeds"):
        ppl.plate("p", 3, subsample_size=5)
    with pytest.raises(ValueError, match="negative"):
        ppl.plate("p", 3, dim=0)


def test_plate_dim_taken_raises() -> None:
    with ppl.plate("a", 3, dim=-1), pytest.raises(ValueError, match="already taken"):
        ppl.plate("b", 2, dim=-1)


def test_plate_full_indices(backend: str) -> None:
    with ppl.plate("p", 4) as indices:
        pass
    np.testing.assert_array_equal(np.asarray(indices), np.arange(4))


def test_plate_subsample_scales_log_density(backend: str, to_backend) -> None:
    data = np.linspace(-1.0, 2.0, 10)
    y = to_backend(data)

    def model():
        with ppl.plate("data", 10, subsample_size=4) as idx:
            ppl.sample("y", dist.Normal(0.5, 2.0), obs=y[idx])
        return idx

    with dx.backend(backend):
        seeded = handlers.seed(model, rng_seed=dx.random.key(1))
        log_joint, tr = log_density(seeded)
    idx = np.asarray(tr["data"]["value"])
    assert idx.shape == (4,)
    assert len(set(idx.tolist())) == 4
    assert idx.min() >= 0
    assert idx.max() < 10
    assert tr["y"]["scale"] == pytest.approx(2.5)
    expected = 2.5 * stats.norm.logpdf(data[idx], 0.5, 2.0).sum()
    np.testing.assert_allclose(float(log_joint), expected, rtol=1e-12)


def test_plate_subsample_needs_seed() -> None:
    with pytest.raises(RuntimeError, match="seed"):
        ppl.plate("data", 10, subsample_size=3)


def test_plate_subsample_substituted(backend: str, to_backend) -> None:
    def model():
        with ppl.plate("data", 10, subsample_size=3) as idx:
            return idx

    fixed = np.array([7, 1, 4])
    out = handlers.substitute(model, data={"data": fixed})()
    np.testing.assert_array_equal(np.asarray(out), fixed)
