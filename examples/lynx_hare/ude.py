"""The universal differential equation: Lotka-Volterra with learned interactions.

The hare grow and the lynx die as in the mechanistic model, at rates
``alpha`` and ``gamma``; the two interaction terms (``-beta*u*v`` and
``+delta*u*v``, per capita ``-beta*v`` and ``+delta*u``) are replaced by a
small network of the two populations giving the per-capita rates:

    du/dt = u * ( alpha + NN(u/S, v/S)[0])
    dv/dt = v * (-gamma + NN(u/S, v/S)[1])

with ``S = 50`` (thousand pelts) scaling the populations to order one. The
per-capita form keeps both populations positive, as the data are. The
network, the two rates and the initial state are fitted to 1900-1915 with
Adam and then L-BFGS, and the fitted equation is solved on to 1920.

The ``# --8<-- [start:NAME]`` / ``[end:NAME]`` comments mark the code that
docs/tutorials/lynx-hare.md includes with pymdownx.snippets. The docs build
fails if a marker it names is missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

import difflux.core as dx
from difflux import nn, ode, optim

SCALE = 50.0
HIDDEN = 16
# The last year (since 1900) of each window of the Adam fit; the last is 1915.
WINDOW_ENDS = (4, 8, 12, 15)


# --8<-- [start:ude]
class UDE(dx.Module):
    """Lotka-Volterra growth and death plus a network for the interactions."""

    log_alpha: Any
    log_gamma: Any
    log_z0: Any
    net: nn.Chain

    def vector_field(self, t: Any, z: Any, args: Any) -> Any:
        rates = dx.stack([dx.exp(self.log_alpha), -dx.exp(self.log_gamma)])
        return z * (rates + self.net(z / SCALE))

    def solve(self, years: Any) -> Any:
        """Solve for the populations ``(len(years), 2)`` (hare, lynx) at ``years`` (years since 1900)."""
        # On NumPy, Tsit5 with forward sensitivities runs in the NumPy loop of
        # difflux.ode, several times faster than the default (AutoSwitch, with
        # reverse mode through the generic loop) that JAX compiles well.
        numpy = dx.backend_of(years) == "numpy"
        sol = ode.solve(
            lambda t, z, model: model.vector_field(t, z, None),
            dx.exp(self.log_z0),
            (0.0, years[-1]),
            self,
            solver=ode.Tsit5() if numpy else None,
            saveat=ode.SaveAt(ts=years),
            rtol=1e-6,
            atol=1e-6,
            max_steps=2000,
            throw=False,
            sensitivity=ode.ForwardSensitivity() if numpy else None,
        )
        return sol.ys


# --8<-- [end:ude]


def init_ude(counts0: np.ndarray, key: Any, backend: str) -> UDE:
    """Build a UDE with ``alpha = gamma = 0.5``, the 1900 counts as initial state, and a small random network."""
    k1, k2, k3 = dx.random.split(key, 3)
    net = nn.Chain(
        nn.Dense(2, HIDDEN, nn.tanh, key=k1),
        nn.Dense(HIDDEN, HIDDEN, nn.tanh, key=k2),
        nn.Dense(HIDDEN, 2, key=k3),
    )
    # The last layer starts near zero, so training starts from pure growth and decay.
    last = net.layers[-1]
    net = dx.replace(net, layers=(*net.layers[:-1], dx.replace(last, weight=last.weight * 0.1)))
    model = UDE(
        log_alpha=np.asarray(np.log(0.5)),
        log_gamma=np.asarray(np.log(0.5)),
        log_z0=np.log(np.asarray(counts0, dtype=np.float64)),
        net=net,
    )
    return dx.tree_map(lambda leaf: dx.asarray(np.asarray(leaf, dtype=np.float64), backend=backend), model)


def fit_loss(model: UDE, years: Any, log_counts: Any, weights: Any = None) -> Any:
    """Return the mean squared error of the log populations; a failed solve costs a large constant.

    ``weights`` (one per year, 0 or 1) leave years out of the mean, so that
    windows of different lengths can share one array shape.
    """
    z = model.solve(years)
    solved = dx.all(dx.isfinite(z))
    safe = dx.where(solved, dx.maximum(z, 1e-8), dx.ones_like(z))
    squared = (dx.log(safe) - log_counts) ** 2
    if weights is None:
        error = dx.mean(squared)
    else:
        error = dx.sum(weights[:, None] * squared) / (squared.shape[-1] * dx.sum(weights))
    return dx.where(solved, error, dx.full_like(error, 1e3))


@dataclass
class UDEFit:
    model: UDE
    adam_losses: list[float]
    lbfgs_loss: float
    lbfgs_iterations: int
    seconds: float


def train_ude(
    years: np.ndarray,
    counts: np.ndarray,
    *,
    backend: str,
    adam_steps: int,
    lbfgs_iterations: int,
    seed: int = 0,
    progress: bool = True,
) -> UDEFit:
    """Fit the UDE to ``counts`` (hare, lynx) at ``years`` with Adam, then L-BFGS from Adam's result."""
    start = time.perf_counter()
    years_b = dx.asarray(np.asarray(years, dtype=np.float64), backend=backend)
    log_counts = dx.asarray(np.log(counts), backend=backend)
    model = init_ude(counts[0], dx.random.key(seed, backend=backend), backend)

    # --8<-- [start:training]
    # Fitted to all sixteen years at once, half of the random starts settle in
    # a local minimum whose cycle has the wrong period. Adam therefore fits a
    # growing window, 1900-1904, then to 1908, 1912 and 1915, each from the
    # previous window's result, before L-BFGS refines the fit to all years.
    steps_per_window = -(-adam_steps // len(WINDOW_ENDS))
    rule = optim.Adam(optim.warmup_cosine(3e-2, 20, max(steps_per_window, 21)))

    def adam_step(state: Any, model: UDE, years: Any, log_counts: Any, weights: Any) -> tuple[Any, UDE, Any]:
        loss, grads = dx.value_and_grad(fit_loss)(model, years, log_counts, weights)
        state, model = optim.update(state, model, grads)
        return state, model, loss

    step = dx.jit(adam_step) if backend == "jax" else adam_step
    losses = []
    bar = tqdm(total=steps_per_window * len(WINDOW_ENDS), desc="UDE Adam", disable=not progress, leave=False)
    for end in WINDOW_ENDS:
        n = int(np.sum(years <= end))
        # Every window has all the years: those after its end repeat its last
        # year with weight 0. The solve still stops at the window's end, and
        # with one array shape for all windows dx.jit compiles the step once.
        index = np.minimum(np.arange(len(years)), n - 1)
        window = [
            dx.asarray(values, backend=backend)
            for values in (years[index], np.log(counts)[index], (np.arange(len(years)) < n).astype(np.float64))
        ]
        state = optim.setup(rule, model)
        for _ in range(steps_per_window):
            state, model, loss = step(state, model, *window)
            losses.append(float(loss))
            bar.update()
            bar.set_postfix(window=f"1900-{1900 + end}", loss=f"{losses[-1]:.4f}", refresh=False)
    bar.close()

    result = optim.minimize(
        fit_loss, model, method="lbfgs", max_iter=lbfgs_iterations, args=(years_b, log_counts), jit=backend == "jax"
    )
    # --8<-- [end:training]
    return UDEFit(
        model=result.x,
        adam_losses=losses,
        lbfgs_loss=float(result.fun),
        lbfgs_iterations=int(result.n_iter),
        seconds=time.perf_counter() - start,
    )
