"""Dense, Bilinear and Embedding: shapes, values, gradients and errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

import difflux.core as dx
from conftest import NUMPY_KEY, needs_jax, on_backend, to_numpy
from difflux import nn
from difflux.core.testing import check_grads

RNG = np.random.default_rng(0)


def test_dense_shapes_and_values(convert, to_backend):
    layer = convert(nn.Dense(3, 4, nn.relu, key=NUMPY_KEY))
    assert tuple(layer.weight.shape) == (4, 3)
    assert tuple(layer.bias.shape) == (4,)
    x = RNG.normal(size=(2, 5, 3))
    y = layer(to_backend(x))
    expected = np.maximum(x @ to_numpy(layer.weight).T + to_numpy(layer.bias), 0)
    np.testing.assert_allclose(to_numpy(y), expected)
    assert tuple(layer(to_backend(x[0, 0])).shape) == (4,)


def test_dense_without_bias():
    layer = nn.Dense(3, 2, key=NUMPY_KEY, bias=False)
    assert layer.bias is None
    assert repr(layer) == "Dense(3 => 2, bias=False)"


def test_dense_init_with_jax_key_is_jax():
    pytest.importorskip("jax")
    layer = nn.Dense(3, 2, key=dx.random.key(0, backend="jax"))
    assert not isinstance(layer.weight, np.ndarray)


def test_dense_custom_initialisers():
    layer = nn.Dense(3, 2, key=NUMPY_KEY, init=nn.ones, bias_init=nn.ones, dtype=dx.float32)
    assert to_numpy(layer.weight).tolist() == [[1.0] * 3] * 2
    assert layer.weight.dtype == np.float32


def test_dense_gradients(convert, to_backend):
    layer = convert(nn.Dense(3, 2, nn.tanh, key=NUMPY_KEY))
    x = to_backend(RNG.normal(size=(4, 3)))
    check_grads(lambda m, x: m(x), (layer, x), order=2)


def test_dense_shape_error_names_layer():
    layer = nn.Dense(3, 4, key=NUMPY_KEY)
    message = r"Dense\(3 => 4\) expects inputs with 3 features on the last axis, got an input of shape \(2, 5\)"
    with pytest.raises(ValueError, match=message):
        layer(np.ones((2, 5)))


def test_dense_requires_key():
    with pytest.raises(TypeError, match="key"):
        nn.Dense(3, 4)


def test_bilinear_values(convert, to_backend):
    layer = convert(nn.Bilinear(2, 3, 4, key=NUMPY_KEY, bias_init=nn.normal))
    x1, x2 = RNG.normal(size=(5, 2)), RNG.normal(size=(5, 3))
    w, b = to_numpy(layer.weight), to_numpy(layer.bias)
    expected = np.einsum("ni,kij,nj->nk", x1, w, x2) + b
    np.testing.assert_allclose(to_numpy(layer(to_backend(x1), to_backend(x2))), expected)
    np.testing.assert_allclose(to_numpy(layer((to_backend(x1), to_backend(x2)))), expected)


def test_bilinear_single_input_is_square(convert, to_backend):
    layer = convert(nn.Bilinear(3, 3, 2, key=NUMPY_KEY))
    x = to_backend(RNG.normal(size=(4, 3)))
    np.testing.assert_allclose(to_numpy(layer(x)), to_numpy(layer(x, x)))


def test_bilinear_gradients(convert, to_backend):
    layer = convert(nn.Bilinear(2, 3, 2, nn.sigmoid, key=NUMPY_KEY))
    x1, x2 = to_backend(RNG.normal(size=(3, 2))), to_backend(RNG.normal(size=(3, 3)))
    check_grads(lambda m, a, b: m(a, b), (layer, x1, x2), order=2)


def test_bilinear_shape_error():
    layer = nn.Bilinear(2, 3, 4, key=NUMPY_KEY)
    with pytest.raises(ValueError, match="second input with 3 features"):
        layer(np.ones((5, 2)), np.ones((5, 2)))


def test_embedding_lookup_and_gradient(backend, convert):
    table = convert(nn.Embedding(6, 3, key=NUMPY_KEY))
    indices = dx.asarray(np.array([[0, 5], [2, 2]]), backend=backend)
    y = table(indices)
    assert tuple(y.shape) == (2, 2, 3)
    np.testing.assert_allclose(to_numpy(y), to_numpy(table.weight)[np.array([[0, 5], [2, 2]])])
    grad = dx.grad(lambda m: dx.sum(m(indices)))(table)
    counts = np.zeros((6, 1))
    np.add.at(counts, [0, 5, 2, 2], 1.0)
    np.testing.assert_allclose(to_numpy(grad.weight), np.broadcast_to(counts, (6, 3)))


def test_embedding_errors():
    table = nn.Embedding(4, 2, key=NUMPY_KEY)
    with pytest.raises(ValueError, match=r"Embedding\(4 => 2\) expects indices in \[0, 4\), got indices from 0 to 4"):
        table(np.array([0, 4]))
    with pytest.raises(TypeError, match="integer indices"):
        table(np.array([0.0, 1.0]))


def test_embedding_range_error_on_backends(backend, convert):
    table = convert(nn.Embedding(4, 2, key=NUMPY_KEY))
    message = r"^Embedding\(4 => 2\) expects indices in \[0, 4\), got indices from -1 to 2$"
    with pytest.raises(ValueError, match=message):
        table(dx.asarray(np.array([[0, -1], [2, 1]]), backend=backend))


def test_embedding_under_vmap():
    table = nn.Embedding(4, 2, key=NUMPY_KEY)
    rows = dx.vmap(table)(np.array([3, 0, 2]))
    np.testing.assert_array_equal(to_numpy(rows), to_numpy(table.weight)[[3, 0, 2]])
    with pytest.raises(ValueError, match=r"expects indices in \[0, 4\), got indices from 7 to 7"):
        dx.vmap(table)(np.array([3, 7]))


@needs_jax
def test_embedding_unchecked_under_jit():
    # Traced indices cannot be read, so JAX clamps 7 to the last row.
    table = on_backend(nn.Embedding(4, 2, key=NUMPY_KEY), "jax")
    rows = dx.jit(lambda m, i: m(i))(table, dx.asarray(np.array([7]), backend="jax"))
    np.testing.assert_array_equal(to_numpy(rows), to_numpy(table.weight)[[3]])


SIZE_ERRORS = [
    (lambda: nn.Dense(4, -3, key=NUMPY_KEY), ValueError, "Dense: out_features must be a positive integer, got -3"),
    (lambda: nn.Dense(0, 3, key=NUMPY_KEY), ValueError, "Dense: in_features must be a positive integer, got 0"),
    (
        lambda: nn.Dense(4.5, 3, key=NUMPY_KEY),
        TypeError,
        "Dense: in_features must be a positive integer, got 4.5 of type float",
    ),
    (
        lambda: nn.Dense(4.0, 3, key=NUMPY_KEY),
        TypeError,
        "Dense: in_features must be a positive integer, got 4.0 of type float",
    ),
    (
        lambda: nn.Dense(True, 3, key=NUMPY_KEY),
        TypeError,
        "Dense: in_features must be a positive integer, got True of type bool",
    ),
    (
        lambda: nn.Dense(4, np.float64(3), key=NUMPY_KEY),
        TypeError,
        "Dense: out_features must be a positive integer, got np.float64(3.0) of type float64",
    ),
    (
        lambda: nn.Bilinear(2, -3, 4, key=NUMPY_KEY),
        ValueError,
        "Bilinear: in2_features must be a positive integer, got -3",
    ),
    (
        lambda: nn.Bilinear(2, 3, 4.5, key=NUMPY_KEY),
        TypeError,
        "Bilinear: out_features must be a positive integer, got 4.5 of type float",
    ),
    (
        lambda: nn.Embedding(-10, 4, key=NUMPY_KEY),
        ValueError,
        "Embedding: num_embeddings must be a positive integer, got -10",
    ),
    (
        lambda: nn.Embedding(10, 2.5, key=NUMPY_KEY),
        TypeError,
        "Embedding: features must be a positive integer, got 2.5 of type float",
    ),
]


SIZE_ERROR_IDS = [
    "dense-negative",
    "dense-zero",
    "dense-float",
    "dense-integral-float",
    "dense-bool",
    "dense-numpy-float",
    "bilinear-negative",
    "bilinear-float",
    "embedding-negative",
    "embedding-float",
]


@pytest.mark.parametrize(("build", "error", "message"), SIZE_ERRORS, ids=SIZE_ERROR_IDS)
def test_invalid_sizes_raise(build, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        build()


@needs_jax
def test_dense_size_error_jax_key():
    with pytest.raises(ValueError, match=r"^Dense: out_features must be a positive integer, got -3$"):
        nn.Dense(4, -3, key=dx.random.key(0, backend="jax"))


def test_numpy_integer_sizes_accepted():
    layer = nn.Dense(np.int64(4), np.int32(3), key=NUMPY_KEY)
    assert repr(layer) == "Dense(4 => 3)"
    assert tuple(layer.weight.shape) == (3, 4)
    assert repr(nn.Bilinear(np.int64(2), 3, np.array(4), key=NUMPY_KEY)) == "Bilinear((2, 3) => 4)"
    assert repr(nn.Embedding(np.uint8(10), np.int16(3), key=NUMPY_KEY)) == "Embedding(10 => 3)"


def test_reprs():
    assert repr(nn.Dense(3, 4, nn.relu, key=NUMPY_KEY)) == "Dense(3 => 4, relu)"
    assert repr(nn.Bilinear(2, 3, 4, nn.tanh, key=NUMPY_KEY)) == "Bilinear((2, 3) => 4, tanh)"
    assert repr(nn.Embedding(10, 3, key=NUMPY_KEY)) == "Embedding(10 => 3)"
