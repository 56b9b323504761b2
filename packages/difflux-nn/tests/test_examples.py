"""Run examples/digits_mlp.py and examples/digits_cnn.py briefly and check their test accuracy.

The full runs reach about 98% (MLP, 40 epochs) and 98-99% (CNN, 30
epochs). These short runs stop early, so their thresholds are lower: each
is about three points below what the run reached on NumPy and on JAX.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _example(name: str) -> ModuleType:
    pytest.importorskip("sklearn")
    # The examples import their shared module digits_common from their own
    # folder, which is on sys.path when they run as scripts.
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_mlp_short_run(backend):
    accuracy = _example("digits_mlp").main(["--backend", backend, "--epochs", "10", "--no-progress"])
    assert accuracy >= 0.93


def test_digits_cnn_short_run(backend):
    accuracy = _example("digits_cnn").main(["--backend", backend, "--epochs", "4", "--no-progress"])
    assert accuracy >= 0.93
