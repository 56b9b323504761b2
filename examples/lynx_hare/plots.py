"""The study's figures: posterior predictive bands, trace and density plots, the UDE forecast."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MultipleLocator

SPECIES = ("hare", "lynx")
COLOURS = {"hare": "tab:orange", "lynx": "tab:blue"}


def posterior_predictive(path: Path, years: np.ndarray, counts: np.ndarray, draws: np.ndarray) -> None:
    """Plot the data, posterior predictive median and 90% band; ``draws`` is ``(n, len(years), 2)``."""
    q5, q50, q95 = np.quantile(draws, [0.05, 0.5, 0.95], axis=0)
    figure, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for k, (axis, name) in enumerate(zip(axes, SPECIES)):
        colour = COLOURS[name]
        axis.fill_between(years, q5[:, k], q95[:, k], color=colour, alpha=0.25, label="90% predictive band")
        axis.plot(years, q50[:, k], color=colour, label="predictive median")
        axis.plot(years, counts[:, k], "o", color="black", markersize=4, label="pelts")
        axis.set_ylabel(f"{name} (thousands)")
        axis.legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("year")
    axes[-1].xaxis.set_major_locator(MultipleLocator(5))  # 1900, 1905, ...: whole years
    figure.suptitle("Lotka-Volterra posterior predictive, Hudson Bay Company pelts")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def trace(path: Path, samples: dict[str, np.ndarray]) -> None:
    """Draw trace (left) and density (right) plots; each value of ``samples`` is ``(chains, draws)``."""
    names = list(samples)
    figure, axes = plt.subplots(len(names), 2, figsize=(10, 1.6 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        chains = np.asarray(samples[name])
        for c, chain in enumerate(chains):
            axes[row, 0].plot(chain, linewidth=0.4, alpha=0.8, label=f"chain {c}")
            axes[row, 1].hist(chain, bins=40, density=True, histtype="step", linewidth=0.9)
        axes[row, 0].set_ylabel(name)
    axes[0, 0].set_title("trace")
    axes[0, 1].set_title("density, per chain")
    axes[-1, 0].set_xlabel("draw")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def ude_forecast(
    path: Path,
    years: np.ndarray,
    counts: np.ndarray,
    train_end: float,
    ude_path: np.ndarray,
    mechanistic_median: np.ndarray,
    mechanistic_band: tuple[np.ndarray, np.ndarray],
) -> None:
    """Plot the UDE's fit and forecast against the data and the mechanistic model's forecast (same fitting years)."""
    figure, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    low, high = mechanistic_band
    for k, (axis, name) in enumerate(zip(axes, SPECIES)):
        axis.axvspan(train_end + 0.5, years[-1] + 0.5, color="0.92", label="forecast years")
        axis.fill_between(years, low[:, k], high[:, k], color="tab:green", alpha=0.2, label="Lotka-Volterra 90% band")
        axis.plot(years, mechanistic_median[:, k], color="tab:green", label="Lotka-Volterra median")
        axis.plot(years, ude_path[:, k], color="tab:red", linewidth=2, label="UDE")
        axis.plot(years, counts[:, k], "o", color="black", markersize=4, label="pelts")
        axis.set_ylabel(f"{name} (thousands)")
        axis.legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("year")
    axes[-1].xaxis.set_major_locator(MultipleLocator(5))  # 1900, 1905, ...: whole years
    figure.suptitle(f"Fitted to {int(years[0])}-{int(train_end)}, forecast to {int(years[-1])}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
