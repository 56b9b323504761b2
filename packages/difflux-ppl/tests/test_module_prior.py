"""random_module and module: priors and params over the parameters of a dx.Module."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

import difflux.core as dx
from difflux import ppl
from difflux.ppl import dist, handlers
from difflux.ppl.infer import initialize_model
from difflux.ppl.infer.util import log_density


class Linear(dx.Module):
    weight: Any
    bias: Any

    def __call__(self, x):
        return dx.matmul(x, dx.matrix_transpose(self.weight)) + self.bias


class MLP(dx.Module):
    layers: list
    steps: Any

    def __call__(self, x):
        return self.layers[1](dx.tanh(self.layers[0](x)))


def make_net(backend: str) -> MLP:
    rng = np.random.default_rng(0)

    def arr(*shape):
        return dx.asarray(rng.normal(size=shape), backend=backend)

    steps = dx.asarray(np.array([3], dtype=np.int64), backend=backend)
    return MLP([Linear(arr(4, 2), arr(4)), Linear(arr(1, 4), arr(1))], steps)


PATHS = ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]


def _seeded_trace(fn, backend, *args):
    with dx.backend(backend):
        return handlers.trace(handlers.seed(fn, rng_seed=dx.random.key(0))).get_trace(*args)


def test_sites_and_shapes(backend: str) -> None:
    net = make_net(backend)

    def model():
        return ppl.random_module("net", net, dist.Normal(0.0, 1.0))

    tr = _seeded_trace(model, backend)
    assert list(tr) == [f"net/{path}" for path in PATHS]
    assert tuple(tr["net/layers.0.weight"]["value"].shape) == (4, 2)
    assert tuple(tr["net/layers.1.bias"]["value"].shape) == (1,)
    assert tuple(tr["net/layers.0.weight"]["fn"].event_shape) == (4, 2)


def test_log_density_is_sum_of_priors(backend: str) -> None:
    net = make_net(backend)
    x = dx.asarray(np.array([[0.5, -1.0], [2.0, 0.3]]), backend=backend)
    y = dx.asarray(np.array([[0.1], [-0.2]]), backend=backend)

    def model(x, y):
        sampled = ppl.random_module("net", net, dist.Normal(0.0, 2.0))
        ppl.sample("y", dist.Normal(sampled(x), 0.5).to_event(2), obs=y)
        return sampled

    tr = _seeded_trace(model, backend, x, y)
    values = {name: site["value"] for name, site in tr.items() if name.startswith("net/")}
    with dx.backend(backend):
        log_joint, _ = log_density(model, (x, y), {}, values)

    prior = sum(stats.norm.logpdf(np.asarray(v), 0.0, 2.0).sum() for v in values.values())
    w0, b0, w1, b1 = (np.asarray(values[f"net/{path}"]) for path in PATHS)
    prediction = np.tanh(np.asarray(x) @ w0.T + b0) @ w1.T + b1
    likelihood = stats.norm.logpdf(np.asarray(y), prediction, 0.5).sum()
    np.testing.assert_allclose(float(log_joint), prior + likelihood, rtol=1e-12)


def test_sampled_module_keeps_structure(backend: str) -> None:
    net = make_net(backend)

    def model():
        return ppl.random_module("net", net, dist.Normal(0.0, 1.0))

    with dx.backend(backend):
        sampled = handlers.seed(model, rng_seed=dx.random.key(1))()
    assert isinstance(sampled, MLP)
    assert sampled.steps is net.steps
    assert not np.allclose(np.asarray(sampled.layers[0].weight), np.asarray(net.layers[0].weight))


def test_dict_prior_and_params(backend: str) -> None:
    net = make_net(backend)
    prior = {"layers.0.weight": dist.Normal(0.0, 1.0), "layers.1.weight": dist.Laplace(0.0, 1.0)}

    def model():
        return ppl.random_module("net", net, prior)

    tr = _seeded_trace(model, backend)
    assert tr["net/layers.0.weight"]["type"] == "sample"
    assert tr["net/layers.1.weight"]["type"] == "sample"
    assert tr["net/layers.0.bias"]["type"] == "param"
    assert tr["net/layers.0.bias"]["value"] is net.layers[0].bias

    with pytest.raises(KeyError, match=r"layers\.2\.weight"):
        _seeded_trace(lambda: ppl.random_module("net", net, {"layers.2.weight": dist.Normal(0.0, 1.0)}), backend)


def test_callable_prior(backend: str) -> None:
    net = make_net(backend)
    seen = []

    def prior(path, shape):
        seen.append((path, shape))
        return dist.Normal(0.0, 1.0 / np.sqrt(shape[-1]))

    tr = _seeded_trace(lambda: ppl.random_module("net", net, prior), backend)
    assert seen == [(path, tuple(np.shape(np.asarray(leaf)))) for path, leaf in zip(PATHS, dx.tree_leaves(net)[:4])]
    w0 = np.asarray(tr["net/layers.0.weight"]["value"])
    np.testing.assert_allclose(
        float(dx.sum(tr["net/layers.0.weight"]["fn"].log_prob(tr["net/layers.0.weight"]["value"]))),
        stats.norm.logpdf(w0, 0.0, 1.0 / np.sqrt(2)).sum(),
        rtol=1e-12,
    )


def test_prior_shape_mismatch_raises(backend: str) -> None:
    net = make_net(backend)
    wrong = dist.Normal(dx.zeros(3, backend=backend), 1.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        _seeded_trace(lambda: ppl.random_module("net", net, {"layers.0.bias": wrong}), backend)


def test_bad_prior_type_raises(backend: str) -> None:
    with pytest.raises(TypeError, match="prior must be"):
        _seeded_trace(lambda: ppl.random_module("net", make_net(backend), 1.0), backend)


def test_potential_of_bayesian_network(backend: str) -> None:
    net = make_net(backend)
    x = dx.asarray(np.array([[0.5, -1.0], [2.0, 0.3]]), backend=backend)

    def model(x):
        sampled = ppl.random_module("net", net, dist.Normal(0.0, 1.0))
        ppl.deterministic("out", sampled(x))

    with dx.backend(backend):
        info = initialize_model(dx.random.key(0), model, (x,))
    assert sorted(info.params) == sorted(f"net/{path}" for path in PATHS)
    expected = -sum(stats.norm.logpdf(np.asarray(v)).sum() for v in info.params.values())
    np.testing.assert_allclose(float(info.potential_fn(info.params)), expected, rtol=1e-12)
    grads = dx.grad(info.potential_fn)(info.params)
    for name, value in info.params.items():
        np.testing.assert_allclose(np.asarray(grads[name]), np.asarray(value), rtol=1e-12)


def test_module_makes_param_sites(backend: str) -> None:
    net = make_net(backend)
    tr = _seeded_trace(lambda: ppl.module("net", net), backend)
    assert [tr[f"net/{path}"]["type"] for path in PATHS] == ["param"] * 4
    replaced = dx.asarray(np.zeros((4, 2)), backend=backend)
    out = handlers.substitute(lambda: ppl.module("net", net), data={"net/layers.0.weight": replaced})()
    assert out.layers[0].weight is replaced
