"""The MCMC driver: chain methods, shapes, thinning, extra fields, compilation and errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from difflux import ppl
from difflux.ppl import dist

HAS_JAX = importlib.util.find_spec("jax") is not None


def standard_normal(z):
    return 0.5 * dx.sum(z["x"] ** 2) + 0.5 * z["y"] ** 2


def init_params(backend: str, num_chains: int):
    return {
        "x": dx.zeros((num_chains, 2, 2), backend=backend),
        "y": dx.ones((num_chains,), backend=backend),
    }


@pytest.mark.parametrize(
    ("backend", "chain_method"),
    [
        ("numpy", "sequential"),
        ("numpy", "vectorized"),
        ("numpy", "parallel"),
        pytest.param("jax", "vectorized", marks=pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")),
        pytest.param("jax", "sequential", marks=pytest.mark.slow),
        pytest.param("jax", "parallel", marks=pytest.mark.slow),
    ],
)
def test_sample_shapes(backend: str, chain_method: str) -> None:
    mcmc = ppl.MCMC(
        ppl.NUTS(potential_fn=standard_normal),
        num_warmup=20,
        num_samples=30,
        num_chains=2,
        thinning=3,
        chain_method=chain_method,
        progress_bar=False,
    )
    mcmc.run(dx.random.key(0, backend=backend), init_params=init_params(backend, 2), extra_fields=("num_steps",))
    grouped = mcmc.get_samples(group_by_chain=True)
    assert tuple(grouped["x"].shape) == (2, 10, 2, 2)
    assert tuple(grouped["y"].shape) == (2, 10)
    flat = mcmc.get_samples()
    assert tuple(flat["x"].shape) == (20, 2, 2)
    np.testing.assert_array_equal(np.asarray(flat["y"]), np.asarray(grouped["y"]).reshape(-1))
    assert tuple(mcmc.get_extra_fields()["num_steps"].shape) == (20,)
    assert tuple(mcmc.get_extra_fields(group_by_chain=True)["num_steps"].shape) == (2, 10)
    # Samples stay on the run's backend.
    assert ("jax" in type(flat["y"]).__module__) == (backend == "jax")


@pytest.mark.slow
def test_vectorized_matches_sequential_on_jax() -> None:
    pytest.importorskip("jax")
    draws = {}
    for method in ("sequential", "vectorized"):
        mcmc = ppl.MCMC(
            ppl.NUTS(potential_fn=standard_normal),
            num_warmup=30,
            num_samples=20,
            num_chains=2,
            chain_method=method,
            progress_bar=False,
        )
        mcmc.run(dx.random.key(5, backend="jax"), init_params=init_params("jax", 2))
        draws[method] = np.asarray(mcmc.get_samples(group_by_chain=True)["x"])
    np.testing.assert_allclose(draws["vectorized"], draws["sequential"], rtol=1e-8, atol=1e-10)


def test_jax_key_moves_numpy_data() -> None:
    pytest.importorskip("jax")
    data = np.linspace(-1.0, 3.0, 12)

    def model(y, size):
        mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
        with ppl.plate("data", size):
            ppl.sample("y", dist.Normal(mu, 1.0), obs=y)

    mcmc = ppl.MCMC(ppl.NUTS(model), num_warmup=20, num_samples=10, progress_bar=False)
    mcmc.run(dx.random.key(0, backend="jax"), data, 12)
    draws = mcmc.get_samples()["mu"]
    assert "jax" in type(draws).__module__
    assert draws.shape == (10,)
    assert np.all(np.isfinite(np.asarray(draws)))


def test_chunks_do_not_change_draws() -> None:
    results = []
    for chunk_size in (7, 100):
        mcmc = ppl.MCMC(
            ppl.NUTS(potential_fn=standard_normal),
            num_warmup=40,
            num_samples=30,
            chunk_size=chunk_size,
            progress_bar=False,
        )
        mcmc.run(
            dx.random.key(1, backend="numpy"),
            init_params=init_params("numpy", 1) | {"x": np.zeros((2, 2)), "y": np.ones(())},
        )
        results.append(np.asarray(mcmc.get_samples()["x"]))
    np.testing.assert_array_equal(results[0], results[1])


def test_jax_compiles_once_for_all_chunks_and_chains() -> None:
    pytest.importorskip("jax")
    traces = []

    def counted(z):
        traces.append(1)
        return standard_normal(z)

    mcmc = ppl.MCMC(
        ppl.NUTS(potential_fn=counted),
        num_warmup=30,
        num_samples=30,
        num_chains=3,
        chunk_size=6,
        chain_method="sequential",
        progress_bar=False,
    )
    mcmc.run(dx.random.key(0, backend="jax"), init_params=init_params("jax", 3))
    # Ten chunks of three chains, one compilation: the first iteration's potential evaluation,
    # the step-size search and the trajectory each trace the potential once.
    assert len(traces) == 3, len(traces)


def test_progress_bar_runs(capsys: pytest.CaptureFixture[str]) -> None:
    mcmc = ppl.MCMC(
        ppl.HMC(potential_fn=standard_normal, trajectory_length=1.0), num_warmup=10, num_samples=10, progress_bar=True
    )
    mcmc.run(dx.random.key(0, backend="numpy"), init_params={"x": np.zeros((2, 2)), "y": np.ones(())})
    err = capsys.readouterr().err
    assert "sample" in err
    assert "20/20" in err


@pytest.mark.parametrize("progress_bar", [False, True])
def test_numpy_chunks_follow_progress_bar(monkeypatch: pytest.MonkeyPatch, progress_bar: bool) -> None:
    # On NumPy a progress bar moves with every iteration; without one the run is one chunk.
    chunks = []
    original = ppl.MCMC._run_chunks

    def spy(self: ppl.MCMC, run_chunk: Any, chunk: int, state: Any, **options: Any) -> Any:
        chunks.append(chunk)
        return original(self, run_chunk, chunk, state, **options)

    monkeypatch.setattr(ppl.MCMC, "_run_chunks", spy)
    mcmc = ppl.MCMC(
        ppl.HMC(potential_fn=standard_normal, trajectory_length=1.0),
        num_warmup=10,
        num_samples=10,
        progress_bar=progress_bar,
    )
    mcmc.run(dx.random.key(0, backend="numpy"), init_params={"x": np.zeros((2, 2)), "y": np.ones(())})
    assert chunks == [1 if progress_bar else 20]

    unchunked = ppl.MCMC(
        ppl.HMC(potential_fn=standard_normal, trajectory_length=1.0), num_warmup=10, num_samples=10, chunk_size=20
    )
    unchunked.run(dx.random.key(0, backend="numpy"), init_params={"x": np.zeros((2, 2)), "y": np.ones(())})
    for name, values in mcmc.get_samples().items():
        np.testing.assert_array_equal(values, unchunked.get_samples()[name])


def test_print_summary_counts_divergences(capsys: pytest.CaptureFixture[str]) -> None:
    mcmc = ppl.MCMC(
        ppl.NUTS(potential_fn=standard_normal), num_warmup=30, num_samples=40, num_chains=2, progress_bar=False
    )
    mcmc.run(dx.random.key(0, backend="numpy"), init_params=init_params("numpy", 2))
    mcmc.print_summary()
    out = capsys.readouterr().out
    assert "x[1,1]" in out
    assert f"Number of divergences: {int(np.sum(mcmc.divergences()))}" in out
    assert "r_hat" in out


def test_invalid_arguments() -> None:
    kernel = ppl.NUTS(potential_fn=standard_normal)
    with pytest.raises(ValueError, match="chain_method must be one of"):
        ppl.MCMC(kernel, num_warmup=1, num_samples=1, chain_method="threads")
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        ppl.MCMC(kernel, num_warmup=1, num_samples=0)
    with pytest.raises(ValueError, match="thinning"):
        ppl.MCMC(kernel, num_warmup=1, num_samples=1, thinning=0)
    mcmc = ppl.MCMC(kernel, num_warmup=1, num_samples=1, progress_bar=False)
    with pytest.raises(RuntimeError, match=r"call MCMC\.run first"):
        mcmc.get_samples()
    with pytest.raises(ValueError, match="unknown extra_fields"):
        mcmc.run(dx.random.key(0, backend="numpy"), init_params=init_params("numpy", 1), extra_fields=("tree_size",))


def test_init_params_need_chain_axis() -> None:
    mcmc = ppl.MCMC(
        ppl.NUTS(potential_fn=standard_normal), num_warmup=1, num_samples=1, num_chains=2, progress_bar=False
    )
    with pytest.raises(ValueError, match="leading axis of size 2"):
        mcmc.run(dx.random.key(0, backend="numpy"), init_params={"x": np.zeros((2, 2)), "y": np.ones(())})


def test_numpyro_extra_field_names() -> None:
    backend = "numpy"
    mcmc = ppl.MCMC(ppl.NUTS(potential_fn=standard_normal), num_warmup=10, num_samples=5, progress_bar=False)
    fields = (
        "diverging",
        "potential_energy",
        "energy",
        "accept_prob",
        "mean_accept_prob",
        "num_steps",
        "adapt_state.step_size",
        "i",
    )
    mcmc.run(
        dx.random.key(0, backend=backend),
        init_params={"x": dx.zeros((2, 2), backend=backend), "y": dx.ones((), backend=backend)},
        extra_fields=fields,
    )
    extra = mcmc.get_extra_fields()
    assert set(extra) == set(fields)
    np.testing.assert_array_equal(np.asarray(extra["i"]), np.arange(11, 16))
    assert np.all(np.asarray(extra["potential_energy"]) <= np.asarray(extra["energy"]))


@pytest.mark.parametrize(
    ("chain_method", "backend", "expected"),
    [
        ("parallel", "numpy", "vectorized"),
        ("sequential", "numpy", "sequential"),
        pytest.param("parallel", "jax", "sequential", marks=pytest.mark.skipif(not HAS_JAX, reason="needs JAX")),
        pytest.param("vectorized", "jax", "vectorized", marks=pytest.mark.skipif(not HAS_JAX, reason="needs JAX")),
    ],
)
def test_parallel_resolves_per_platform(chain_method: str, backend: str, expected: str) -> None:
    # On one CPU device "parallel" runs the chains one after another, as NumPyro does.
    # This test process has JAX's single CPU device.
    mcmc = ppl.MCMC(
        ppl.NUTS(potential_fn=standard_normal), num_warmup=1, num_samples=1, num_chains=2, chain_method=chain_method
    )
    assert mcmc.resolved_chain_method(backend) == expected


PARALLEL_SCRIPT = """
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
import difflux.core as dx
from difflux import ppl
draws = {}
for method in ("parallel", "vectorized"):
    mcmc = ppl.MCMC(ppl.NUTS(potential_fn=lambda z: 0.5 * dx.sum(z**2)), num_warmup=20, num_samples=10,
                    num_chains=2, chain_method=method, progress_bar=False)
    mcmc.run(dx.random.key(0, backend="jax"), init_params=dx.zeros((2, 3), backend="jax"))
    draws[method] = np.asarray(mcmc.get_samples(group_by_chain=True))
    if method == "parallel":
        assert len(mcmc.last_state.z.sharding.device_set) == 2, mcmc.last_state.z.sharding
np.testing.assert_allclose(draws["parallel"], draws["vectorized"], rtol=1e-8, atol=1e-10)
"""


@pytest.mark.slow
def test_parallel_shards_chains_across_devices() -> None:
    pytest.importorskip("jax")
    # The device count must be set before JAX starts, so the check runs in a fresh interpreter.
    subprocess.run([sys.executable, "-c", PARALLEL_SCRIPT], check=True)
