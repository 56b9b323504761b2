"""nn.summary: rows, output shapes and parameter counts."""

from __future__ import annotations

from typing import Any

import numpy as np

import difflux.core as dx
from conftest import NUMPY_KEY, needs_jax, on_backend
from difflux import nn

K1, K2, K3, K4 = dx.random.split(NUMPY_KEY, 4)


def _cnn():
    return nn.Chain(
        nn.Conv(1, 4, (3, 3), nn.relu, key=K1, padding=1),
        nn.BatchNorm(4),
        nn.MaxPool((2, 2)),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Dense(4 * 4 * 4, 10, key=K2),
    )


def _row(text, start):
    return next(line for line in text.splitlines() if line.lstrip().startswith(start))


def test_summary_rows_and_counts():
    text = nn.summary(_cnn(), (2, 1, 8, 8))
    lines = text.splitlines()
    assert lines[0].split() == ["Layer", "Output", "shape", "Parameters"]
    assert _row(text, "Chain").split()[1:] == ["(2,", "10)", "706"]
    assert "(2, 4, 8, 8)" in _row(text, "layers.0")
    assert _row(text, "layers.0").endswith(" 40")
    assert "BatchNorm(4)" in _row(text, "layers.1")
    assert _row(text, "layers.1").endswith(" 16")
    assert "(2, 4, 4, 4)" in _row(text, "layers.2")
    assert "(2, 64)" in _row(text, "layers.3")
    assert "Dense(64 => 10)" in _row(text, "layers.5")
    assert _row(text, "layers.5").endswith(" 650")
    assert lines[-1] == "Total: 706 parameters (698 trainable, 8 non-trainable), 5.5 KiB"


def test_summary_nested_and_tuple_outputs():
    model = nn.Chain(
        nn.LSTM(3, 5, key=K1),
        lambda out: out[0][:, -1],
        nn.SkipConnection(nn.Dense(5, 5, key=K2)),
    )
    text = nn.summary(model, (2, 7, 3))
    assert "[(2, 7, 5), [(2, 5), (2, 5)]]" in _row(text, "layers.0")
    # The cell is called step by step through its internals, not as a layer.
    assert _row(text, "layers.0.cell").split()[1:5] == ["LSTMCell(3", "=>", "5)", "-"]
    assert "(2, 5)" in _row(text, "layers.2.layer")
    # Rows are indented by depth.
    assert _row(text, "layers.2.layer").startswith("    layers.2.layer")


def test_summary_of_user_module():
    class Model(dx.Module):
        encoder: Any
        decoder: Any

        def __call__(self, x, *, key=None):
            return self.decoder(self.encoder(x))

    model = Model(nn.Dense(3, 4, key=K1), nn.Dense(4, 2, key=K2))
    text = nn.summary(model, np.ones((6, 3)))
    assert _row(text, "Model").split()[1:] == ["-", "26"]
    assert "(6, 4)" in _row(text, "encoder")
    assert "(6, 2)" in _row(text, "decoder")


def test_summary_in_training_mode_leaves_model_alone():
    model = nn.train_mode(_cnn())
    text = nn.summary(model, (2, 1, 8, 8))
    assert "Dropout(0.5, training=True)" in text
    assert np.all(model[1].running_mean == 0)


@needs_jax
def test_summary_on_jax_matches_numpy():
    on_numpy = nn.summary(_cnn(), (2, 1, 8, 8))
    on_jax = nn.summary(on_backend(_cnn(), "jax"), (2, 1, 8, 8))
    assert on_jax == on_numpy
