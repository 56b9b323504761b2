"""Neural-ODE gradient step: fit dy/dt = MLP(y) to a Lotka-Volterra trajectory.

Usage: ``python benchmarks/bench_neural_ode.py [--quick] [--clock wall|cpu] [--controller pi|i]
[--adjoints checkpoint,backsolve]``

The data are the Lotka-Volterra equations ``x' = 1.5 x - x y``,
``y' = x y - 3 y`` from ``(1, 1)`` at 100 times in ``[0, 10]`` (SciPy's
``solve_ivp``, ``rtol = 1e-10``). The model is a 2-32-32-2 tanh MLP in
float64; the loss is the mean squared error of its trajectory at those
times, solved with Tsit5 at ``rtol = atol = 1e-6``. One gradient step is
the loss and its gradient with respect to every weight and bias.

Both libraries use the same step-size controller, so that they take about
as many steps: by default the PI controller that is difflux's default
(``beta1 = 0.7, beta2 = -0.4``, Diffrax's ``pcoeff = 0.4, icoeff = 0.3``),
or with ``--controller i`` the I controller that is Diffrax's default.

Two sets of weights: the seeded initial weights, whose vector field is slow
and needs few steps, and the same weights with the last layer scaled until
difflux's solve takes about 100 steps. Competitors, in one process, with
BLAS, PyTorch and XLA on one thread each:

* difflux compiled (``dx.jit(dx.value_and_grad)``) against Diffrax 0.7.2
  (``jax.jit(jax.value_and_grad)``) with the same adjoint kind, both
  ``RecursiveCheckpointAdjoint`` (discretise-then-optimise) and both
  ``BacksolveAdjoint``, run time and trace + compile time;
* torchdiffeq's ``odeint`` (backpropagation through the steps) and
  ``odeint_adjoint`` on PyTorch CPU. torchdiffeq has no Tsit5, so it runs
  ``dopri5``, the other fifth-order pair, at the same tolerances;
* difflux eagerly on NumPy, with both adjoints.

The two compiled runs alternate with each other only. torchdiffeq and
NumPy are timed on their own, because a call that takes tens of
milliseconds in between evicts the compiled runs' data from the caches.
torchdiffeq uses its own default controller.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from _timing import add_clock_argument, set_clock, time_interleaved, time_once  # noqa: E402

SIZES = (2, 32, 32, 2)
TS = np.linspace(0.0, 10.0, 100)
TOLERANCE = 1e-6
MAX_STEPS = 1024
TARGET_STEPS = 100
# The step-size controllers as (beta1, beta2) of the error ratios of the
# current and the previous step (Soderlind's notation, as in difflux).
CONTROLLERS = {"pi": (0.7, -0.4), "i": (1.0, 0.0)}


# --------------------------------------------------------------------------
# Data and weights
# --------------------------------------------------------------------------


def lotka_volterra_data() -> np.ndarray:
    from scipy.integrate import solve_ivp

    def field(t: float, y: np.ndarray) -> np.ndarray:
        return np.array([1.5 * y[0] - y[0] * y[1], y[0] * y[1] - 3.0 * y[1]])

    result = solve_ivp(field, (0.0, 10.0), [1.0, 1.0], t_eval=TS, rtol=1e-10, atol=1e-10, method="DOP853")
    return result.y.T.copy()


def initial_weights(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Glorot-uniform weights stored as ``(in, out)`` matrices and zero biases."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in itertools.pairwise(SIZES):
        limit = np.sqrt(6.0 / (n_in + n_out))
        params.append((rng.uniform(-limit, limit, (n_in, n_out)), np.zeros(n_out)))
    return params


def scaled(params: list[tuple[np.ndarray, np.ndarray]], factor: float) -> list[tuple[np.ndarray, np.ndarray]]:
    *hidden, (weight, bias) = params
    return [*hidden, (weight * factor, bias * factor)]


def difflux_controller(controller: str) -> Any:
    from difflux import ode

    beta1, beta2 = CONTROLLERS[controller]
    return ode.PIDController(beta1=beta1, beta2=beta2)


def diffrax_controller(controller: str) -> Any:
    import diffrax

    # Diffrax's exponents: beta1 = pcoeff + icoeff and beta2 = -pcoeff.
    beta1, beta2 = CONTROLLERS[controller]
    return diffrax.PIDController(rtol=TOLERANCE, atol=TOLERANCE, pcoeff=-beta2, icoeff=beta1 + beta2)


def difflux_steps(params: list[tuple[np.ndarray, np.ndarray]], controller: str) -> int:
    from difflux import ode

    y0 = np.array([1.0, 1.0])
    sol = ode.solve(
        difflux_field,
        y0,
        (0.0, 10.0),
        params,
        solver=ode.Tsit5(),
        saveat=ode.SaveAt(ts=TS),
        rtol=TOLERANCE,
        atol=TOLERANCE,
        controller=difflux_controller(controller),
        max_steps=MAX_STEPS,
    )
    return int(sol.stats["num_steps"])


def diffrax_steps(params: list[tuple[np.ndarray, np.ndarray]], controller: str) -> int:
    import jax

    loss = diffrax_loss("checkpoint", controller, with_steps=True)
    _, steps = jax.jit(loss)(*_jax_args(params, lotka_volterra_data()))
    return int(steps)


def weights_for_steps(target: int, controller: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """Scale the last layer (bisection on a log scale) until the solve takes about ``target`` steps."""
    base = initial_weights()
    low, high = 1.0, 1024.0
    for _ in range(12):
        middle = np.sqrt(low * high)
        if difflux_steps(scaled(base, middle), controller) < target:
            low = middle
        else:
            high = middle
    return scaled(base, high), high


# --------------------------------------------------------------------------
# difflux and Diffrax
# --------------------------------------------------------------------------


def difflux_field(t: Any, y: Any, params: Any) -> Any:
    import difflux.core as dx

    h = y
    for i, (weight, bias) in enumerate(params):
        h = h @ weight + bias
        if i < len(params) - 1:
            h = dx.tanh(h)
    return h


def difflux_loss(sensitivity: Any, controller: str) -> Callable[..., Any]:
    import difflux.core as dx
    from difflux import ode

    def loss(params: Any, y0: Any, data: Any) -> Any:
        sol = ode.solve(
            difflux_field,
            y0,
            (0.0, 10.0),
            params,
            solver=ode.Tsit5(),
            saveat=ode.SaveAt(ts=TS),
            rtol=TOLERANCE,
            atol=TOLERANCE,
            controller=difflux_controller(controller),
            max_steps=MAX_STEPS,
            sensitivity=sensitivity,
        )
        return dx.mean((sol.ys - data) ** 2)

    return loss


def diffrax_loss(adjoint: str, controller: str, with_steps: bool = False) -> Callable[..., Any]:
    """Return the loss with Diffrax (``adjoint``: "checkpoint" or "backsolve"), and its number of steps if ``with_steps``."""
    import diffrax
    import jax.numpy as jnp

    kind = diffrax.RecursiveCheckpointAdjoint() if adjoint == "checkpoint" else diffrax.BacksolveAdjoint()

    def field(t: Any, y: Any, params: Any) -> Any:
        h = y
        for i, (weight, bias) in enumerate(params):
            h = h @ weight + bias
            if i < len(params) - 1:
                h = jnp.tanh(h)
        return h

    def loss(params: Any, y0: Any, data: Any) -> Any:
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Tsit5(),
            0.0,
            10.0,
            None,
            y0,
            params,
            saveat=diffrax.SaveAt(ts=jnp.asarray(TS)),
            stepsize_controller=diffrax_controller(controller),
            adjoint=kind,
            max_steps=MAX_STEPS,
        )
        value = jnp.mean((sol.ys - data) ** 2)
        return (value, sol.stats["num_steps"]) if with_steps else value

    return loss


def _jax_args(params: Any, data: np.ndarray) -> tuple[Any, Any, Any]:
    import jax.numpy as jnp

    return [(jnp.asarray(w), jnp.asarray(b)) for w, b in params], jnp.asarray([1.0, 1.0]), jnp.asarray(data)


def compiled_step(library: str, adjoint: str, controller: str) -> Callable[..., Any]:
    """Return a fresh compiled ``value_and_grad`` of the loss (``adjoint``: "checkpoint" or "backsolve")."""
    if library == "diffrax":
        import jax

        return jax.jit(jax.value_and_grad(diffrax_loss(adjoint, controller)))
    import difflux.core as dx
    from difflux import ode

    kind = ode.RecursiveCheckpointAdjoint() if adjoint == "checkpoint" else ode.BacksolveAdjoint()
    return dx.jit(dx.value_and_grad(difflux_loss(kind, controller)))


def make_compiled_run(library: str, adjoint: str, controller: str, params: Any, data: np.ndarray) -> Callable[[], Any]:
    import jax

    args = _jax_args(params, data)
    step = compiled_step(library, adjoint, controller)
    jax.block_until_ready(step(*args))
    return lambda: jax.block_until_ready(step(*args))


def compile_time(
    library: str, adjoint: str, controller: str, params: Any, data: np.ndarray, run_time: float, repeats: int
) -> float:
    """Median over fresh functions of the first call (trace + compile + one run), less one run."""
    import jax

    args = _jax_args(params, data)
    times = []
    for _ in range(repeats):
        step = compiled_step(library, adjoint, controller)
        times.append(time_once(lambda step=step: jax.block_until_ready(step(*args))))
    return statistics.median(times) - run_time


def calls_per_round(runs: dict[str, Callable[[], Any]], minimum: int) -> int:
    """Return how many calls make a timing round of the slowest run last about 50 ms, at least ``minimum``."""
    slowest = max(time_once(run) for run in runs.values())
    return max(minimum, min(100, round(0.05 / max(slowest, 1e-6))))


def make_difflux_numpy(adjoint: str, controller: str, params: Any, data: np.ndarray) -> Callable[[], Any]:
    import difflux.core as dx
    from difflux import ode

    kind = ode.RecursiveCheckpointAdjoint() if adjoint == "checkpoint" else ode.BacksolveAdjoint()
    step = dx.value_and_grad(difflux_loss(kind, controller))
    y0 = np.array([1.0, 1.0])
    return lambda: step(params, y0, data)


# --------------------------------------------------------------------------
# torchdiffeq
# --------------------------------------------------------------------------


def make_torch(adjoint: str, params: Any, data: np.ndarray) -> Callable[[], Any]:
    import torch
    import torchdiffeq

    torch.set_num_threads(1)

    class Field(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = torch.nn.ParameterList()
            for weight, bias in params:
                self.weights.append(torch.nn.Parameter(torch.tensor(weight)))
                self.weights.append(torch.nn.Parameter(torch.tensor(bias)))

        def forward(self, t: Any, y: Any) -> Any:
            h = y
            count = len(self.weights) // 2
            for i in range(count):
                h = h @ self.weights[2 * i] + self.weights[2 * i + 1]
                if i < count - 1:
                    h = torch.tanh(h)
            return h

    field = Field()
    y0 = torch.tensor([1.0, 1.0], dtype=torch.float64)
    ts = torch.tensor(TS)
    target = torch.tensor(data)
    solve = torchdiffeq.odeint if adjoint == "checkpoint" else torchdiffeq.odeint_adjoint

    def step() -> Any:
        field.zero_grad()
        ys: Any = solve(field, y0, ts, rtol=TOLERANCE, atol=TOLERANCE, method="dopri5")
        loss = torch.mean((ys - target) ** 2)
        loss.backward()
        return loss

    return step


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def run(quick: bool, controller: str, adjoints: list[str]) -> list[tuple[str, float, float]]:
    import jax

    jax.config.update("jax_enable_x64", True)
    data = lotka_volterra_data()
    fast_weights, factor = weights_for_steps(TARGET_STEPS, controller)
    settings = {"initial weights": initial_weights(), f"last layer x{factor:.2f}": fast_weights}
    rounds, number = (3, 1) if quick else (9, 3)
    rows: list[tuple[str, float, float]] = []
    for label, params in settings.items():
        steps = difflux_steps(params, controller), diffrax_steps(params, controller)
        print(f"{label}, {controller} controller: difflux takes {steps[0]} steps, Diffrax {steps[1]}", flush=True)
        for adjoint in adjoints:
            kind = "RecursiveCheckpointAdjoint" if adjoint == "checkpoint" else "BacksolveAdjoint"
            torch_name = "odeint" if adjoint == "checkpoint" else "odeint_adjoint"
            runs = {
                "difflux": make_compiled_run("difflux", adjoint, controller, params, data),
                "diffrax": make_compiled_run("diffrax", adjoint, controller, params, data),
                "torch": make_torch(adjoint, params, data),
                "numpy": make_difflux_numpy(adjoint, controller, params, data),
            }
            # The compiled pair alternates on its own (see the module docstring).
            compiled = {name: runs[name] for name in ("difflux", "diffrax")}
            best = time_interleaved(compiled, number=calls_per_round(compiled, number), rounds=rounds)
            best["torch"] = time_interleaved({"torch": runs["torch"]}, number=number, rounds=rounds)["torch"]
            best["numpy"] = time_interleaved({"numpy": runs["numpy"]}, number=1, rounds=max(2, rounds // 3))["numpy"]
            repeats = 1 if quick else 3
            compile_difflux = compile_time("difflux", adjoint, controller, params, data, best["difflux"], repeats)
            compile_diffrax = compile_time("diffrax", adjoint, controller, params, data, best["diffrax"], repeats)
            rows += [
                (f"{label}, {kind}: dx.jit / Diffrax jax.jit, run", best["difflux"], best["diffrax"]),
                (f"{label}, {kind}: trace + compile, difflux / Diffrax", compile_difflux, compile_diffrax),
                (f"{label}, {kind}: dx.jit / torchdiffeq {torch_name}", best["difflux"], best["torch"]),
                (f"{label}, {kind}: NumPy eager / torchdiffeq {torch_name}", best["numpy"], best["torch"]),
            ]
            for row in rows[-4:]:
                print(
                    f"| {row[0]} | {row[1] * 1e3:.2f} ms | {row[2] * 1e3:.2f} ms | {row[1] / row[2]:.2f}x |", flush=True
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run, noisy numbers)")
    add_clock_argument(parser)
    parser.add_argument(
        "--controller",
        choices=tuple(CONTROLLERS),
        default="pi",
        help="the step-size controller of both libraries: pi (difflux's default) or i (Diffrax's); default: pi",
    )
    parser.add_argument(
        "--adjoints",
        default="checkpoint,backsolve",
        help="comma-separated adjoint kinds to time: checkpoint, backsolve (default: both)",
    )
    args = parser.parse_args()
    adjoints = args.adjoints.split(",")
    unknown = sorted(set(adjoints) - {"checkpoint", "backsolve"})
    if unknown:
        parser.error(f"unknown adjoint kinds {unknown}; use checkpoint and/or backsolve")
    set_clock(args.clock)
    print("| comparison | difflux | peer | ratio |")
    print("|---|---|---|---|")
    run(args.quick, args.controller, adjoints)


if __name__ == "__main__":
    main()
