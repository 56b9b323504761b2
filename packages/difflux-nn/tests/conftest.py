"""Shared fixtures: every test that takes ``backend`` runs on NumPy and, when
JAX is installed, on JAX with float64 enabled."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import difflux.core as dx

HAS_JAX = importlib.util.find_spec("jax") is not None
# PyTorch is a test-only oracle (recurrent layers, normalisation, pooling).
HAS_TORCH = importlib.util.find_spec("torch") is not None

if HAS_JAX:
    # The tests run many small programs once each, so XLA's compile time
    # dominates the JAX cases. Lower LLVM optimisation compiles them faster;
    # it does not change floating-point semantics (no fast-math).
    os.environ["XLA_FLAGS"] = " ".join(
        [
            os.environ.get("XLA_FLAGS", ""),
            "--xla_backend_optimization_level=0",
            "--xla_llvm_disable_expensive_passes=true",
        ]
    ).strip()
    import jax

    jax.config.update("jax_enable_x64", True)

BACKENDS = ["numpy", pytest.param("jax", marks=pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed"))]

needs_jax = pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def to_backend(backend: str):
    """Convert NumPy test data to arrays of the backend under test."""

    def convert(x: object) -> object:
        return dx.asarray(np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x, backend=backend)

    return convert


@pytest.fixture
def key(backend: str):
    """A random key of the backend under test."""
    return dx.random.key(0, backend=backend)


def to_numpy(x: object) -> np.ndarray:
    """Return the value of an array of either backend as a NumPy array."""
    return np.array(dx.stop_gradient(x))


# Layers in the tests are built from NumPy keys and then moved to the backend
# under test: building them with JAX keys would compile JAX's random sampler
# once per weight shape, which dominates the run time of the JAX cases.
NUMPY_KEY = dx.random.key(0, backend="numpy")


def on_backend(tree: object, backend: str) -> object:
    """Return ``tree`` with every array moved to ``backend``."""
    return dx.tree_map(lambda leaf: dx.asarray(leaf, backend=backend) if dx.is_array(leaf) else leaf, tree)


@pytest.fixture
def convert(backend: str):
    """Move a layer (or any structure of arrays) to the backend under test."""
    return lambda tree: on_backend(tree, backend)


def on_backends(cases: list, jax_cases: list | None = None, name: Callable[[Any], str] | None = None) -> list:
    """Parametrize ``(backend, case)``: every case on NumPy, and ``jax_cases`` (all by default) on JAX.

    JAX compiles each operation for each new shape, so tables of many
    shapes run on JAX only for a representative few. ``name(case)`` gives
    the test ids; the case's index by default.
    """
    params = []
    for backend in ("numpy", "jax"):
        marks = [pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")] if backend == "jax" else []
        for index, case in enumerate(cases):
            if backend == "jax" and jax_cases is not None and case not in jax_cases:
                continue
            label = name(case) if name is not None else str(index)
            params.append(pytest.param(backend, case, id=f"{backend}-{label}", marks=marks))
    return params
