"""Chain, Parallel and SkipConnection: composition, keys, indexing and printing."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from conftest import NUMPY_KEY, to_numpy
from difflux import nn
from difflux.core.testing import check_grads

RNG = np.random.default_rng(0)
K1, K2, K3 = dx.random.split(NUMPY_KEY, 3)


def test_chain_applies_in_order(convert, to_backend):
    first, second = nn.Dense(3, 4, key=K1), nn.Dense(4, 2, key=K2)
    model = convert(nn.Chain(first, nn.relu, second))
    x = RNG.normal(size=(5, 3))
    expected = convert(second)(nn.relu(convert(first)(to_backend(x))))
    np.testing.assert_allclose(to_numpy(model(to_backend(x))), to_numpy(expected))


def test_chain_forms_and_indexing():
    a, b = nn.Dense(3, 4, key=K1), nn.Dense(4, 2, key=K2)
    by_list = nn.Chain([a, nn.relu, b])
    assert len(by_list) == 3
    assert by_list[0] is a
    assert isinstance(by_list[1:], nn.Chain)
    assert len(by_list[1:]) == 2
    assert list(by_list) == [a, nn.relu, b]
    named = nn.Chain(encoder=a, decoder=b)
    assert named["decoder"] is b
    assert named[0] is a
    assert list(named[1:].layers) == ["decoder"]
    x = RNG.normal(size=(2, 3))
    np.testing.assert_allclose(named(x), b(a(x)))


def test_chain_errors():
    with pytest.raises(TypeError, match="either by position or by name"):
        nn.Chain(nn.relu, act=nn.relu)
    with pytest.raises(TypeError, match="entry 1 is a int, not a layer or function"):
        nn.Chain(nn.relu, 3)


def test_chain_gradients(backend, convert, to_backend):
    model = convert(nn.Chain(nn.Dense(3, 4, nn.tanh, key=K1), nn.Dense(4, 1, key=K2)))
    check_grads(lambda m, x: m(x), (model, to_backend(RNG.normal(size=(2, 3)))), order=2)


def test_chain_splits_keys_among_dropouts(backend, key, to_backend):
    model = nn.train_mode(nn.Chain(nn.Dropout(0.5), nn.relu, nn.Dropout(0.5)))
    x = to_backend(np.ones(200))
    k_first, k_second = dx.random.split(key)
    expected = nn.dropout(nn.dropout(x, 0.5, k_first), 0.5, k_second)
    np.testing.assert_array_equal(to_numpy(model(x, key=key)), to_numpy(expected))


def test_nested_user_module_receives_key(key, to_backend):
    class Noisy(dx.Module):
        scale: float = 1.0

        def __call__(self, x, key=None):
            return x + self.scale * dx.random.normal(key, x.shape)

    model = nn.Chain(nn.Chain(Noisy()), nn.relu)
    x = to_backend(np.zeros(5))
    np.testing.assert_allclose(to_numpy(model(x, key=key)), np.maximum(to_numpy(dx.random.normal(key, (5,))), 0))


def test_parallel_with_connection(convert, to_backend):
    a, b = nn.Dense(4, 2, key=K1), nn.Dense(4, 3, key=K2)
    model = convert(nn.Parallel(lambda *ys: dx.concat(ys, axis=-1), a, b))
    x = to_backend(RNG.normal(size=(5, 4)))
    y = to_numpy(model(x))
    assert y.shape == (5, 5)
    np.testing.assert_allclose(y[:, :2], to_numpy(convert(a)(x)))
    np.testing.assert_allclose(y[:, 2:], to_numpy(convert(b)(x)))


def test_parallel_tuple_input_and_no_connection():
    a, b = nn.Dense(2, 1, key=K1), nn.Dense(3, 1, key=K2)
    model = nn.Parallel(None, a, b)
    x1, x2 = RNG.normal(size=(4, 2)), RNG.normal(size=(4, 3))
    y1, y2 = model((x1, x2))
    np.testing.assert_allclose(y1, a(x1))
    np.testing.assert_allclose(y2, b(x2))
    assert model[1] is b


def test_parallel_named_and_add():
    model = nn.Parallel(dx.add, left=nn.Dense(2, 2, key=K1), right=nn.Dense(2, 2, key=K2))
    x = RNG.normal(size=(3, 2))
    np.testing.assert_allclose(model(x), model["left"](x) + model["right"](x))


def test_skip_connection(backend, convert, to_backend):
    inner = nn.Dense(4, 4, nn.tanh, key=K1)
    block = convert(nn.SkipConnection(inner))
    x = to_backend(RNG.normal(size=(2, 4)))
    np.testing.assert_allclose(to_numpy(block(x)), to_numpy(convert(inner)(x) + x))
    joined = nn.SkipConnection(inner, lambda y, x: dx.concat([y, x], axis=1))
    assert tuple(joined(RNG.normal(size=(2, 4))).shape) == (2, 8)
    check_grads(lambda m, x: m(x), (block, x), order=2)


def test_container_reprs():
    model = nn.Chain(
        nn.Conv(1, 4, (3, 3), nn.relu, key=K1),
        nn.SkipConnection(nn.Chain(nn.Conv(4, 4, (3, 3), key=K2, padding=1), nn.relu)),
        nn.Parallel(dx.add, nn.GlobalMaxPool(), nn.GlobalMeanPool()),
        nn.Flatten(),
    )
    expected = """\
Chain(
  Conv((3, 3), 1 => 4, relu),
  SkipConnection(
    Chain(
      Conv((3, 3), 4 => 4, padding=1),
      relu,
    ),
    add,
  ),
  Parallel(
    add,
    GlobalMaxPool(),
    GlobalMeanPool(),
  ),
  Flatten(),
)"""
    assert repr(model) == expected
    assert repr(nn.Chain(first=nn.relu)) == "Chain(\n  first=relu,\n)"
    assert repr(nn.Chain()) == "Chain()"


def test_chain_of_functions_is_static():
    model = nn.Chain(nn.relu, nn.tanh)
    assert dx.tree_leaves(model) == []
    np.testing.assert_allclose(model(np.array([-1.0, 1.0])), np.tanh([0.0, 1.0]))
