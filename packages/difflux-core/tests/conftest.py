"""Shared fixtures: every test that takes ``backend`` runs on NumPy and, when
JAX is installed, on JAX with float64 enabled."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import difflux.core as dx

HAS_JAX = importlib.util.find_spec("jax") is not None

if HAS_JAX:
    import jax

    jax.config.update("jax_enable_x64", True)

BACKENDS = ["numpy", pytest.param("jax", marks=pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed"))]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def to_backend(backend: str):
    """Convert NumPy test data to arrays of the backend under test."""

    def convert(x: object) -> object:
        return dx.asarray(np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x, backend=backend)

    return convert


class Counter:
    """Counts how often a function body runs (once per trace under jax.jit)."""

    def __init__(self, fun):
        self.fun = fun
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fun(*args, **kwargs)
