"""Initialisers: shapes, backends, dtypes, fans and sample statistics."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from scipy import stats

import difflux.core as dx
from conftest import on_backends, to_numpy
from difflux import nn

SHAPE = (64, 32, 3, 3)  # fan_in = 288, fan_out = 576
FAN_IN, FAN_OUT = 32 * 9, 64 * 9

# initialiser, expected standard deviation of its samples
SCALED = [
    (nn.glorot_uniform, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    (nn.glorot_normal, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    (nn.he_uniform, math.sqrt(2 / FAN_IN)),
    (nn.he_normal, math.sqrt(2 / FAN_IN)),
    (nn.lecun_uniform, math.sqrt(1 / FAN_IN)),
    (nn.lecun_normal, math.sqrt(1 / FAN_IN)),
    (functools.partial(nn.normal, std=0.5), 0.5),
    (functools.partial(nn.uniform, low=-1.0, high=1.0), math.sqrt(1 / 3)),
]
ALL = [
    nn.zeros,
    nn.ones,
    nn.normal,
    nn.uniform,
    nn.truncated_normal,
    nn.orthogonal,
    nn.glorot_uniform,
    nn.glorot_normal,
    nn.he_uniform,
    nn.he_normal,
    nn.lecun_uniform,
    nn.lecun_normal,
]


def _name(function):
    return getattr(function, "__name__", None) or function.func.__name__


def test_fans():
    assert nn.fans(()) == (1, 1)
    assert nn.fans((7,)) == (7, 7)
    assert nn.fans((4, 3)) == (3, 4)
    assert nn.fans(SHAPE) == (FAN_IN, FAN_OUT)


@pytest.mark.parametrize("init", ALL, ids=_name)
def test_shape_and_backend(backend, key, init):
    w = init(key, (6, 5))
    assert tuple(w.shape) == (6, 5)
    assert dx.stop_gradient(w).dtype == np.float64
    is_numpy = isinstance(w, np.ndarray)
    assert is_numpy == (backend == "numpy")


@pytest.mark.parametrize(("backend", "init"), on_backends(ALL, [nn.glorot_uniform, nn.orthogonal], name=_name))
def test_dtype_argument(key, init):
    assert init(key, (4, 4), dx.float32).dtype == np.float32


@pytest.mark.parametrize(("init", "std"), SCALED, ids=[_name(f) for f, _ in SCALED])
def test_standard_deviation(init, std):
    w = to_numpy(init(dx.random.key(1, backend="numpy"), SHAPE))
    # 184,320 samples: the sample std is within 1% with overwhelming probability.
    assert w.std() == pytest.approx(std, rel=0.01)


def test_uniform_bounds():
    key = dx.random.key(0, backend="numpy")
    bound = math.sqrt(6 / (FAN_IN + FAN_OUT))
    w = to_numpy(nn.glorot_uniform(key, SHAPE, gain=2.0))
    assert w.max() <= 2 * bound
    assert w.min() >= -2 * bound
    assert w.max() > 1.9 * bound


def test_truncated_normal_bounds_and_distribution(backend, key):
    w = to_numpy(nn.truncated_normal(key, (20000,), mean=1.0, std=2.0, lower=-1.0, upper=1.5))
    assert w.min() >= 1.0 - 2.0
    assert w.max() <= 1.0 + 3.0
    reference = stats.truncnorm(-1.0, 1.5, loc=1.0, scale=2.0)
    assert stats.kstest(w, reference.cdf).pvalue > 1e-3


def test_truncated_normal_rejects_empty_interval():
    key = dx.random.key(0, backend="numpy")
    with pytest.raises(ValueError, match="lower < upper"):
        nn.truncated_normal(key, (3,), lower=1.0, upper=1.0)


ORTHOGONAL_SHAPES = [(3, 7), (7, 3), (4, 2, 3), (5, 5)]


@pytest.mark.parametrize(("backend", "shape"), on_backends(ORTHOGONAL_SHAPES, ORTHOGONAL_SHAPES[:2], name=str))
def test_orthogonal(key, shape):
    q = to_numpy(nn.orthogonal(key, shape, gain=2.0)).reshape(shape[0], -1)
    if q.shape[0] <= q.shape[1]:
        np.testing.assert_allclose(q @ q.T, 4 * np.eye(q.shape[0]), atol=1e-12)
    else:
        np.testing.assert_allclose(q.T @ q, 4 * np.eye(q.shape[1]), atol=1e-12)


def test_orthogonal_rejects_vectors():
    key = dx.random.key(0, backend="numpy")
    with pytest.raises(ValueError, match="at least two axes"):
        nn.orthogonal(key, (5,))


def test_same_key_same_values(backend):
    a = nn.he_normal(dx.random.key(3, backend=backend), (4, 4))
    b = nn.he_normal(dx.random.key(3, backend=backend), (4, 4))
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_kaiming_aliases():
    assert nn.kaiming_normal is nn.he_normal
    assert nn.kaiming_uniform is nn.he_uniform
