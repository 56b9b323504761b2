"""Tests of dx.jit's fast path: generated flatteners of arguments and builders of results."""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import numpy as np
import pytest

import difflux.core as dx
from conftest import HAS_JAX, Counter

pytestmark = pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")


class Dense(dx.Module):
    weight: Any
    bias: Any
    activation: Any = dx.tanh

    def __call__(self, x):
        out = x @ self.weight
        if self.bias is not None:
            out = out + self.bias
        return self.activation(out)


class Chain(dx.Module):
    layers: tuple[Any, ...]
    scale: float = 1.0

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.scale * x


class Pair(NamedTuple):
    first: Any
    second: Any


def _chain(backend: str, activation: Any = dx.tanh, bias: bool = True) -> Chain:
    rng = np.random.default_rng(3)
    layers = tuple(
        Dense(
            dx.asarray(rng.normal(size=(n_in, n_out)), backend=backend),
            dx.asarray(rng.normal(size=n_out), backend=backend) if bias else None,
            activation,
        )
        for n_in, n_out in [(3, 4), (4, 2)]
    )
    return Chain(layers, scale=0.5)


def _data(backend: str) -> tuple[Any, Any]:
    rng = np.random.default_rng(4)
    return dx.asarray(rng.normal(size=(5, 3)), backend=backend), dx.asarray(rng.normal(size=(5, 2)), backend=backend)


def _sgd_step(model: Chain, batch: dict[str, Any]) -> tuple[Chain, Any]:
    def loss(model: Chain) -> Any:
        return dx.mean((model(batch["x"]) - batch["y"]) ** 2)

    value, grads = dx.value_and_grad(loss)(model)
    return dx.tree_map(lambda p, g: p - 0.1 * g, model, grads), value


def test_training_loop_matches_numpy():
    counted = Counter(_sgd_step)
    step = dx.jit(counted)
    model_jax, model_np = _chain("jax"), _chain("numpy")
    x, y = _data("jax")
    batch_np = {"x": np.asarray(x), "y": np.asarray(y)}
    for _ in range(4):
        model_jax, loss_jax = step(model_jax, {"x": x, "y": y})
        model_np, loss_np = _sgd_step(model_np, batch_np)
        np.testing.assert_allclose(float(loss_jax), float(loss_np), rtol=1e-12)
    assert counted.calls == 1
    assert len(step._plans) == 1
    for layer_jax, layer_np in zip(model_jax.layers, model_np.layers):
        np.testing.assert_allclose(np.asarray(layer_jax.weight), layer_np.weight, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(layer_jax.bias), layer_np.bias, rtol=1e-12)


def test_built_modules_are_frozen_modules():
    step = dx.jit(_sgd_step)
    x, y = _data("jax")
    model = _chain("jax", activation=dx.sin)
    for _ in range(2):
        model, _ = step(model, {"x": x, "y": y})
    assert type(model) is Chain
    assert model.scale == 0.5
    assert all(type(layer) is Dense and layer.activation is dx.sin for layer in model.layers)
    assert dx.tree_structure(model) == dx.tree_structure(_chain("numpy", activation=dx.sin))
    with pytest.raises(dx.FrozenModuleError):
        model.scale = 2.0
    assert dx.replace(model, scale=2.0).scale == 2.0


def test_none_parameter_fields_round_trip():
    counted = Counter(_sgd_step)
    step = dx.jit(counted)
    x, y = _data("jax")
    model = _chain("jax", bias=False)
    for _ in range(3):
        model, _ = step(model, {"x": x, "y": y})
    assert counted.calls == 1
    assert all(layer.bias is None for layer in model.layers)


def test_equal_static_fields_hit_the_cache():
    counted = Counter(lambda model, x: model(x))
    jitted = dx.jit(counted)
    x, _ = _data("jax")
    for _ in range(3):
        jitted(_chain("jax"), x)  # a new but equal structure on every call
    assert counted.calls == 1


def test_changed_static_fields_retrace():
    counted = Counter(lambda model, x: model(x))
    jitted = dx.jit(counted)
    x, _ = _data("jax")
    tanh_model, sin_model = _chain("jax", dx.tanh), _chain("jax", dx.sin)
    outputs = [jitted(model, x) for model in (tanh_model, tanh_model, sin_model, tanh_model, sin_model)]
    assert counted.calls == 2
    for output, model in zip(outputs, (tanh_model, tanh_model, sin_model, tanh_model, sin_model)):
        np.testing.assert_allclose(np.asarray(output), np.asarray(model(x)), rtol=1e-12)
    halved = jitted(dx.replace(tanh_model, scale=0.25), x)
    assert counted.calls == 3
    np.testing.assert_allclose(np.asarray(halved), np.asarray(tanh_model(x)) / 2, rtol=1e-12)


def test_output_structure_follows_shape():
    counted = Counter(lambda v: {"count": v.shape[0], "rows": [v[i] for i in range(v.shape[0])]})
    jitted = dx.jit(counted)
    for size in (2, 3, 2, 3, 2, 3):
        out = jitted(dx.arange(size, dtype=dx.float64, backend="jax"))
        assert out["count"] == size
        assert [float(row) for row in out["rows"]] == [float(i) for i in range(size)]
    # The second structure makes dx.jit keep each trace's builder, which
    # traces both shapes once more; after that nothing traces again.
    assert counted.calls == 4


def test_new_batch_size_traces_once():
    counted = Counter(_sgd_step)
    jitted = dx.jit(counted)
    model = _chain("jax")
    x, y = _data("jax")
    for rows in (5, 3, 5, 3):
        batch = {"x": x[:rows], "y": y[:rows]}
        new_model, loss = jitted(model, batch)
        expected_model, expected_loss = _sgd_step(model, batch)
        np.testing.assert_allclose(float(loss), float(expected_loss), rtol=1e-12)
        np.testing.assert_allclose(
            np.asarray(new_model.layers[0].weight), np.asarray(expected_model.layers[0].weight), rtol=1e-12
        )
    # Both shapes give results of one structure, so each traces once.
    assert counted.calls == 2


def test_arrayless_module_shared_across_results():
    settings = Chain((), scale=0.5)
    jitted = dx.jit(lambda state, x: ({"settings": state["settings"], "lists": [state["settings"]]}, x * 2))
    x, _ = _data("jax")
    state = {"settings": settings}
    first, doubled = jitted(state, x)
    second, _ = jitted(state, x)
    np.testing.assert_allclose(np.asarray(doubled), 2 * np.asarray(x), rtol=0)
    # An immutable module with no arrays is one shared object, but each
    # result gets its own mutable containers.
    assert first["settings"] is second["settings"]
    assert first["settings"].scale == 0.5
    assert first["lists"] is not second["lists"]
    assert first is not second


def test_dict_with_other_keys_retraces():
    counted = Counter(lambda d: {key: value * 2 for key, value in d.items()})
    jitted = dx.jit(counted)
    short, long = dx.ones(2, backend="jax"), dx.ones(3, backend="jax")
    assert sorted(jitted({"a": short, "b": long})) == ["a", "b"]
    out = jitted({"a": short, "c": long})
    assert sorted(out) == ["a", "c"]
    assert out["c"].shape == (3,)
    assert counted.calls == 2


def test_numpy_leaves_after_jax_leaves_run_eagerly():
    counted = Counter(lambda model, x: model(x))
    jitted = dx.jit(counted)
    x_jax, _ = _data("jax")
    x_np, _ = _data("numpy")
    jitted(_chain("jax"), x_jax)
    jitted(_chain("jax"), x_jax)
    out = jitted(_chain("numpy"), x_np)
    assert isinstance(out, np.ndarray)
    assert counted.calls == 2  # one trace and one eager call
    np.testing.assert_allclose(out, _chain("numpy")(x_np), rtol=1e-12)


def test_python_number_after_array_is_static():
    counted = Counter(lambda v, power: dx.sum(v**power))
    jitted = dx.jit(counted)
    v = dx.asarray(np.array([1.0, 2.0]), backend="jax")
    assert float(jitted(v, dx.asarray(2.0, backend="jax"))) == 5.0
    assert float(jitted(v, dx.asarray(3.0, backend="jax"))) == 9.0
    assert counted.calls == 1
    assert float(jitted(v, 2)) == 5.0
    assert float(jitted(v, 3)) == 9.0
    assert counted.calls == 3


def test_named_tuples_and_keywords():
    counted = Counter(lambda pair, *, shift: Pair(pair.second + shift, pair.first))
    jitted = dx.jit(counted)
    pair = Pair(dx.ones(2, backend="jax"), dx.zeros(2, backend="jax"))
    for _ in range(2):
        pair = jitted(pair, shift=dx.ones(2, backend="jax"))
    assert type(pair) is Pair
    assert np.asarray(pair.first).tolist() == [2.0, 2.0]
    assert np.asarray(pair.second).tolist() == [1.0, 1.0]
    assert counted.calls == 1


def test_other_node_types_use_the_general_path():
    counted = Counter(lambda d: collections.OrderedDict((key, value + 1) for key, value in d.items()))
    jitted = dx.jit(counted)
    ordered = collections.OrderedDict([("b", dx.ones(2, backend="jax")), ("a", dx.zeros(2, backend="jax"))])
    outputs = [jitted(ordered) for _ in range(3)]
    out = outputs[-1]
    assert type(out) is collections.OrderedDict
    assert list(out) == ["b", "a"]
    assert np.asarray(out["b"]).tolist() == [2.0, 2.0]
    assert counted.calls == 1
    assert jitted._plans == []


def test_integer_dict_keys_use_the_general_path():
    counted = Counter(lambda d: {key: value * 3 for key, value in d.items()})
    jitted = dx.jit(counted)
    results = [jitted({0: dx.ones(1, backend="jax"), 1: dx.ones(1, backend="jax")}) for _ in range(2)]
    result = results[-1]
    assert sorted(result) == [0, 1]
    assert float(result[1][0]) == 3.0
    assert counted.calls == 1
    assert jitted._plans == []


def test_inside_jax_transformations():
    import jax

    jitted = dx.jit(lambda model, x: model(x))
    model = _chain("jax")
    x, _ = _data("jax")
    expected = np.asarray(model(x))
    np.testing.assert_allclose(np.asarray(jitted(model, x)), expected, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.jit(jitted)(model, x)), expected, rtol=1e-12)
    batched = jax.vmap(jitted, in_axes=(None, 0))(model, x[:, None, :])
    np.testing.assert_allclose(np.asarray(batched)[:, 0, :], expected, rtol=1e-12)
    gradient = jax.grad(lambda inputs: jitted(model, inputs).sum())(x)
    expected_gradient = jax.grad(lambda inputs: model(inputs).sum())(x)
    np.testing.assert_allclose(np.asarray(gradient), np.asarray(expected_gradient), rtol=1e-12)


def test_clear_cache_forgets_plans():
    counted = Counter(lambda v: v * 2)
    jitted = dx.jit(counted)
    v = dx.ones(3, backend="jax")
    jitted(v)
    jitted(v)
    jitted.clear_cache()
    assert jitted._plans == []
    jitted(v)
    assert counted.calls == 2
