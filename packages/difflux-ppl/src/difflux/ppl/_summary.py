"""``summary``: the table of posterior statistics and convergence diagnostics."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from . import diagnostics


def _quantile_names(prob: float) -> tuple[str, str, str]:
    low = 100.0 * (1.0 - prob) / 2.0
    high = 100.0 - low
    return f"q{low:g}", "q50", f"q{high:g}"


def _as_chains(values: Any, group_by_chain: bool) -> np.ndarray:
    array = np.asarray(values)
    if not group_by_chain:
        array = array[None]
    if array.ndim < 2:
        raise ValueError(
            f"summary: with group_by_chain=True every value needs shape (num_chains, num_draws, ...), "
            f"got shape {array.shape}; pass group_by_chain=False for draws of shape (num_draws, ...)"
        )
    return array.astype(float) if array.dtype == bool else array


def summary(
    samples: Any,
    prob: float = 0.9,
    group_by_chain: bool = True,
    divergences: Any = None,
    print_table: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Compute, print and return the posterior summary of each sampled site.

    For every site the statistics are the mean, the standard deviation
    ``sd``, the quantiles at ``(1 - prob) / 2``, 0.5 and ``(1 + prob) / 2``
    (named ``q5``, ``q50``, ``q95`` for ``prob=0.9``), the bulk and tail
    effective sample sizes and the rank-normalised split R-hat (see
    :mod:`difflux.ppl.diagnostics`). With fewer than 4 draws per chain the
    effective sample sizes and R-hat are NaN, and with one draw in all so
    is ``sd``.

    Args:
        samples: a dict from site name to draws (or a single array), each of
            shape ``(num_chains, num_draws, *shape)``, as
            ``MCMC.get_samples(group_by_chain=True)`` returns.
        prob: the probability mass between the outer quantiles, in (0, 1).
        group_by_chain: ``False`` when the draws have shape ``(num_draws, *shape)``
            (one chain).
        divergences: divergent-transition flags of shape ``(num_chains, num_draws)``;
            their count is printed under the table and returned as
            ``result["divergences"]["total"]``.
        print_table: print the table.

    Returns:
        ``{site: {statistic: array of the site's shape}}``.

    Examples:
        >>> import numpy as np
        >>> from difflux import ppl
        >>> draws = np.random.default_rng(0).normal(size=(2, 500))
        >>> table = ppl.summary({"x": draws}, print_table=False)
        >>> sorted(table["x"])
        ['ess_bulk', 'ess_tail', 'mean', 'q5', 'q50', 'q95', 'r_hat', 'sd']
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"summary: prob must lie in (0, 1), got {prob}")
    if not isinstance(samples, dict):
        samples = {"Param:0": samples}
    low_name, mid_name, high_name = _quantile_names(prob)

    result: dict[str, dict[str, np.ndarray]] = {}
    for name, values in samples.items():
        draws = _as_chains(values, group_by_chain)
        pooled = draws.reshape(-1, *draws.shape[2:])
        low, mid, high = np.quantile(pooled, [(1.0 - prob) / 2.0, 0.5, (1.0 + prob) / 2.0], axis=0)
        nan_entries = np.full(draws.shape[2:], np.nan)
        # Too few draws for the diagnostics leave them NaN, so that a short
        # test run still prints its means and quantiles.
        enough_draws = draws.shape[1] >= diagnostics.MIN_DRAWS
        result[name] = {
            "mean": pooled.mean(axis=0),
            "sd": pooled.std(axis=0, ddof=1) if len(pooled) > 1 else nan_entries,
            low_name: low,
            mid_name: mid,
            high_name: high,
            "ess_bulk": diagnostics.ess(draws, "bulk") if enough_draws else nan_entries,
            "ess_tail": diagnostics.ess(draws, "tail") if enough_draws else nan_entries,
            "r_hat": diagnostics.split_rhat(draws) if enough_draws else nan_entries,
        }
    if divergences is not None:
        flags = np.asarray(divergences)
        result["divergences"] = {
            "total": np.asarray(int(flags.sum())),
            "per_chain": flags.reshape(flags.shape[0], -1).sum(axis=1),
        }
    if print_table:
        print(format_summary(result))
    return result


def format_summary(table: dict[str, dict[str, np.ndarray]]) -> str:
    """Format the result of :func:`summary` as a text table, one row per scalar element."""
    rows = []
    columns: list[str] = []
    for name, stats in table.items():
        if name == "divergences":
            continue
        columns = list(stats)
        shape = np.shape(stats["mean"])
        for index in itertools.product(*(range(n) for n in shape)):
            label = name if not index else f"{name}[{','.join(map(str, index))}]"
            rows.append([label] + [float(np.asarray(stats[c])[index]) for c in columns])
    width = max([len(r[0]) for r in rows] + [4])
    header = " " * width + "".join(f"{c:>10}" for c in columns)
    lines = [header]
    for row in rows:
        cells = "".join(
            f"{value:>10.0f}" if column.startswith("ess") else f"{value:>10.2f}"
            for column, value in zip(columns, row[1:])
        )
        lines.append(f"{row[0]:>{width}}{cells}")
    if "divergences" in table:
        lines.append("")
        lines.append(f"Number of divergences: {int(table['divergences']['total'])}")
    return "\n".join(lines)
