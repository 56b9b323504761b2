"""Tests of the multivariate distributions against SciPy and independent constructions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import special, stats

import difflux.core as dx
from conftest import HAS_JAX
from difflux.core.testing import check_grads
from difflux.ppl import dist
from difflux.ppl.dist import transforms as T  # noqa: N812 (NumPyro code writes T for transforms)

# JAX's eager dispatch compiles every new operation, which costs seconds per
# test on a loaded machine. The formulas are the same code on both backends,
# so the JAX variants of the longer tests run in the slow session.
numpy_fast_jax_slow = pytest.mark.parametrize(
    "backend",
    ["numpy", pytest.param("jax", marks=[pytest.mark.slow, pytest.mark.skipif(not HAS_JAX, reason="no JAX")])],
)

COV = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, -0.3], [0.1, -0.3, 1.5]])
LOC = np.array([1.0, -2.0, 0.5])


def _np(x: Any) -> np.ndarray:
    return np.asarray(dx.stop_gradient(x))


def _mvn(backend: str, form: str, loc: np.ndarray = LOC, cov: np.ndarray = COV) -> dist.MultivariateNormal:
    matrix = {"covariance_matrix": cov, "precision_matrix": np.linalg.inv(cov), "scale_tril": np.linalg.cholesky(cov)}
    return dist.MultivariateNormal(
        dx.asarray(loc, backend=backend), **{form: dx.asarray(matrix[form], backend=backend)}
    )


FORMS = ["covariance_matrix", "precision_matrix", "scale_tril"]


@pytest.mark.parametrize("form", FORMS)
def test_mvn_log_prob_matches_scipy(form: str, backend: str) -> None:
    d = _mvn(backend, form)
    x = stats.multivariate_normal(LOC, COV).rvs(size=4, random_state=0)
    expected = stats.multivariate_normal(LOC, COV).logpdf(x)
    np.testing.assert_allclose(_np(d.log_prob(dx.asarray(x, backend=backend))), expected, rtol=1e-10)
    np.testing.assert_allclose(_np(d.covariance_matrix), COV, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(d.precision_matrix), np.linalg.inv(COV), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(d.variance), np.diag(COV), rtol=1e-10)
    np.testing.assert_allclose(_np(d.entropy()), stats.multivariate_normal(LOC, COV).entropy(), rtol=1e-10)


@numpy_fast_jax_slow
def test_mvn_batch_shapes(backend: str) -> None:
    locs = np.stack([LOC, LOC + 1.0])
    d = dist.MultivariateNormal(dx.asarray(locs, backend=backend), dx.asarray(COV, backend=backend))
    assert d.batch_shape == (2,)
    assert d.event_shape == (3,)
    key = dx.random.key(0, backend=backend)
    assert d.sample(key, (5,)).shape == (5, 2, 3)
    x = dx.asarray(np.zeros((4, 1, 3)), backend=backend)
    assert d.log_prob(x).shape == (4, 2)
    expected = [stats.multivariate_normal(m, COV).logpdf(np.zeros(3)) for m in locs]
    np.testing.assert_allclose(_np(d.log_prob(x))[0], expected, rtol=1e-10)
    assert d.expand((4, 2)).sample(key).shape == (4, 2, 3)
    scalar_loc = dist.MultivariateNormal(0.0, scale_tril=dx.asarray(np.eye(3), backend=backend))
    assert scalar_loc.event_shape == (3,)


def test_mvn_sample_moments(backend: str) -> None:
    d = _mvn(backend, "covariance_matrix")
    x = _np(d.sample(dx.random.key(1, backend=backend), (4000,)))
    standard_error = np.sqrt(np.diag(COV) / 4000)
    assert np.all(np.abs(x.mean(0) - LOC) < 5 * standard_error)
    np.testing.assert_allclose(np.cov(x.T), COV, atol=0.15)


@numpy_fast_jax_slow
def test_mvn_gradients(backend: str) -> None:
    x = dx.asarray(np.array([0.3, -1.0, 2.0]), backend=backend)
    tril = np.linalg.cholesky(COV)

    def log_prob(loc: Any, scale_tril: Any) -> Any:
        return dist.MultivariateNormal(loc, scale_tril=dx.tril(scale_tril)).log_prob(x)

    check_grads(log_prob, [dx.asarray(LOC, backend=backend), dx.asarray(tril, backend=backend)], order=1, rtol=1e-5)

    def log_prob_cov(cov: Any) -> Any:
        return dist.MultivariateNormal(
            dx.asarray(LOC, backend=backend), covariance_matrix=(cov + dx.matrix_transpose(cov)) / 2
        ).log_prob(x)

    check_grads(log_prob_cov, [dx.asarray(COV, backend=backend)], order=1, rtol=1e-5)


def test_mvn_sample_is_reparameterised(backend: str) -> None:
    key = dx.random.key(2, backend=backend)

    def mean_of_samples(loc: Any) -> Any:
        return dx.sum(dx.mean(_mvn_from(loc, backend).sample(key, (10,)), axis=0))

    g = dx.grad(mean_of_samples)(dx.asarray(LOC, backend=backend))
    np.testing.assert_allclose(_np(g), np.ones(3), rtol=1e-12)


def _mvn_from(loc: Any, backend: str) -> dist.MultivariateNormal:
    return dist.MultivariateNormal(loc, covariance_matrix=dx.asarray(COV, backend=backend))


def test_mvn_needs_exactly_one_matrix() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        dist.MultivariateNormal(LOC, covariance_matrix=COV, scale_tril=np.linalg.cholesky(COV))
    with pytest.raises(ValueError, match="square"):
        dist.MultivariateNormal(LOC, covariance_matrix=np.ones((3, 2)))
    with pytest.raises(ValueError, match="loc has 2 entries"):
        dist.MultivariateNormal(np.zeros(2), covariance_matrix=COV)


ALPHA = np.array([[1.5, 2.0, 0.7], [0.3, 5.0, 1.0]])


def test_dirichlet_matches_scipy(backend: str) -> None:
    d = dist.Dirichlet(dx.asarray(ALPHA, backend=backend))
    assert d.batch_shape == (2,)
    assert d.event_shape == (3,)
    for i in range(2):
        reference = stats.dirichlet(ALPHA[i])
        x = reference.rvs(size=3, random_state=i)
        values = _np(dist.Dirichlet(dx.asarray(ALPHA[i], backend=backend)).log_prob(dx.asarray(x, backend=backend)))
        np.testing.assert_allclose(values, reference.logpdf(x.T), rtol=1e-10)
        np.testing.assert_allclose(_np(d.mean)[i], reference.mean(), rtol=1e-12)
        np.testing.assert_allclose(_np(d.variance)[i], reference.var(), rtol=1e-12)


@numpy_fast_jax_slow
def test_dirichlet_samples(backend: str) -> None:
    d = dist.Dirichlet(dx.asarray(ALPHA, backend=backend))
    x = _np(d.sample(dx.random.key(3, backend=backend), (3000,)))
    assert x.shape == (3000, 2, 3)
    assert np.all(_np(d.support.check(x)))
    standard_error = np.sqrt(_np(d.variance) / 3000)
    assert np.all(np.abs(x.mean(0) - _np(d.mean)) < 5 * standard_error)


@numpy_fast_jax_slow
def test_dirichlet_gradients(backend: str) -> None:
    x = dx.asarray(np.array([0.2, 0.5, 0.3]), backend=backend)
    check_grads(lambda a: dist.Dirichlet(a).log_prob(x), [dx.asarray(ALPHA[0], backend=backend)], order=1)

    # d/d alpha E[x] = E[dx/d alpha]: pathwise derivatives of the samples average to the mean's derivative.
    key = dx.random.key(4, backend=backend)
    tangent = dx.asarray(np.array([1.0, 0.0, 0.0]), backend=backend)
    alpha = dx.asarray(ALPHA[0], backend=backend)
    _, per_sample = dx.jvp(lambda a: dist.Dirichlet(a).sample(key, (2000,)), (alpha,), (tangent,))
    _, expected = dx.jvp(lambda a: dist.Dirichlet(a).mean, (alpha,), (tangent,))
    per_sample = _np(per_sample)
    assert np.all(np.abs(per_sample.mean(0) - _np(expected)) < 5 * per_sample.std(0) / np.sqrt(2000))


def _lkj_log_prob_by_construction(L: np.ndarray, eta: float) -> np.ndarray:
    """Return log p(L) from the C-vine construction: Beta densities of the partial correlations minus log|J|."""
    n = L.shape[-1]
    rows, cols = np.tril_indices(n, -1)
    z = np.tanh(_np(T.CorrCholeskyTransform().inv(L)))
    beta = eta + 0.5 * (n - 2 - cols)
    log_beta = np.sum(stats.beta(beta, beta).logpdf((z + 1) / 2) - np.log(2.0), axis=-1)
    # dL_ij / dz_ij = prod_{k<j} sqrt(1 - z_ik^2), the diagonal of a triangular Jacobian.
    matrix = np.zeros(L.shape)
    matrix[..., rows, cols] = 0.5 * np.log1p(-(z**2))
    before = np.cumsum(matrix, axis=-1) - matrix
    return log_beta - np.sum(before[..., rows, cols], axis=-1)


@pytest.mark.parametrize(("n", "eta"), [(2, 1.0), (3, 0.5), (4, 1.7), (5, 20.0)])
@numpy_fast_jax_slow
def test_lkj_log_prob_matches_construction(n: int, eta: float, backend: str) -> None:
    d = dist.LKJCholesky(n, dx.asarray(eta, backend=backend))
    L = d.sample(dx.random.key(5, backend=backend), (6,))
    assert L.shape == (6, n, n)
    assert np.all(_np(dist.constraints.corr_cholesky.check(L)))
    np.testing.assert_allclose(_np(d.log_prob(L)), _lkj_log_prob_by_construction(_np(L), eta), rtol=1e-9)


def test_lkj_two_dimensional_closed_form() -> None:
    # For n = 2 the correlation r has density (1 - r^2)^(eta - 1) / (2^(2 eta - 1) B(eta, eta)).
    eta = 2.5
    r = np.array([-0.6, 0.1, 0.9])
    L = np.zeros((3, 2, 2))
    L[:, 0, 0] = 1.0
    L[:, 1, 0] = r
    L[:, 1, 1] = np.sqrt(1 - r**2)
    expected = (eta - 1) * np.log1p(-(r**2)) - (2 * eta - 1) * np.log(2) - special.betaln(eta, eta)
    np.testing.assert_allclose(_np(dist.LKJCholesky(2, eta).log_prob(L)), expected, rtol=1e-12)


def test_lkj_marginal_correlations_are_beta() -> None:
    # Each off-diagonal correlation of an n x n LKJ(eta) matrix is 2 B - 1 with B ~ Beta(b, b), b = eta - 1 + n / 2.
    n, eta = 4, 1.5
    L = _np(dist.LKJCholesky(n, eta).sample(dx.random.key(6, backend="numpy"), (3000,)))
    corr = L @ np.swapaxes(L, -1, -2)
    b = eta - 1 + n / 2
    assert stats.kstest((corr[:, 3, 1] + 1) / 2, stats.beta(b, b).cdf).pvalue > 1e-4
    np.testing.assert_allclose(np.diagonal(corr, axis1=-2, axis2=-1), 1.0, rtol=1e-12)


@numpy_fast_jax_slow
def test_lkj_gradient_in_concentration(backend: str) -> None:
    L = dist.LKJCholesky(3, 1.0).sample(dx.random.key(7, backend=backend))
    check_grads(lambda eta: dist.LKJCholesky(3, eta).log_prob(L), [dx.asarray(1.3, backend=backend)], order=1)


def test_lkj_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="dimension >= 2"):
        dist.LKJCholesky(1)
    with pytest.raises(NotImplementedError, match="cvine"):
        dist.LKJCholesky(3, sample_method="onion")


PROBS = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])


@pytest.mark.parametrize("form", ["probs", "logits"])
def test_categorical_log_prob_and_samples(form: str, backend: str) -> None:
    param = PROBS if form == "probs" else np.log(PROBS) + 1.7
    d = dist.Categorical(**{form: dx.asarray(param, backend=backend)})
    assert d.batch_shape == (2,)
    values = np.array([[0, 2], [1, 1], [2, 0]])
    expected = np.log(PROBS[[0, 1], values])
    np.testing.assert_allclose(_np(d.log_prob(dx.asarray(values, backend=backend))), expected, rtol=1e-12)
    x = _np(d.sample(dx.random.key(8, backend=backend), (4000,)))
    assert x.shape == (4000, 2)
    assert np.issubdtype(x.dtype, np.integer)
    frequencies = np.stack([np.bincount(x[:, i], minlength=3) / 4000 for i in range(2)])
    assert np.all(np.abs(frequencies - PROBS) < 5 * np.sqrt(PROBS * (1 - PROBS) / 4000))
    np.testing.assert_allclose(_np(d.probs), PROBS, rtol=1e-12)
    np.testing.assert_allclose(_np(d.entropy()), [stats.entropy(p) for p in PROBS], rtol=1e-12)


def test_categorical_gradient(backend: str) -> None:
    values = dx.asarray(np.array([0, 2]), backend=backend)
    check_grads(
        lambda logits: dist.Categorical(logits=logits).log_prob(values), [dx.asarray(PROBS, backend=backend)], order=1
    )


@numpy_fast_jax_slow
def test_enumerate_support(backend: str) -> None:
    d = dist.Categorical(dx.asarray(PROBS, backend=backend))
    support = _np(d.enumerate_support())
    assert support.shape == (3, 2)
    np.testing.assert_array_equal(support[:, 0], [0, 1, 2])
    assert _np(d.enumerate_support(expand=False)).shape == (3, 1)
    total = dx.logsumexp(d.log_prob(d.enumerate_support()), axis=0)
    np.testing.assert_allclose(_np(total), 0.0, atol=1e-12)
    b = dist.Bernoulli(dx.asarray(np.array([0.2, 0.7]), backend=backend))
    np.testing.assert_allclose(_np(dx.logsumexp(b.log_prob(b.enumerate_support()), axis=0)), 0.0, atol=1e-12)
    n = dist.Binomial(4, dx.asarray(np.array([0.2, 0.7]), backend=backend))
    assert n.enumerate_support().shape == (5, 2)
    np.testing.assert_allclose(_np(dx.logsumexp(n.log_prob(n.enumerate_support()), axis=0)), 0.0, atol=1e-12)


@numpy_fast_jax_slow
def test_mixture_same_family_matches_weighted_sum(backend: str) -> None:
    weights = np.array([0.3, 0.7])
    locs, scales = np.array([-1.0, 2.0]), np.array([0.5, 1.5])
    mix = dist.MixtureSameFamily(
        dist.Categorical(dx.asarray(weights, backend=backend)),
        dist.Normal(dx.asarray(locs, backend=backend), dx.asarray(scales, backend=backend)),
    )
    x = np.array([-1.5, 0.0, 2.5])
    expected = np.log(sum(w * stats.norm(m, s).pdf(x) for w, m, s in zip(weights, locs, scales)))
    np.testing.assert_allclose(_np(mix.log_prob(dx.asarray(x, backend=backend))), expected, rtol=1e-12)
    expected_cdf = sum(w * stats.norm(m, s).cdf(x) for w, m, s in zip(weights, locs, scales))
    np.testing.assert_allclose(_np(mix.cdf(dx.asarray(x, backend=backend))), expected_cdf, rtol=1e-12)
    mean = weights @ locs
    variance = weights @ (scales**2 + locs**2) - mean**2
    np.testing.assert_allclose(_np(mix.mean), mean, rtol=1e-12)
    np.testing.assert_allclose(_np(mix.variance), variance, rtol=1e-12)
    samples = _np(mix.sample(dx.random.key(9, backend=backend), (4000,)))
    assert samples.shape == (4000,)
    assert abs(samples.mean() - mean) < 5 * np.sqrt(variance / 4000)
    assert dist.Mixture(mix.mixing_distribution, mix.component_distribution).batch_shape == ()


@numpy_fast_jax_slow
def test_mixture_of_multivariate_components(backend: str) -> None:
    locs = np.array([[0.0, 0.0], [3.0, -1.0]])
    components = dist.MultivariateNormal(dx.asarray(locs, backend=backend), dx.asarray(np.eye(2), backend=backend))
    mix = dist.MixtureSameFamily(dist.Categorical(dx.asarray(np.array([0.5, 0.5]), backend=backend)), components)
    assert mix.event_shape == (2,)
    x = np.array([[1.0, 0.5], [2.0, -2.0]])
    expected = np.log(sum(0.5 * stats.multivariate_normal(m, np.eye(2)).pdf(x) for m in locs))
    np.testing.assert_allclose(_np(mix.log_prob(dx.asarray(x, backend=backend))), expected, rtol=1e-12)
    assert mix.sample(dx.random.key(10, backend=backend), (7,)).shape == (7, 2)
    np.testing.assert_allclose(_np(mix.mean), locs.mean(0), rtol=1e-12)


@numpy_fast_jax_slow
def test_mixture_general(backend: str) -> None:
    weights = dx.asarray(np.array([0.4, 0.6]), backend=backend)
    mix = dist.Mixture(dist.Categorical(weights), [dist.Normal(-1.0, 0.5), dist.Gamma(2.0, 1.0)])
    x = np.array([0.5, 2.0])
    expected = np.log(0.4 * stats.norm(-1, 0.5).pdf(x) + 0.6 * stats.gamma(2.0).pdf(x))
    np.testing.assert_allclose(_np(mix.log_prob(dx.asarray(x, backend=backend))), expected, rtol=1e-12)
    assert mix.sample(dx.random.key(11, backend=backend), (5,)).shape == (5,)
    np.testing.assert_allclose(_np(mix.mean), 0.4 * -1.0 + 0.6 * 2.0, rtol=1e-12)


def test_mixture_rejects_mismatched_components() -> None:
    with pytest.raises(ValueError, match="3 categories"):
        dist.MixtureSameFamily(dist.Categorical(np.ones(3) / 3), dist.Normal(np.zeros(2), 1.0))
    with pytest.raises(TypeError, match="Categorical"):
        dist.MixtureSameFamily(dist.Normal(0.0, 1.0), dist.Normal(np.zeros(2), 1.0))  # type: ignore[arg-type]


def test_delta(backend: str) -> None:
    v = dx.asarray(np.array([[1.0, 2.0], [3.0, 4.0]]), backend=backend)
    d = dist.Delta(v, log_density=0.5, event_dim=1)
    assert d.batch_shape == (2,)
    assert d.event_shape == (2,)
    assert d.sample(dx.random.key(0, backend=backend), (3,)).shape == (3, 2, 2)
    values = _np(d.log_prob(dx.asarray(np.array([[1.0, 2.0], [3.0, 5.0]]), backend=backend)))
    np.testing.assert_array_equal(values, [0.5, -np.inf])


@numpy_fast_jax_slow
def test_transformed_distribution_matches_lognormal(backend: str) -> None:
    loc, scale = dx.asarray(np.array([0.3, -1.0]), backend=backend), dx.asarray(np.array([0.5, 1.2]), backend=backend)
    td = dist.TransformedDistribution(dist.Normal(loc, scale), [T.ExpTransform(), T.AffineTransform(1.0, 2.0)])
    x = np.array([[1.5, 3.0], [2.0, 1.1]])
    reference = stats.lognorm(s=np.array([0.5, 1.2]), loc=1.0, scale=2.0 * np.exp(np.array([0.3, -1.0])))
    np.testing.assert_allclose(_np(td.log_prob(dx.asarray(x, backend=backend))), reference.logpdf(x), rtol=1e-12)
    np.testing.assert_allclose(_np(td.cdf(dx.asarray(x, backend=backend))), reference.cdf(x), rtol=1e-12)
    q = np.array([[0.1, 0.9]])
    np.testing.assert_allclose(_np(td.icdf(dx.asarray(q, backend=backend))), reference.ppf(q), rtol=1e-10)
    assert td.sample(dx.random.key(0, backend=backend), (4,)).shape == (4, 2)
    decreasing = dist.TransformedDistribution(dist.Normal(0.0, 1.0), T.AffineTransform(0.0, -2.0))
    np.testing.assert_allclose(_np(decreasing.cdf(np.array([1.0]))), stats.norm(0, 2).cdf([1.0]), rtol=1e-12)


@numpy_fast_jax_slow
def test_transformed_distribution_with_event_transform(backend: str) -> None:
    # Normal noise pushed through stick breaking: a distribution on the simplex.
    base = dist.Normal(dx.asarray(np.zeros(3), backend=backend), 1.0)
    td = dist.TransformedDistribution(base, T.StickBreakingTransform())
    assert td.batch_shape == ()
    assert td.event_shape == (4,)
    y = td.sample(dx.random.key(1, backend=backend), (5,))
    assert y.shape == (5, 4)
    assert np.all(_np(td.support.check(y)))
    x = T.StickBreakingTransform().inv(y)
    expected = np.sum(stats.norm().logpdf(_np(x)), axis=-1) - _np(T.StickBreakingTransform().log_abs_det_jacobian(x, y))
    np.testing.assert_allclose(_np(td.log_prob(y)), expected, rtol=1e-10)


def test_independent_and_expand_shapes(backend: str) -> None:
    d = dist.Normal(dx.asarray(np.zeros((2, 3)), backend=backend), 1.0)
    ind = d.to_event(1)
    assert ind.batch_shape == (2,)
    assert ind.event_shape == (3,)
    assert ind.sample(dx.random.key(0, backend=backend), (4,)).shape == (4, 2, 3)
    x = dx.asarray(np.full((2, 3), 0.5), backend=backend)
    np.testing.assert_allclose(_np(ind.log_prob(x)), np.full(2, 3 * stats.norm().logpdf(0.5)), rtol=1e-12)
    assert d.to_event().event_shape == (2, 3)
    assert ind.expand((5, 2)).batch_shape == (5, 2)
    assert ind.expand((5, 2)).sample(dx.random.key(1, backend=backend)).shape == (5, 2, 3)
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims"):
        d.to_event(3)
    with pytest.raises(ValueError, match="cannot expand"):
        d.expand((4, 3))


def test_mask(backend: str) -> None:
    d = dist.Normal(dx.asarray(np.zeros(3), backend=backend), 1.0)
    mask = dx.asarray(np.array([True, False, True]), backend=backend)
    values = _np(d.mask(mask).log_prob(dx.asarray(np.ones(3), backend=backend)))
    np.testing.assert_allclose(values, [stats.norm().logpdf(1.0), 0.0, stats.norm().logpdf(1.0)], rtol=1e-12)
    assert d.mask(True) is d


def test_expand_size_one_axes_draws_independent_samples(backend: str) -> None:
    d = dist.Normal(dx.asarray(np.array([[0.0], [100.0]]), backend=backend), 1.0)
    expanded = d.expand((3, 2, 4))
    x = _np(expanded.sample(dx.random.key(12, backend=backend), (5,)))
    assert x.shape == (5, 3, 2, 4)
    # Each batch member keeps its own location, and the expanded axes hold distinct draws.
    np.testing.assert_allclose(x.mean(axis=(0, 1, 3)), [0.0, 100.0], atol=1.0)
    assert len(np.unique(x[0, 0, 1])) == 4
    mvn = dist.MultivariateNormal(dx.asarray(np.zeros((1, 2)), backend=backend), dx.asarray(np.eye(2), backend=backend))
    assert mvn.expand((3,)).sample(dx.random.key(13, backend=backend), (2,)).shape == (2, 3, 2)
