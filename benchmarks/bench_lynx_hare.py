"""NUTS on the lynx-hare Lotka-Volterra model: difflux on JAX against NumPyro + Diffrax.

Usage: ``python benchmarks/bench_lynx_hare.py [--warmup N] [--draws N] [--chains N] [--seed N]``

The model is the flagship study's (examples/lynx_hare/bayes.py, imported
as is). It has eight parameters with Carpenter's priors and log-normal
counts, and solves the ODE with Tsit5 and a PID step-size controller at
``rtol = atol = 1e-6``. Both samplers use ``target_accept_prob = 0.9``, a
dense mass matrix and their default initialisation (uniform on ``(-2, 2)``
in the unconstrained space). The
NumPyro model is the one in examples/lynx_hare/reference/compute_reference.py
with the study's tolerances and step limit. Both run 4 chains of 1000
warm-up iterations and 1000 draws by default, in float64 on JAX's CPU
backend.

Reported per library:

* wall time to the last draw: from the start of the run to the draws in
  hand, compilation and warm-up included (difflux: ``bayes.sample_posterior``,
  chains vectorised; NumPyro: ``MCMC.run`` with its default chain method,
  which on one CPU device runs the chains one after another);
* compile: the wall time of the same run with 1 warm-up iteration and
  1 draw, almost all of which is tracing and compiling;
* sampling seconds and minimum bulk ESS (``ppl.diagnostics.ess``, the same
  estimator on both libraries' draws) per second of sampling. difflux
  reports ``MCMC.sampling_time``. NumPyro compiles again on every ``run``,
  so its sampling time is that of its compiled ``kernel.sample`` scanned
  over ``draws`` steps from the adapted state of each chain, timed after a
  first call that compiles it (the draws of that timed pass give its ESS).

Each library runs once: a full-size run takes tens of minutes on a loaded
2-core machine. Use ``--warmup 200 --draws 200`` for a quick look.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

STUDY = Path(__file__).resolve().parents[1] / "examples" / "lynx_hare"
RTOL = ATOL = 1e-6
MAX_STEPS = 1000


def load_data() -> tuple[np.ndarray, np.ndarray]:
    table = np.genfromtxt(STUDY / "lynx_hare.csv", delimiter=",", names=True)
    years = table["year"] - 1900.0
    counts = np.stack([table["hare"], table["lynx"]], axis=-1)
    return years, counts


def min_bulk_ess(samples: dict[str, Any]) -> float:
    from difflux.ppl import diagnostics

    return float(min(np.min(diagnostics.ess(np.asarray(v), "bulk")) for v in samples.values()))


def max_rhat(samples: dict[str, Any]) -> float:
    from difflux.ppl import diagnostics

    return float(max(np.max(diagnostics.split_rhat(np.asarray(v))) for v in samples.values()))


# --------------------------------------------------------------------------
# NumPyro + Diffrax
# --------------------------------------------------------------------------


def numpyro_model() -> Any:
    import diffrax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd

    def vector_field(t: Any, z: Any, theta: Any) -> Any:
        alpha, beta, gamma, delta = theta
        hare, lynx = z[0], z[1]
        return jnp.stack([(alpha - beta * lynx) * hare, (-gamma + delta * hare) * lynx])

    def model(years: Any, counts: Any = None) -> None:
        alpha = numpyro.sample("alpha", nd.TruncatedNormal(1.0, 0.5, low=0.0))
        beta = numpyro.sample("beta", nd.TruncatedNormal(0.05, 0.05, low=0.0))
        gamma = numpyro.sample("gamma", nd.TruncatedNormal(1.0, 0.5, low=0.0))
        delta = numpyro.sample("delta", nd.TruncatedNormal(0.05, 0.05, low=0.0))
        hare0 = numpyro.sample("hare0", nd.LogNormal(jnp.log(10.0), 1.0))
        lynx0 = numpyro.sample("lynx0", nd.LogNormal(jnp.log(10.0), 1.0))
        sigma_hare = numpyro.sample("sigma_hare", nd.LogNormal(-1.0, 1.0))
        sigma_lynx = numpyro.sample("sigma_lynx", nd.LogNormal(-1.0, 1.0))
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(vector_field),
            diffrax.Tsit5(),
            t0=0.0,
            t1=years[-1],
            dt0=None,
            y0=jnp.stack([hare0, lynx0]),
            args=(alpha, beta, gamma, delta),
            saveat=diffrax.SaveAt(ts=years),
            stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL),
            max_steps=MAX_STEPS,
            throw=False,
        )
        solved = solution.result == diffrax.RESULTS.successful
        z = jnp.where(solved, solution.ys, 1.0)
        numpyro.factor("solver_failed", jnp.where(solved, 0.0, -jnp.inf))
        sigma = jnp.stack([sigma_hare, sigma_lynx])
        numpyro.sample("counts", nd.LogNormal(jnp.log(z), sigma).to_event(2), obs=counts)

    return model


def run_numpyro(chains: int, warmup: int, draws: int, seed: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import MCMC, NUTS

    # Early warm-up reaches parameters whose solution goes negative, so its
    # log is NaN. Like difflux, NumPyro must then reject the point instead of
    # raising while it checks the distribution's arguments.
    numpyro.enable_validation(False)
    years, counts = load_data()
    args = (jnp.asarray(years), jnp.asarray(counts))
    model = numpyro_model()

    def fit(num_warmup: int, num_samples: int) -> tuple[Any, Any, float]:
        # The study's sampler settings: the same acceptance target and a dense mass matrix.
        kernel = NUTS(model, target_accept_prob=0.9, dense_mass=True)
        with warnings.catch_warnings():
            # NumPyro warns that one CPU device runs the chains in sequence.
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=chains, progress_bar=False)
            mcmc.run(jax.random.PRNGKey(seed), *args, extra_fields=("diverging",))
            jax.block_until_ready(mcmc.get_samples())
            return kernel, mcmc, time.perf_counter() - start

    compile_seconds = fit(1, 1)[2]
    kernel, mcmc, wall = fit(warmup, draws)
    divergences = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
    run_samples = {name: np.asarray(v) for name, v in mcmc.get_samples(group_by_chain=True).items()}

    def scan_draws(chain_state: Any) -> Any:
        def step(s: Any, _: Any) -> tuple[Any, Any]:
            s = kernel.sample(s, args, {})
            return s, s.z

        return jax.lax.scan(step, chain_state, None, length=draws)[1]

    sample = jax.jit(scan_draws)
    state = mcmc.last_state
    per_chain_states = [jax.tree_util.tree_map(lambda x, c=c: x[c], state) for c in range(chains)]
    jax.block_until_ready(sample(per_chain_states[0]))
    began = time.perf_counter()
    per_chain = [jax.block_until_ready(sample(s)) for s in per_chain_states]
    sampling = time.perf_counter() - began
    timed_draws = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *per_chain)
    # Bulk ESS ranks the draws, so the unconstrained draws give the same value as the constrained ones.
    ess = min_bulk_ess(timed_draws)
    return {
        "wall": wall,
        "compile": compile_seconds,
        "sampling": sampling,
        "ess": ess,
        "ess_per_s": ess / sampling,
        "run_ess": min_bulk_ess(run_samples),
        "rhat": max_rhat(run_samples),
        "divergences": divergences,
    }


# --------------------------------------------------------------------------
# difflux
# --------------------------------------------------------------------------


def run_difflux(chains: int, warmup: int, draws: int, seed: int) -> dict[str, float]:
    sys.path.insert(0, str(STUDY))
    import bayes  # examples/lynx_hare/bayes.py

    years, counts = load_data()

    def fit(num_warmup: int, num_samples: int) -> Any:
        return bayes.sample_posterior(
            years,
            counts,
            backend="jax",
            chains=chains,
            warmup=num_warmup,
            draws=num_samples,
            seed=seed,
            progress=False,
            # NUTS's own random starts and identity metric, as in NumPyro's run.
            laplace=False,
        )

    compile_seconds = fit(1, 1).seconds
    posterior = fit(warmup, draws)
    sampling = posterior.mcmc.sampling_time
    ess = min_bulk_ess(posterior.samples)
    return {
        "wall": posterior.seconds,
        "compile": compile_seconds,
        "sampling": sampling,
        "ess": ess,
        "ess_per_s": ess / sampling,
        "run_ess": ess,
        "rhat": max_rhat(posterior.samples),
        "divergences": posterior.divergences,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=1000, help="warm-up iterations per chain (default 1000)")
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain (default 1000)")
    parser.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of both libraries")
    options = parser.parse_args()

    import jax

    import difflux.core as dx

    jax.config.update("jax_enable_x64", True)
    dx.config.enable_float64()

    print(
        f"lynx-hare NUTS, {options.chains} chains, {options.warmup} warm-up + {options.draws} draws, "
        f"Tsit5 rtol = atol = {RTOL:g}, float64, JAX {jax.__version__}"
    )
    results = {
        "difflux (JAX, vectorised chains)": run_difflux(options.chains, options.warmup, options.draws, options.seed),
        "NumPyro + Diffrax (chains in sequence)": run_numpyro(
            options.chains, options.warmup, options.draws, options.seed
        ),
    }
    print("| run | wall s (incl. compile) | compile s | sampling s | min bulk ESS | ESS/s | max R-hat | divergences |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in results.items():
        print(
            f"| {label} | {r['wall']:.1f} | {r['compile']:.1f} | {r['sampling']:.1f} | {r['ess']:.0f} | "
            f"{r['ess_per_s']:.2f} | {r['rhat']:.3f} | {r['divergences']} |"
        )
    mine, theirs = results.values()
    print(
        f"ratios difflux / NumPyro: ESS/s {mine['ess_per_s'] / theirs['ess_per_s']:.2f}x (target >= 1.0x), "
        f"wall {mine['wall'] / theirs['wall']:.2f}x (target <= 0.5x)"
    )
    print(f"NumPyro's own run: min bulk ESS {theirs['run_ess']:.0f}")


if __name__ == "__main__":
    main()
