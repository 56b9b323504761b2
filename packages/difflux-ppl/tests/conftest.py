"""Shared fixtures: every test that takes ``backend`` runs on NumPy and, when
JAX is installed, on JAX with float64 enabled."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

import difflux.core as dx

HAS_JAX = importlib.util.find_spec("jax") is not None

if HAS_JAX:
    import jax

    jax.config.update("jax_enable_x64", True)


def pytest_configure(config: pytest.Config) -> None:
    """Import ArviZ once in the main process, before pytest-xdist starts its workers.

    On its first import each day ArviZ 0.23 writes a stamp file under the user's
    cache folder, through a temporary file of a fixed name. Two workers that
    import it at the same moment race on that file, and the loser fails to
    collect its tests with FileNotFoundError. Importing it here first leaves
    today's stamp in place, so the workers only read it.
    """
    if hasattr(config, "workerinput") or importlib.util.find_spec("arviz") is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz  # noqa: F401  # pyright: ignore[reportMissingImports, reportUnusedImport]


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
