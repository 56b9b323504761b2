"""relu, softplus, sigmoid, logit, softmax and segment_sum against SciPy and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

import difflux.core as dx

X = np.array([[-3.0, -0.5, 0.0], [0.5, 2.0, 7.0]])


def as_numpy(x: object) -> np.ndarray:
    return np.asarray(x)


# -- values -----------------------------------------------------------------------


def test_softplus_matches_closed_form(to_backend):
    np.testing.assert_allclose(as_numpy(dx.softplus(to_backend(X))), np.log1p(np.exp(X)), rtol=1e-14)


def test_sigmoid_and_expit_match_scipy(to_backend):
    np.testing.assert_allclose(as_numpy(dx.sigmoid(to_backend(X))), scipy.special.expit(X), rtol=1e-14)
    assert dx.expit is dx.sigmoid


def test_log_sigmoid_matches_scipy(to_backend):
    np.testing.assert_allclose(as_numpy(dx.log_sigmoid(to_backend(X))), scipy.special.log_expit(X), rtol=1e-14)


def test_logit_matches_scipy(to_backend):
    p = np.array([0.01, 0.3, 0.5, 0.99])
    np.testing.assert_allclose(as_numpy(dx.logit(to_backend(p))), scipy.special.logit(p), rtol=1e-14)


@pytest.mark.parametrize("axis", [0, -1, (0, 1)])
def test_softmax_matches_scipy(axis, to_backend):
    np.testing.assert_allclose(as_numpy(dx.softmax(to_backend(X), axis=axis)), scipy.special.softmax(X, axis=axis))
    np.testing.assert_allclose(
        as_numpy(dx.log_softmax(to_backend(X), axis=axis)), scipy.special.log_softmax(X, axis=axis), rtol=1e-12
    )


def test_softmax_large_logits(to_backend):
    out = dx.softmax(to_backend([1000.0, 1000.0, -1000.0]))
    np.testing.assert_allclose(as_numpy(out), [0.5, 0.5, 0.0])


def test_softmax_minus_inf_logit(to_backend):
    x = to_backend([-np.inf, 0.0, 0.0])
    np.testing.assert_array_equal(as_numpy(dx.softmax(x)), [0.0, 0.5, 0.5])
    g = dx.grad(lambda x: dx.softmax(x)[1])(x)
    np.testing.assert_allclose(as_numpy(g), [0.0, 0.25, -0.25])


def test_segment_sum_matches_loop(to_backend):
    data = np.arange(12.0).reshape(6, 2)
    ids = np.array([3, 0, 3, 1, 0, 3])
    expected = np.zeros((5, 2))
    for row, segment in zip(data, ids):
        expected[segment] += row
    out = dx.segment_sum(to_backend(data), ids, num_segments=5)
    np.testing.assert_array_equal(as_numpy(out), expected)
    inferred = dx.segment_sum(to_backend(data), ids)
    np.testing.assert_array_equal(as_numpy(inferred), expected[:4])


# -- relu ------------------------------------------------------------------------------

RELU_POINTS = np.array([-np.inf, -2.5, -1e-300, -0.0, 0.0, 1e-300, 0.75, np.inf])


def test_relu_matches_maximum(to_backend):
    np.testing.assert_array_equal(as_numpy(dx.relu(to_backend(RELU_POINTS))), np.maximum(RELU_POINTS, 0.0))


def test_relu_propagates_nan(to_backend):
    out = as_numpy(dx.relu(to_backend([np.nan, -1.0, 2.0])))
    assert np.isnan(out[0])
    np.testing.assert_array_equal(out[1:], [0.0, 2.0])


def test_relu_keeps_float32(backend):
    x = dx.asarray(np.array([-1.0, 2.0], dtype=np.float32), backend=backend)
    assert dx.relu(x).dtype == dx.float32
    assert dx.grad(lambda v: dx.sum(dx.relu(v)))(x).dtype == dx.float32


def test_relu_gradient_is_step(to_backend):
    # 0 at x == 0 (and at -0.0), as in PyTorch and jax.nn.relu.
    g = dx.grad(lambda v: dx.sum(dx.relu(v)))(to_backend(RELU_POINTS))
    np.testing.assert_array_equal(as_numpy(g), (RELU_POINTS > 0).astype(np.float64))


def test_relu_tangent_is_step(to_backend):
    tangent = np.linspace(1.0, 8.0, RELU_POINTS.size)
    _, out = dx.jvp(dx.relu, (to_backend(RELU_POINTS),), (to_backend(tangent),))
    np.testing.assert_array_equal(as_numpy(out), np.where(RELU_POINTS > 0, tangent, 0.0))


def test_relu_second_derivative_is_zero(to_backend):
    curvature = dx.grad(lambda v: dx.sum(dx.grad(lambda w: dx.sum(dx.relu(w) * w))(v)))(to_backend([-1.5, 0.5]))
    # d/dx (relu(x) * x) = 2x for x > 0 and 0 below, so the second derivative is 2 and 0.
    np.testing.assert_array_equal(as_numpy(curvature), [0.0, 2.0])


def test_relu_vmap_batches_in_one_call(backend, to_backend):
    x = np.array([[-1.0, 2.0, 0.0], [3.0, -4.0, 0.5]])
    calls = []

    def per_row(row):
        calls.append(1)
        return dx.grad(lambda v: dx.sum(dx.relu(v) ** 2))(row)

    out = dx.vmap(per_row)(to_backend(x))
    assert len(calls) == 1  # the batching rule ran, not the fallback loop over rows
    np.testing.assert_array_equal(as_numpy(out), 2 * np.maximum(x, 0.0))


def test_relu_under_jit():
    jax = pytest.importorskip("jax")
    x = np.array([-2.0, 0.0, 3.0])
    compiled = jax.jit(dx.value_and_grad(lambda v: dx.sum(dx.relu(v) * v)))
    value, g = compiled(jax.numpy.asarray(x))
    assert float(value) == 9.0
    np.testing.assert_array_equal(np.asarray(g), [0.0, 0.0, 6.0])


# -- singular points and gradients ----------------------------------------------------


@pytest.mark.parametrize(("x", "value", "slope"), [(1000.0, 1000.0, 1.0), (-1000.0, 0.0, 0.0), (0.0, np.log(2.0), 0.5)])
def test_softplus_extremes(x, value, slope, backend):
    value_out, slope_out = dx.value_and_grad(dx.softplus)(dx.asarray(np.float64(x), backend=backend))
    assert float(value_out) == pytest.approx(value, rel=1e-15)
    assert float(slope_out) == pytest.approx(slope, rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_slope_matches_expit(dtype, backend):
    # The slope is computed from exp(-|x|). SciPy's expit is the oracle, tails included.
    x = np.array([-800.0, -40.0, -3.0, -1e-8, 0.0, 1e-8, 2.5, 40.0, 800.0, np.inf, -np.inf], dtype=dtype)
    slope = dx.grad(lambda v: dx.sum(dx.softplus(v)))(dx.asarray(x, backend=backend))
    assert slope.dtype == dtype
    np.testing.assert_allclose(as_numpy(slope), scipy.special.expit(x), rtol=4 * np.finfo(dtype).eps, atol=0)


def test_softplus_second_derivative_finite(backend):
    for x in (1000.0, -1000.0):
        curvature = dx.grad(dx.grad(dx.softplus))(dx.asarray(np.float64(x), backend=backend))
        assert float(curvature) == 0.0


def test_log_sigmoid_extremes(backend):
    value, slope = dx.value_and_grad(dx.log_sigmoid)(dx.asarray(np.float64(-1000.0), backend=backend))
    assert float(value) == -1000.0
    assert float(slope) == 1.0


def test_sigmoid_gradient_saturates_to_zero(backend):
    slope = dx.grad(dx.sigmoid)(dx.asarray(np.float64(1000.0), backend=backend))
    assert float(slope) == 0.0


def test_segment_sum_gradient_gathers(to_backend):
    ids = np.array([1, 0, 1])
    weights = to_backend([10.0, 20.0])
    g = dx.grad(lambda x: dx.sum(dx.segment_sum(x, ids, 2) * weights))(to_backend([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(as_numpy(g), [20.0, 10.0, 20.0])


def test_extras_under_jit():
    jax = pytest.importorskip("jax")
    ids = np.array([1, 0, 1])

    def loss(x):
        return dx.sum(dx.softplus(x) + dx.log_softmax(x)) + dx.sum(dx.segment_sum(x, ids, 2) ** 2)

    x = np.array([1000.0, -2.0, 0.5])
    compiled = jax.jit(dx.grad(loss))(jax.numpy.asarray(x))
    np.testing.assert_allclose(np.asarray(compiled), dx.grad(loss)(x), rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(compiled)))


# -- errors ---------------------------------------------------------------------------


def test_segment_sum_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match=r"range from 0 to 3"):
        dx.segment_sum(np.ones(2), np.array([0, 3]), num_segments=2)


def test_segment_sum_rejects_negative_ids():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        dx.segment_sum(np.ones(2), np.array([-1, 0]), num_segments=2)


def test_segment_sum_rejects_wrong_length():
    with pytest.raises(ValueError, match="one id per row"):
        dx.segment_sum(np.ones((3, 2)), np.array([0, 1]), num_segments=2)


def test_segment_sum_rejects_float_ids():
    with pytest.raises(TypeError, match="integer array"):
        dx.segment_sum(np.ones(2), np.array([0.0, 1.0]), num_segments=2)


def test_segment_sum_needs_num_segments_under_jit():
    jax = pytest.importorskip("jax")
    with pytest.raises(ValueError, match="num_segments"):
        jax.jit(lambda ids: dx.segment_sum(jax.numpy.ones(2), ids))(jax.numpy.array([0, 1]))
