"""Searching, sorting and gathering against NumPy, and gradients through permutations."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx

X = np.array([[3.0, 1.0, 2.0, 1.0], [0.0, 5.0, 5.0, -1.0]])


def as_numpy(x: object) -> np.ndarray:
    return np.asarray(x)


# -- values -----------------------------------------------------------------------


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_argmax_argmin_match_numpy(axis, to_backend):
    x = to_backend(X)
    np.testing.assert_array_equal(as_numpy(dx.argmax(x, axis=axis)), np.argmax(X, axis=axis))
    np.testing.assert_array_equal(as_numpy(dx.argmin(x, axis=axis)), np.argmin(X, axis=axis))
    kept = dx.argmax(x, axis=axis, keepdims=True)
    assert as_numpy(kept).shape == np.argmax(X, axis=axis, keepdims=True).shape


@pytest.mark.parametrize("axis", [0, 1])
def test_argsort_and_sort_match_numpy(axis, to_backend):
    x = to_backend(X)
    np.testing.assert_array_equal(as_numpy(dx.argsort(x, axis=axis)), np.argsort(X, axis=axis, stable=True))
    np.testing.assert_array_equal(as_numpy(dx.sort(x, axis=axis)), np.sort(X, axis=axis))
    np.testing.assert_array_equal(as_numpy(dx.sort(x, axis=axis, descending=True)), -np.sort(-X, axis=axis))


def test_argsort_descending_is_stable(to_backend):
    x = to_backend([1.0, 3.0, 1.0, 3.0, 2.0])
    np.testing.assert_array_equal(as_numpy(dx.argsort(x, descending=True)), [1, 3, 4, 0, 2])


def test_top_k_values_and_indices(to_backend):
    values, indices = dx.top_k(to_backend(X), 2)
    np.testing.assert_array_equal(as_numpy(values), [[3.0, 2.0], [5.0, 5.0]])
    np.testing.assert_array_equal(as_numpy(indices), [[0, 2], [1, 2]])


def test_take_matches_numpy(to_backend):
    x = to_backend(X)
    np.testing.assert_array_equal(as_numpy(dx.take(x, [3, 0, 3], axis=1)), np.take(X, [3, 0, 3], axis=1))
    np.testing.assert_array_equal(as_numpy(dx.take(x, np.array([-1, 2]))), np.take(X, [-1, 2]))


def test_take_along_axis_matches_numpy(to_backend):
    indices = np.array([[0], [2]])
    out = dx.take_along_axis(to_backend(X), indices, axis=1)
    np.testing.assert_array_equal(as_numpy(out), np.take_along_axis(X, indices, axis=1))
    broadcast = np.array([[1, 0, 1, 0]])
    out = dx.take_along_axis(to_backend(X), broadcast, axis=0)
    np.testing.assert_array_equal(as_numpy(out), np.take_along_axis(X, broadcast, axis=0))


@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_matches_numpy(side, to_backend):
    sorted_values = np.array([0.0, 1.0, 1.0, 4.0])
    queries = np.array([[1.0, -2.0], [4.0, 2.5]])
    out = dx.searchsorted(to_backend(sorted_values), to_backend(queries), side=side)
    np.testing.assert_array_equal(as_numpy(out), np.searchsorted(sorted_values, queries, side=side))


def test_searchsorted_with_sorter(backend, to_backend):
    values = np.array([4.0, 0.0, 1.0])
    sorter = dx.asarray(np.argsort(values), backend=backend)
    out = dx.searchsorted(to_backend(values), to_backend([0.5, 5.0]), sorter=sorter)
    np.testing.assert_array_equal(as_numpy(out), [1, 3])


def test_nonzero_matches_numpy(to_backend):
    found = dx.nonzero(to_backend(X) > 1.5)
    expected = np.nonzero(X > 1.5)
    assert len(found) == 2
    for axis_indices, expected_indices in zip(found, expected):
        np.testing.assert_array_equal(as_numpy(axis_indices), expected_indices)


def test_nonzero_with_size_pads_and_cuts(to_backend):
    rows, cols = dx.nonzero(to_backend(X) > 1.5, size=5, fill_value=-1)
    np.testing.assert_array_equal(as_numpy(rows), [0, 0, 1, 1, -1])
    np.testing.assert_array_equal(as_numpy(cols), [0, 2, 1, 2, -1])
    (first,) = dx.nonzero(to_backend([0.0, 1.0, 2.0, 3.0]), size=2)
    np.testing.assert_array_equal(as_numpy(first), [1, 2])


def test_unique_functions_match_numpy(to_backend):
    x = to_backend(X)
    values, indices, inverse, counts = np.unique(X, return_index=True, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(as_numpy(dx.unique_values(x)), values)
    result = dx.unique_all(x)
    np.testing.assert_array_equal(as_numpy(result.values), values)
    np.testing.assert_array_equal(as_numpy(result.indices), indices)
    np.testing.assert_array_equal(as_numpy(result.inverse_indices), inverse.reshape(X.shape))
    np.testing.assert_array_equal(as_numpy(result.counts), counts)
    np.testing.assert_array_equal(as_numpy(dx.unique_counts(x).counts), counts)
    np.testing.assert_array_equal(as_numpy(dx.unique_inverse(x).inverse_indices), inverse.reshape(X.shape))


def test_unique_with_size(to_backend):
    result = dx.unique_counts(to_backend([2.0, 1.0, 2.0]), size=4)
    np.testing.assert_array_equal(as_numpy(result.values), [1.0, 2.0, 1.0, 1.0])
    np.testing.assert_array_equal(as_numpy(result.counts), [1, 2, 0, 0])
    padded = dx.unique_values(to_backend([2.0, 1.0, 2.0]), size=3, fill_value=-7.0)
    np.testing.assert_array_equal(as_numpy(padded), [1.0, 2.0, -7.0])


# -- gradients ------------------------------------------------------------------


def test_sort_gradient_follows_permutation(to_backend):
    weights = to_backend([0.0, 1.0, 2.0, 3.0])
    g = dx.grad(lambda x: dx.sum(dx.sort(x) * weights))(to_backend([3.0, 1.0, 2.0, 0.0]))
    np.testing.assert_array_equal(as_numpy(g), [3.0, 1.0, 2.0, 0.0])


def test_take_gradient_accumulates_repeats(to_backend):
    g = dx.grad(lambda x: dx.sum(dx.take(x, [0, 2, 0])))(to_backend([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(as_numpy(g), [2.0, 0.0, 1.0])


def test_top_k_gradient(to_backend):
    g = dx.grad(lambda x: dx.sum(dx.top_k(x, 2)[0]))(to_backend([0.5, 3.0, -1.0, 2.0]))
    np.testing.assert_array_equal(as_numpy(g), [0.0, 1.0, 0.0, 1.0])


def test_search_ops_under_jit():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    def loss(x):
        return dx.sum(dx.sort(x) * jnp.arange(4.0)) + dx.sum(dx.top_k(x, 2)[0]) + dx.sum(dx.take(x, dx.argsort(x)[:2]))

    x = np.array([3.0, 1.0, 2.0, 0.0])
    compiled = jax.jit(dx.grad(loss))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(compiled), [4.0, 2.0, 3.0, 1.0])
    (rows,) = jax.jit(lambda x: dx.nonzero(x > 1.0, size=3))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(rows), [0, 2, 0])


# -- errors -------------------------------------------------------------------------


def test_take_along_axis_rejects_rank_mismatch():
    with pytest.raises(ValueError, match="as many dimensions"):
        dx.take_along_axis(X, np.array([0, 1]), axis=1)


def test_take_rejects_float_indices():
    with pytest.raises(TypeError, match="integer array"):
        dx.take(X, np.array([0.0, 1.0]), axis=1)


def test_top_k_rejects_large_k():
    with pytest.raises(ValueError, match="k=5"):
        dx.top_k(X, 5)


def test_argmax_rejects_tuple_axis():
    with pytest.raises(TypeError, match="single integer axis"):
        dx.argmax(X, axis=(0, 1))


def test_searchsorted_rejects_bad_side():
    with pytest.raises(ValueError, match="'left' or 'right'"):
        dx.searchsorted(np.arange(3.0), 1.0, side="middle")


def test_nonzero_rejects_0d():
    with pytest.raises(ValueError, match="0-d"):
        dx.nonzero(np.float64(1.0))
