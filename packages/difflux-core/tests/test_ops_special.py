"""Values and derivatives of the special functions against SciPy, closed forms
and finite differences, including boundary points and the left tail."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sc

import difflux.core as dx
from difflux.core import MissingRuleError


def as_numpy(x: object) -> np.ndarray:
    return np.asarray(x)


def central_difference(f, x: np.ndarray | float, step: np.ndarray | float) -> np.ndarray:
    """A fourth-order central difference of the NumPy function ``f`` at ``x``."""
    return (-f(x + 2 * step) + 8 * f(x + step) - 8 * f(x - step) + f(x - 2 * step)) / (12 * step)


RNG = np.random.default_rng(3)
POSITIVE = RNG.uniform(0.2, 6.0, size=(3, 4))
REAL = RNG.uniform(-3.0, 3.0, size=(3, 4))
UNIT = RNG.uniform(-0.95, 0.95, size=(3, 4))
PROBABILITY = RNG.uniform(0.01, 0.99, size=(3, 4))

# (difflux name, SciPy reference, argument)
UNARY = [
    ("lgamma", sc.gammaln, POSITIVE),
    ("digamma", sc.psi, POSITIVE),
    ("erf", sc.erf, REAL),
    ("erfc", sc.erfc, REAL),
    ("erfinv", sc.erfinv, UNIT),
    ("ndtr", sc.ndtr, REAL),
    ("ndtri", sc.ndtri, PROBABILITY),
    ("log_ndtr", sc.log_ndtr, REAL),
    ("i0e", sc.i0e, REAL * 10),
    ("i1e", sc.i1e, REAL * 10),
]


# -- values ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "reference", "x"), UNARY, ids=[u[0] for u in UNARY])
def test_unary_matches_scipy(name, reference, x, to_backend):
    out = getattr(dx, name)(to_backend(x))
    np.testing.assert_allclose(as_numpy(out), reference(x), rtol=1e-12)


@pytest.mark.parametrize("n", [0, 1, 2, 4])
def test_polygamma_matches_scipy(n, to_backend):
    out = dx.polygamma(n, to_backend(POSITIVE))
    np.testing.assert_allclose(as_numpy(out), sc.polygamma(n, POSITIVE), rtol=1e-12)


def test_binary_functions_match_scipy(to_backend):
    a, b = POSITIVE, POSITIVE[0]
    np.testing.assert_allclose(as_numpy(dx.betaln(to_backend(a), to_backend(b))), sc.betaln(a, b), rtol=1e-12)
    np.testing.assert_allclose(as_numpy(dx.xlogy(to_backend(REAL), to_backend(a))), sc.xlogy(REAL, a), rtol=1e-12)
    y = PROBABILITY - 0.5
    np.testing.assert_allclose(as_numpy(dx.xlog1py(to_backend(REAL), to_backend(y))), sc.xlog1py(REAL, y), rtol=1e-12)


def test_betaln_large_arguments_match_scipy(to_backend):
    # JAX's own betaln is off by about 1e-6 here; difflux replaces it.
    a = np.array([2.649511436764295, 0.5, 30.0, 1e4])
    b = np.array([8.002333986937682, 12.0, 45.0, 2e4])
    np.testing.assert_allclose(as_numpy(dx.betaln(to_backend(a), to_backend(b))), sc.betaln(a, b), rtol=1e-13)


def test_incomplete_functions_match_scipy(to_backend):
    a, x = POSITIVE, POSITIVE[::-1]
    np.testing.assert_allclose(as_numpy(dx.gammainc(to_backend(a), to_backend(x))), sc.gammainc(a, x), rtol=1e-11)
    np.testing.assert_allclose(as_numpy(dx.gammaincc(to_backend(a), to_backend(x))), sc.gammaincc(a, x), rtol=1e-11)
    u = PROBABILITY
    np.testing.assert_allclose(
        as_numpy(dx.betainc(to_backend(a), to_backend(x), to_backend(u))), sc.betainc(a, x, u), rtol=1e-11
    )


def test_special_namespace_reexports():
    assert dx.special.gammaln is dx.lgamma
    assert dx.special.betainc is dx.betainc
    assert dx.special.log_ndtr is dx.log_ndtr


def test_float32_stays_float32():
    x = np.array([0.5, 1.5], dtype=np.float32)
    assert dx.lgamma(x).dtype == np.float32
    assert dx.grad(lambda a: dx.sum(dx.gammainc(a, 1.0)))(x).dtype == np.float32
    assert dx.grad(lambda a: dx.sum(dx.betainc(a, 2.0, 0.5)))(x).dtype == np.float32


# -- boundary values ------------------------------------------------------------------


def test_gamma_family_at_integers(to_backend):
    np.testing.assert_allclose(as_numpy(dx.lgamma(to_backend([1.0, 2.0, 5.0]))), [0.0, 0.0, np.log(24.0)], atol=1e-15)
    np.testing.assert_allclose(as_numpy(dx.digamma(to_backend(1.0))), -np.euler_gamma, rtol=1e-14)


def test_inverse_functions_at_ends(to_backend):
    assert as_numpy(dx.erfinv(to_backend([1.0, -1.0]))).tolist() == [np.inf, -np.inf]
    assert as_numpy(dx.ndtri(to_backend([0.0, 1.0]))).tolist() == [-np.inf, np.inf]


def test_log_ndtr_far_left_tail(to_backend):
    # The references are from mpmath at 50 digits. JAX's log_ndtr(-40) is off
    # by 2e-14, which exp(log pdf - log_ndtr) turns into a relative 2e-11.
    x = to_backend(-40.0)
    np.testing.assert_allclose(as_numpy(dx.log_ndtr(x)), -804.6084420137538, rtol=1e-13)
    np.testing.assert_allclose(as_numpy(dx.grad(dx.log_ndtr)(x)), 40.02496884720726, rtol=1e-10)
    # The second derivative r (-x - r), with r the first, cancels about three
    # digits at x = -40.
    second = dx.grad(dx.grad(dx.log_ndtr))(x)
    np.testing.assert_allclose(as_numpy(second), -0.9993773316214086, rtol=1e-7)


def test_log_ndtr_right_tail_gradient_vanishes(to_backend):
    g = dx.grad(dx.log_ndtr)(to_backend(40.0))
    assert as_numpy(g) == 0.0


def test_xlogy_at_zero(to_backend):
    zero = to_backend(0.0)
    assert float(dx.xlogy(zero, zero)) == 0.0
    with np.errstate(divide="ignore"):  # NumPy warns on log(0) in the rule for x
        gx, gy = dx.gradient(dx.xlogy, zero, zero)
    assert as_numpy(gy) == 0.0
    assert as_numpy(gx) == -np.inf  # d/dx x log y = log 0
    gx, gy = dx.gradient(dx.xlogy, zero, to_backend(2.0))
    np.testing.assert_allclose(as_numpy(gx), np.log(2.0))
    assert as_numpy(gy) == 0.0


def test_xlogy_entropy_gradient_finite_at_zero(to_backend):
    p = to_backend([0.0, 0.25, 0.75])
    with np.errstate(divide="ignore"):  # NumPy warns on log(0) in the rule for x
        g = dx.grad(lambda p: dx.sum(dx.xlogy(p, p)))(p)
    # d/dp p log p = log p + 1, with the p = 0 entry -inf only through log p.
    np.testing.assert_allclose(as_numpy(g)[1:], np.log([0.25, 0.75]) + 1.0)
    cross = dx.grad(lambda y: dx.sum(dx.xlogy(dx.stop_gradient(p), y)))(p + 0.0)
    assert np.all(np.isfinite(as_numpy(cross)))


def test_xlog1py_at_minus_one(to_backend):
    zero, minus_one = to_backend(0.0), to_backend(-1.0)
    assert float(dx.xlog1py(zero, minus_one)) == 0.0
    gy = dx.grad(dx.xlog1py, argnums=1)(zero, minus_one)
    assert as_numpy(gy) == 0.0


def test_bessel_derivatives_at_zero_and_large(to_backend):
    np.testing.assert_allclose(as_numpy(dx.grad(dx.i1e)(to_backend(0.0))), 0.5)
    big = to_backend(1e4)
    np.testing.assert_allclose(as_numpy(dx.i0e(big)), sc.i0e(1e4), rtol=1e-12)
    # i0e(x) ~ 1 / sqrt(2 pi x), so i0e'(x) ~ -i0e(x) / (2x) for large x.
    np.testing.assert_allclose(as_numpy(dx.grad(dx.i0e)(big)), -sc.i0e(1e4) / 2e4, rtol=1e-3)


def test_gammainc_at_zero_and_infinity(to_backend):
    a = to_backend([0.5, 1.0, 2.0])
    zero = to_backend([0.0, 0.0, 0.0])
    np.testing.assert_array_equal(as_numpy(dx.gammainc(a, zero)), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(as_numpy(dx.gammainc(a, to_backend(np.full(3, np.inf)))), [1.0, 1.0, 1.0])
    grad_a, grad_x = dx.gradient(lambda a, x: dx.sum(dx.gammainc(a, x)), a, zero)
    np.testing.assert_array_equal(as_numpy(grad_a), [0.0, 0.0, 0.0])
    # The density x^(a-1) e^-x / Gamma(a) at 0: infinite, 1 and 0.
    np.testing.assert_array_equal(as_numpy(grad_x), [np.inf, 1.0, 0.0])


def test_betainc_at_ends(to_backend):
    a, b = to_backend([0.5, 2.0]), to_backend([3.0, 0.7])
    for x, value in ((0.0, 0.0), (1.0, 1.0)):
        ends = to_backend([x, x])
        np.testing.assert_array_equal(as_numpy(dx.betainc(a, b, ends)), [value, value])
        grad_a, grad_b = dx.gradient(lambda a, b, ends=ends: dx.sum(dx.betainc(a, b, ends)), a, b)
        np.testing.assert_array_equal(as_numpy(grad_a), [0.0, 0.0])
        np.testing.assert_array_equal(as_numpy(grad_b), [0.0, 0.0])


def test_parameter_derivatives_nan_outside_domain(to_backend):
    g = dx.grad(lambda a: dx.sum(dx.gammainc(a, 1.0)))(to_backend([-1.0, 1.0]))
    assert np.isnan(as_numpy(g)[0])
    assert np.isfinite(as_numpy(g)[1])
    g = dx.grad(lambda a: dx.sum(dx.betainc(a, 1.0, 0.5)))(to_backend([0.0, 1.0]))
    assert np.isnan(as_numpy(g)[0])
    assert np.isfinite(as_numpy(g)[1])


# -- derivatives -------------------------------------------------------------------------


def test_lgamma_derivatives_are_polygammas(to_backend):
    x = to_backend(POSITIVE)

    def total_lgamma(x):
        return dx.sum(dx.lgamma(x))

    first = dx.grad(total_lgamma)
    second = dx.grad(lambda x: dx.sum(first(x)))
    third = dx.grad(lambda x: dx.sum(second(x)))
    np.testing.assert_allclose(as_numpy(first(x)), sc.psi(POSITIVE), rtol=1e-12)
    np.testing.assert_allclose(as_numpy(second(x)), sc.polygamma(1, POSITIVE), rtol=1e-12)
    np.testing.assert_allclose(as_numpy(third(x)), sc.polygamma(2, POSITIVE), rtol=1e-12)


# Points on both sides of the series / continued-fraction split (x = max(1, a)),
# with small and large shapes.
GAMMA_A = np.array([0.05, 0.3, 1.0, 2.5, 2.5, 7.0, 30.0, 30.0, 150.0, 0.8])
GAMMA_X = np.array([0.01, 2.0, 0.5, 1.0, 9.0, 7.5, 25.0, 40.0, 160.0, 30.0])


def test_gammainc_parameter_derivative_matches_finite_differences(to_backend):
    step = 1e-3 * GAMMA_A
    expected = central_difference(lambda a: sc.gammainc(a, GAMMA_X), GAMMA_A, step)
    grad_a = dx.grad(lambda a: dx.sum(dx.gammainc(a, to_backend(GAMMA_X))))(to_backend(GAMMA_A))
    np.testing.assert_allclose(as_numpy(grad_a), expected, rtol=1e-6, atol=1e-12)


def test_gammaincc_parameter_derivative_in_the_tail(to_backend):
    # Q is tiny here, and dQ/da comes straight from the continued fraction
    # instead of as 1 - P, so it keeps its relative accuracy.
    a, x = np.array([2.0, 5.0]), np.array([60.0, 80.0])
    expected = central_difference(lambda a: sc.gammaincc(a, x), a, 1e-3 * a)
    grad_a = dx.grad(lambda a: dx.sum(dx.gammaincc(a, to_backend(x))))(to_backend(a))
    np.testing.assert_allclose(as_numpy(grad_a), expected, rtol=1e-6)


# Points on both sides of the symmetry switch at x = (a + 1) / (a + b + 2),
# with parameters below and above 1 and up to 200.
BETA_A = np.array([0.5, 2.0, 0.2, 5.0, 30.0, 1.5, 200.0, 0.7, 3.0])
BETA_B = np.array([0.5, 3.0, 4.0, 0.3, 40.0, 1.5, 150.0, 8.0, 3.0])
BETA_X = np.array([0.3, 0.2, 0.9, 0.99, 0.45, 0.6, 0.58, 0.05, 0.5])


@pytest.mark.parametrize("parameter", ["a", "b"])
def test_betainc_parameter_derivatives_match_finite_differences(parameter, to_backend):
    if parameter == "a":
        expected = central_difference(lambda a: sc.betainc(a, BETA_B, BETA_X), BETA_A, 1e-3 * BETA_A)
    else:
        expected = central_difference(lambda b: sc.betainc(BETA_A, b, BETA_X), BETA_B, 1e-3 * BETA_B)
    grads = dx.gradient(
        lambda a, b: dx.sum(dx.betainc(a, b, to_backend(BETA_X))), to_backend(BETA_A), to_backend(BETA_B)
    )
    actual = as_numpy(grads[0] if parameter == "a" else grads[1])
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-13)


def test_mixed_second_derivative_of_betainc(to_backend):
    # d2I/(da dx) = d/da of the Beta density, by finite differences of the SciPy density.
    a, b, x = 1.7, 2.4, np.array([0.2, 0.5, 0.8])

    def density(a):
        return np.exp(sc.xlogy(a - 1, x) + sc.xlog1py(b - 1, -x) - sc.betaln(a, b))

    expected = central_difference(density, a, 1e-3)

    def grad_a(x):
        return dx.grad(lambda a: dx.sum(dx.betainc(a, b, x)))(dx.full_like(x, a))

    mixed = dx.jacobian(grad_a)(to_backend(x))
    np.testing.assert_allclose(np.diag(as_numpy(mixed)), expected, rtol=1e-7)


def test_gradients_inside_jax_jit():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    def loss(params, x):
        a, b = params
        return dx.sum(dx.log(dx.betainc(a, b, x)) + dx.log_ndtr(-x * 30.0) + dx.gammaincc(a, 10.0 * x))

    params = (jnp.array([1.5, 2.5]), jnp.array([3.0, 0.7]))
    x = jnp.array([0.3, 0.6])
    eager = dx.grad(loss)(params, x)
    compiled = jax.jit(dx.grad(loss))(params, x)
    for e, c in zip(eager, compiled):
        np.testing.assert_allclose(np.asarray(c), np.asarray(e), rtol=1e-12)


# -- errors -------------------------------------------------------------------------------


def test_polygamma_rejects_non_integer_order():
    with pytest.raises(TypeError, match="non-negative Python integer"):
        dx.polygamma(1.5, 2.0)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="non-negative Python integer"):
        dx.polygamma(np.array([1, 2]), 2.0)  # pyright: ignore[reportArgumentType]


def test_polygamma_rejects_negative_order():
    with pytest.raises(ValueError, match="non-negative, got -1"):
        dx.polygamma(-1, 2.0)


def test_gammainc_second_derivative_in_a_raises(to_backend):
    hessian_a = dx.grad(dx.grad(lambda a: dx.gammainc(a, 2.0)))
    with pytest.raises(MissingRuleError, match="gammainc has no second derivative with respect to its parameter a"):
        hessian_a(to_backend(1.5))


def test_betainc_second_derivative_in_parameters_raises(to_backend):
    cross = dx.grad(lambda b: dx.grad(lambda a: dx.betainc(a, b, 0.4))(to_backend(2.0)))
    with pytest.raises(MissingRuleError, match="betainc has no second derivative with respect to its parameters"):
        cross(to_backend(1.5))
    with pytest.raises(MissingRuleError, match="betainc"):
        dx.jvp(lambda a: dx.grad(lambda a: dx.betainc(a, 2.0, 0.4))(a), (to_backend(2.0),), (to_backend(1.0),))


def test_second_derivative_in_x_with_parameter_held(to_backend):
    # d2P/dx2 = density * ((a - 1) / x - 1).
    a, x = 2.5, 1.3
    second = dx.grad(dx.grad(lambda x: dx.gammainc(a, x)))(to_backend(x))
    density = np.exp(sc.xlogy(a - 1, x) - x - sc.gammaln(a))
    np.testing.assert_allclose(as_numpy(second), density * ((a - 1) / x - 1), rtol=1e-12)
