"""The study's tables and report: posterior summary, forecast errors, report.md."""

from __future__ import annotations

import argparse
import csv
import platform
from pathlib import Path
from typing import Any

import numpy as np

from difflux import ppl

COLUMNS = ("mean", "sd", "q5", "q50", "q95", "r_hat", "ess_bulk")


def posterior_table(samples: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Summarise each parameter in one row with the columns of ``COLUMNS``; ``samples`` values are ``(chains, draws)``."""
    summary = ppl.summary(samples, prob=0.9, print_table=False)
    return {name: {column: float(summary[name][column]) for column in COLUMNS} for name in samples}


def write_summary_csv(path: Path, table: dict[str, dict[str, float]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["parameter", *COLUMNS])
        for name, row in table.items():
            writer.writerow([name, *(f"{row[column]:.6g}" for column in COLUMNS)])


def format_table(table: dict[str, dict[str, float]]) -> str:
    lines = [f"{'parameter':<11}" + "".join(f"{column:>10}" for column in COLUMNS)]
    for name, row in table.items():
        lines.append(f"{name:<11}" + "".join(f"{row[column]:>10.4g}" for column in COLUMNS))
    return "\n".join(lines)


def forecast_errors(observed: np.ndarray, ude_path: np.ndarray, mechanistic: np.ndarray) -> dict[str, dict[str, float]]:
    """Return root-mean-square errors over the forecast years, per species, in thousands of pelts and in log units."""
    errors: dict[str, dict[str, float]] = {}
    for label, predicted in (("UDE", ude_path), ("Lotka-Volterra (posterior predictive median)", mechanistic)):
        errors[label] = {}
        for k, species in enumerate(("hare", "lynx")):
            errors[label][f"{species} RMSE"] = float(np.sqrt(np.mean((predicted[:, k] - observed[:, k]) ** 2)))
            log_error = np.log(predicted[:, k]) - np.log(observed[:, k])
            errors[label][f"{species} log RMSE"] = float(np.sqrt(np.mean(log_error**2)))
    return errors


def format_forecast(errors: dict[str, dict[str, float]]) -> str:
    keys = list(next(iter(errors.values())))
    lines = ["| model | " + " | ".join(keys) + " |", "| --- |" + " --- |" * len(keys)]
    for label, row in errors.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[key]:.3g}" for key in keys) + " |")
    return "\n".join(lines)


def _markdown_table(table: dict[str, dict[str, float]]) -> str:
    lines = ["| parameter | " + " | ".join(COLUMNS) + " |", "| --- |" + " ---: |" * len(COLUMNS)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[column]:.4g}" for column in COLUMNS) + " |")
    return "\n".join(lines)


def write_report(
    path: Path,
    *,
    arguments: argparse.Namespace,
    timings: dict[str, float],
    total_seconds: float,
    table: dict[str, dict[str, float]],
    posterior: Any,
    holdout: Any,
    fit: Any,
    forecast: dict[str, dict[str, float]],
) -> None:
    r_hat = max(row["r_hat"] for row in table.values())
    ess = min(row["ess_bulk"] for row in table.values())
    lines = [
        "# Hudson Bay lynx-hare study",
        "",
        f"Command: `python examples/lynx_hare/run.py --backend {arguments.backend} --chains {arguments.chains} "
        f"--warmup {arguments.warmup} --draws {arguments.draws} --seed {arguments.seed}`",
        f"Backend: {arguments.backend}; machine: {platform.machine()}, Python {platform.python_version()}.",
        "",
        "## Timings",
        "",
        "| stage | seconds |",
        "| --- | ---: |",
        *(f"| {stage} | {seconds:.1f} |" for stage, seconds in timings.items()),
        f"| total (wall clock, stages in parallel processes overlap) | {total_seconds:.1f} |",
        "",
        "## Bayesian Lotka-Volterra, 1900-1920",
        "",
        f"NUTS, {arguments.chains} chains of {arguments.warmup} warm-up and {arguments.draws} draws. "
        f"Divergences after warm-up: {posterior.divergences}. Largest R-hat: {r_hat:.4f}; smallest bulk ESS: {ess:.0f}.",
        "",
        _markdown_table(table),
        "",
        "## Forecast of 1916-1920 from 1900-1915",
        "",
        f"The Lotka-Volterra model refitted to 1900-1915 ({holdout.divergences} divergences) and the universal "
        f"differential equation (Adam {len(fit.adam_losses)} steps to loss {fit.adam_losses[-1]:.4g}, then "
        f"L-BFGS {fit.lbfgs_iterations} iterations to loss {fit.lbfgs_loss:.4g}; the loss is the mean squared "
        "error of the log counts), each forecasting 1916-1920. Root-mean-square errors over the five forecast "
        "years, in thousands of pelts and in log units:",
        "",
        format_forecast(forecast),
        "",
        "Figures: posterior_predictive.png, trace.png, ude_forecast.png.",
        "",
    ]
    path.write_text("\n".join(lines))
