"""Values of the reductions against NumPy and SciPy, and their singular points."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

import difflux.core as dx

RNG = np.random.default_rng(1)
X = RNG.uniform(-2.0, 2.0, size=(3, 4, 2))


def as_numpy(x: object) -> np.ndarray:
    return np.asarray(x)


# -- values ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "max", "min"])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_matches_numpy(name, axis, keepdims, to_backend):
    out = getattr(dx, name)(to_backend(X), axis=axis, keepdims=keepdims)
    expected = getattr(np, name)(X, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(as_numpy(out), expected, rtol=1e-12)


@pytest.mark.parametrize("correction", [0, 1, 1.5])
@pytest.mark.parametrize("axis", [None, 1, (0, 1)])
def test_var_std_match_numpy(correction, axis, to_backend):
    x = to_backend(X)
    np.testing.assert_allclose(
        as_numpy(dx.var(x, axis=axis, correction=correction)), np.var(X, axis=axis, ddof=correction)
    )
    np.testing.assert_allclose(
        as_numpy(dx.std(x, axis=axis, correction=correction)), np.std(X, axis=axis, ddof=correction)
    )


def test_var_without_degrees_of_freedom_is_nan(to_backend):
    assert np.isnan(as_numpy(dx.var(to_backend([1.0, 2.0]), correction=2)))


def test_std_of_constant_has_zero_gradient(to_backend):
    g = dx.grad(lambda x: dx.std(x))(to_backend([0.7, 0.7, 0.7]))
    np.testing.assert_array_equal(as_numpy(g), np.zeros(3))


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("include_initial", [False, True])
def test_cumulative_ops_match_numpy(axis, include_initial, to_backend):
    x = to_backend(X)
    out_sum = dx.cumulative_sum(x, axis=axis, include_initial=include_initial)
    out_prod = dx.cumulative_prod(x, axis=axis, include_initial=include_initial)
    np.testing.assert_allclose(as_numpy(out_sum), np.cumulative_sum(X, axis=axis, include_initial=include_initial))
    np.testing.assert_allclose(as_numpy(out_prod), np.cumulative_prod(X, axis=axis, include_initial=include_initial))


def test_cumsum_alias_flattens(to_backend):
    np.testing.assert_allclose(as_numpy(dx.cumsum(to_backend(X))), np.cumsum(X))
    np.testing.assert_allclose(as_numpy(dx.cumprod(to_backend(X), axis=1)), np.cumprod(X, axis=1))


def test_cumulative_sum_dtype(to_backend):
    out = dx.cumulative_sum(to_backend([1.0, 2.0]), dtype=np.float32)
    assert out.dtype == np.float32


@pytest.mark.parametrize("axis", [None, 0, (1, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_matches_scipy(axis, keepdims, to_backend):
    out = dx.logsumexp(to_backend(X), axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(as_numpy(out), scipy.special.logsumexp(X, axis=axis, keepdims=keepdims), rtol=1e-12)


def test_logsumexp_with_b_matches_scipy(to_backend):
    b = RNG.uniform(0.1, 2.0, size=(4, 1))
    out = dx.logsumexp(to_backend(X), axis=1, b=to_backend(b))
    np.testing.assert_allclose(as_numpy(out), scipy.special.logsumexp(X, axis=1, b=b), rtol=1e-12)


def test_logsumexp_large_values(to_backend):
    out = dx.logsumexp(to_backend([1000.0, 1000.0]))
    assert float(out) == pytest.approx(1000.0 + np.log(2.0))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_diff_matches_numpy(n, to_backend):
    out = dx.diff(to_backend(X), axis=1, n=n, prepend=0.5, append=to_backend(np.ones((3, 1, 2))))
    np.testing.assert_allclose(as_numpy(out), np.diff(X, axis=1, n=n, prepend=0.5, append=np.ones((3, 1, 2))))


def test_any_all_count_nonzero(backend):
    x = dx.asarray(np.array([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]]), backend=backend)
    np.testing.assert_array_equal(as_numpy(dx.any(x, axis=1)), [True, True])
    np.testing.assert_array_equal(as_numpy(dx.all(x, axis=0)), [False, False, True])
    np.testing.assert_array_equal(as_numpy(dx.count_nonzero(x, axis=1)), [2, 1])
    assert int(dx.count_nonzero(x)) == 3
    assert as_numpy(dx.all(x, axis=1, keepdims=True)).shape == (2, 1)


def test_any_on_traced_value_has_no_derivative(to_backend):
    g = dx.grad(lambda x: dx.sum(dx.where(dx.any(x > 1.0), x, 2.0 * x)))(to_backend([0.5, 1.5]))
    np.testing.assert_allclose(as_numpy(g), [1.0, 1.0])


# -- singular points -------------------------------------------------------------


def test_prod_gradient_with_one_zero(to_backend):
    g = dx.grad(dx.prod)(to_backend([2.0, 0.0, 3.0, -1.0]))
    np.testing.assert_array_equal(as_numpy(g), [0.0, -6.0, 0.0, 0.0])


def test_prod_gradient_with_two_zeros(to_backend):
    g = dx.grad(dx.prod)(to_backend([2.0, 0.0, 3.0, 0.0]))
    np.testing.assert_array_equal(as_numpy(g), np.zeros(4))


def test_prod_hessian_with_zeros(to_backend):
    # d2 prod / dx_i dx_j is the product of the entries other than i and j.
    x = np.array([2.0, 0.0, 3.0, 0.0])
    h = dx.hessian(dx.prod)(to_backend(x))
    expected = np.zeros((4, 4))
    expected[1, 3] = expected[3, 1] = 6.0
    np.testing.assert_array_equal(as_numpy(h), expected)


def test_prod_over_empty_axis(to_backend):
    x = to_backend(np.ones((2, 0)))
    value, g = dx.value_and_grad(lambda x: dx.sum(dx.prod(x, axis=1)))(x)
    assert float(value) == 2.0
    assert as_numpy(g).shape == (2, 0)
    g_all = dx.grad(dx.prod)(to_backend(np.ones((3, 0))))
    assert as_numpy(g_all).shape == (3, 0)


def test_cumulative_prod_jacobian_with_zeros(to_backend):
    # d y_k / d x_i = prod of x_j over j <= k, j != i, for i <= k.
    x = np.array([2.0, 0.0, 3.0, 0.5, 0.0])
    jac = dx.jacobian(dx.cumulative_prod)(to_backend(x))
    expected = np.zeros((5, 5))
    for k in range(5):
        for i in range(k + 1):
            expected[k, i] = np.prod([x[j] for j in range(k + 1) if j != i])
    np.testing.assert_allclose(as_numpy(jac), expected, atol=1e-15)
    jac_forward = dx.jacobian(dx.cumulative_prod, mode="forward")(to_backend(x))
    np.testing.assert_allclose(as_numpy(jac_forward), expected, atol=1e-15)


def test_max_ties_share_gradient(to_backend):
    x = to_backend([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    g = dx.grad(lambda x: dx.sum(dx.max(x, axis=1)))(x)
    np.testing.assert_allclose(as_numpy(g), [[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    _, tangent = dx.jvp(lambda x: dx.min(x, axis=1), (x,), (to_backend(np.ones((2, 3))),))
    np.testing.assert_allclose(as_numpy(tangent), [1.0, 1.0])


def test_logsumexp_minus_inf_entry(to_backend):
    x = to_backend([-np.inf, 0.0, 1.0])
    value, g = dx.value_and_grad(dx.logsumexp)(x)
    assert float(value) == pytest.approx(np.log(1.0 + np.e))
    np.testing.assert_allclose(as_numpy(g), [0.0, 1 / (1 + np.e), np.e / (1 + np.e)])
    assert np.all(np.isfinite(as_numpy(dx.hessian(dx.logsumexp)(x))))


def test_logsumexp_all_minus_inf(to_backend):
    x = to_backend([[-np.inf, -np.inf], [0.0, -np.inf]])
    value, g = dx.value_and_grad(lambda x: dx.sum(dx.logsumexp(x, axis=1)[1:]) + dx.logsumexp(x[0]))(x)
    assert float(value) == -np.inf
    np.testing.assert_array_equal(as_numpy(g), [[0.0, 0.0], [1.0, 0.0]])
    hessian = dx.hessian(dx.logsumexp)(x[0])
    np.testing.assert_array_equal(as_numpy(hessian), np.zeros((2, 2)))


def test_logsumexp_gradient_in_b(to_backend):
    x, b = to_backend([0.5, -1.0]), to_backend([2.0, 0.0])
    g = dx.grad(lambda b: dx.logsumexp(x, b=b))(b)
    expected = np.exp(np.array([0.5, -1.0])) / (2.0 * np.exp(0.5))
    np.testing.assert_allclose(as_numpy(g), expected)


def test_reductions_under_jit():
    jax = pytest.importorskip("jax")

    def loss(x):
        return dx.prod(x) + dx.sum(dx.cumulative_prod(x)) + dx.logsumexp(x) + dx.max(x) + dx.std(x)

    x = np.array([1.0, 0.0, 3.0, 3.0])
    compiled = jax.jit(dx.grad(loss))(jax.numpy.asarray(x))
    np.testing.assert_allclose(np.asarray(compiled), dx.grad(loss)(x), rtol=1e-12)


# -- errors --------------------------------------------------------------------------


def test_max_of_empty_raises():
    with pytest.raises(ValueError, match="zero elements"):
        dx.max(np.zeros((0, 3)), axis=0)


def test_cumulative_sum_needs_axis_for_2d():
    with pytest.raises(ValueError, match="needs an axis"):
        dx.cumulative_sum(np.ones((2, 2)))


def test_cumulative_prod_rejects_0d():
    with pytest.raises(ValueError, match="at least one dimension"):
        dx.cumulative_prod(np.float64(2.0))


def test_logsumexp_rejects_non_broadcasting_b():
    with pytest.raises(ValueError, match="does not broadcast"):
        dx.logsumexp(np.ones((2, 3)), b=np.ones((4,)))


def test_diff_rejects_negative_order():
    with pytest.raises(ValueError, match="non-negative"):
        dx.diff(np.ones(3), n=-1)
