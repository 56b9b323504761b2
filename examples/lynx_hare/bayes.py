"""The Bayesian Lotka-Volterra model of the pelts, sampled with NUTS.

Hare ``u`` and lynx ``v`` (thousands of pelts) follow

    du/dt = (alpha - beta*v) * u
    dv/dt = (-gamma + delta*u) * v

from the unknown state ``(hare0, lynx0)`` in 1900 (t = 0). The priors are
those of Carpenter's Stan case study: ``alpha, gamma ~ Normal(1, 0.5)`` and
``beta, delta ~ Normal(0.05, 0.05)``, each truncated to positive values (as
Stan's ``<lower=0>`` declarations make them), ``hare0, lynx0 ~
LogNormal(log 10, 1)`` and ``sigma_hare, sigma_lynx ~ LogNormal(-1, 1)``.
Each count is log-normal around the population the ODE gives for its year,
the 1900 counts around the initial state itself.

Gradients of the log density go through ``ode.solve`` (Tsit5, relative and
absolute tolerance 1e-6), which chooses forward sensitivities for the six
differentiated inputs. On NumPy that solve runs in ``difflux.ode``'s NumPy
loop, one batch for the vectorised chains.

The chains start from a Laplace approximation of the posterior
(``laplace_start``). From NUTS's own random starting points, one chain in a
JAX refit to 1900-1915 mixed poorly (193 divergences, R-hat 1.11), and on
NumPy one chain ended warm-up with a tenth of the others' step size.

The ``# --8<-- [start:NAME]`` / ``[end:NAME]`` comments mark the code that
docs/tutorials/lynx-hare.md includes with pymdownx.snippets. The docs build
fails if a marker it names is missing.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

import difflux.core as dx
from difflux import ode, optim, ppl
from difflux.ppl import dist
from difflux.ppl.infer import util as infer_util

NAMES = ("alpha", "beta", "gamma", "delta", "hare0", "lynx0", "sigma_hare", "sigma_lynx")
RTOL = ATOL = 1e-6
MAX_STEPS = 1000


# --8<-- [start:model]
def vector_field(t: Any, z: Any, theta: Any) -> Any:
    """Return ``dz/dt`` for ``z = (hare, lynx)`` and ``theta = (alpha, -gamma, -beta, delta)``.

    Per capita, the hare change at ``alpha - beta * lynx`` and the lynx at
    ``-gamma + delta * hare``: the rates ``theta[:2]`` plus the interactions
    ``theta[2:]`` times the other species ``z[::-1]``. Four array operations
    (not one per rate and species) keep each evaluation cheap, which matters
    on NumPy, where every operation is dispatched separately.
    """
    return z * (theta[:2] + theta[2:] * z[::-1])


def populations(theta: Any, z0: Any, years: Any) -> tuple[Any, Any]:
    """Return the ODE solution ``(len(years), 2)`` at ``years`` (``years[0]`` must be 0) and whether the solve succeeded."""
    sol = ode.solve(
        vector_field,
        z0,
        (0.0, years[-1]),
        theta,
        solver=ode.Tsit5(),
        saveat=ode.SaveAt(ts=years),
        rtol=RTOL,
        atol=ATOL,
        max_steps=MAX_STEPS,
        throw=False,
    )
    return sol.ys, sol.status == 0


def model(years: Any, counts: Any = None) -> None:
    """Run the generative model: ``years`` since 1900 starting at 0, ``counts`` ``(len(years), 2)`` (hare, lynx) or None."""
    alpha = ppl.sample("alpha", dist.TruncatedNormal(1.0, 0.5, low=0.0))
    beta = ppl.sample("beta", dist.TruncatedNormal(0.05, 0.05, low=0.0))
    gamma = ppl.sample("gamma", dist.TruncatedNormal(1.0, 0.5, low=0.0))
    delta = ppl.sample("delta", dist.TruncatedNormal(0.05, 0.05, low=0.0))
    hare0 = ppl.sample("hare0", dist.LogNormal(np.log(10.0), 1.0))
    lynx0 = ppl.sample("lynx0", dist.LogNormal(np.log(10.0), 1.0))
    sigma_hare = ppl.sample("sigma_hare", dist.LogNormal(-1.0, 1.0))
    sigma_lynx = ppl.sample("sigma_lynx", dist.LogNormal(-1.0, 1.0))

    theta = dx.stack([alpha, -gamma, -beta, delta])
    z, solved = populations(theta, dx.stack([hare0, lynx0]), years)
    # Early in warm-up NUTS proposes parameters whose solves fail (too many
    # steps); such a point gets zero density instead of stopping the run.
    z = dx.where(solved, z, dx.ones_like(z))
    ppl.factor("solve_failed", dx.where(solved, 0.0, -np.inf))
    sigma = dx.stack([sigma_hare, sigma_lynx])
    ppl.sample("counts", dist.LogNormal(dx.log(z), sigma).to_event(2), obs=counts)


# --8<-- [end:model]


@dataclass
class Posterior:
    samples: dict[str, np.ndarray]  # each (chains, draws)
    divergences: int
    seconds: float
    mcmc: Any


def sample_posterior(
    years: np.ndarray,
    counts: np.ndarray,
    *,
    backend: str,
    chains: int,
    warmup: int,
    draws: int,
    seed: int,
    progress: bool,
    laplace: bool = True,
) -> Posterior:
    """Run NUTS on the model conditioned on ``counts`` at ``years``.

    With ``laplace`` (the default), the chains start from
    :func:`laplace_start`; without it, from NUTS's own random starting points
    with the identity as the first metric.
    """
    start = time.perf_counter()
    years_b = dx.asarray(years, backend=backend)
    counts_b = dx.asarray(counts, backend=backend)
    # --8<-- [start:nuts]
    init_params, inverse_mass = None, None  # NUTS's own defaults
    if laplace:
        init_params, inverse_mass = laplace_start(years_b, counts_b, chains=chains, seed=seed)
    # The rates are strongly correlated in the posterior (alpha with beta,
    # gamma with delta), so a dense mass matrix takes far fewer leapfrog steps
    # per draw than a diagonal one: the cost of each draw on either backend.
    mcmc = ppl.MCMC(
        ppl.NUTS(model, target_accept_prob=0.9, dense_mass=True, inverse_mass_matrix=inverse_mass),
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=progress,
    )
    mcmc.run(
        dx.random.key(seed, backend=backend), years_b, counts_b, init_params=init_params, extra_fields=("diverging",)
    )
    # --8<-- [end:nuts]
    grouped = mcmc.get_samples(group_by_chain=True)
    samples = {name: np.asarray(grouped[name]) for name in NAMES}
    divergences = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
    return Posterior(samples, divergences, time.perf_counter() - start, mcmc)


def laplace_start(years: Any, counts: Any, *, chains: int, seed: int) -> tuple[Any, Any]:
    """Return starting points for ``chains`` chains and a dense inverse mass matrix from a Laplace approximation.

    From one random starting point per chain (``init_to_uniform``, NUTS's
    default), L-BFGS climbs to a mode of the posterior in unconstrained
    space, and the highest mode found is kept. The posterior has a second,
    minor mode (alpha near 1, hare0 near 20), whose density is lower by a
    factor of about e^40. In a trial, three of eight random starts climbed
    to it, so taking the best of the chains' climbs matters. The inverse of the
    potential's Hessian there is the Laplace approximation's covariance: the
    starting metric, and the normal distribution the chains' starting points
    are drawn from. NUTS's warm-up then adapts the metric and the step size
    as usual. Its early iterations no longer build long trajectories with an
    identity metric far from the posterior, which on NumPy took most of the
    warm-up. No chain estimates its metric from draws that are still moving
    toward the posterior either.

    Returns ``(None, None)``, NUTS's own defaults, with a warning when the
    Hessian at the mode is not positive definite.
    """
    backend = dx.backend_of(years)
    keys = dx.random.split(dx.random.key(seed, backend=backend), chains + 1)
    best = None
    for c in range(chains):
        info = infer_util.initialize_model(keys[c], model, (years, counts))
        names = sorted(info.params)  # the order in which the sampler ravels the sites

        def potential(z: Any, info: Any = info, names: list[str] = names) -> Any:
            return info.potential_fn({name: z[i] for i, name in enumerate(names)})

        z0 = dx.stack([info.params[name] for name in names])
        # Trial points of the line search far from a mode can overshoot the
        # solve to negative populations, whose log is NaN; the search rejects
        # those points, so NumPy's warning about them is noise.
        with np.errstate(invalid="ignore", divide="ignore"):
            result = optim.minimize(potential, z0, method="lbfgs", max_iter=300)
        if best is None or float(result.fun) < float(best[1].fun):
            best = (potential, result)
    assert best is not None
    potential, result = best
    mode = np.asarray(result.x, dtype=np.float64)
    hessian = hessian_by_differences(dx.grad(potential), mode, backend)
    try:
        scale_tril = np.linalg.cholesky(np.linalg.inv(hessian))
    except np.linalg.LinAlgError:
        warnings.warn(
            "laplace_start: the Hessian at the mode is not positive definite; NUTS starts as usual", stacklevel=2
        )
        return None, None
    draws = np.asarray(dx.random.normal(keys[chains], (chains, mode.size)))
    starts = mode + draws @ scale_tril.T
    if chains == 1:
        starts = starts[0]  # MCMC takes a single chain's values without a chain axis
    init_params = {name: dx.asarray(starts[..., i], backend=backend) for i, name in enumerate(names)}
    return init_params, scale_tril @ scale_tril.T


def hessian_by_differences(gradient: Any, x: np.ndarray, backend: str, h: float = 1e-4) -> np.ndarray:
    """Return the symmetrised Hessian at ``x`` from central differences of ``gradient``.

    ``dx.hessian`` of the potential gives the same matrix to about 1e-5
    relative, but through the ODE solve on NumPy it took 5 s against 0.4 s.
    """
    hessian = np.empty((x.size, x.size))
    for i in range(x.size):
        step = np.zeros(x.size)
        step[i] = h
        up = np.asarray(gradient(dx.asarray(x + step, backend=backend)))
        down = np.asarray(gradient(dx.asarray(x - step, backend=backend)))
        hessian[i] = (up - down) / (2 * h)
    return 0.5 * (hessian + hessian.T)


def predictive_counts(
    posterior: Posterior, years: np.ndarray, *, backend: str, seed: int, max_draws: int = 400
) -> np.ndarray:
    """Draw posterior predictive counts ``(n, len(years), 2)`` from up to ``max_draws`` evenly thinned draws."""
    flat = {name: value.reshape(-1) for name, value in posterior.samples.items()}
    total = next(iter(flat.values())).shape[0]
    keep = np.linspace(0, total - 1, min(max_draws, total)).astype(int)
    thinned = {name: dx.asarray(value[keep], backend=backend) for name, value in flat.items()}
    predictive = ppl.Predictive(model, posterior_samples=thinned, return_sites=["counts"])
    draws = predictive(dx.random.key(seed, backend=backend), dx.asarray(years, backend=backend))
    return np.asarray(draws["counts"])
