"""Tests of argument validation: invalid parameters, observations outside the support, and jit."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from difflux.ppl import dist


@pytest.mark.parametrize(
    ("make", "name", "shown"),
    [
        (lambda: dist.Normal(0.0, -1.0, validate_args=True), "scale", "-1.0"),
        (lambda: dist.Gamma(np.array([1.0, -2.0]), 1.0, validate_args=True), "concentration", "-2"),
        (lambda: dist.Beta(1.0, 0.0, validate_args=True), "concentration0", "0"),
        (lambda: dist.Bernoulli(1.5, validate_args=True), "probs", "1.5"),
        (lambda: dist.Categorical(np.array([0.5, 0.6]), validate_args=True), "probs", "0.6"),
        (lambda: dist.Poisson(-3.0, validate_args=True), "rate", "-3"),
        (lambda: dist.Binomial(2.5, 0.5, validate_args=True), "total_count", "2.5"),
        (lambda: dist.Dirichlet(np.array([1.0, -1.0]), validate_args=True), "concentration", "-1"),
        (lambda: dist.StudentT(np.nan, validate_args=True), "df", "nan"),
        (lambda: dist.LKJCholesky(3, -1.0, validate_args=True), "concentration", "-1"),
        (
            lambda: dist.MultivariateNormal(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]), validate_args=True),
            "covariance_matrix",
            "2",
        ),
    ],
)
def test_invalid_parameter_names_parameter_and_value(make: Any, name: str, shown: str) -> None:
    with pytest.raises(ValueError, match="got an invalid parameter") as info:
        make()
    message = str(info.value)
    assert f"parameter {name} = " in message
    assert shown in message


def test_error_names_the_distribution() -> None:
    with pytest.raises(ValueError, match=r"^HalfNormal got an invalid parameter scale = -2\.0"):
        dist.HalfNormal(-2.0, validate_args=True)


def test_uniform_rejects_empty_interval() -> None:
    with pytest.raises(ValueError, match="low must be less than high"):
        dist.Uniform(2.0, 1.0, validate_args=True)


def test_truncated_normal_rejects_empty_interval() -> None:
    with pytest.raises(ValueError, match=r"^TruncatedNormal got invalid bounds low = 2\.0 and high = 1\.0"):
        dist.TruncatedNormal(0.0, 1.0, low=2.0, high=1.0, validate_args=True)
    with pytest.raises(ValueError, match=r"^TruncatedNormal got an invalid parameter scale = -1\.0"):
        dist.TruncatedNormal(0.0, -1.0, low=0.0, high=1.0, validate_args=True)
    assert dist.TruncatedNormal(0.0, 1.0, low=2.0, validate_args=True).batch_shape == ()


def test_string_parameter_raises() -> None:
    with pytest.raises(TypeError, match=r"distribution parameters must be numbers or numeric arrays, got 'a'"):
        dist.Normal("a", 1.0)


def test_validation_off_by_default() -> None:
    d = dist.Normal(0.0, -1.0)
    assert not d._validate_args


def test_global_switch() -> None:
    with dist.validation_enabled():
        with pytest.raises(ValueError, match="scale"):
            dist.Normal(0.0, -1.0)
        # An explicit validate_args=False still wins.
        dist.Normal(0.0, -1.0, validate_args=False)
    dist.Normal(0.0, -1.0)


def test_sample_outside_support_warns_at_caller() -> None:
    d = dist.Exponential(1.0, validate_args=True)
    with pytest.warns(UserWarning, match=r"outside its support nonnegative") as record:
        d.log_prob(np.array([1.0, -2.0]))
    assert record[0].filename == __file__


def test_sample_outside_support_errors_when_configured() -> None:
    with dist.validation_enabled(invalid_sample="error"):
        d = dist.Beta(2.0, 2.0)
        with pytest.raises(ValueError, match=r"Beta.log_prob got a value outside its support unit_interval"):
            d.log_prob(1.5)
        with pytest.raises(ValueError, match="Categorical"):
            dist.Categorical(np.array([0.5, 0.5])).log_prob(2)


def test_valid_samples_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dist.Gamma(2.0, 1.0, validate_args=True).log_prob(np.array([0.5, 3.0]))
        dist.Binomial(5, 0.3, validate_args=True).log_prob(np.array([0.0, 5.0]))
        dist.Dirichlet(np.ones(3), validate_args=True).log_prob(np.array([0.2, 0.3, 0.5]))


def test_invalid_sample_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="'warn' or 'error'"):
        dist.enable_validation(True, invalid_sample="ignore")


def test_validation_sees_through_gradient_tracers() -> None:
    def log_prob(scale: Any) -> Any:
        return dist.Normal(0.0, scale, validate_args=True).log_prob(1.0)

    assert np.isfinite(float(dx.grad(log_prob)(np.asarray(2.0))))
    with pytest.raises(ValueError, match="scale"):
        dx.grad(log_prob)(np.asarray(-2.0))


def test_validation_is_skipped_for_traced_values_under_jit() -> None:
    pytest.importorskip("jax")

    @dx.jit
    def log_prob(scale: Any, x: Any) -> Any:
        return dist.Normal(0.0, scale, validate_args=True).log_prob(x)

    # Values are unknown while tracing, so neither check can run: no error, NaN out.
    value = np.asarray(log_prob(dx.asarray(-1.0, backend="jax"), dx.asarray(0.5, backend="jax")))
    assert np.isnan(value)
    d = dist.HalfNormal(dx.asarray(1.0, backend="jax"), validate_args=True)
    assert np.isinf(np.asarray(dx.jit(d.log_prob)(dx.asarray(-1.0, backend="jax"))))


def test_probs_and_logits_are_exclusive() -> None:
    with pytest.raises(ValueError, match="exactly one of probs and logits, got both"):
        dist.Bernoulli(0.5, 0.0)
    with pytest.raises(ValueError, match="got neither"):
        dist.Categorical()
