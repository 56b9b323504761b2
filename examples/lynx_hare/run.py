"""The Hudson Bay lynx-hare study: a Bayesian ODE model and a universal differential equation.

Stages:

1. NUTS on the Bayesian Lotka-Volterra model (bayes.py) with all the data,
   1900-1920: posterior summary, trace plots, posterior predictive bands.
2. The same model fitted to 1900-1915 only, whose posterior predictive for
   1916-1920 is the mechanistic forecast.
3. The universal differential equation (ude.py), fitted to 1900-1915 with
   Adam and then L-BFGS, forecast to 1920.

It writes posterior_summary.csv, posterior_predictive.png, trace.png,
ude_forecast.png and report.md under --out (default out/lynx_hare/).

On NumPy, stages 2 and 3 run in a second process while the first process
samples stage 1, so a two-core machine runs both at once (``--serial`` runs
them one after another). Only the first process shows progress bars.

    python examples/lynx_hare/run.py --backend jax
    python examples/lynx_hare/run.py --backend numpy --chains 4 --warmup 500 --draws 500
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TRAIN_END = 1915


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/lynx_hare"), help="output folder (default out/lynx_hare)")
    parser.add_argument("--backend", choices=["numpy", "jax"], default="jax", help="array backend (default: jax)")
    parser.add_argument("--chains", type=int, default=4, help="NUTS chains (default 4)")
    parser.add_argument("--warmup", type=int, default=1000, help="warm-up iterations per chain (default 1000)")
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain (default 1000)")
    parser.add_argument(
        "--holdout-warmup", type=int, default=None, help="warm-up of the 1900-1915 fit (default --warmup)"
    )
    parser.add_argument("--holdout-draws", type=int, default=None, help="draws of the 1900-1915 fit (default --draws)")
    parser.add_argument("--adam-steps", type=int, default=1000, help="Adam steps of the UDE (default 1000)")
    parser.add_argument("--lbfgs-iterations", type=int, default=200, help="L-BFGS iterations of the UDE (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument(
        "--serial",
        action="store_true",
        help="on NumPy, run the 1900-1915 refit and the UDE after the first fit, in the same process",
    )
    arguments = parser.parse_args(argv)
    for name in ("chains", "warmup", "draws", "adam_steps"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return arguments


def load_data() -> tuple:
    import numpy as np

    table = np.genfromtxt(HERE / "lynx_hare.csv", delimiter=",", names=True)
    years = np.asarray(table["year"], dtype=np.float64)
    counts = np.stack([table["hare"], table["lynx"]], axis=-1).astype(np.float64)
    return years, counts


def main(argv: list[str] | None = None) -> int:
    arguments = parse_args(argv)
    os.environ["DIFFLUX_BACKEND"] = arguments.backend

    import numpy as np

    import difflux.core as dx

    if arguments.backend == "jax":
        dx.config.enable_float64()

    import bayes
    import plots
    import report

    out: Path = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    progress = not arguments.no_progress
    years, counts = load_data()
    t = years - years[0]
    train = years <= TRAIN_END
    timings: dict[str, float] = {}
    began = time.perf_counter()

    # On NumPy each process runs on one core, so stages 2 and 3 go to a
    # second process now and run beside stage 1.
    pool = None
    forecasts = None
    if arguments.backend == "numpy" and not arguments.serial:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        forecasts = pool.submit(fit_to_1915, arguments, t, counts, train, False)

    print(
        f"lynx-hare study on {arguments.backend}: {arguments.chains} chains x "
        f"({arguments.warmup} warm-up + {arguments.draws} draws)"
    )
    if forecasts is not None:
        print("stages 2 and 3 (the 1900-1915 refit and the UDE) run beside stage 1, in a second process")
    print("stage 1 of 3: NUTS, the Lotka-Volterra model fitted to 1900-1920")
    posterior = bayes.sample_posterior(
        t,
        counts,
        backend=arguments.backend,
        chains=arguments.chains,
        warmup=arguments.warmup,
        draws=arguments.draws,
        seed=arguments.seed,
        progress=progress,
    )
    timings["NUTS, 1900-1920"] = posterior.seconds
    table = report.posterior_table(posterior.samples)
    report.write_summary_csv(out / "posterior_summary.csv", table)
    print(report.format_table(table))
    print(f"divergences after warm-up: {posterior.divergences}")

    start = time.perf_counter()
    predicted = bayes.predictive_counts(posterior, t, backend=arguments.backend, seed=arguments.seed + 1)
    plots.posterior_predictive(out / "posterior_predictive.png", years, counts, predicted)
    plots.trace(out / "trace.png", posterior.samples)
    timings["posterior predictive and plots"] = time.perf_counter() - start

    if forecasts is None:
        holdout, mechanistic, fit, ude_path = fit_to_1915(arguments, t, counts, train, progress, announce=True)
    else:
        assert pool is not None
        print("waiting for stages 2 and 3 ...")
        holdout, mechanistic, fit, ude_path = forecasts.result()
        pool.shutdown()
    print(f"stage 2: NUTS refit to 1900-1915, divergences after warm-up: {holdout.divergences}")
    print(
        f"stage 3: UDE fit to 1900-1915, Adam {len(fit.adam_losses)} steps to loss {fit.adam_losses[-1]:.4g}, "
        f"then L-BFGS {fit.lbfgs_iterations} iterations to loss {fit.lbfgs_loss:.4g}"
    )
    timings["NUTS, 1900-1915"] = holdout.seconds
    timings["UDE training"] = fit.seconds
    mech_median = np.median(mechanistic, axis=0)
    band = (np.quantile(mechanistic, 0.05, axis=0), np.quantile(mechanistic, 0.95, axis=0))
    plots.ude_forecast(out / "ude_forecast.png", years, counts, TRAIN_END, ude_path, mech_median, band)

    forecast = report.forecast_errors(counts[~train], ude_path[~train], mech_median[~train])
    report.write_report(
        out / "report.md",
        arguments=arguments,
        timings=timings,
        total_seconds=time.perf_counter() - began,
        table=table,
        posterior=posterior,
        holdout=holdout,
        fit=fit,
        forecast=forecast,
    )
    print("forecast of 1916-1920, root-mean-square error (thousands of pelts, and of their logarithms):")
    print(report.format_forecast(forecast))
    print(f"wrote {out}/: posterior_summary.csv, posterior_predictive.png, trace.png, ude_forecast.png, report.md")
    return 0


def fit_to_1915(
    arguments: argparse.Namespace, t: Any, counts: Any, train: Any, progress: bool, announce: bool = False
) -> tuple[Any, Any, Any, Any]:
    """Run stages 2 and 3: the refit to 1900-1915 and its forecast, and the UDE and its solution to 1920.

    Returns the refit's posterior (without its sampler object, so that it
    can come back from another process), its predictive counts, the UDE fit
    and the UDE's populations at every year. With ``announce`` it prints a
    heading before each stage, as the serial run does.
    """
    os.environ["DIFFLUX_BACKEND"] = arguments.backend
    import numpy as np

    import difflux.core as dx

    if arguments.backend == "jax":
        dx.config.enable_float64()

    import bayes
    import ude

    if announce:
        print("stage 2 of 3: NUTS, the Lotka-Volterra model refitted to 1900-1915")
    holdout = bayes.sample_posterior(
        t[train],
        counts[train],
        backend=arguments.backend,
        chains=arguments.chains,
        warmup=arguments.holdout_warmup or arguments.warmup,
        draws=arguments.holdout_draws or arguments.draws,
        seed=arguments.seed + 2,
        progress=progress,
    )
    mechanistic = bayes.predictive_counts(holdout, t, backend=arguments.backend, seed=arguments.seed + 3)
    holdout.mcmc = None

    if announce:
        print("stage 3 of 3: the universal differential equation, Adam and then L-BFGS on 1900-1915")
    fit = ude.train_ude(
        t[train],
        counts[train],
        backend=arguments.backend,
        adam_steps=arguments.adam_steps,
        lbfgs_iterations=arguments.lbfgs_iterations,
        seed=arguments.seed,
        progress=progress,
    )
    ude_path = np.asarray(fit.model.solve(dx.asarray(t, backend=arguments.backend)))
    fit.model = dx.tree_map(np.asarray, fit.model)
    return holdout, mechanistic, fit, ude_path


if __name__ == "__main__":
    sys.exit(main())
