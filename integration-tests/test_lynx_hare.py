"""The lynx-hare study, in a short configuration, against its reference posterior.

examples/lynx_hare/reference/reference_posterior.csv comes from an
independent implementation of the same model (NumPyro for the model and
NUTS, Diffrax for the ODE) run for 4 chains of 1,500 draws; see
compute_reference.py beside it. Each posterior mean of the short run must
agree with the reference mean within four combined Monte Carlo standard
errors.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "examples" / "lynx_hare"
OUTPUTS = ("posterior_summary.csv", "posterior_predictive.png", "trace.png", "ude_forecast.png", "report.md")
PARAMETERS = ["alpha", "beta", "gamma", "delta", "hare0", "lynx0", "sigma_hare", "sigma_lynx"]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None or importlib.util.find_spec("matplotlib") is None,
    reason="the study's short run needs JAX and matplotlib",
)


def read_rows(path: Path) -> dict[str, dict[str, float]]:
    with path.open() as file:
        return {
            row["parameter"]: {k: float(v) for k, v in row.items() if k != "parameter"} for row in csv.DictReader(file)
        }


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lynx_hare")
    command = [
        sys.executable,
        str(STUDY / "run.py"),
        "--out",
        str(out),
        "--backend",
        "jax",
        "--chains",
        "2",
        "--warmup",
        "400",
        "--draws",
        "400",
        "--holdout-warmup",
        "200",
        "--holdout-draws",
        "200",
        "--adam-steps",
        "100",
        "--lbfgs-iterations",
        "20",
        "--no-progress",
    ]
    subprocess.run(command, check=True, cwd=ROOT, timeout=1800)
    return out


def test_study_writes_every_output(study: Path) -> None:
    for name in OUTPUTS:
        assert (study / name).is_file(), name
        assert (study / name).stat().st_size > 0, name


def test_summary_has_the_documented_rows_and_columns(study: Path) -> None:
    with (study / "posterior_summary.csv").open() as file:
        reader = csv.reader(file)
        header = next(reader)
        names = [row[0] for row in reader]
    assert header == ["parameter", "mean", "sd", "q5", "q50", "q95", "r_hat", "ess_bulk"]
    assert names == PARAMETERS


def test_posterior_means_match_reference(study: Path) -> None:
    reference = read_rows(STUDY / "reference" / "reference_posterior.csv")
    short = read_rows(study / "posterior_summary.csv")
    for name in PARAMETERS:
        ref, run = reference[name], short[name]
        mcse_run = run["sd"] / math.sqrt(run["ess_bulk"])
        error = math.hypot(mcse_run, ref["mcse_mean"])
        assert abs(run["mean"] - ref["mean"]) < 4.0 * error, (name, run["mean"], ref["mean"], error)
        assert run["r_hat"] < 1.05, (name, run["r_hat"])
