"""Compute the reference posterior of the lynx-hare Lotka-Volterra model with NumPyro and Diffrax.

This is an independent implementation of the model in examples/lynx_hare/
(another PPL, another ODE solver, another AD system), run longer than the
study's test: 4 chains of 500 warm-up and 1,500 draws, vectorised. Its posterior means,
standard deviations and Monte Carlo standard errors go to
reference_posterior.csv, which the integration test compares the study's
short run against. It is not run in CI; rerun it with

    pip install numpyro diffrax arviz
    python examples/lynx_hare/reference/compute_reference.py

The model follows Carpenter's Stan case study "Predator-Prey Population
Dynamics" (2018): positive-constrained normal priors are normals truncated
at zero, as Stan's `real<lower=0>` declarations make them.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import arviz as az  # noqa: E402
import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import MCMC, NUTS, init_to_value  # noqa: E402

HERE = Path(__file__).parent
NAMES = ["alpha", "beta", "gamma", "delta", "hare0", "lynx0", "sigma_hare", "sigma_lynx"]
# Chains start at the posterior means reported in Carpenter's case study.
# With starts drawn from the prior, chains can settle in a local mode of
# poor fits (a short run from the prior medians gave R-hat up to 1.4).
START = {
    "alpha": 0.55,
    "beta": 0.028,
    "gamma": 0.80,
    "delta": 0.024,
    "hare0": 33.9,
    "lynx0": 5.9,
    "sigma_hare": 0.25,
    "sigma_lynx": 0.25,
}


def load_data() -> tuple[np.ndarray, np.ndarray]:
    table = np.genfromtxt(HERE.parent / "lynx_hare.csv", delimiter=",", names=True)
    years = table["year"] - 1900.0
    counts = np.stack([table["hare"], table["lynx"]], axis=-1)
    return years, counts


def vector_field(t, z, theta):
    alpha, beta, gamma, delta = theta
    hare, lynx = z[0], z[1]
    return jnp.stack([(alpha - beta * lynx) * hare, (-gamma + delta * hare) * lynx])


def model(years, counts=None):
    alpha = numpyro.sample("alpha", dist.TruncatedNormal(1.0, 0.5, low=0.0))
    beta = numpyro.sample("beta", dist.TruncatedNormal(0.05, 0.05, low=0.0))
    gamma = numpyro.sample("gamma", dist.TruncatedNormal(1.0, 0.5, low=0.0))
    delta = numpyro.sample("delta", dist.TruncatedNormal(0.05, 0.05, low=0.0))
    hare0 = numpyro.sample("hare0", dist.LogNormal(jnp.log(10.0), 1.0))
    lynx0 = numpyro.sample("lynx0", dist.LogNormal(jnp.log(10.0), 1.0))
    sigma_hare = numpyro.sample("sigma_hare", dist.LogNormal(-1.0, 1.0))
    sigma_lynx = numpyro.sample("sigma_lynx", dist.LogNormal(-1.0, 1.0))
    z0 = jnp.stack([hare0, lynx0])
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        diffrax.Tsit5(),
        t0=0.0,
        t1=float(years[-1]),
        dt0=0.1,
        y0=z0,
        args=(alpha, beta, gamma, delta),
        saveat=diffrax.SaveAt(ts=jnp.asarray(years)),
        stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8),
        max_steps=10_000,
        throw=False,
    )
    # Early warm-up proposes wild parameters whose solves fail; they get zero
    # density rather than stopping the run.
    solved = solution.result == diffrax.RESULTS.successful
    z = jnp.where(solved, solution.ys, 1.0)  # (21, 2); row 0 is the initial state itself
    numpyro.factor("solver_failed", jnp.where(solved, 0.0, -jnp.inf))
    sigma = jnp.stack([sigma_hare, sigma_lynx])
    numpyro.sample("counts", dist.LogNormal(jnp.log(z), sigma).to_event(2), obs=counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=1500)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--chain-method", choices=["sequential", "vectorized"], default="vectorized")
    parser.add_argument("--out", type=Path, default=HERE / "reference_posterior.csv")
    arguments = parser.parse_args()

    years, counts = load_data()
    numpyro.set_host_device_count(1)
    mcmc = MCMC(
        NUTS(model, target_accept_prob=0.9, init_strategy=init_to_value(values=START)),
        num_warmup=arguments.warmup,
        num_samples=arguments.draws,
        num_chains=arguments.chains,
        chain_method=arguments.chain_method,
        progress_bar=False,
    )
    start = time.perf_counter()
    mcmc.run(jax.random.key(arguments.seed), years, counts)
    elapsed = time.perf_counter() - start
    samples = mcmc.get_samples(group_by_chain=True)
    divergences = int(np.sum(mcmc.get_extra_fields()["diverging"]))

    posterior = {name: np.asarray(samples[name]) for name in NAMES}
    summary = az.summary(az.from_dict(posterior=posterior), round_to="none", kind="all")
    rows = []
    for name in NAMES:
        row = summary.loc[name]
        rows.append(
            {
                "parameter": name,
                "mean": row["mean"],
                "sd": row["sd"],
                "mcse_mean": row["mcse_mean"],
                "r_hat": row["r_hat"],
                "ess_bulk": row["ess_bulk"],
            }
        )
    out = arguments.out
    with out.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()}
            )
    print(summary[["mean", "sd", "mcse_mean", "r_hat", "ess_bulk"]])
    print(
        f"{arguments.chains} chains x ({arguments.warmup} warm-up + {arguments.draws} draws) in {elapsed:.0f} s, "
        f"{divergences} divergences; wrote {out}"
    )


if __name__ == "__main__":
    main()
