"""difflux.ppl against NumPyro (0.22), the library whose API it follows, in float64.

NumPyro is a test-only oracle here. The checks are:

- every distribution that both libraries provide: ``log_prob`` at the same
  points (drawn by NumPyro, so they lie in the support) and parameters, and
  ``mean`` and ``variance``, to about 1e-10 relative;
- the potential energy (the negative log joint in unconstrained space,
  Jacobian included) of models written in both libraries, and its gradient,
  at the same unconstrained points: NumPyro's
  ``numpyro.infer.util.potential_energy`` against ``ppl.infer.potential_energy``;
- NUTS on a normal model: posterior means of both samplers agree within
  their Monte Carlo error.

difflux runs on JAX arrays (and, for the potentials, on NumPy arrays too);
``conftest.py`` switches JAX to float64.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.diagnostics
import numpyro.distributions as nd
import numpyro.handlers
import numpyro.infer
import numpyro.infer.util
import pytest

import difflux.core as dx
from difflux import ppl
from difflux.ppl import dist

RTOL = 1e-10
ATOL = 1e-12
# The eight-schools data (Rubin 1981): the estimated effect y and its standard error sigma.
EIGHT_SCHOOLS_CSV = (
    Path(__file__).resolve().parents[1] / "packages" / "difflux-ppl" / "tests" / "data" / "eight_schools.csv"
)


def _a(*values: Any) -> jax.Array:
    return jnp.asarray(np.asarray(values, dtype=np.float64))


@dataclass
class DistCase:
    """A distribution built the same way from either library's ``distributions`` module."""

    name: str
    build: Callable[[Any], Any]
    rtol: float = RTOL


# NumPyro computes negative-binomial log-probabilities through its GammaPoisson
# (with betaln), which is accurate to about 1e-7 relative at these points;
# difflux agrees with an mpmath evaluation of the closed form to 1e-15, so
# these cases compare with NumPyro at 1e-6 only. The package's own tests
# compare them with SciPy's nbinom at full precision.
NEGATIVE_BINOMIAL_RTOL = 1e-6


# Each builder receives ``dist`` (difflux) or ``numpyro.distributions`` and
# calls the same constructor with the same arguments.
DIST_CASES = [
    DistCase("Normal", lambda d: d.Normal(_a(0.3, -1.0), _a(1.5, 0.2))),
    DistCase("Cauchy", lambda d: d.Cauchy(_a(0.3, -1.0), _a(1.5, 0.2))),
    DistCase("Laplace", lambda d: d.Laplace(_a(0.3, -1.0), _a(1.5, 0.2))),
    DistCase("Logistic", lambda d: d.Logistic(_a(0.3, -1.0), _a(1.5, 0.2))),
    DistCase("LogNormal", lambda d: d.LogNormal(_a(0.3, -1.0), _a(0.5, 0.2))),
    DistCase("HalfNormal", lambda d: d.HalfNormal(_a(1.5, 0.2))),
    DistCase("HalfCauchy", lambda d: d.HalfCauchy(_a(1.5, 0.2))),
    DistCase("Exponential", lambda d: d.Exponential(_a(1.5, 0.2))),
    DistCase("Uniform", lambda d: d.Uniform(_a(-1.0, 2.0), _a(0.5, 2.5))),
    DistCase("Weibull", lambda d: d.Weibull(_a(1.5, 0.7), _a(2.0, 0.8))),
    DistCase("Gamma", lambda d: d.Gamma(_a(2.5, 0.7), _a(1.5, 3.0))),
    DistCase("InverseGamma", lambda d: d.InverseGamma(_a(3.5, 2.7), _a(1.5, 3.0))),
    DistCase("Beta", lambda d: d.Beta(_a(2.5, 0.7), _a(1.5, 3.0))),
    DistCase("StudentT", lambda d: d.StudentT(_a(5.0, 3.5), _a(0.3, -1.0), _a(1.5, 0.2))),
    DistCase("StudentT-heavy", lambda d: d.StudentT(_a(0.8, 1.5), _a(0.3, -1.0), _a(1.5, 0.2))),
    DistCase(
        "TruncatedNormal",
        lambda d: d.TruncatedNormal(_a(0.3, -1.0), _a(1.5, 0.2), low=_a(-1.0, -1.1), high=_a(2.0, 0.0)),
    ),
    DistCase("TruncatedNormal-low", lambda d: d.TruncatedNormal(_a(0.3, -1.0), _a(1.5, 0.2), low=_a(0.5, -3.0))),
    DistCase("TruncatedNormal-high", lambda d: d.TruncatedNormal(_a(0.3, -1.0), _a(1.5, 0.2), high=_a(0.5, -3.0))),
    DistCase("Delta", lambda d: d.Delta(_a(0.3, -1.0), _a(0.5, -0.5))),
    DistCase("Bernoulli-probs", lambda d: d.Bernoulli(probs=_a(0.3, 0.9))),
    DistCase("Bernoulli-logits", lambda d: d.Bernoulli(logits=_a(-0.3, 2.0))),
    DistCase("Binomial-probs", lambda d: d.Binomial(jnp.asarray([10, 4]), probs=_a(0.3, 0.9))),
    DistCase("Binomial-logits", lambda d: d.Binomial(jnp.asarray([10, 4]), logits=_a(-0.3, 2.0))),
    DistCase("Categorical-probs", lambda d: d.Categorical(probs=_a([0.2, 0.5, 0.3], [0.6, 0.1, 0.3]))),
    DistCase("Categorical-logits", lambda d: d.Categorical(logits=_a([0.2, -1.5, 0.3], [2.0, 0.1, -0.3]))),
    DistCase("Geometric-probs", lambda d: d.Geometric(probs=_a(0.3, 0.9))),
    DistCase("Geometric-logits", lambda d: d.Geometric(logits=_a(-0.3, 2.0))),
    DistCase("Poisson", lambda d: d.Poisson(_a(0.5, 7.0))),
    DistCase(
        "NegativeBinomial-probs",
        lambda d: d.NegativeBinomial(_a(3.0, 0.5), probs=_a(0.3, 0.8)),
        rtol=NEGATIVE_BINOMIAL_RTOL,
    ),
    DistCase(
        "NegativeBinomial-logits",
        lambda d: d.NegativeBinomial(_a(3.0, 0.5), logits=_a(-0.3, 1.5)),
        rtol=NEGATIVE_BINOMIAL_RTOL,
    ),
    DistCase(
        "NegativeBinomialProbs",
        lambda d: d.NegativeBinomialProbs(_a(3.0, 0.5), _a(0.3, 0.8)),
        rtol=NEGATIVE_BINOMIAL_RTOL,
    ),
    DistCase(
        "NegativeBinomialLogits",
        lambda d: d.NegativeBinomialLogits(_a(3.0, 0.5), _a(-0.3, 1.5)),
        rtol=NEGATIVE_BINOMIAL_RTOL,
    ),
    DistCase(
        "NegativeBinomial2", lambda d: d.NegativeBinomial2(_a(3.0, 0.5), _a(2.0, 0.7)), rtol=NEGATIVE_BINOMIAL_RTOL
    ),
    DistCase("Dirichlet", lambda d: d.Dirichlet(_a([0.5, 2.0, 3.0], [1.0, 1.0, 0.3]))),
    DistCase(
        "MultivariateNormal-covariance",
        lambda d: d.MultivariateNormal(
            _a(0.3, -1.0, 2.0), covariance_matrix=_a([2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5])
        ),
    ),
    DistCase(
        "MultivariateNormal-precision",
        lambda d: d.MultivariateNormal(
            _a(0.3, -1.0, 2.0), precision_matrix=_a([2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5])
        ),
    ),
    DistCase(
        "MultivariateNormal-scale_tril",
        lambda d: d.MultivariateNormal(_a([[0.3, -1.0], [1.0, 0.0]]), scale_tril=_a([1.5, 0.0], [-0.4, 0.7])),
    ),
    DistCase("LKJCholesky", lambda d: d.LKJCholesky(3, _a(0.5, 2.0))),
    DistCase("LKJCholesky-uniform", lambda d: d.LKJCholesky(4, 1.0)),
    DistCase("Independent", lambda d: d.Independent(d.Normal(_a([0.3, -1.0], [0.0, 2.0]), 1.5), 1)),
    DistCase("to_event", lambda d: d.Gamma(_a([2.5, 0.7], [1.0, 3.0]), 2.0).to_event(2)),
    DistCase("expand", lambda d: d.Beta(_a(2.5, 0.7), _a(1.5, 3.0)).expand((3, 2))),
    DistCase("mask", lambda d: d.Normal(_a(0.3, -1.0, 2.0), 1.5).mask(jnp.asarray([True, False, True]))),
    DistCase(
        "TransformedDistribution",
        lambda d: d.TransformedDistribution(
            d.Normal(_a(0.3, -1.0), _a(0.5, 0.2)), [d.transforms.ExpTransform(), d.transforms.AffineTransform(1.0, 2.0)]
        ),
    ),
    DistCase(
        "MixtureSameFamily",
        lambda d: d.MixtureSameFamily(
            d.Categorical(probs=_a(0.2, 0.5, 0.3)), d.Normal(_a(-1.0, 0.0, 2.0), _a(0.5, 1.0, 0.7))
        ),
    ),
    DistCase(
        "MixtureGeneral",
        lambda d: d.MixtureGeneral(
            d.Categorical(probs=_a(0.4, 0.6)), [d.Normal(_a(-1.0, 0.5), 0.5), d.StudentT(4.0, _a(2.0, 0.0), 1.5)]
        ),
    ),
    DistCase(
        "Mixture",
        lambda d: d.Mixture(d.Categorical(logits=_a(0.4, -0.6)), [d.Laplace(-1.0, 0.5), d.Logistic(2.0, 1.5)]),
    ),
]


def _numpyro_points(numpyro_dist: Any, seed: int = 0) -> jax.Array:
    return numpyro_dist.sample(jax.random.PRNGKey(seed), (4,))


@pytest.mark.parametrize("case", DIST_CASES, ids=lambda case: case.name)
def test_log_prob_matches_numpyro(case: DistCase) -> None:
    expected_dist = case.build(nd)
    actual_dist = case.build(dist)
    points = _numpyro_points(expected_dist)

    actual = actual_dist.log_prob(points)
    expected = expected_dist.log_prob(points)

    assert isinstance(actual, jax.Array)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=case.rtol, atol=ATOL)


@pytest.mark.parametrize("case", DIST_CASES, ids=lambda case: case.name)
def test_shapes_match_numpyro(case: DistCase) -> None:
    expected_dist = case.build(nd)
    actual_dist = case.build(dist)

    assert actual_dist.batch_shape == expected_dist.batch_shape
    assert actual_dist.event_shape == expected_dist.event_shape


def _moment(distribution: Any, name: str) -> np.ndarray | None:
    try:
        return np.asarray(getattr(distribution, name))
    except NotImplementedError:
        return None


# difflux returns NaN for an undefined moment, such as the mean of a Student t
# with df <= 1 (as for the Cauchy). NumPyro 0.22 and SciPy 1.17 return inf
# for that mean, so the comparison expects NaN there.
UNDEFINED_MOMENTS = {("StudentT-heavy", "mean"): np.array([np.nan, -1.0])}

# Known differences from NumPyro that are defects in difflux.
MOMENT_DEFECTS: dict[tuple[str, str], str] = {}


def _moment_params() -> list[Any]:
    params = []
    for case in DIST_CASES:
        for moment in ("mean", "variance"):
            defect = MOMENT_DEFECTS.get((case.name, moment))
            marks = [pytest.mark.xfail(strict=True, reason=defect)] if defect else []
            params.append(pytest.param(case, moment, marks=marks, id=f"{case.name}-{moment}"))
    return params


@pytest.mark.parametrize(("case", "moment"), _moment_params())
def test_moments_match_numpyro(case: DistCase, moment: str) -> None:
    expected = _moment(case.build(nd), moment)
    if expected is None:
        pytest.skip(f"NumPyro has no {moment} for {case.name}")
    expected = UNDEFINED_MOMENTS.get((case.name, moment), expected)
    actual = _moment(case.build(dist), moment)
    assert actual is not None, f"difflux has no {moment} for {case.name}, NumPyro has {expected}"

    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------
# Potential energy of models written in both libraries
# ---------------------------------------------------------------------------
#
# Each model takes ``lib`` (``numpyro`` or ``difflux.ppl``), ``d`` (its
# distributions) and ``ops`` (``jax.numpy`` or ``difflux.core``) and is the
# same program in both.

EIGHT_SCHOOLS = np.loadtxt(EIGHT_SCHOOLS_CSV, delimiter=",", skiprows=1, usecols=(1, 2))


def eight_schools(lib: Any, d: Any, ops: Any, sigma: Any, y: Any) -> None:
    mu = lib.sample("mu", d.Normal(0.0, 5.0))
    tau = lib.sample("tau", d.HalfCauchy(5.0))
    with lib.plate("school", y.shape[0]):
        theta_raw = lib.sample("theta_raw", d.Normal(0.0, 1.0))
        lib.sample("obs", d.Normal(mu + tau * theta_raw, sigma), obs=y)


def logistic_regression(lib: Any, d: Any, ops: Any, x: Any, y: Any) -> None:
    weights = lib.sample("weights", d.Normal(0.0, 2.0).expand([x.shape[1]]).to_event(1))
    bias = lib.sample("bias", d.StudentT(3.0, 0.0, 5.0))
    with lib.plate("data", x.shape[0]):
        lib.sample("obs", d.Bernoulli(logits=ops.matmul(x, weights) + bias), obs=y)


def constrained_sites(lib: Any, d: Any, ops: Any, y: Any) -> None:
    """Sites on the positive reals, an interval, the simplex and Cholesky factors of correlations."""
    scales = lib.sample("scales", d.HalfNormal(2.0).expand([3]).to_event(1))
    corr_cholesky = lib.sample("corr_cholesky", d.LKJCholesky(3, 2.0))
    weights = lib.sample("weights", d.Dirichlet(ops.ones(3)))
    rho = lib.sample("rho", d.Beta(2.0, 3.0))
    # An interval whose upper bound is another site.
    shift = lib.sample("shift", d.Uniform(-1.0, rho + 1.0))
    rate = lib.sample("rate", d.Gamma(3.0, 2.0))
    lower = lib.sample("lower", d.TruncatedNormal(0.5, 1.0, low=0.0))
    loc = weights * shift + lower
    with lib.plate("data", y.shape[0]):
        lib.sample("obs", d.MultivariateNormal(loc, scale_tril=scales[:, None] * corr_cholesky), obs=y)
        lib.sample("counts", d.Poisson(rate), obs=ops.sum(ops.abs(y), axis=-1) // 1.0)


def _logistic_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 3))
    y = (rng.uniform(size=40) < 1.0 / (1.0 + np.exp(-(x @ np.array([1.0, -2.0, 0.5]) + 0.3)))).astype(np.float64)
    return x, y


def _constrained_data() -> tuple[np.ndarray]:
    rng = np.random.default_rng(11)
    return (rng.normal(size=(25, 3)) @ np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [0.2, -0.3, 0.6]]) + 0.4,)


MODELS = {
    "eight_schools": (eight_schools, (EIGHT_SCHOOLS[:, 1], EIGHT_SCHOOLS[:, 0])),
    "logistic_regression": (logistic_regression, _logistic_data()),
    "constrained_sites": (constrained_sites, _constrained_data()),
}


def _unconstrained_points(model: Callable[..., None], numpyro_args: tuple[Any, ...]) -> list[dict[str, jax.Array]]:
    """Draw three points in unconstrained space, with the shape NumPyro gives each latent site."""

    def unconstrained_values() -> dict[str, jax.Array]:
        model_trace = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace(*numpyro_args)
        return {
            name: nd.biject_to(site["fn"].support).inv(site["value"])
            for name, site in model_trace.items()
            if site["type"] == "sample" and not site["is_observed"]
        }

    # Traced abstractly, because sampling eagerly in NumPyro takes tens of seconds here.
    shapes = {name: value.shape for name, value in jax.eval_shape(unconstrained_values).items()}
    rng = np.random.default_rng(3)
    return [{name: jnp.asarray(rng.normal(scale=0.8, size=shape)) for name, shape in shapes.items()} for _ in range(3)]


@functools.cache
def _numpyro_potentials(model_name: str) -> list[tuple[dict[str, jax.Array], jax.Array, dict[str, jax.Array]]]:
    """Return NumPyro's potential energy and its gradient at each unconstrained point of a model."""
    model, data = MODELS[model_name]
    numpyro_args = (numpyro, nd, jnp, *(jnp.asarray(x) for x in data))

    # Compiled once per model: NumPyro run eagerly op by op is slow.
    @jax.jit
    def value_and_grad(params: dict[str, Any]) -> tuple[Any, Any]:
        return jax.value_and_grad(lambda p: numpyro.infer.util.potential_energy(model, numpyro_args, {}, p))(params)

    return [(point, *value_and_grad(point)) for point in _unconstrained_points(model, numpyro_args)]


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_potential_energy_matches_numpyro(model_name: str, backend: str) -> None:
    model, data = MODELS[model_name]
    to_backend = np.asarray if backend == "numpy" else jnp.asarray
    difflux_args = (ppl, dist, dx, *(to_backend(x) for x in data))

    def difflux_potential(params: dict[str, Any]) -> Any:
        return ppl.infer.potential_energy(model, difflux_args, {}, params)

    # On JAX the samplers evaluate the potential under dx.jit, and so does this test
    # (which also saves compiling every operation of an eager run).
    value_and_grad = dx.value_and_grad(difflux_potential)
    if backend == "jax":
        value_and_grad = dx.jit(value_and_grad)

    for point, expected, expected_grad in _numpyro_potentials(model_name):
        actual, actual_grad = value_and_grad({k: to_backend(v) for k, v in point.items()})

        assert dx.backend_of(actual) == backend
        np.testing.assert_allclose(float(actual), float(expected), rtol=RTOL)
        assert set(actual_grad) == set(expected_grad)
        for name in expected_grad:
            np.testing.assert_allclose(
                np.asarray(actual_grad[name]), np.asarray(expected_grad[name]), rtol=1e-9, atol=1e-11, err_msg=name
            )


# ---------------------------------------------------------------------------
# NUTS posterior means
# ---------------------------------------------------------------------------


def normal_model(lib: Any, d: Any, ops: Any, y: Any) -> None:
    mu = lib.sample("mu", d.Normal(0.0, 10.0))
    sigma = lib.sample("sigma", d.HalfNormal(5.0))
    with lib.plate("data", y.shape[0]):
        lib.sample("obs", d.Normal(mu, sigma), obs=y)


def _mean_and_mcse(draws: np.ndarray) -> tuple[float, float]:
    """Return the posterior mean of one chain's draws and its Monte Carlo standard error (from NumPyro's ESS)."""
    ess = float(numpyro.diagnostics.effective_sample_size(draws[None]))
    return float(np.mean(draws)), float(np.std(draws) / np.sqrt(ess))


def test_nuts_posterior_means_match_numpyro() -> None:
    y = np.random.default_rng(5).normal(1.5, 2.0, size=30)
    num_warmup, num_samples = 500, 1500

    expected_mcmc = numpyro.infer.MCMC(
        numpyro.infer.NUTS(normal_model), num_warmup=num_warmup, num_samples=num_samples, progress_bar=False
    )
    expected_mcmc.run(jax.random.PRNGKey(1), numpyro, nd, jnp, jnp.asarray(y))
    actual_mcmc = ppl.MCMC(ppl.NUTS(normal_model), num_warmup=num_warmup, num_samples=num_samples, progress_bar=False)
    actual_mcmc.run(dx.random.key(2, backend="jax"), ppl, dist, dx, jnp.asarray(y))

    expected_samples = expected_mcmc.get_samples()
    actual_samples = actual_mcmc.get_samples()
    for name in ("mu", "sigma"):
        expected_mean, expected_mcse = _mean_and_mcse(np.asarray(expected_samples[name]))
        actual_mean, actual_mcse = _mean_and_mcse(np.asarray(actual_samples[name]))
        # Both samplers are correct, so the difference is Monte Carlo error. A bound
        # of 4 standard errors fails by chance in about one run in 16 000.
        assert abs(actual_mean - expected_mean) < 4.0 * np.hypot(actual_mcse, expected_mcse), name
        assert actual_mcse < 0.1 * np.std(np.asarray(actual_samples[name])), f"{name}: too few effective draws"
