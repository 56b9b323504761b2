"""Run the difflux-core benchmarks side by side with the peers, in one process.

Usage: ``python benchmarks/run.py [--quick] [--only mlp,chain,adam] [--clock wall|cpu] [--json PATH]``

Prints a Markdown table of times and of the ratios that the targets in
``docs/benchmarks.md`` refer to. BLAS, PyTorch and XLA are pinned to one
thread each so that the comparison on a small machine measures the
libraries, not thread scheduling.
"""

from __future__ import annotations

import os

# Thread pinning has to happen before NumPy, PyTorch or JAX are imported.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

import bench_adam  # noqa: E402
import bench_chain  # noqa: E402
import bench_mlp  # noqa: E402
from _timing import add_clock_argument, set_clock, time_interleaved  # noqa: E402


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run, noisy numbers)")
    parser.add_argument("--json", type=Path, help="also write the raw results to this JSON file")
    parser.add_argument(
        "--only", default="mlp,chain,adam", help="comma-separated workloads to run (default: mlp,chain,adam)"
    )
    add_clock_argument(parser)
    args = parser.parse_args()
    set_clock(args.clock)
    workloads = set(args.only.split(","))
    scale = 0.1 if args.quick else 1.0

    def n(count: int) -> int:
        return max(1, int(count * scale))

    import jax

    jax.config.update("jax_enable_x64", False)  # the MLP benchmark is float32

    results: dict[str, float] = {}
    rows: list[tuple[str, str, str, float]] = []
    if "mlp" in workloads:
        print("measuring MLP gradient ...", file=sys.stderr)
        results.update(
            time_interleaved(
                {
                    "mlp_difflux_numpy": bench_mlp.make_difflux_numpy(),
                    "mlp_torch": bench_mlp.make_torch(),
                    "mlp_autograd": bench_mlp.make_autograd(),
                },
                number=n(100),
            )
        )
        compiled = time_interleaved(
            {
                "mlp_difflux_jit_run": bench_mlp.make_jax_run("difflux"),
                "mlp_jax_jit_run": bench_mlp.make_jax_run("jax"),
            },
            number=n(200),
        )
        results.update(compiled)
        results["mlp_difflux_compile"] = bench_mlp.bench_jax_compile("difflux", compiled["mlp_difflux_jit_run"])
        results["mlp_jax_compile"] = bench_mlp.bench_jax_compile("jax", compiled["mlp_jax_jit_run"])
        rows += [
            ("MLP grad, NumPy eager / PyTorch eager", "mlp_difflux_numpy", "mlp_torch", 1.0),
            ("MLP grad, NumPy eager / autograd", "mlp_difflux_numpy", "mlp_autograd", 0.6),
            ("MLP grad, dx.jit(dx.grad) / jax.jit(jax.grad), run", "mlp_difflux_jit_run", "mlp_jax_jit_run", 1.05),
            ("MLP grad, trace + compile, difflux / JAX", "mlp_difflux_compile", "mlp_jax_compile", 1.1),
        ]
    if "chain" in workloads:
        print("measuring 500-op chain gradient ...", file=sys.stderr)
        results.update(
            time_interleaved(
                {
                    "chain_difflux_numpy": bench_chain.make_difflux(),
                    "chain_torch": bench_chain.make_torch(),
                    "chain_autograd": bench_chain.make_autograd(),
                },
                number=n(20),
            )
        )
        rows += [
            ("500-op chain grad, NumPy eager / PyTorch eager", "chain_difflux_numpy", "chain_torch", 0.7),
            ("500-op chain grad, NumPy eager / autograd", "chain_difflux_numpy", "chain_autograd", 0.4),
        ]
    if "adam" in workloads:
        print("measuring Adam training step ...", file=sys.stderr)
        results.update(
            time_interleaved(
                {
                    "adam_difflux_numpy": bench_adam.make_difflux_numpy(),
                    "adam_torch": bench_adam.make_torch(),
                    "adam_autograd": bench_adam.make_autograd(),
                },
                number=n(100),
            )
        )
        results.update(
            time_interleaved(
                {
                    "adam_difflux_jit": bench_adam.make_difflux_jit(),
                    "adam_jax": bench_adam.make_jax(),
                    "adam_equinox": bench_adam.make_equinox(),
                },
                number=n(200),
            )
        )
        results.update(bench_adam.first_steps())
        rows += [
            ("Adam step, NumPy eager / PyTorch eager", "adam_difflux_numpy", "adam_torch", 1.0),
            ("Adam step, NumPy eager / autograd with Adam by hand", "adam_difflux_numpy", "adam_autograd", 0.6),
            ("Adam step, dx.jit / jax.jit with Adam by hand, run", "adam_difflux_jit", "adam_jax", 1.0),
            ("Adam step, dx.jit / Equinox + Optax filter_jit, run", "adam_difflux_jit", "adam_equinox", 1.0),
            ("Adam step, first call, difflux / Equinox + Optax", "adam_difflux_first", "adam_equinox_first", 1.0),
            ("Adam step, first call, difflux / jax.jit by hand", "adam_difflux_first", "adam_jax_first", 1.1),
        ]

    print(f"Machine: {_cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"Versions: numpy {_version('numpy')}, torch {_version('torch')}, autograd {_version('autograd')}, "
        f"jax {_version('jax')}, equinox {_version('equinox')}, optax {_version('optax')}, "
        f"difflux-core {_version('difflux-core')}"
    )
    print()
    print("| comparison | difflux | peer | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for label, ours, peer, target in rows:
        ratio = results[ours] / results[peer]
        met = "yes" if ratio <= target else "no"
        print(
            f"| {label} | {results[ours] * 1e3:.3f} ms | {results[peer] * 1e3:.3f} ms | "
            f"{ratio:.2f}x | <= {target}x | {met} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
