"""Tests of dx.random's Gamma-family and count samplers: distributions, shapes, errors and
the implicit reparameterisation derivative of Gamma samples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import special, stats

import difflux.core as dx
from conftest import HAS_JAX

N = 4000

# Eager JAX sampling compiles each sampler for every new shape, seconds per
# call on a loaded machine, so the JAX variants run in the slow session.
numpy_fast_jax_slow = pytest.mark.parametrize(
    "backend",
    ["numpy", pytest.param("jax", marks=[pytest.mark.slow, pytest.mark.skipif(not HAS_JAX, reason="no JAX")])],
)


def _key(backend: str, seed: int = 0) -> Any:
    return dx.random.key(seed, backend=backend)


def _np(x: Any) -> np.ndarray:
    return np.asarray(dx.stop_gradient(x))


def _assert_follows(samples: np.ndarray, cdf: Any) -> None:
    assert stats.kstest(samples.ravel(), cdf).pvalue > 1e-4


@pytest.mark.parametrize("a", [0.3, 1.0, 4.5, 300.0])
@numpy_fast_jax_slow
def test_gamma_follows_scipy(a: float, backend: str) -> None:
    x = _np(dx.random.gamma(_key(backend), a, (N,)))
    assert x.shape == (N,)
    assert x.dtype == np.float64
    _assert_follows(x, stats.gamma(a).cdf)


@numpy_fast_jax_slow
def test_gamma_broadcasts_shape_parameter(backend: str) -> None:
    a = dx.asarray(np.array([0.5, 2.0, 9.0]), backend=backend)
    x = _np(dx.random.gamma(_key(backend), a, (N, 3)))
    assert x.shape == (N, 3)
    standard_error = np.sqrt(np.array([0.5, 2.0, 9.0]) / N)
    assert np.all(np.abs(x.mean(0) - np.array([0.5, 2.0, 9.0])) < 5 * standard_error)
    assert dx.random.gamma(_key(backend), a).shape == (3,)


@numpy_fast_jax_slow
def test_beta_follows_scipy(backend: str) -> None:
    x = _np(dx.random.beta(_key(backend), 0.7, 2.5, (N,)))
    assert np.all((x > 0) & (x < 1))
    _assert_follows(x, stats.beta(0.7, 2.5).cdf)
    a = dx.asarray(np.array([1.0, 3.0]), backend=backend)
    assert dx.random.beta(_key(backend), a, 2.0).shape == (2,)


@numpy_fast_jax_slow
def test_dirichlet_marginals_are_beta(backend: str) -> None:
    alpha = np.array([0.8, 2.0, 3.5])
    x = _np(dx.random.dirichlet(_key(backend), dx.asarray(alpha, backend=backend), (N,)))
    assert x.shape == (N, 3)
    np.testing.assert_allclose(x.sum(-1), 1.0, rtol=1e-12)
    _assert_follows(x[:, 0], stats.beta(alpha[0], alpha.sum() - alpha[0]).cdf)
    assert dx.random.dirichlet(_key(backend), dx.asarray(np.ones((2, 4)), backend=backend)).shape == (2, 4)


def _chi_square_pvalue(counts: np.ndarray, pmf: np.ndarray, n: int) -> float:
    expected = pmf * n
    keep = expected > 5
    observed = np.append(counts[keep], n - counts[keep].sum())
    expected = np.append(expected[keep], n - expected[keep].sum())
    return float(stats.chisquare(observed, expected).pvalue)


@pytest.mark.parametrize("lam", [0.5, 7.0])
def test_poisson_follows_scipy(lam: float, backend: str) -> None:
    x = _np(dx.random.poisson(_key(backend), lam, (N,)))
    assert np.issubdtype(x.dtype, np.integer)
    k = np.arange(60)
    assert _chi_square_pvalue(np.bincount(x, minlength=60)[:60], stats.poisson(lam).pmf(k), N) > 1e-4


@numpy_fast_jax_slow
def test_binomial_follows_scipy(backend: str) -> None:
    x = _np(dx.random.binomial(_key(backend), 12, 0.3, (N,)))
    assert x.dtype == np.float64
    k = np.arange(13)
    counts = np.bincount(x.astype(int), minlength=13)
    assert _chi_square_pvalue(counts, stats.binom(12, 0.3).pmf(k), N) > 1e-4
    n = dx.asarray(np.array([3.0, 40.0]), backend=backend)
    assert dx.random.binomial(_key(backend), n, 0.5).shape == (2,)


@numpy_fast_jax_slow
def test_same_key_same_samples(backend: str) -> None:
    for sampler in (
        lambda k: dx.random.gamma(k, 2.0, (5,)),
        lambda k: dx.random.beta(k, 2.0, 3.0, (5,)),
        lambda k: dx.random.poisson(k, 3.0, (5,)),
        lambda k: dx.random.binomial(k, 10, 0.4, (5,)),
    ):
        np.testing.assert_array_equal(_np(sampler(_key(backend, 3))), _np(sampler(_key(backend, 3))))
        assert not np.array_equal(_np(sampler(_key(backend, 3))), _np(sampler(_key(backend, 4))))


def test_numpy_samplers_reject_invalid_parameters() -> None:
    key = _key("numpy")
    with pytest.raises(ValueError, match="a > 0"):
        dx.random.gamma(key, -1.0, (2,))
    with pytest.raises(ValueError, match="lam >= 0"):
        dx.random.poisson(key, -1.0)
    with pytest.raises(ValueError, match="integer n >= 0"):
        dx.random.binomial(key, 2.5, 0.5)
    with pytest.raises(ValueError, match="0 <= p <= 1"):
        dx.random.binomial(key, 3, 1.5)
    with pytest.raises(ValueError, match="at least one axis"):
        dx.random.dirichlet(key, 1.0)
    with pytest.raises(TypeError, match="expects one key"):
        dx.random.beta(np.zeros(3, dtype=np.uint32), 1.0, 1.0)


@pytest.mark.parametrize("a", [0.4, 2.5, 50.0])
@numpy_fast_jax_slow
def test_gamma_sample_derivative_is_quantile_derivative(a: float, backend: str) -> None:
    # The implicit derivative keeps the CDF level u = P(a, x) fixed, so it equals
    # d/da of the quantile function at u (SciPy's gammaincinv, by central differences).
    key = _key(backend, 5)
    shape = dx.asarray(a, backend=backend)
    x, dx_da = dx.jvp(lambda s: dx.random.gamma(key, s, (50,)), (shape,), (dx.ones_like(shape),))
    x, dx_da = _np(x), _np(dx_da)
    u = special.gammainc(a, x)
    h = 1e-6 * a
    expected = (special.gammaincinv(a + h, u) - special.gammaincinv(a - h, u)) / (2 * h)
    keep = (u > 1e-10) & (u < 1 - 1e-10)
    np.testing.assert_allclose(dx_da[keep], expected[keep], rtol=1e-5, atol=1e-8)


@numpy_fast_jax_slow
def test_gamma_sample_reverse_mode_matches_forward(backend: str) -> None:
    key = _key(backend, 6)
    a = dx.asarray(np.array([0.7, 3.0]), backend=backend)
    grad = _np(dx.grad(lambda s: dx.sum(dx.random.gamma(key, s, (20, 2))))(a))
    _, tangent = dx.jvp(lambda s: dx.random.gamma(key, s, (20, 2)), (a,), (dx.ones_like(a),))
    np.testing.assert_allclose(grad, _np(tangent).sum(0), rtol=1e-12)


@numpy_fast_jax_slow
def test_beta_and_dirichlet_sample_gradients_are_unbiased(backend: str) -> None:
    # E[dx/da] = d/da E[x] for pathwise derivatives: E[Beta(a, b)] = a / (a + b).
    key = _key(backend, 7)
    a, b = 1.5, 2.5
    _, per_sample = dx.jvp(
        lambda s: dx.random.beta(key, s, b, (N,)),
        (dx.asarray(a, backend=backend),),
        (dx.asarray(1.0, backend=backend),),
    )
    per_sample = _np(per_sample)
    expected = b / (a + b) ** 2
    assert abs(per_sample.mean() - expected) < 5 * per_sample.std() / np.sqrt(N)

    alpha = dx.asarray(np.array([1.0, 2.0, 3.0]), backend=backend)
    tangent = dx.asarray(np.array([1.0, 0.0, 0.0]), backend=backend)
    _, per_sample = dx.jvp(lambda s: dx.random.dirichlet(key, s, (N,)), (alpha,), (tangent,))
    per_sample = _np(per_sample)
    # d/d alpha_0 of alpha_i / sum(alpha) with sum(alpha) = 6.
    expected = np.array([5.0, -2.0, -3.0]) / 36.0
    assert np.all(np.abs(per_sample.mean(0) - expected) < 5 * per_sample.std(0) / np.sqrt(N))


@pytest.mark.slow
def test_gamma_gradient_under_jit() -> None:
    if not HAS_JAX:
        pytest.skip("JAX is not installed")
    key = _key("jax", 8)

    def mean_sample(a: Any) -> Any:
        return dx.mean(dx.random.gamma(key, a, (10,)))

    a = dx.asarray(2.0, backend="jax")
    np.testing.assert_allclose(_np(dx.jit(dx.grad(mean_sample))(a)), _np(dx.grad(mean_sample)(a)), rtol=1e-10)


def test_gamma_second_derivative_in_shape_raises() -> None:
    key = _key("numpy", 9)
    with pytest.raises(dx.MissingRuleError, match="second derivative"):
        dx.grad(dx.grad(lambda a: dx.sum(dx.random.gamma(key, a, (3,)))))(np.asarray(2.0))
