"""NUTS on eight schools and a Bayesian logistic regression: difflux against NumPyro.

Usage: ``python benchmarks/bench_nuts.py [--quick] [--rounds N] [--skip-numpy]``

Both models run 4 chains of 1000 warm-up iterations and 1000 draws, in
float64 on JAX's CPU backend, with the same model written in each library:

* eight schools, non-centred: ``mu ~ Normal(0, 5)``, ``tau ~ HalfCauchy(5)``,
  ``theta_tilde ~ Normal(0, 1)`` (8), ``y ~ Normal(mu + tau * theta_tilde, sigma)``;
* logistic regression on scikit-learn's breast-cancer data (569 rows, 30
  standardised features): ``w ~ Normal(0, 1)`` (30), ``b ~ Normal(0, 1)``,
  ``y ~ Bernoulli(logits=X w + b)``.

Two numbers per model:

* minimum bulk ESS (over all parameters, ``ppl.diagnostics.ess``, the same
  estimator applied to both libraries' draws) per second of sampling,
  warm-up and compilation excluded;
* wall time to the last draw, from the call to ``run`` to its return, with
  compilation included.

difflux runs its default chain method, ``"parallel"``: on one CPU device
the chains run one after another through one compiled program. NumPyro
runs its default, ``"parallel"``, which on one CPU device falls back to
running the chains sequentially (compiling once per chain), and
``"vectorized"``. difflux reports ``MCMC.sampling_time``; NumPyro compiles
again on every ``run``, so its sampling time is that of its compiled
sampling step run from the adapted state (see ``run_numpyro``). Rounds alternate between
the libraries and each number is the best over rounds. The NumPy backend of
difflux runs once, eagerly.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import csv  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

NUM_CHAINS = 4
DATA = Path(__file__).resolve().parents[1] / "packages" / "difflux-ppl" / "tests" / "data" / "eight_schools.csv"


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def eight_schools_data() -> tuple[np.ndarray, np.ndarray]:
    with DATA.open() as handle:
        rows = list(csv.DictReader(handle))
    return np.array([float(r["y"]) for r in rows]), np.array([float(r["sigma"]) for r in rows])


def breast_cancer_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True)  # pyright: ignore[reportGeneralTypeIssues]
    features = np.asarray(features, dtype=np.float64)
    features = (features - features.mean(0)) / features.std(0)
    return features, np.asarray(labels, dtype=np.float64)


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def difflux_models(backend: str) -> dict[str, tuple[Any, tuple[Any, ...]]]:
    import difflux.core as dx
    from difflux import ppl
    from difflux.ppl import dist

    def eight_schools(sigma: Any, y: Any) -> None:
        mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
        tau = ppl.sample("tau", dist.HalfCauchy(5.0))
        with ppl.plate("schools", 8):
            theta_tilde = ppl.sample("theta_tilde", dist.Normal(0.0, 1.0))
            ppl.sample("y", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)

    def logistic(features: Any, labels: Any) -> None:
        weights = ppl.sample("w", dist.Normal(dx.zeros(30, backend=backend), 1.0).to_event(1))
        bias = ppl.sample("b", dist.Normal(0.0, 1.0))
        ppl.sample("y", dist.Bernoulli(logits=dx.matmul(features, weights) + bias).to_event(1), obs=labels)

    y, sigma = eight_schools_data()
    features, labels = breast_cancer_data()

    def to(x: np.ndarray) -> Any:
        return dx.asarray(x, backend=backend)

    return {
        "eight schools": (eight_schools, (to(sigma), to(y))),
        "logistic regression": (logistic, (to(features), to(labels))),
    }


def numpyro_models() -> dict[str, tuple[Any, tuple[Any, ...]]]:
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd

    def eight_schools(sigma: Any, y: Any) -> None:
        mu = numpyro.sample("mu", nd.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", nd.HalfCauchy(5.0))
        with numpyro.plate("schools", 8):
            theta_tilde = numpyro.sample("theta_tilde", nd.Normal(0.0, 1.0))
            numpyro.sample("y", nd.Normal(mu + tau * theta_tilde, sigma), obs=y)

    def logistic(features: Any, labels: Any) -> None:
        weights = numpyro.sample("w", nd.Normal(jnp.zeros(30), 1.0).to_event(1))
        bias = numpyro.sample("b", nd.Normal(0.0, 1.0))
        numpyro.sample("y", nd.Bernoulli(logits=features @ weights + bias).to_event(1), obs=labels)

    y, sigma = eight_schools_data()
    features, labels = breast_cancer_data()
    return {
        "eight schools": (eight_schools, (jnp.asarray(sigma), jnp.asarray(y))),
        "logistic regression": (logistic, (jnp.asarray(features), jnp.asarray(labels))),
    }


def min_bulk_ess(samples: dict[str, Any]) -> float:
    from difflux.ppl import diagnostics

    return float(min(np.min(diagnostics.ess(np.asarray(v), "bulk")) for v in samples.values()))


# --------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------


def run_difflux(
    model: Any, args: tuple[Any, ...], backend: str, num_warmup: int, num_samples: int, seed: int
) -> dict[str, float]:
    import difflux.core as dx
    from difflux import ppl

    mcmc = ppl.MCMC(
        ppl.NUTS(model), num_warmup=num_warmup, num_samples=num_samples, num_chains=NUM_CHAINS, progress_bar=False
    )
    start = time.perf_counter()
    mcmc.run(dx.random.key(seed, backend=backend), *args)
    samples = mcmc.get_samples(group_by_chain=True)
    np.asarray(next(iter(samples.values())))
    wall = time.perf_counter() - start
    ess = min_bulk_ess(samples)
    return {"wall": wall, "sampling": mcmc.sampling_time, "ess": ess, "ess_per_s": ess / mcmc.sampling_time}


def run_numpyro(
    model: Any, args: tuple[Any, ...], chain_method: str, num_warmup: int, num_samples: int, seed: int
) -> dict[str, float]:
    """Time a plain ``MCMC.run`` (wall time), then NumPyro's compiled sampling step alone (ESS/s).

    NumPyro compiles again on every ``run`` call, even from a post-warm-up
    state, so its sampling speed is measured on the adapted kernel directly.
    A compiled ``lax.scan`` runs ``kernel.sample`` for ``num_samples`` steps,
    on the batch of chains for ``"vectorized"`` (where NumPyro's kernel is
    vmapped) and chain after chain otherwise. The timed call follows a first
    call that compiles it.
    """
    import jax
    from numpyro.infer import MCMC, NUTS

    kernel = NUTS(model)
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=NUM_CHAINS,
        chain_method=chain_method,
        progress_bar=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(seed), *args)
        jax.block_until_ready(mcmc.get_samples())
        wall = time.perf_counter() - start

    state = mcmc.last_state

    def draw(chain_state: Any) -> Any:
        def step(s: Any, _: Any) -> tuple[Any, Any]:
            s = kernel.sample(s, args, {})
            return s, s.z

        return jax.lax.scan(step, chain_state, None, length=num_samples)[1]

    if chain_method == "vectorized":
        # In vectorized mode NumPyro's kernel.sample is already vmapped over the chains.
        sample = jax.jit(draw)
        jax.block_until_ready(sample(state))
        began = time.perf_counter()
        draws = jax.tree_util.tree_map(lambda x: np.swapaxes(x, 0, 1), jax.block_until_ready(sample(state)))
        sampling = time.perf_counter() - began
    else:
        sample = jax.jit(draw)
        chains = [jax.tree_util.tree_map(lambda x, c=c: x[c], state) for c in range(NUM_CHAINS)]
        jax.block_until_ready(sample(chains[0]))
        began = time.perf_counter()
        per_chain = [jax.block_until_ready(sample(chain)) for chain in chains]
        sampling = time.perf_counter() - began
        draws = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *per_chain)
    # Bulk ESS uses ranks, so it is the same on the unconstrained draws as on the constrained ones.
    ess = min_bulk_ess(draws)
    return {"wall": wall, "sampling": sampling, "ess": ess, "ess_per_s": ess / sampling}


def best(results: list[dict[str, float]]) -> dict[str, float]:
    return {
        "wall": min(r["wall"] for r in results),
        "sampling": min(r["sampling"] for r in results),
        "ess": max(r["ess"] for r in results),
        "ess_per_s": max(r["ess_per_s"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description="NUTS on eight schools and a logistic regression, difflux against NumPyro"
    )
    parser.add_argument("--quick", action="store_true", help="200 warm-up iterations and 200 draws, one round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per JAX configuration")
    parser.add_argument("--skip-numpy", action="store_true", help="do not run difflux's NumPy backend")
    options = parser.parse_args()
    num_warmup = num_samples = 200 if options.quick else 1000
    rounds = 1 if options.quick else options.rounds

    import jax

    jax.config.update("jax_enable_x64", True)
    ours = difflux_models("jax")
    theirs = numpyro_models()

    print(f"NUTS, {NUM_CHAINS} chains, {num_warmup} warm-up + {num_samples} draws, float64, JAX {jax.__version__}")
    print("| model | run | min bulk ESS | sampling s | ESS/s | wall s (incl. compile) |")
    print("|---|---|---|---|---|---|")
    for name in ours:
        results: dict[str, list[dict[str, float]]] = {"difflux": [], "numpyro parallel": [], "numpyro vectorized": []}
        for round_index in range(rounds):
            seed = 10 * round_index
            results["difflux"].append(run_difflux(*ours[name], "jax", num_warmup, num_samples, seed))
            results["numpyro parallel"].append(run_numpyro(*theirs[name], "parallel", num_warmup, num_samples, seed))
            results["numpyro vectorized"].append(
                run_numpyro(*theirs[name], "vectorized", num_warmup, num_samples, seed)
            )
        summary = {label: best(runs) for label, runs in results.items()}
        if not options.skip_numpy:
            summary["difflux NumPy"] = run_difflux(*difflux_models("numpy")[name], "numpy", num_warmup, num_samples, 0)
        for label, r in summary.items():
            print(
                f"| {name} | {label} | {r['ess']:.0f} | {r['sampling']:.2f} | {r['ess_per_s']:.1f} | {r['wall']:.2f} |"
            )
        ref = summary["numpyro parallel"]
        vec = summary["numpyro vectorized"]
        mine = summary["difflux"]
        print(
            f"| {name} | ratios vs NumPyro default (vectorized) | | | "
            f"ESS/s {mine['ess_per_s'] / ref['ess_per_s']:.2f}x ({mine['ess_per_s'] / vec['ess_per_s']:.2f}x) | "
            f"wall {mine['wall'] / ref['wall']:.2f}x ({mine['wall'] / vec['wall']:.2f}x) |"
        )


if __name__ == "__main__":
    main()
