"""NeuralODE: values against SciPy, gradients against finite differences, use in nn.Chain and a short fit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

import difflux.core as dx
import difflux.core.testing
from conftest import HAS_JAX
from difflux import nn, ode, optim

TS = np.linspace(0.0, 1.0, 5)

# Each eager solve on JAX compiles its loop (10-20 s on a loaded 2-core
# machine), so the JAX runs of the checks that only repeat the NumPy ones
# are slow tests. The fit runs on both backends in the fast suite.
BACKENDS_JAX_SLOW = [
    "numpy",
    pytest.param("jax", marks=[pytest.mark.slow, pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")]),
]


def mlp(backend, width=8, seed=0):
    keys = dx.random.split(dx.random.key(seed, backend=backend), 2)
    return nn.Chain(
        nn.Dense(2, width, nn.tanh, key=keys[0], dtype="float64"),
        nn.Dense(width, 2, key=keys[1], dtype="float64"),
    )


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
def test_linear_field_matches_matrix_exponential(backend, to_backend):
    layer = nn.Dense(2, 2, key=dx.random.key(0, backend=backend), bias=False, dtype="float64")
    model = ode.NeuralODE(layer, ts=TS, rtol=1e-10, atol=1e-12)
    y0 = to_backend([1.0, -0.5])
    ys = np.asarray(model(y0))
    weight = np.asarray(layer.weight)
    expected = np.stack([scipy.linalg.expm(weight * t) @ np.array([1.0, -0.5]) for t in TS])
    np.testing.assert_allclose(ys, expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
def test_batched_initial_states(backend, to_backend):
    model = ode.NeuralODE(mlp(backend), t_span=(0.0, 0.5))
    y0 = to_backend([[1.0, 0.5], [-0.3, 0.2], [0.0, 1.0]])
    batched = np.asarray(model(y0))
    assert batched.shape == (1, 3, 2)
    single = np.asarray(model(y0[1]))
    np.testing.assert_allclose(batched[0, 1], single[0], rtol=1e-5)


@pytest.mark.parametrize(
    "sensitivity",
    [None, ode.BacksolveAdjoint(), ode.InterpolatingAdjoint(), ode.ForwardSensitivity()],
    ids=["auto", "backsolve", "interpolating", "forward"],
)
def test_gradients_match_finite_differences(sensitivity):
    model = ode.NeuralODE(mlp("numpy", width=3), ts=TS, rtol=1e-10, atol=1e-10, sensitivity=sensitivity)
    y0 = np.array([1.0, 0.5])

    def loss(model, y0):
        return dx.sum(model(y0) ** 2)

    difflux.core.testing.check_grads(loss, (model, y0), order=1, modes=("rev",), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
def test_layer_inside_chain(backend, to_backend):
    keys = dx.random.split(dx.random.key(3, backend=backend), 2)
    model = nn.Chain(
        nn.Dense(3, 2, key=keys[0], dtype="float64"),
        ode.NeuralODE(mlp(backend), t_span=(0.0, 1.0)),
        lambda ys: ys[-1],
        nn.Dense(2, 1, key=keys[1], dtype="float64"),
    )
    x = to_backend(np.linspace(-1.0, 1.0, 12).reshape(4, 3))
    assert model(x).shape == (4, 1)
    grads = dx.grad(lambda model: dx.sum(model(x) ** 2))(model)
    inner = grads.layers[1].func.layers[0].weight
    assert inner.shape == (8, 2)
    assert np.all(np.isfinite(np.asarray(inner)))
    assert np.any(np.asarray(inner) != 0.0)


def spiral_data(backend):
    matrix = np.array([[-0.1, 2.0], [-2.0, -0.1]])
    ys = np.stack([scipy.linalg.expm(matrix * t) @ np.array([2.0, 0.0]) for t in TS])
    return dx.asarray(np.array([2.0, 0.0]), backend=backend), dx.asarray(ys, backend=backend)


def test_short_fit_reduces_loss(backend):
    y0, target = spiral_data(backend)
    model = ode.NeuralODE(mlp(backend, width=16), ts=TS, rtol=1e-5, atol=1e-5, max_steps=256)
    state = optim.setup(optim.Adam(0.02), model)

    def loss(model):
        return dx.mean((model(y0) - target) ** 2)

    @dx.jit
    def step(model, state):
        value, grads = dx.value_and_grad(loss)(model)
        state, model = optim.update(state, model, grads)
        return model, state, value

    initial = float(loss(model))
    for _ in range(30):
        model, state, _ = step(model, state)
    final = float(loss(model))
    assert final < 0.5 * initial


def test_requires_times():
    with pytest.raises(ValueError, match="pass t_span"):
        ode.NeuralODE(mlp("numpy"))
    with pytest.raises(TypeError, match="callable module"):
        ode.NeuralODE(np.ones(2), t_span=(0.0, 1.0))
