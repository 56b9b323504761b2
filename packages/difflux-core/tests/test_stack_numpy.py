"""``dx.stack`` on plain NumPy values against the general path it skips (reshape each entry, then concat)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import difflux.core as dx

HAS_JAX = importlib.util.find_spec("jax") is not None


def general_stack(arrays, axis=0):
    shape = np.shape(arrays[0])
    axis = axis % (len(shape) + 1)
    return dx.concat([dx.reshape(a, shape[:axis] + (1,) + shape[axis:]) for a in arrays], axis=axis)


CASES = [
    ([np.float64(1.5), np.float64(-2.0), np.float64(3.0)], 0),
    ([1.0, 2.0, 3.0], 0),
    ([np.float32(1.0), np.float32(2.0)], 0),
    ([np.float32(1.0), 2.0], 0),
    ([np.arange(3.0), np.arange(3.0) + 1.0], 0),
    ([np.arange(6.0).reshape(2, 3), np.ones((2, 3))], 1),
    ([np.arange(6.0).reshape(2, 3), np.ones((2, 3))], -1),
    ([np.array([1, 2]), np.array([3, 4])], 0),
    ([True, False], 0),
]


@pytest.mark.parametrize(("arrays", "axis"), CASES)
def test_plain_stack_matches_general_path(arrays, axis):
    result = dx.stack(arrays, axis=axis)
    expected = general_stack(arrays, axis)
    assert type(result) is np.ndarray
    assert result.dtype == expected.dtype
    assert result.shape == expected.shape
    np.testing.assert_array_equal(result, expected)


def test_plain_stack_keeps_shape_error_message():
    with pytest.raises(ValueError, match="stack needs arrays of equal shape"):
        dx.stack([np.zeros(2), np.zeros(3)])


def test_plain_stack_keeps_axis_error():
    # difflux's own message, from the general path (NumPy's would name 3 dimensions).
    with pytest.raises(ValueError, match="axis 3 is out of bounds for an array with 2 dimensions"):
        dx.stack([np.zeros(2), np.zeros(2)], axis=3)


def test_stack_of_tracers_differentiates():
    def f(x):
        return dx.sum(dx.stack([x[0] * x[1], x[1] ** 2, 3.0 * x[0]]) ** 2)

    x = np.array([0.5, -2.0])
    gradient = dx.grad(f)(x)
    p, q = x
    expected = np.array([2 * p * q * q + 18 * p, 2 * p * p * q + 4 * q**3])
    np.testing.assert_allclose(np.asarray(gradient), expected, rtol=1e-14)


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
@pytest.mark.parametrize(
    "arrays",
    [[np.float64(1.0), np.float64(2.0)], [1.0, 2.0], [np.zeros(2), np.ones(2)]],
    ids=["numpy-scalars", "python-floats", "numpy-arrays"],
)
def test_stack_follows_default_backend_as_general_path(arrays):
    # Python numbers join on the default backend and NumPy values stay NumPy.
    with dx.backend("jax"):
        result = dx.stack(arrays)
        expected = general_stack(arrays)
    assert dx.backend_of(result) == dx.backend_of(expected)
    np.testing.assert_array_equal(np.asarray(result), np.asarray(expected))
