"""Table-driven tests of every univariate distribution against scipy.stats.

Each ``Case`` names a distribution, its parameters (batch shape ``(2,)``) and
the frozen SciPy distribution with the same parameters. The tests compare
log_prob, cdf, icdf, mean and variance with SciPy, check sample shapes and
sample moments, and check gradients of log_prob (and of reparameterised
samples) against finite differences, on both backends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from scipy import stats

import difflux.core as dx
from conftest import HAS_JAX
from difflux.core.testing import check_grads
from difflux.ppl import dist


@dataclass
class Case:
    name: str
    make: Callable[..., dist.Distribution]
    params: dict[str, Any]
    scipy: Callable[..., Any]
    # Values (beyond SciPy samples) where log_prob must match SciPy: support boundaries.
    boundary: list[float] = field(default_factory=list)
    has_cdf: bool = True
    has_icdf: bool = True
    # Parameters excluded from gradient checks (integers, say).
    no_grad: tuple[str, ...] = ()
    rtol: float = 1e-6
    discrete: bool = False


# Sampling on JAX eagerly compiles every operation once, which costs seconds
# per case, so those variants run only in the slow session.
numpy_fast_jax_slow = pytest.mark.parametrize(
    "backend",
    ["numpy", pytest.param("jax", marks=[pytest.mark.slow, pytest.mark.skipif(not HAS_JAX, reason="no JAX")])],
)


def _p(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


CASES = [
    Case(
        "Normal", dist.Normal, {"loc": _p(0.3, -1.0), "scale": _p(1.5, 0.2)}, lambda loc, scale: stats.norm(loc, scale)
    ),
    Case(
        "Normal-large",
        dist.Normal,
        {"loc": _p(1e6, -3e5), "scale": _p(1e3, 50.0)},
        lambda loc, scale: stats.norm(loc, scale),
    ),
    Case(
        "HalfNormal", dist.HalfNormal, {"scale": _p(1.5, 0.2)}, lambda scale: stats.halfnorm(scale=scale), [0.0, -1.0]
    ),
    Case(
        "LogNormal",
        dist.LogNormal,
        {"loc": _p(0.3, -1.0), "scale": _p(0.5, 1.2)},
        lambda loc, scale: stats.lognorm(s=scale, scale=np.exp(loc)),
        [0.0, -1.0],
    ),
    Case(
        "Exponential", dist.Exponential, {"rate": _p(0.5, 3.0)}, lambda rate: stats.expon(scale=1 / rate), [0.0, -1.0]
    ),
    Case(
        "Gamma",
        dist.Gamma,
        {"concentration": _p(2.5, 0.7), "rate": _p(1.5, 0.4)},
        lambda concentration, rate: stats.gamma(concentration, scale=1 / rate),
        [-1.0],
    ),
    Case(
        "Gamma-large",
        dist.Gamma,
        {"concentration": _p(500.0, 2000.0), "rate": _p(2.0, 0.01)},
        lambda concentration, rate: stats.gamma(concentration, scale=1 / rate),
        rtol=1e-5,
    ),
    Case(
        "Uniform",
        dist.Uniform,
        {"low": _p(-1.0, 2.0), "high": _p(3.0, 2.5)},
        lambda low, high: stats.uniform(low, high - low),
        [-2.0, 10.0],
    ),
    Case(
        "Cauchy",
        dist.Cauchy,
        {"loc": _p(0.3, -1.0), "scale": _p(1.5, 0.2)},
        lambda loc, scale: stats.cauchy(loc, scale),
    ),
    Case(
        "HalfCauchy", dist.HalfCauchy, {"scale": _p(1.5, 0.2)}, lambda scale: stats.halfcauchy(scale=scale), [0.0, -1.0]
    ),
    Case(
        "StudentT",
        dist.StudentT,
        {"df": _p(5.0, 1.5), "loc": _p(0.3, -1.0), "scale": _p(1.5, 0.2)},
        lambda df, loc, scale: stats.t(df, loc, scale),
    ),
    Case(
        "StudentT-large-df",
        dist.StudentT,
        {"df": _p(1e4, 0.8), "loc": _p(0.0, 2.0), "scale": _p(1.0, 3.0)},
        lambda df, loc, scale: stats.t(df, loc, scale),
        rtol=1e-5,
    ),
    Case(
        "Beta",
        dist.Beta,
        {"concentration1": _p(2.5, 0.7), "concentration0": _p(1.5, 0.4)},
        lambda a, b: stats.beta(a, b),
        [-0.5, 1.5],
    ),
    Case(
        "Beta-large",
        dist.Beta,
        {"concentration1": _p(300.0, 1.0), "concentration0": _p(400.0, 1.0)},
        lambda a, b: stats.beta(a, b),
        [0.0, 1.0],
        rtol=1e-5,
    ),
    Case(
        "InverseGamma",
        dist.InverseGamma,
        {"concentration": _p(3.5, 1.5), "rate": _p(1.5, 0.4)},
        lambda concentration, rate: stats.invgamma(concentration, scale=rate),
        [0.0, -1.0],
    ),
    Case(
        "Laplace",
        dist.Laplace,
        {"loc": _p(0.3, -1.0), "scale": _p(1.5, 0.2)},
        lambda loc, scale: stats.laplace(loc, scale),
    ),
    Case(
        "Logistic",
        dist.Logistic,
        {"loc": _p(0.3, -1.0), "scale": _p(1.5, 0.2)},
        lambda loc, scale: stats.logistic(loc, scale),
    ),
    Case(
        "Weibull",
        dist.Weibull,
        {"scale": _p(1.5, 0.6), "concentration": _p(2.5, 0.8)},
        lambda scale, concentration: stats.weibull_min(concentration, scale=scale),
        [-1.0],
    ),
    Case(
        "TruncatedNormal",
        lambda loc, scale, low, high: dist.TruncatedNormal(loc, scale, low=low, high=high),
        {"loc": _p(0.3, -1.0), "scale": _p(1.5, 0.6), "low": _p(-1.0, 0.5), "high": _p(2.0, 3.0)},
        lambda loc, scale, low, high: stats.truncnorm((low - loc) / scale, (high - loc) / scale, loc, scale),
        [-5.0, 5.0],
    ),
    Case(
        "TruncatedNormal-tail",
        lambda loc, scale, low: dist.TruncatedNormal(loc, scale, low=low),
        {"loc": _p(0.0, 1.0), "scale": _p(1.0, 0.5), "low": _p(8.0, -2.0)},
        lambda loc, scale, low: stats.truncnorm((low - loc) / scale, np.inf, loc, scale),
        rtol=1e-5,
    ),
    # -- discrete --------------------------------------------------------------------------
    Case(
        "Bernoulli",
        dist.Bernoulli,
        {"probs": _p(0.3, 0.9)},
        lambda p: stats.bernoulli(p),
        [-1.0, 2.0],
        has_icdf=False,
        discrete=True,
    ),
    Case(
        "Bernoulli-logits",
        lambda logits: dist.Bernoulli(logits=logits),
        {"logits": _p(-0.4, 3.0)},
        lambda logits: stats.bernoulli(1 / (1 + np.exp(-logits))),
        has_icdf=False,
        discrete=True,
    ),
    Case(
        "Binomial",
        dist.Binomial,
        {"total_count": _p(10.0, 3.0), "probs": _p(0.3, 0.8)},
        lambda n, p: stats.binom(n.astype(int), p),
        [-1.0, 11.0],
        has_icdf=False,
        no_grad=("total_count",),
        discrete=True,
    ),
    Case(
        "Binomial-logits",
        lambda total_count, logits: dist.Binomial(total_count, logits=logits),
        {"total_count": _p(10.0, 300.0), "logits": _p(-0.4, 1.5)},
        lambda n, logits: stats.binom(n.astype(int), 1 / (1 + np.exp(-logits))),
        has_icdf=False,
        no_grad=("total_count",),
        discrete=True,
    ),
    Case(
        "Poisson",
        dist.Poisson,
        {"rate": _p(3.5, 0.2)},
        lambda rate: stats.poisson(rate),
        [-1.0],
        has_icdf=False,
        discrete=True,
    ),
    Case(
        "Poisson-large",
        dist.Poisson,
        {"rate": _p(1e4, 5e5)},
        lambda rate: stats.poisson(rate),
        has_icdf=False,
        discrete=True,
        rtol=1e-5,
    ),
    Case(
        "Geometric",
        dist.Geometric,
        {"probs": _p(0.3, 0.8)},
        lambda p: stats.geom(p, loc=-1),
        [-1.0],
        has_icdf=False,
        discrete=True,
    ),
    Case(
        "Geometric-logits",
        lambda logits: dist.Geometric(logits=logits),
        {"logits": _p(-0.4, 1.5)},
        lambda logits: stats.geom(1 / (1 + np.exp(-logits)), loc=-1),
        has_icdf=False,
        discrete=True,
    ),
    Case(
        "NegativeBinomial",
        dist.NegativeBinomial,
        {"total_count": _p(2.5, 10.0), "probs": _p(0.4, 0.9)},
        lambda r, p: stats.nbinom(r, 1 - p),
        [-1.0],
        has_icdf=False,
        discrete=True,
    ),
    Case(
        "NegativeBinomial2",
        dist.NegativeBinomial2,
        {"mean": _p(3.0, 40.0), "concentration": _p(2.0, 0.5)},
        lambda mean, r: stats.nbinom(r, r / (r + mean)),
        has_icdf=False,
        discrete=True,
    ),
]


def _scipy_of(case: Case) -> Any:
    return case.scipy(*case.params.values())


def _make(case: Case, backend: str, **overrides: Any) -> dist.Distribution:
    params = {k: dx.asarray(v, backend=backend) for k, v in case.params.items()}
    params.update(overrides)
    return case.make(**params)


def _values(case: Case) -> np.ndarray:
    """Return SciPy samples, shape (5, 2): points inside the support for each batch member."""
    return np.asarray(_scipy_of(case).rvs(size=(5, 2), random_state=np.random.default_rng(0)), dtype=np.float64)


def _log_density(case: Case, x: np.ndarray) -> np.ndarray:
    reference = _scipy_of(case)
    return reference.logpmf(x) if case.discrete else reference.logpdf(x)


def _np(x: Any) -> np.ndarray:
    return np.asarray(dx.stop_gradient(x))


def _close(actual: Any, expected: np.ndarray, rtol: float, atol: float = 1e-10) -> None:
    actual = _np(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


ids = [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_log_prob_matches_scipy(case: Case, backend: str) -> None:
    d = _make(case, backend)
    x = _values(case)
    expected = _log_density(case, x)
    _close(d.log_prob(dx.asarray(x, backend=backend)), expected, case.rtol)


@pytest.mark.parametrize("case", [c for c in CASES if c.boundary], ids=[c.name for c in CASES if c.boundary])
@numpy_fast_jax_slow
def test_log_prob_at_boundary(case: Case, backend: str) -> None:
    d = _make(case, backend)
    x = np.repeat(np.asarray(case.boundary)[:, None], 2, axis=1)
    expected = _log_density(case, x)
    _close(d.log_prob(dx.asarray(x, backend=backend)), expected, case.rtol)


@pytest.mark.parametrize("case", [c for c in CASES if c.has_cdf], ids=[c.name for c in CASES if c.has_cdf])
@numpy_fast_jax_slow
def test_cdf_matches_scipy(case: Case, backend: str) -> None:
    d = _make(case, backend)
    x = np.concatenate([_values(case), np.repeat(np.asarray(case.boundary)[:, None], 2, axis=1).reshape(-1, 2)])
    _close(d.cdf(dx.asarray(x, backend=backend)), _scipy_of(case).cdf(x), max(case.rtol, 1e-6), atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.has_icdf], ids=[c.name for c in CASES if c.has_icdf])
@numpy_fast_jax_slow
def test_icdf_matches_scipy(case: Case, backend: str) -> None:
    d = _make(case, backend)
    q = np.repeat(np.asarray([1e-6, 0.1, 0.5, 0.9, 1 - 1e-6])[:, None], 2, axis=1)
    _close(d.icdf(dx.asarray(q, backend=backend)), _scipy_of(case).ppf(q), 1e-6)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_mean_and_variance_match_scipy(case: Case, backend: str) -> None:
    d = _make(case, backend)
    reference = _scipy_of(case)
    mean, variance = _np(d.mean), _np(d.variance)
    expected_mean, expected_variance = reference.mean(), reference.var()
    assert mean.shape == d.batch_shape
    assert variance.shape == d.batch_shape
    # SciPy returns inf or nan where the moment does not exist; NumPyro's
    # convention, which difflux follows, may return the other one of the two.
    finite = np.isfinite(expected_mean)
    np.testing.assert_allclose(mean[finite], expected_mean[finite], rtol=1e-9)
    assert np.all(~np.isfinite(mean[~finite]))
    finite = np.isfinite(expected_variance)
    np.testing.assert_allclose(variance[finite], expected_variance[finite], rtol=1e-9)
    assert np.all(~np.isfinite(variance[~finite]))


@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("sample_shape", [(), (2, 4)])
@numpy_fast_jax_slow
def test_sample_shape(case: Case, backend: str, sample_shape: tuple[int, ...]) -> None:
    d = _make(case, backend)
    key = dx.random.key(0, backend=backend)
    assert d.sample(key, sample_shape).shape == sample_shape + (2,)
    expanded = d.expand((3, 2))
    assert expanded.batch_shape == (3, 2)
    assert expanded.sample(key, sample_shape).shape == sample_shape + (3, 2)
    assert expanded.log_prob(dx.asarray(_values(case)[:1], backend=backend)).shape == (3, 2)
    assert d.to_event(1).log_prob(dx.asarray(_values(case), backend=backend)).shape == (5,)


@pytest.mark.parametrize("case", CASES, ids=ids)
@numpy_fast_jax_slow
def test_samples_lie_in_support(case: Case, backend: str) -> None:
    d = _make(case, backend)
    x = d.sample(dx.random.key(1, backend=backend), (200,))
    assert bool(np.all(_np(d.support.check(x))))
    assert np.all(np.isfinite(_np(d.log_prob(x))))


N_MOMENTS = 4000


@pytest.mark.parametrize("case", CASES, ids=ids)
@numpy_fast_jax_slow
def test_sample_mean_within_monte_carlo_error(case: Case, backend: str) -> None:
    d = _make(case, backend)
    reference = _scipy_of(case)
    x = _np(d.sample(dx.random.key(2, backend=backend), (N_MOMENTS,)))
    mean, variance = reference.mean(), reference.var()
    testable = np.isfinite(mean) & np.isfinite(variance)
    standard_error = np.sqrt(variance / N_MOMENTS)
    assert np.all(np.abs(x.mean(0) - mean)[testable] < 5 * standard_error[testable])
    if case.discrete:
        assert np.all(x == np.round(x))
        return
    # Beyond the mean: the samples follow the distribution (Kolmogorov-Smirnov).
    for i in range(2):
        assert stats.kstest(x[:, i], reference.cdf if np.ndim(mean) == 0 else _member(case, i).cdf).pvalue > 1e-4


def _member(case: Case, i: int) -> Any:
    return case.scipy(*[v[i] for v in case.params.values()])


@pytest.mark.parametrize("case", CASES, ids=ids)
@numpy_fast_jax_slow
def test_log_prob_gradient_matches_finite_differences(case: Case, backend: str) -> None:
    names = [k for k in case.params if k not in case.no_grad]
    x = dx.asarray(_values(case)[:2], backend=backend)
    fixed = {k: dx.asarray(v, backend=backend) for k, v in case.params.items() if k in case.no_grad}

    # Each parameter enters as a multiple of its own magnitude, so one finite
    # difference step suits parameters of very different sizes.
    magnitudes = {k: dx.asarray(np.abs(case.params[k]), backend=backend) for k in names}

    def log_prob(*relative: Any) -> Any:
        params = {k: r * magnitudes[k] for k, r in zip(names, relative)}
        return case.make(**params, **fixed).log_prob(x)

    args = [dx.asarray(np.sign(case.params[k]), backend=backend) for k in names]
    check_grads(log_prob, args, order=1, eps=1e-6, rtol=1e-4, atol=1e-6)


REPARAMETERISED = [c for c in CASES if c.make(**c.params).has_rsample]


@pytest.mark.parametrize("case", REPARAMETERISED, ids=[c.name for c in REPARAMETERISED])
@numpy_fast_jax_slow
def test_sample_gradient_is_unbiased_for_mean(case: Case, backend: str) -> None:
    # d/dθ E[x] = E[dx/dθ]: the pathwise derivative of the samples, averaged,
    # matches the derivative of the closed-form mean.
    reference = _scipy_of(case)
    if not np.all(np.isfinite(reference.var())):
        pytest.skip("the mean's Monte Carlo estimate needs a finite variance")
    key = dx.random.key(3, backend=backend)
    n = 1000
    for name, value in case.params.items():
        others = {k: dx.asarray(v, backend=backend) for k, v in case.params.items() if k != name}
        tangent = dx.ones_like(dx.asarray(value, backend=backend))

        def draw(theta: Any, name: str = name, others: dict[str, Any] = others) -> Any:
            return case.make(**{name: theta}, **others).sample(key, (n,))

        def mean(theta: Any, name: str = name, others: dict[str, Any] = others) -> Any:
            return case.make(**{name: theta}, **others).mean

        _, per_sample = dx.jvp(draw, (dx.asarray(value, backend=backend),), (tangent,))
        _, expected = dx.jvp(mean, (dx.asarray(value, backend=backend),), (tangent,))
        per_sample = _np(per_sample)
        # Heavy-tailed per-sample derivatives (far truncation tails) make the
        # estimated standard error unreliable near 0, hence the absolute floor.
        standard_error = per_sample.std(0) / np.sqrt(n)
        assert np.all(np.abs(per_sample.mean(0) - _np(expected)) < 5 * standard_error + 1e-6), name


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_log_prob_under_jit_matches_eager(case: Case) -> None:
    pytest.importorskip("jax")
    d = _make(case, "jax")
    x = dx.asarray(_values(case), backend="jax")

    @dx.jit
    def log_prob(params: dict[str, Any], x: Any) -> Any:
        return case.make(**params).log_prob(x)

    params = {k: dx.asarray(v, backend="jax") for k, v in case.params.items()}
    np.testing.assert_allclose(_np(log_prob(params, x)), _np(d.log_prob(x)), rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_sample_under_jit(case: Case) -> None:
    pytest.importorskip("jax")
    params = {k: dx.asarray(v, backend="jax") for k, v in case.params.items()}

    @dx.jit
    def sample(params: dict[str, Any], key: Any) -> Any:
        return case.make(**params).sample(key, (3,))

    x = sample(params, dx.random.key(0, backend="jax"))
    assert x.shape == (3, 2)
    assert bool(np.all(_np(case.make(**params).support.check(x))))


def _has_entropy(case: Case) -> bool:
    try:
        case.make(**case.params).entropy()
    except NotImplementedError:
        return False
    return True


WITH_ENTROPY = [c for c in CASES if _has_entropy(c)]


@pytest.mark.parametrize("case", WITH_ENTROPY, ids=[c.name for c in WITH_ENTROPY])
def test_entropy_matches_scipy(case: Case) -> None:
    d = case.make(**case.params)
    np.testing.assert_allclose(_np(d.entropy()), _scipy_of(case).entropy(), rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_log_prob_gradient_under_jit(case: Case) -> None:
    pytest.importorskip("jax")
    names = [k for k in case.params if k not in case.no_grad]
    params = {k: dx.asarray(v, backend="jax") for k, v in case.params.items()}
    x = dx.asarray(_values(case), backend="jax")

    def total_log_prob(differentiated: dict[str, Any], fixed: dict[str, Any]) -> Any:
        return dx.sum(case.make(**differentiated, **fixed).log_prob(x))

    differentiated = {k: params[k] for k in names}
    fixed = {k: v for k, v in params.items() if k not in names}
    compiled = dx.jit(dx.grad(total_log_prob))(differentiated, fixed)
    eager = dx.grad(total_log_prob)(differentiated, fixed)
    for name in names:
        np.testing.assert_allclose(_np(compiled[name]), _np(eager[name]), rtol=1e-10)


WITH_ICDF = [c for c in CASES if c.has_icdf]


@pytest.mark.parametrize("case", WITH_ICDF, ids=[c.name for c in WITH_ICDF])
@numpy_fast_jax_slow
def test_icdf_gradient_matches_finite_differences(case: Case, backend: str) -> None:
    names = [k for k in case.params if k not in case.no_grad]
    q = dx.asarray(np.array([[0.05, 0.3], [0.6, 0.97]]), backend=backend)
    magnitudes = {k: dx.asarray(np.abs(case.params[k]), backend=backend) for k in names}

    def quantile(*relative: Any) -> Any:
        return case.make(**{k: r * magnitudes[k] for k, r in zip(names, relative)}).icdf(q)

    args = [dx.asarray(np.sign(case.params[k]), backend=backend) for k in names]
    check_grads(quantile, args, order=1, modes=("rev",), eps=1e-6, rtol=1e-4, atol=1e-6)
