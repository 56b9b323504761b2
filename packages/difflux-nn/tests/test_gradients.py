"""Second-order gradients of the small layers that other files check by value only."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from conftest import NUMPY_KEY
from difflux import nn
from difflux.core.testing import check_grads

RNG = np.random.default_rng(0)
K1, K2 = dx.random.split(NUMPY_KEY)


def _random_parameters(layer):
    return dx.tree_map(lambda a: RNG.normal(scale=0.5, size=a.shape) if dx.is_array(a) else a, layer)


# name, layer, input shape
CASES = [
    ("global_max_pool", nn.GlobalMaxPool(), (2, 2, 3)),
    ("global_mean_pool", nn.GlobalMeanPool(), (2, 2, 3)),
    ("flatten", nn.Flatten(), (2, 2, 2)),
    ("parallel", nn.Parallel(dx.multiply, nn.Dense(3, 2, key=K1), nn.Dense(3, 2, nn.tanh, key=K2)), (2, 3)),
    ("rnn_cell", _random_parameters(nn.RNNCell(2, 2, key=K1)), (1, 2)),
    ("gru_cell", _random_parameters(nn.GRUCell(2, 2, key=K1)), (1, 2)),
]


@pytest.mark.parametrize(("name", "layer", "shape"), CASES, ids=[name for name, _, _ in CASES])
def test_layer_gradients(convert, to_backend, name, layer, shape):
    x = to_backend(RNG.normal(size=shape))
    check_grads(lambda m, x: m(x), (convert(layer), x), order=2)


def test_embedding_gradient(backend, convert):
    table = convert(nn.Embedding(4, 2, key=K1))
    indices = dx.asarray(np.array([[0, 3], [3, 1]]), backend=backend)
    check_grads(lambda m: m(indices), (table,), order=2)
