"""Pooling layers and Flatten: shapes, values against PyTorch, gradients."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import needs_torch, on_backends, to_numpy
from difflux import nn
from difflux.core.testing import check_grads

RNG = np.random.default_rng(0)


def test_max_and_mean_pool_values(backend, to_backend):
    x = RNG.normal(size=(2, 3, 4, 6))
    blocks = x.reshape(2, 3, 2, 2, 3, 2)
    np.testing.assert_allclose(to_numpy(nn.MaxPool((2, 2))(to_backend(x))), blocks.max(axis=(3, 5)))
    np.testing.assert_allclose(to_numpy(nn.MeanPool(2)(to_backend(x))), blocks.mean(axis=(3, 5)))


def test_pool_options_shapes():
    x = np.ones((1, 2, 9, 9))
    assert nn.MaxPool((3, 3), stride=2, padding=1)(x).shape == (1, 2, 5, 5)
    assert nn.MeanPool((3,), stride=1)(np.ones((1, 2, 9))).shape == (1, 2, 7)
    assert nn.MaxPool(2)(np.ones((1, 1, 4, 4, 4))).shape == (1, 1, 2, 2, 2)


def test_mean_pool_count_include_pad():
    x = np.ones((1, 1, 3))
    included = nn.MeanPool(2, stride=1, padding=1)(x)
    excluded = nn.MeanPool(2, stride=1, padding=1, count_include_pad=False)(x)
    np.testing.assert_allclose(included, [[[0.5, 1.0, 1.0, 0.5]]])
    np.testing.assert_allclose(excluded, [[[1.0, 1.0, 1.0, 1.0]]])


def test_pool_gradients(backend, to_backend):
    x = to_backend(RNG.normal(size=(1, 2, 4, 4)))
    check_grads(lambda x: nn.MaxPool((2, 2))(x), (x,), order=1)
    check_grads(lambda x: nn.MeanPool((2, 2), stride=1)(x), (x,), order=2)


ADAPTIVE_CASES = [((7, 10), (3, 4)), ((6, 8), (3, 2)), ((5,), (5,)), ((9,), (4,)), ((4, 5, 6), (2, 3, 4))]


@needs_torch
@pytest.mark.parametrize(("backend", "case"), on_backends(ADAPTIVE_CASES, [ADAPTIVE_CASES[0]]))
@pytest.mark.parametrize("kind", ["max", "mean"])
def test_adaptive_pool_matches_torch(to_backend, case, kind):
    import torch

    spatial, output_size = case
    x = RNG.normal(size=(2, 3, *spatial))
    layer = nn.AdaptiveMaxPool(output_size) if kind == "max" else nn.AdaptiveMeanPool(output_size)
    name = f"adaptive_{'max' if kind == 'max' else 'avg'}_pool{len(spatial)}d"
    expected = getattr(torch.nn.functional, name)(torch.from_numpy(x), output_size)
    np.testing.assert_allclose(to_numpy(layer(to_backend(x))), expected.numpy(), rtol=1e-12)


def _adaptive_windows(length, size):
    return [((i * length) // size, -((-(i + 1) * length) // size)) for i in range(size)]


@pytest.mark.parametrize(("backend", "case"), on_backends(ADAPTIVE_CASES[:2], ADAPTIVE_CASES[:1]))
def test_adaptive_pool_matches_windows(to_backend, case):
    spatial, output_size = case
    x = RNG.normal(size=(2, 3, *spatial))
    expected_max = np.empty((2, 3, *output_size))
    expected_mean = np.empty((2, 3, *output_size))
    for i, (top, bottom) in enumerate(_adaptive_windows(spatial[0], output_size[0])):
        for j, (left, right) in enumerate(_adaptive_windows(spatial[1], output_size[1])):
            window = x[:, :, top:bottom, left:right]
            expected_max[:, :, i, j] = window.max(axis=(2, 3))
            expected_mean[:, :, i, j] = window.mean(axis=(2, 3))
    np.testing.assert_allclose(to_numpy(nn.AdaptiveMaxPool(output_size)(to_backend(x))), expected_max)
    np.testing.assert_allclose(to_numpy(nn.AdaptiveMeanPool(output_size)(to_backend(x))), expected_mean, rtol=1e-12)


def test_adaptive_pool_int_size_and_errors():
    assert nn.AdaptiveMeanPool(2)(np.ones((1, 2, 5, 7))).shape == (1, 2, 2, 2)
    with pytest.raises(ValueError, match=r"AdaptiveMaxPool\(\(4, 4\)\) expects spatial sizes of at least \(4, 4\)"):
        nn.AdaptiveMaxPool((4, 4))(np.ones((1, 2, 3, 8)))
    with pytest.raises(ValueError, match=r"^AdaptiveMaxPool: output_size must be a positive integer, got 0$"):
        nn.AdaptiveMaxPool(0)
    with pytest.raises(TypeError, match=r"^AdaptiveMeanPool: output_size must be a positive integer, got 2\.5"):
        nn.AdaptiveMeanPool(2.5)


@pytest.mark.parametrize("layer", [nn.MaxPool, nn.MeanPool])
def test_pool_invalid_sizes(layer):
    name = layer.__name__
    with pytest.raises(TypeError, match=rf"^{name}: window must be a positive integer, got 2\.5 of type float$"):
        layer(2.5)
    with pytest.raises(ValueError, match=rf"^{name}: window must be a positive integer, got 0$"):
        layer(0)
    with pytest.raises(TypeError, match=rf"^{name}: stride must contain integers, got stride=\(1\.5, 1\)$"):
        layer((2, 2), stride=(1.5, 1))
    with pytest.raises(ValueError, match=rf"^{name}: padding='full' is not a padding mode"):
        layer(2, padding="full")


def test_adaptive_pool_gradients(backend, to_backend):
    x = to_backend(RNG.normal(size=(1, 1, 5, 3)))
    check_grads(lambda x: nn.AdaptiveMeanPool((2, 2))(x), (x,), order=2)
    check_grads(lambda x: nn.AdaptiveMaxPool((2, 2))(x), (x,), order=1)


def test_global_pools(backend, to_backend):
    x = RNG.normal(size=(2, 3, 4, 5))
    np.testing.assert_allclose(to_numpy(nn.GlobalMaxPool()(to_backend(x))), x.max(axis=(2, 3), keepdims=True))
    np.testing.assert_allclose(to_numpy(nn.GlobalMeanPool()(to_backend(x))), x.mean(axis=(2, 3), keepdims=True))
    with pytest.raises(ValueError, match=r"GlobalMaxPool\(\) expects an input of shape \(N, C, \*spatial\)"):
        nn.GlobalMaxPool()(np.ones((2, 3)))


def test_flatten(backend, to_backend):
    x = to_backend(np.arange(24.0).reshape(2, 3, 4))
    assert tuple(nn.Flatten()(x).shape) == (2, 12)
    assert tuple(nn.Flatten(start_axis=2)(x).shape) == (2, 3, 4)
    assert tuple(nn.Flatten(start_axis=0)(x).shape) == (24,)
    with pytest.raises(ValueError, match="axis 3 to flatten from"):
        nn.Flatten(start_axis=3)(x)


def test_pool_reprs():
    assert repr(nn.MaxPool((2, 2))) == "MaxPool((2, 2))"
    assert repr(nn.MaxPool(3, stride=2, padding=1)) == "MaxPool(3, stride=2, padding=1)"
    assert repr(nn.MeanPool((2,), count_include_pad=False)) == "MeanPool((2,), count_include_pad=False)"
    assert repr(nn.AdaptiveMeanPool((1, 1))) == "AdaptiveMeanPool((1, 1))"
    assert repr(nn.GlobalMeanPool()) == "GlobalMeanPool()"
    assert repr(nn.Flatten()) == "Flatten()"
