"""Convergence diagnostics of Markov chains: R-hat, effective sample size and Monte Carlo standard error.

The estimators are those of Vehtari, Gelman, Simpson, Carpenter & Bürkner,
"Rank-normalization, folding, and localization: an improved R-hat for
assessing convergence of MCMC" (Bayesian Analysis, 2021):

* chains are split in half, so a trend within a chain shows up as a
  difference between chains;
* rank normalisation maps the pooled draws to normal scores
  ``Phi^{-1}((rank - 3/8) / (S + 1/4))`` (Blom's offsets), which makes the
  diagnostics work for heavy tails and invariant to monotone transforms;
* ``split_rhat`` is the larger of the bulk R-hat (rank-normalised draws)
  and the tail R-hat (rank-normalised draws folded about the median);
* ``ess_bulk`` is the ESS of the rank-normalised split chains, ``ess_tail``
  the smaller ESS of the indicators ``x <= q05`` and ``x <= q95``;
* the ESS combines the chains' autocorrelations with the multi-chain
  variance estimate and truncates the sum by Geyer's initial monotone
  sequence, as Stan does. Its autocorrelation time is floored at
  ``1 / log10(S)``, which caps the ESS at ``S * log10(S)`` for antithetic
  chains.

Every function takes draws of shape ``(num_chains, num_draws, *shape)``
(NumPy or JAX arrays) and returns a NumPy array of shape ``shape``. The
computation is plain NumPy/SciPy: diagnostics are post-processing, not
part of a differentiated or compiled program.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special, stats

__all__ = [
    "autocorrelation",
    "autocovariance",
    "ess",
    "ess_bulk",
    "ess_tail",
    "mcse",
    "split_rhat",
]


# Split chains need two halves of at least two draws each.
MIN_DRAWS = 4


def _as_draws(x: Any, minimum_draws: int = MIN_DRAWS) -> np.ndarray:
    draws = np.asarray(x, dtype=float)
    if draws.ndim < 2:
        raise ValueError(
            f"diagnostics need draws of shape (num_chains, num_draws, ...), got shape {draws.shape}; "
            "for a single chain use x[None]"
        )
    if draws.shape[1] < minimum_draws:
        raise ValueError(f"diagnostics need at least {minimum_draws} draws per chain, got {draws.shape[1]}")
    return draws


def _split_chains(draws: np.ndarray) -> np.ndarray:
    """Split each chain into its first and last halves (dropping the middle draw of an odd count)."""
    half = draws.shape[1] // 2
    return np.concatenate([draws[:, :half], draws[:, draws.shape[1] - half :]], axis=0)


def _rank_normalize(draws: np.ndarray) -> np.ndarray:
    """Map the pooled draws of each parameter to normal scores of their average ranks."""
    flat = draws.reshape(-1, *draws.shape[2:])
    ranks = stats.rankdata(flat, method="average", axis=0)
    size = flat.shape[0]
    return special.ndtri((ranks - 0.375) / (size + 0.25)).reshape(draws.shape)


def autocovariance(x: Any, axis: int = -1) -> np.ndarray:
    """Return the biased autocovariance (divided by ``n``) of ``x`` along ``axis`` at every lag, via the FFT."""
    values = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    n = values.shape[-1]
    centered = values - values.mean(axis=-1, keepdims=True)
    size = 2 ** int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(centered, n=size)
    acov = np.fft.irfft(spectrum * np.conjugate(spectrum), n=size)[..., :n] / n
    return np.moveaxis(acov, -1, axis)


def autocorrelation(x: Any, axis: int = -1) -> np.ndarray:
    """Return the autocorrelation of ``x`` along ``axis`` at every lag (1 at lag 0)."""
    acov = np.moveaxis(autocovariance(x, axis), axis, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.moveaxis(acov / acov[..., :1], -1, axis)


def _ess_chains(chains: np.ndarray) -> float:
    """Return the multi-chain ESS of one scalar quantity, ``chains`` of shape ``(num_chains, num_draws)``."""
    num_chains, num_draws = chains.shape
    if not np.all(np.isfinite(chains)):
        return float("nan")
    if np.ptp(chains) < np.finfo(float).resolution:
        return float(chains.size)
    acov = autocovariance(chains, axis=1)
    within = acov[:, 0].mean() * num_draws / (num_draws - 1.0)
    var_plus = within * (num_draws - 1.0) / num_draws
    if num_chains > 1:
        var_plus += np.var(chains.mean(axis=1), ddof=1)
    rho = 1.0 - (within - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0

    # Geyer's initial positive sequence: sum pairs (rho_2k + rho_2k+1) while positive.
    kept = np.zeros(num_draws)
    kept[:2] = rho[:2]
    t = 1
    even, odd = rho[0], rho[1]
    while t < num_draws - 3 and even + odd > 0.0:
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0.0:
            kept[t + 1], kept[t + 2] = even, odd
        t += 2
    last = t - 2
    if even > 0.0:
        kept[last + 1] = even

    # Geyer's initial monotone sequence: the pair sums may not increase.
    t = 1
    while t <= last - 2:
        if kept[t + 1] + kept[t + 2] > kept[t - 1] + kept[t]:
            kept[t + 1] = kept[t + 2] = (kept[t - 1] + kept[t]) / 2.0
        t += 2

    total = num_chains * num_draws
    tau = -1.0 + 2.0 * kept[: last + 1].sum() + kept[last + 1 : last + 2].sum()
    tau = max(tau, 1.0 / np.log10(total))
    return total / tau


def _per_parameter(draws: np.ndarray, fn: Any) -> np.ndarray:
    shape = draws.shape[2:]
    flat = draws.reshape(draws.shape[0], draws.shape[1], -1)
    out = np.array([fn(flat[:, :, j]) for j in range(flat.shape[2])], dtype=float)
    return out.reshape(shape)


def ess(x: Any, method: str = "bulk", prob: float | tuple[float, float] = (0.05, 0.95)) -> np.ndarray:
    """Return the effective sample size of each parameter.

    Args:
        x: draws of shape ``(num_chains, num_draws, *shape)``.
        method: ``"bulk"`` (rank-normalised split chains), ``"tail"`` (the
            smaller ESS of the quantile indicators at ``prob``), ``"mean"``
            (split chains, no rank normalisation) or ``"sd"`` (the ESS of
            the squared deviations).
        prob: the tail quantiles; a single value ``p`` means ``(p, 1 - p)``.

    Returns:
        A NumPy array of shape ``shape``.
    """
    draws = _as_draws(x)
    split = _split_chains(draws)
    if method == "bulk":
        return _per_parameter(_rank_normalize(split), _ess_chains)
    if method == "mean":
        return _per_parameter(split, _ess_chains)
    if method == "sd":
        return _per_parameter(_split_chains((draws - draws.mean(axis=(0, 1))) ** 2), _ess_chains)
    if method == "tail":
        low, high = (prob, 1.0 - prob) if isinstance(prob, float | int) else prob

        def tail(chains: np.ndarray) -> float:
            ess_values = []
            for p in (low, high):
                quantile = np.quantile(chains, p)
                ess_values.append(_ess_chains(_split_chains((chains <= quantile).astype(float))))
            return min(ess_values)

        return _per_parameter(draws, tail)
    raise ValueError(f"ess: method must be 'bulk', 'tail', 'mean' or 'sd', got {method!r}")


def ess_bulk(x: Any) -> np.ndarray:
    """Return the bulk effective sample size (``ess(x, "bulk")``)."""
    return ess(x, "bulk")


def ess_tail(x: Any, prob: float | tuple[float, float] = (0.05, 0.95)) -> np.ndarray:
    """Return the tail effective sample size (``ess(x, "tail")``)."""
    return ess(x, "tail", prob)


def _rhat_chains(chains: np.ndarray) -> float:
    num_draws = chains.shape[1]
    between = num_draws * np.var(chains.mean(axis=1), ddof=1)
    within = np.mean(np.var(chains, axis=1, ddof=1))
    return float(np.sqrt((between / within + num_draws - 1.0) / num_draws))


def split_rhat(x: Any) -> np.ndarray:
    """Return the rank-normalised split R-hat: the larger of the bulk and tail (folded) R-hat.

    Values near 1 (below about 1.01) indicate that the chains mix; larger
    values mean that the chains disagree or have not converged. Needs at
    least two chains, or one chain of at least four draws (split in two).
    """
    split = _split_chains(_as_draws(x))
    bulk = _per_parameter(_rank_normalize(split), _rhat_chains)
    folded = np.abs(split - np.median(split.reshape(-1, *split.shape[2:]), axis=0))
    tail = _per_parameter(_rank_normalize(folded), _rhat_chains)
    return np.maximum(bulk, tail)


def mcse(x: Any, method: str = "mean") -> np.ndarray:
    """Return the Monte Carlo standard error of the posterior mean or standard deviation.

    ``method="mean"``: ``sd / sqrt(ess_mean)``. ``method="sd"``: the delta
    method on the variance estimate, ``sqrt(Var[(x - m)^2] / ess / (4 E[(x - m)^2]))``
    with the ESS of the squared deviations.
    """
    draws = _as_draws(x)
    if method == "mean":
        sd = draws.reshape(-1, *draws.shape[2:]).std(axis=0, ddof=1)
        return sd / np.sqrt(ess(draws, "mean"))
    if method == "sd":
        squared = (draws - draws.mean(axis=(0, 1))) ** 2
        ess_squared = _per_parameter(_split_chains(squared), _ess_chains)
        second = squared.mean(axis=(0, 1))
        variance_of_variance = ((squared**2).mean(axis=(0, 1)) - second**2) / ess_squared
        return np.sqrt(variance_of_variance / second / 4.0)
    raise ValueError(f"mcse: method must be 'mean' or 'sd', got {method!r}")
