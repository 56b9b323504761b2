"""ppl.summary: statistics against NumPy and the diagnostics, column names and the printed table."""

from __future__ import annotations

import numpy as np
import pytest

from difflux import ppl
from difflux.ppl import diagnostics

DRAWS = {
    "a": np.random.default_rng(0).normal(2.0, 3.0, size=(2, 300)),
    "b": np.random.default_rng(1).gamma(2.0, size=(2, 300, 2, 2)),
}


def test_statistics_match_numpy() -> None:
    table = ppl.summary(DRAWS, print_table=False)
    pooled = DRAWS["b"].reshape(-1, 2, 2)
    np.testing.assert_allclose(table["b"]["mean"], pooled.mean(0))
    np.testing.assert_allclose(table["b"]["sd"], pooled.std(0, ddof=1))
    np.testing.assert_allclose(table["b"]["q5"], np.quantile(pooled, 0.05, axis=0))
    np.testing.assert_allclose(table["b"]["q50"], np.median(pooled, axis=0))
    np.testing.assert_allclose(table["b"]["q95"], np.quantile(pooled, 0.95, axis=0))
    np.testing.assert_allclose(table["b"]["ess_bulk"], diagnostics.ess(DRAWS["b"], "bulk"))
    np.testing.assert_allclose(table["b"]["ess_tail"], diagnostics.ess(DRAWS["b"], "tail"))
    np.testing.assert_allclose(table["b"]["r_hat"], diagnostics.split_rhat(DRAWS["b"]))
    assert table["a"]["mean"].shape == ()


def test_quantile_columns_follow_prob() -> None:
    table = ppl.summary(DRAWS, prob=0.95, print_table=False)
    assert list(table["a"]) == ["mean", "sd", "q2.5", "q50", "q97.5", "ess_bulk", "ess_tail", "r_hat"]
    np.testing.assert_allclose(table["a"]["q2.5"], np.quantile(DRAWS["a"], 0.025))


def test_printed_table(capsys: pytest.CaptureFixture[str]) -> None:
    divergences = np.zeros((2, 300), dtype=bool)
    divergences[1, :3] = True
    table = ppl.summary(DRAWS, divergences=divergences)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["mean", "sd", "q5", "q50", "q95", "ess_bulk", "ess_tail", "r_hat"]
    assert lines[1].split()[0] == "a"
    assert lines[2].split()[0] == "b[0,0]"
    assert f"{float(table['a']['mean']):.2f}" in lines[1]
    assert "Number of divergences: 3" in out
    np.testing.assert_array_equal(table["divergences"]["per_chain"], [0, 3])


def test_single_chain_draws() -> None:
    table = ppl.summary({"a": DRAWS["a"][0]}, group_by_chain=False, print_table=False)
    np.testing.assert_allclose(table["a"]["mean"], DRAWS["a"][0].mean())


@pytest.mark.parametrize("num_draws", [1, 2, 3])
def test_few_draws_leave_diagnostics_nan(num_draws: int, capsys: pytest.CaptureFixture[str]) -> None:
    # A short test run (num_samples=2, say) still prints means and quantiles.
    draws = np.random.default_rng(2).normal(size=(2, num_draws, 3))
    table = ppl.summary({"x": draws}, print_table=True)
    np.testing.assert_allclose(table["x"]["mean"], draws.reshape(-1, 3).mean(0))
    for column in ("ess_bulk", "ess_tail", "r_hat"):
        assert np.isnan(table["x"][column]).all()
    assert np.isfinite(table["x"]["sd"]).all()
    assert "nan" in capsys.readouterr().out


def test_single_draw_has_nan_sd() -> None:
    table = ppl.summary(np.array([[1.5]]), print_table=False)
    assert table["Param:0"]["mean"] == 1.5
    assert np.isnan(table["Param:0"]["sd"])


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="prob must lie in"):
        ppl.summary(DRAWS, prob=1.0)
    with pytest.raises(ValueError, match="group_by_chain=False"):
        ppl.summary({"a": np.zeros(10)})
