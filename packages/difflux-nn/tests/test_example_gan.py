"""Run examples/gan_digits.py and check that the adversarial training learns.

The full run (100 epochs) draws digits of 9 of the 10 classes on NumPy
and on JAX. The 40-epoch runs here reached, on both backends, a mean
distance to the nearest real image of about 1.8 (3.05 untrained, 1.05
for held-out real images) and confident digits of 4 to 6 classes. The
thresholds leave room below those values.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _example() -> ModuleType:
    pytest.importorskip("sklearn")
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location("example_gan_digits", EXAMPLES / "gan_digits.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gan_learns_digits(backend):
    history = _example().main(["--backend", backend, "--epochs", "40", "--no-plot", "--quiet"])

    # At the start the discriminator cannot tell real from generated images:
    # each of its two cross-entropies is near log 2.
    assert abs(history.d_loss_steps[0] - 2 * math.log(2)) < 0.25
    assert abs(history.g_loss_steps[0] - math.log(2)) < 0.3
    assert np.all(np.isfinite(history.d_loss_steps))
    assert np.all(np.isfinite(history.g_loss_steps))

    # Neither network wins: a discriminator that wins drives its loss to 0
    # and the generator's loss up without bound.
    late_d, late_g = np.mean(history.d_loss[-10:]), np.mean(history.g_loss[-10:])
    assert 0.9 < late_d < 1.45
    assert 0.5 < late_g < 1.5

    # The samples move toward the data and cover several digit classes.
    assert history.nearest_distance[-1] < 0.7 * history.initial_nearest_distance
    assert history.nearest_distance[-1] > history.real_nearest_distance
    # Both measures jump from epoch to epoch (on NumPy the classes covered went
    # 6, 5, 4, 4, 2 over the last five), so the bars apply to the last five
    # epochs rather than to the last one alone. The same NumPy run averaged
    # 4.2 classes over them in one CI run and 3.6 in another: the training
    # is chaotic, and the order of floating-point sums (BLAS threads)
    # changes its course. So at least one of the five epochs must reach 4
    # classes, and their mean 3.
    assert np.mean(history.confident_share[-5:]) > 0.1
    assert np.max(history.classes_covered[-5:]) >= 4
    assert np.mean(history.classes_covered[-5:]) >= 3


def test_gan_writes_plots(tmp_path):
    pytest.importorskip("matplotlib")
    _example().main(["--backend", "numpy", "--epochs", "1", "--quiet", "--out", str(tmp_path)])

    for name in ("samples.png", "losses.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(data) > 10_000
