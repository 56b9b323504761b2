"""Tests of dx.random on both backends: keys, reproducibility, distributions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import difflux.core as dx
from conftest import HAS_JAX

needs_jax = pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")

N = 20_000  # samples for moment checks; the standard error of a mean is about 0.007


def _key(backend, seed=0):
    return dx.random.key(seed, backend=backend)


def _np(x):
    return np.asarray(x)


def _assert_mean(samples, mean, std, n_sigma=5.0):
    standard_error = std / np.sqrt(samples.size)
    assert abs(samples.mean() - mean) < n_sigma * standard_error, (samples.mean(), mean)


def _assert_variance(samples, variance, kurtosis_excess=0.0, n_sigma=5.0):
    # Var of the sample variance is variance^2 * (2 / (n - 1) + kurtosis_excess / n).
    n = samples.size
    standard_error = variance * np.sqrt(2.0 / (n - 1) + kurtosis_excess / n)
    assert abs(samples.var(ddof=1) - variance) < n_sigma * standard_error, (samples.var(ddof=1), variance)


# -- keys ------------------------------------------------------------------------------------------


def test_key_shape_dtype_and_backend(backend):
    k = _key(backend)
    assert tuple(k.shape) == (2,)
    assert np.dtype(k.dtype) == np.uint32
    assert type(k).__module__.split(".")[0].startswith("numpy" if backend == "numpy" else "jax")


def test_key_follows_default_backend(backend):
    with dx.backend(backend):
        k = dx.random.key(0)
        sample = dx.random.normal(k, (2,))
    assert type(k).__module__.split(".")[0].startswith("numpy" if backend == "numpy" else "jax")
    assert type(sample).__module__.split(".")[0].startswith("numpy" if backend == "numpy" else "jax")


def test_same_seed_reproduces(backend):
    a = dx.random.normal(_key(backend, 7), (5,))
    b = dx.random.normal(_key(backend, 7), (5,))
    c = dx.random.normal(_key(backend, 8), (5,))
    np.testing.assert_array_equal(_np(a), _np(b))
    assert not np.allclose(_np(a), _np(c))


def test_negative_and_large_seeds_differ():
    keys = [_np(dx.random.key(seed, backend="numpy")) for seed in (1, -1, 2**70)]
    assert len({tuple(k) for k in keys}) == 3


def test_split_shape_and_determinism(backend):
    k = _key(backend)
    children = dx.random.split(k, 4)
    assert tuple(children.shape) == (4, 2)
    np.testing.assert_array_equal(_np(children), _np(dx.random.split(k, 4)))
    distinct = {tuple(_np(child)) for child in children} | {tuple(_np(k))}
    assert len(distinct) == 5


def test_split_streams_are_independent(backend):
    k1, k2 = dx.random.split(_key(backend))
    a = _np(dx.random.normal(k1, (N,)))
    b = _np(dx.random.normal(k2, (N,)))
    parent = _np(dx.random.normal(_key(backend), (N,)))
    # Under independence a sample correlation has standard deviation 1/sqrt(N).
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(N)
    assert abs(np.corrcoef(a, parent)[0, 1]) < 5 / np.sqrt(N)


@needs_jax
@pytest.mark.parametrize("partitionable", [True, False])
def test_eager_jax_split_matches_jax_bit_for_bit(partitionable):
    # An eager split of a concrete JAX key is computed in NumPy (no program to compile);
    # the oracle is jax.random.split itself, inside dx.jit and eagerly.
    import jax

    from difflux.core.random import _threefry_split_on_host

    previous = jax.config.jax_threefry_partitionable  # pyright: ignore[reportAttributeAccessIssue]
    jax.config.update("jax_threefry_partitionable", partitionable)
    try:
        for seed in (0, 7, 2**31 + 5):
            k = dx.random.key(seed, backend="jax")
            # The NumPy path serves the default setting; the other one goes through JAX.
            assert (_threefry_split_on_host(k, 2) is not None) == partitionable
            for num in (1, 2, 3, 4, 9):
                expected = np.asarray(jax.random.key_data(jax.random.split(jax.random.wrap_key_data(k), num)))
                keys = dx.random.split(k, num)
                assert isinstance(keys, jax.Array)
                np.testing.assert_array_equal(_np(keys), expected)
                np.testing.assert_array_equal(_np(dx.jit(lambda key, n=num: dx.random.split(key, n))(k)), expected)
    finally:
        jax.config.update("jax_threefry_partitionable", previous)


def test_fold_in_gives_distinct_keys(backend):
    k = _key(backend)
    folded = [tuple(_np(dx.random.fold_in(k, i))) for i in range(5)]
    assert len(set(folded)) == 5
    assert tuple(_np(k)) not in folded
    np.testing.assert_array_equal(_np(dx.random.fold_in(k, 3)), _np(dx.random.fold_in(k, 3)))


def test_invalid_key_raises(backend):
    with pytest.raises(TypeError, match=r"dx\.random\.key\(seed\)"):
        dx.random.normal(0, (2,))
    with pytest.raises(TypeError, match="batch of keys"):
        dx.random.normal(dx.random.split(_key(backend), 3), (2,))


# -- continuous samplers ---------------------------------------------------------------------


def test_normal_shape_dtype_moments(backend):
    samples = dx.random.normal(_key(backend), (N,))
    assert np.dtype(samples.dtype) == np.float64
    values = _np(samples)
    _assert_mean(values, 0.0, 1.0)
    _assert_variance(values, 1.0)
    assert dx.random.normal(_key(backend), (2, 3)).shape == (2, 3)
    assert dx.random.normal(_key(backend)).shape == ()
    assert np.dtype(dx.random.normal(_key(backend), (2,), dtype=np.float32).dtype) == np.float32


def test_uniform_range_and_moments(backend):
    values = _np(dx.random.uniform(_key(backend), (N,)))
    assert values.min() >= 0.0
    assert values.max() < 1.0
    _assert_mean(values, 0.5, np.sqrt(1 / 12))
    _assert_variance(values, 1 / 12, kurtosis_excess=-1.2)
    shifted = _np(dx.random.uniform(_key(backend), (N,), minval=-2.0, maxval=6.0))
    assert shifted.min() >= -2.0
    assert shifted.max() < 6.0
    _assert_mean(shifted, 2.0, 8 * np.sqrt(1 / 12))


def test_uniform_gradient_wrt_bounds(backend, to_backend):
    k = _key(backend)
    unit = _np(dx.random.uniform(k, (10,)))

    def total(bounds):
        return dx.sum(dx.random.uniform(k, (10,), minval=bounds[0], maxval=bounds[1]))

    g = dx.grad(total)(to_backend(np.array([1.0, 3.0])))
    np.testing.assert_allclose(_np(g), [np.sum(1 - unit), np.sum(unit)], rtol=1e-12)


def test_exponential_moments(backend):
    values = _np(dx.random.exponential(_key(backend), (N,)))
    assert values.min() >= 0.0
    _assert_mean(values, 1.0, 1.0)
    _assert_variance(values, 1.0, kurtosis_excess=6.0)


def test_gamma_moments(backend):
    # One call, with the shape taken from the array of shape parameters.
    values = _np(dx.random.gamma(_key(backend), dx.full((N,), 3.0, backend=backend)))
    assert values.shape == (N,)
    _assert_mean(values, 3.0, np.sqrt(3.0))
    _assert_variance(values, 3.0, kurtosis_excess=6 / 3.0)


# -- discrete samplers -------------------------------------------------------------------------


def test_bernoulli_frequency(backend):
    samples = dx.random.bernoulli(_key(backend), 0.3, (N,))
    assert np.dtype(samples.dtype) == np.bool_
    _assert_mean(_np(samples).astype(float), 0.3, np.sqrt(0.3 * 0.7))
    p = dx.asarray(np.array([0.0, 1.0, 0.5]), backend=backend)
    by_p = _np(dx.random.bernoulli(_key(backend), p))
    assert by_p.shape == (3,)
    assert not by_p[0]
    assert by_p[1]


def test_randint_range_and_frequencies(backend):
    values = _np(dx.random.randint(_key(backend), (N,), 2, 7))
    assert np.issubdtype(values.dtype, np.integer)
    assert values.min() == 2
    assert values.max() == 6
    counts = np.bincount(values - 2, minlength=5)
    assert stats.chisquare(counts).pvalue > 1e-4


def test_categorical_frequencies_chi_square(backend):
    probabilities = np.array([0.1, 0.2, 0.3, 0.4])
    logits = dx.asarray(np.log(probabilities) + 1.7, backend=backend)  # softmax ignores the shift
    samples = _np(dx.random.categorical(_key(backend), logits, shape=(N,)))
    assert samples.shape == (N,)
    counts = np.bincount(samples, minlength=4)
    assert stats.chisquare(counts, N * probabilities).pvalue > 1e-4


def test_categorical_batch_and_axis(backend):
    logits = np.log(np.array([[0.9, 0.1], [0.05, 0.95], [0.5, 0.5]]))
    per_row = _np(dx.random.categorical(_key(backend), dx.asarray(logits, backend=backend), shape=(N, 3)))
    assert per_row.shape == (N, 3)
    _assert_mean(per_row[:, 0].astype(float), 0.1, np.sqrt(0.09))
    _assert_mean(per_row[:, 1].astype(float), 0.95, np.sqrt(0.95 * 0.05))
    columns = dx.asarray(logits.T, backend=backend)
    per_column = _np(dx.random.categorical(_key(backend), columns, axis=0))
    assert per_column.shape == (3,)


def test_permutation_is_permutation(backend):
    perm = _np(dx.random.permutation(_key(backend), 10))
    np.testing.assert_array_equal(np.sort(perm), np.arange(10))
    x = dx.asarray(np.arange(12.0).reshape(4, 3), backend=backend)
    shuffled = _np(dx.random.permutation(_key(backend), x))
    rows = sorted(map(tuple, shuffled))
    assert rows == sorted(map(tuple, np.arange(12.0).reshape(4, 3)))
    columns = _np(dx.random.permutation(_key(backend), x, axis=1))
    np.testing.assert_array_equal(np.sort(columns, axis=1), np.arange(12.0).reshape(4, 3))


def test_permutation_first_position_uniform(backend):
    keys = dx.random.split(_key(backend), 2000)
    firsts = [int(_np(dx.random.permutation(keys[i], 4))[0]) for i in range(2000)]
    assert stats.chisquare(np.bincount(firsts, minlength=4)).pvalue > 1e-4


def test_permutation_differentiable(backend, to_backend):
    k = _key(backend)
    x = to_backend(np.array([1.0, 2.0, 3.0]))
    weights = to_backend(np.array([1.0, 10.0, 100.0]))
    perm = _np(dx.random.permutation(k, 3))
    g = dx.grad(lambda v: dx.sum(dx.random.permutation(k, v) * weights))(x)
    expected = np.zeros(3)
    expected[perm] = _np(weights)
    np.testing.assert_allclose(_np(g), expected)


def test_choice_without_replacement_is_unique(backend):
    picks = _np(dx.random.choice(_key(backend), 10, (10,), replace=False))
    np.testing.assert_array_equal(np.sort(picks), np.arange(10))
    with pytest.raises(ValueError, match="without replacement"):
        dx.random.choice(_key(backend), 3, (4,), replace=False)


def test_choice_with_probabilities(backend):
    p = np.array([0.5, 0.25, 0.25])
    picks = _np(dx.random.choice(_key(backend), 3, (N,), p=dx.asarray(p, backend=backend)))
    assert stats.chisquare(np.bincount(picks, minlength=3), N * p).pvalue > 1e-4
    values = dx.asarray(np.array([10.0, 20.0, 30.0]), backend=backend)
    drawn = _np(dx.random.choice(_key(backend), values, (5,)))
    assert set(drawn.tolist()) <= {10.0, 20.0, 30.0}


# -- with transformations -------------------------------------------------------------------------


def test_vmap_over_keys_matches_loop(backend):
    keys = dx.random.split(_key(backend), 5)
    batched = _np(dx.vmap(lambda k: dx.random.normal(k, (3,)))(keys))
    for i in range(5):
        np.testing.assert_allclose(batched[i], _np(dx.random.normal(keys[i], (3,))), rtol=1e-12)


@needs_jax
def test_sampling_inside_jit_matches_eager():
    k = _key("jax")

    @dx.jit
    def noisy(k, x):
        k1, k2 = dx.random.split(k)
        return x + dx.random.normal(k1, x.shape) * dx.random.uniform(k2, x.shape)

    x = dx.zeros(4, backend="jax")
    np.testing.assert_allclose(_np(noisy(k, x)), _np(noisy.__wrapped__(k, x)), rtol=1e-12)


@needs_jax
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(), (9,), (2, 7)])
def test_traced_normal_matches_jax_bits(dtype, shape):
    # A traced key draws normals with difflux's unrolled threefry; the oracle is jax.random.normal.
    import jax

    keys = dx.random.split(_key("jax", 3), 4)
    expected = np.asarray(jax.vmap(lambda k: jax.random.normal(k, shape, dtype))(jax.random.wrap_key_data(keys)))
    batched = dx.jit(dx.vmap(lambda k: dx.random.normal(k, shape, dtype)))(keys)
    np.testing.assert_array_equal(_np(batched), expected)
    np.testing.assert_array_equal(_np(dx.jit(lambda k: dx.random.normal(k, shape, dtype))(keys[1])), expected[1])


@needs_jax
@pytest.mark.parametrize("num", [1, 2, 4, 7])
def test_traced_split_matches_jax_bits(num):
    # A traced key splits with difflux's unrolled threefry. The oracle is jax.random.split.
    import jax

    keys = dx.random.split(_key("jax", 5), 3)
    expected = np.asarray(jax.vmap(lambda k: jax.random.split(k, num))(keys))
    batched = dx.jit(dx.vmap(lambda k: dx.random.split(k, num)))(keys)
    np.testing.assert_array_equal(_np(batched), expected)
    np.testing.assert_array_equal(_np(dx.jit(lambda k: dx.random.split(k, num))(keys[2])), expected[2])


@needs_jax
def test_typed_jax_keys_accepted():
    import jax

    typed = jax.random.key(0)
    assert dx.random.normal(typed, (2,)).shape == (2,)
    children = dx.random.split(typed, 3)
    assert children.shape == (3,)
    assert jax.dtypes.issubdtype(children.dtype, jax.dtypes.prng_key)


def test_samplers_batch_over_keys_under_vmap_on_numpy():
    # Each key of the batch gives what it gives alone, and the mapped function runs once, not per key.
    keys = dx.random.split(dx.random.key(3, backend="numpy"), 4)
    calls = []

    def draw(k):
        calls.append(1)
        a, b = dx.random.split(k)
        return dx.random.uniform(a, (3,)) + dx.random.normal(b, (3,))

    batched = dx.vmap(draw)(keys)
    assert len(calls) == 1
    expected = np.stack([draw(k) for k in keys])
    np.testing.assert_array_equal(batched, expected)
