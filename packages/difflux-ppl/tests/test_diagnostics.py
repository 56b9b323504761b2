"""Diagnostics against ArviZ on the same draws: rank-normalised split R-hat, bulk and tail ESS, MCSE."""

from __future__ import annotations

import numpy as np
import pytest

from difflux.ppl import diagnostics

az = pytest.importorskip("arviz")


def autoregressive_draws(seed: int, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """AR(1) chains with correlation ``rho``, shape ``(chains, draws, *rest)``."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape)
    draws = np.empty(shape)
    draws[:, 0] = noise[:, 0]
    for t in range(1, shape[1]):
        draws[:, t] = rho * draws[:, t - 1] + np.sqrt(1 - rho**2) * noise[:, t]
    return draws


CASES = {
    "mixing": autoregressive_draws(0, (4, 400, 3), 0.5),
    "sticky, odd length": autoregressive_draws(1, (3, 301, 2), 0.95),
    "heavy tails": np.exp(3.0 * autoregressive_draws(2, (4, 250, 2), 0.3)),
    "shifted chain": autoregressive_draws(3, (4, 200, 2), 0.2) + np.array([0.0, 0.0, 0.0, 1.5])[:, None, None],
    "antithetic": np.stack([(-1.0) ** np.arange(400) * np.random.default_rng(4).standard_normal(400)] * 2)[..., None],
}


def arviz_value(function, draws: np.ndarray, **kwargs) -> np.ndarray:
    return np.asarray(function(az.convert_to_dataset({"x": draws}), **kwargs)["x"].values)


@pytest.mark.parametrize("case", list(CASES))
def test_split_rhat_matches_arviz(case: str) -> None:
    draws = CASES[case]
    np.testing.assert_allclose(diagnostics.split_rhat(draws), arviz_value(az.rhat, draws), rtol=1e-10)


@pytest.mark.parametrize("method", ["bulk", "tail", "mean", "sd"])
@pytest.mark.parametrize("case", list(CASES))
def test_ess_matches_arviz(case: str, method: str) -> None:
    draws = CASES[case]
    np.testing.assert_allclose(diagnostics.ess(draws, method), arviz_value(az.ess, draws, method=method), rtol=1e-10)


@pytest.mark.parametrize("method", ["mean", "sd"])
@pytest.mark.parametrize("case", list(CASES))
def test_mcse_matches_arviz(case: str, method: str) -> None:
    draws = CASES[case]
    np.testing.assert_allclose(diagnostics.mcse(draws, method), arviz_value(az.mcse, draws, method=method), rtol=1e-10)


def test_shifted_chain_flags_rhat() -> None:
    assert np.all(diagnostics.split_rhat(CASES["shifted chain"]) > 1.1)
    assert np.all(diagnostics.split_rhat(CASES["mixing"]) < 1.02)


def test_independent_draws_have_full_ess() -> None:
    draws = np.random.default_rng(5).standard_normal((4, 1000))
    ess = diagnostics.ess(draws, "bulk")
    assert 3400 < float(ess) < 4600


def test_constant_draws() -> None:
    draws = np.ones((2, 10))
    assert float(diagnostics.ess(draws, "mean")) == 20.0


def test_autocorrelation_of_ar1() -> None:
    draws = autoregressive_draws(6, (1, 20000), 0.7)[0]
    rho = diagnostics.autocorrelation(draws)
    np.testing.assert_allclose(rho[:4], 0.7 ** np.arange(4), atol=0.03)
    np.testing.assert_allclose(diagnostics.autocovariance(draws)[0], draws.var(), rtol=1e-12)


def test_jax_draws_accepted() -> None:
    jnp = pytest.importorskip("jax.numpy")
    draws = CASES["mixing"]
    np.testing.assert_allclose(diagnostics.ess(jnp.asarray(draws), "bulk"), diagnostics.ess(draws, "bulk"), rtol=1e-6)


def test_invalid_input() -> None:
    with pytest.raises(ValueError, match=r"shape \(num_chains, num_draws, \.\.\.\)"):
        diagnostics.split_rhat(np.zeros(10))
    with pytest.raises(ValueError, match="at least 4 draws"):
        diagnostics.ess(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="method must be"):
        diagnostics.ess(np.zeros((2, 10)), "median")
    with pytest.raises(ValueError, match="method must be"):
        diagnostics.mcse(np.zeros((2, 10)), "quantile")
