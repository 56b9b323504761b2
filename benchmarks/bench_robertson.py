"""Stiff solve: Robertson's chemical kinetics over [0, 1e5].

Usage: ``python benchmarks/bench_robertson.py [--quick] [--clock wall|cpu] [--numpy-only]``

The problem is ROBER, ``y1' = -k1 y1 + k3 y2 y3``, ``y2' = k1 y1 - k2 y2^2 -
k3 y2 y3``, ``y3' = k2 y2^2`` with ``k = (0.04, 3e7, 1e4)`` from ``(1, 0, 0)``,
solved to ``t = 1e5`` at ``rtol = 1e-8``, ``atol = 1e-10``. Competitors, in
one process, with BLAS and XLA on one thread each:

* difflux compiled (``dx.jit``) with :class:`Kvaerno5`, :class:`Rodas5P`, :class:`BDF` and
  with the default solver (Tsit5 switching to Kvaerno5), against Diffrax 0.7.2's
  ``Kvaerno5`` under ``jax.jit`` with its default root finder and a
  ``PIDController`` at the same tolerances: run time and trace + compile time;
* difflux eagerly on NumPy with ``Kvaerno5``, ``Rodas5P`` and ``BDF`` against SciPy's
  ``solve_ivp`` with ``Radau`` and ``BDF``, and ``LSODA`` (compiled Fortran) as the far mark.

Every row reports the steps, the vector-field evaluations and the largest
relative error of the final state against SciPy's Radau at ``rtol = 1e-10``,
``atol = 1e-14``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from _timing import add_clock_argument, set_clock, time_interleaved, time_once  # noqa: E402

RATES = np.array([0.04, 3e7, 1e4])
Y0 = np.array([1.0, 0.0, 0.0])
T1 = 1e5
RTOL, ATOL = 1e-8, 1e-10
MAX_STEPS = 4096


# --------------------------------------------------------------------------
# The vector field in each library's terms
# --------------------------------------------------------------------------


def difflux_field(t: Any, y: Any, rates: Any) -> Any:
    import difflux.core as dx

    k1, k2, k3 = rates[0], rates[1], rates[2]
    y1, y2, y3 = y[0], y[1], y[2]
    return dx.stack([-k1 * y1 + k3 * y2 * y3, k1 * y1 - k2 * y2 * y2 - k3 * y2 * y3, k2 * y2 * y2])


def jax_field(t: Any, y: Any, rates: Any) -> Any:
    import jax.numpy as jnp

    k1, k2, k3 = rates[0], rates[1], rates[2]
    y1, y2, y3 = y[0], y[1], y[2]
    return jnp.stack([-k1 * y1 + k3 * y2 * y3, k1 * y1 - k2 * y2 * y2 - k3 * y2 * y3, k2 * y2 * y2])


def numpy_field(t: float, y: np.ndarray) -> np.ndarray:
    k1, k2, k3 = RATES
    return np.array([-k1 * y[0] + k3 * y[1] * y[2], k1 * y[0] - k2 * y[1] ** 2 - k3 * y[1] * y[2], k2 * y[1] ** 2])


def reference() -> np.ndarray:
    from scipy.integrate import solve_ivp

    return solve_ivp(numpy_field, (0.0, T1), Y0, method="Radau", rtol=1e-10, atol=1e-14).y[:, -1]


# --------------------------------------------------------------------------
# Solves returning (final state, steps, evaluations)
# --------------------------------------------------------------------------


def difflux_solve(solver: Any) -> Callable[[Any, Any], tuple[Any, Any, Any]]:
    from difflux import ode

    def run(y0: Any, rates: Any) -> tuple[Any, Any, Any]:
        sol = ode.solve(difflux_field, y0, (0.0, T1), rates, solver=solver, rtol=RTOL, atol=ATOL, max_steps=MAX_STEPS)
        return sol.ys[-1], sol.stats["num_steps"], sol.stats["num_fevals"]

    return run


def diffrax_solve() -> Callable[[Any, Any], tuple[Any, Any, Any]]:
    import diffrax

    def run(y0: Any, rates: Any) -> tuple[Any, Any, Any]:
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(jax_field),
            diffrax.Kvaerno5(),
            0.0,
            T1,
            None,
            y0,
            args=rates,
            stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL),
            max_steps=100_000,
        )
        assert sol.ys is not None
        assert sol.stats is not None
        # NOTE: Diffrax 0.7.2 reports no count of vector-field evaluations.
        return sol.ys[-1], sol.stats["num_steps"], -1

    return run


def scipy_solve(method: str) -> Callable[[], tuple[np.ndarray, int, int]]:
    from scipy.integrate import solve_ivp

    def run() -> tuple[np.ndarray, int, int]:
        result = solve_ivp(numpy_field, (0.0, T1), Y0, method=method, rtol=RTOL, atol=ATOL)
        return result.y[:, -1], len(result.t) - 1, result.nfev + result.njev * Y0.size

    return run


def compile_seconds(make: Callable[[], Callable[[], Any]], run_seconds: float, fresh: int) -> float:
    """Return the median over ``fresh`` new functions of the first call, less one steady-state run."""
    return statistics.median(time_once(make()) - run_seconds for _ in range(fresh))


# --------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------


def time_compiled(rounds: int, fresh: int) -> tuple[list[tuple[str, float, Any]], dict[str, float], dict[str, float]]:
    """Time difflux under ``dx.jit`` against Diffrax; return the rows, run times and trace + compile times."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import difflux.core as dx
    from difflux import ode

    y0_jax, rates_jax = jnp.asarray(Y0), jnp.asarray(RATES)
    compiled = {
        "difflux Kvaerno5 (dx.jit)": dx.jit(difflux_solve(ode.Kvaerno5())),
        "difflux Rodas5P (dx.jit)": dx.jit(difflux_solve(ode.Rodas5P())),
        "difflux BDF (dx.jit)": dx.jit(difflux_solve(ode.BDF())),
        "difflux default (dx.jit)": dx.jit(difflux_solve(None)),
        "Diffrax Kvaerno5 (jax.jit)": jax.jit(diffrax_solve()),
    }
    results = {name: fn(y0_jax, rates_jax) for name, fn in compiled.items()}
    times = time_interleaved(
        {name: (lambda fn=fn: jax.block_until_ready(fn(y0_jax, rates_jax))) for name, fn in compiled.items()},
        number=5,
        rounds=rounds,
    )
    makers = {
        "difflux Kvaerno5 (dx.jit)": lambda: dx.jit(difflux_solve(ode.Kvaerno5())),
        "Diffrax Kvaerno5 (jax.jit)": lambda: jax.jit(diffrax_solve()),
    }

    def first_call(make: Callable[[], Any]) -> Callable[[], Callable[[], Any]]:
        def fresh_function() -> Callable[[], Any]:
            fn = make()
            return lambda: jax.block_until_ready(fn(y0_jax, rates_jax))

        return fresh_function

    compile_times = {name: compile_seconds(first_call(make), times[name], fresh=fresh) for name, make in makers.items()}
    rows = [(name, times[name], result) for name, result in results.items()]
    return rows, times, compile_times


def time_eager(rounds: int) -> tuple[list[tuple[str, float, Any]], dict[str, float]]:
    """Time difflux eagerly on NumPy against SciPy's solve_ivp; return the rows and the times."""
    from difflux import ode

    eager = {
        "difflux Kvaerno5 (NumPy)": lambda: difflux_solve(ode.Kvaerno5())(Y0, RATES),
        "difflux Rodas5P (NumPy)": lambda: difflux_solve(ode.Rodas5P())(Y0, RATES),
        "difflux BDF (NumPy)": lambda: difflux_solve(ode.BDF())(Y0, RATES),
    }
    for method in ("Radau", "BDF", "LSODA"):
        eager[f"SciPy {method}"] = scipy_solve(method)
    results = {name: fn() for name, fn in eager.items()}
    times = time_interleaved(eager, number=1, rounds=rounds)
    return [(name, times[name], result) for name, result in results.items()], times


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run, noisy numbers)")
    add_clock_argument(parser)
    parser.add_argument(
        "--numpy-only", action="store_true", help="time only the eager NumPy rows against SciPy (no JAX, no Diffrax)"
    )
    args = parser.parse_args()
    set_clock(args.clock)
    rounds = 3 if args.quick else 15

    exact = reference()
    rows: list[tuple[str, float, Any]] = []
    times: dict[str, float] = {}
    compile_times: dict[str, float] = {}
    if not args.numpy_only:
        rows, times, compile_times = time_compiled(rounds, fresh=1 if args.quick else 3)
    eager_rows, eager_times = time_eager(max(2, rounds // 3))
    rows += eager_rows

    print(f"Robertson to t = {T1:g}, rtol = {RTOL:g}, atol = {ATOL:g}, {args.clock} clock\n")
    print("| solver | time | steps | f evaluations | max rel. error |")
    print("|---|---|---|---|---|")
    for name, seconds, (y1, steps, fevals) in rows:
        error = np.max(np.abs(np.asarray(y1) - exact) / np.abs(exact))
        fevals_text = str(int(fevals)) if int(fevals) >= 0 else "n/a"
        print(f"| {name} | {seconds * 1e3:.2f} ms | {int(steps)} | {fevals_text} | {error:.1e} |")

    print("\n| comparison | difflux | peer | ratio |")
    print("|---|---|---|---|")
    if not args.numpy_only:
        jax_run, diffrax_run = times["difflux Kvaerno5 (dx.jit)"], times["Diffrax Kvaerno5 (jax.jit)"]
        print(
            f"| run, difflux / Diffrax | {jax_run * 1e3:.2f} ms | {diffrax_run * 1e3:.2f} ms "
            f"| {jax_run / diffrax_run:.2f}x |"
        )
        jax_compile = compile_times["difflux Kvaerno5 (dx.jit)"]
        diffrax_compile = compile_times["Diffrax Kvaerno5 (jax.jit)"]
        print(
            f"| trace + compile, difflux / Diffrax | {jax_compile:.2f} s | {diffrax_compile:.2f} s "
            f"| {jax_compile / diffrax_compile:.2f}x |"
        )
    for solver in ("Kvaerno5", "Rodas5P", "BDF"):
        numpy_run = eager_times[f"difflux {solver} (NumPy)"]
        for method in ("Radau", "BDF", "LSODA"):
            peer = eager_times[f"SciPy {method}"]
            print(
                f"| NumPy {solver} / SciPy {method} | {numpy_run * 1e3:.1f} ms | {peer * 1e3:.1f} ms "
                f"| {numpy_run / peer:.2f}x |"
            )


if __name__ == "__main__":
    main()
