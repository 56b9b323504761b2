"""Dropout: rate, scaling, modes, keys and shared masks."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from conftest import to_numpy
from difflux import nn


def test_test_mode_is_identity(backend, to_backend):
    x = to_backend(np.arange(5.0))
    layer = nn.Dropout(0.5)
    assert layer(x) is x
    assert layer(x, key=dx.random.key(0, backend=backend)) is x


def test_rate_and_scaling(backend, key, to_backend):
    layer = nn.train_mode(nn.Dropout(0.3))
    y = to_numpy(layer(to_backend(np.ones(20000)), key=key))
    is_kept = y != 0
    np.testing.assert_allclose(y[is_kept], 1 / 0.7)
    # 20,000 draws: the kept fraction is within 0.015 of 0.7 with overwhelming probability.
    assert abs(is_kept.mean() - 0.7) < 0.015
    assert abs(y.mean() - 1.0) < 0.03


def test_same_key_same_mask_new_key_new_mask(backend, to_backend):
    layer = nn.train_mode(nn.Dropout(0.5))
    x = to_backend(np.ones(64))
    k1, k2 = dx.random.split(dx.random.key(1, backend=backend))
    np.testing.assert_array_equal(to_numpy(layer(x, key=k1)), to_numpy(layer(x, key=k1)))
    assert np.any(to_numpy(layer(x, key=k1)) != to_numpy(layer(x, key=k2)))


def test_gradient_follows_mask(backend, key, to_backend):
    layer = nn.train_mode(nn.Dropout(0.5))
    x = to_backend(np.ones(100))
    y = to_numpy(layer(x, key=key))
    grad = dx.grad(lambda x: dx.sum(layer(x, key=key)))(x)
    np.testing.assert_allclose(to_numpy(grad), np.where(y != 0, 2.0, 0.0))


def test_training_without_key_raises():
    layer = nn.train_mode(nn.Dropout(0.5))
    with pytest.raises(
        ValueError, match=r"Dropout\(0.5, training=True\) draws a random mask in training mode and needs a key"
    ):
        layer(np.ones(3))


def test_rate_zero_and_one(key, to_backend):
    x = to_backend(np.ones(10))
    assert nn.train_mode(nn.Dropout(0.0))(x) is x
    np.testing.assert_array_equal(to_numpy(nn.train_mode(nn.Dropout(1.0))(x, key=key)), np.zeros(10))


def test_invalid_rate_raises():
    with pytest.raises(ValueError, match=r"rate must lie in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)


def test_broadcast_axes_drop_whole_channels(backend, key, to_backend):
    layer = nn.train_mode(nn.Dropout(0.5, broadcast_axes=(2, 3)))
    y = to_numpy(layer(to_backend(np.ones((4, 8, 3, 3))), key=key))
    per_channel = y.reshape(4, 8, 9)
    assert np.all(per_channel == per_channel[..., :1])
    assert set(np.unique(y)) <= {0.0, 2.0}


def test_functional_dropout(key, to_backend):
    y = to_numpy(nn.dropout(to_backend(np.ones(1000)), 0.25, key))
    assert set(np.unique(y)) <= {0.0, 1 / 0.75}


def test_repr():
    assert repr(nn.Dropout(0.5)) == "Dropout(0.5)"
    assert (
        repr(nn.Dropout(0.1, broadcast_axes=(2,), training=True)) == "Dropout(0.1, broadcast_axes=(2,), training=True)"
    )
