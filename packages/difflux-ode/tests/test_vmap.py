"""dx.vmap over solves: batches of initial states, parameters and keys against Python loops."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import difflux.core as dx
from difflux import ode

HAS_JAX = importlib.util.find_spec("jax") is not None
TSIT5 = ode.Tsit5()
MATRIX = np.array([[-0.5, 1.0], [-1.0, -0.3]])
TS = np.linspace(0.0, 2.0, 5)


def linear(t, y, params):
    matrix, forcing = params
    return matrix @ y + forcing * dx.sin(t)


def trajectory(y0, forcing, matrix):
    sol = ode.solve(linear, y0, (0.0, 2.0), (matrix, forcing), solver=TSIT5, saveat=ode.SaveAt(ts=TS), rtol=1e-8)
    return sol.ys


def test_vmap_over_initial_states(backend, to_backend):
    y0s, forcing, matrix = to_backend([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]]), to_backend([0.3, 0.0]), to_backend(MATRIX)
    batched = dx.vmap(trajectory, in_axes=(0, None, None))(y0s, forcing, matrix)
    assert batched.shape == (3, 5, 2)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(trajectory(y0s[i], forcing, matrix)), rtol=1e-10)


def test_vmap_over_parameters(backend, to_backend):
    y0, forcings, matrix = to_backend([1.0, 0.0]), to_backend([[0.0, 0.0], [0.5, 0.0], [0.0, -1.0]]), to_backend(MATRIX)
    batched = dx.vmap(trajectory, in_axes=(None, 0, None))(y0, forcings, matrix)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(trajectory(y0, forcings[i], matrix)), rtol=1e-10)


GRADIENT_BACKENDS = [
    "numpy",
    pytest.param("jax", marks=[pytest.mark.slow, pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")]),
]


# Batched on JAX, the gradient's loop compiles under jax.vmap, which is slow.
@pytest.mark.parametrize("backend", GRADIENT_BACKENDS)
def test_vmap_of_gradients(backend, to_backend):
    def loss(y0, matrix):
        sol = ode.solve(linear, y0, (0.0, 1.0), (matrix, 0.0), solver=TSIT5, rtol=1e-8, max_steps=32)
        return dx.sum(sol.ys**2)

    y0s, matrix = to_backend([[1.0, 0.0], [0.5, 2.0]]), to_backend(MATRIX)
    per_example = dx.vmap(dx.grad(loss, argnums=1), in_axes=(0, None))(y0s, matrix)
    for i in range(2):
        expected = dx.grad(loss, argnums=1)(y0s[i], matrix)
        np.testing.assert_allclose(np.asarray(per_example[i]), np.asarray(expected), rtol=1e-10)


def test_vmap_of_event_times(backend, to_backend):
    def event_time(h0):
        y0 = dx.stack([h0, 0.0 * h0])
        fall = lambda t, y, g: dx.stack([y[1], -g + 0.0 * y[0]])  # noqa: E731
        return ode.solve(fall, y0, (0.0, 5.0), 9.81, solver=TSIT5, events=ode.Event(lambda t, y, g: y[0])).event_time

    heights = np.array([0.5, 1.0, 3.0])
    times = dx.vmap(event_time)(to_backend(heights))
    np.testing.assert_allclose(np.asarray(times), np.sqrt(2.0 * heights / 9.81), rtol=1e-12)


def test_vmap_of_sde_over_keys(backend):
    def final(key):
        sol = ode.solve_sde(lambda t, y, args: 0.5 * y, lambda t, y, args: 0.3 * y, y0, (0.0, 1.0), key=key, dt=0.125)
        return sol.ys[-1]

    y0 = dx.asarray(np.ones(2), backend=backend)
    keys = dx.random.split(dx.random.key(0, backend=backend), 3)
    batched = dx.vmap(final)(keys)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(final(keys[i])), rtol=1e-12)
    assert not np.allclose(np.asarray(batched[0]), np.asarray(batched[1]))


@pytest.mark.parametrize("batch", [1, 4])
def test_vmap_batch_sizes_on_numpy(batch):
    y0s = np.linspace(0.5, 2.0, batch)[:, None] * np.ones((batch, 2))
    batched = dx.vmap(trajectory, in_axes=(0, None, None))(y0s, np.zeros(2), MATRIX)
    assert batched.shape == (batch, 5, 2)
    np.testing.assert_allclose(
        np.asarray(batched[-1]), np.asarray(trajectory(y0s[-1], np.zeros(2), MATRIX)), rtol=1e-10
    )


def test_vmap_of_sensitivity_gradients_stays_batched(monkeypatch):
    # The chains of a vectorised sampler: value and gradient of a solve with
    # forward sensitivities, per example. The batching rules must cover the
    # whole computation, so the loop over the examples must not run.
    from difflux.core import _vmap

    def no_loop(*args, **kwargs):
        raise AssertionError("dx.vmap fell back to its loop over the examples")

    def loss(params):
        sol = ode.solve(
            linear,
            params[:2],
            (0.0, 2.0),
            (MATRIX * params[2], params[3:]),
            solver=TSIT5,
            saveat=ode.SaveAt(ts=TS),
            rtol=1e-8,
            throw=False,
            sensitivity=ode.ForwardSensitivity(),
        )
        return dx.sum(sol.ys**2) + dx.astype(sol.status, dx.float64)

    batch = np.array([[1.0, 0.0, 1.0, 0.3, 0.0], [0.5, 2.0, 0.8, 0.0, -1.0], [2.0, -1.0, 1.2, 0.1, 0.2]])
    expected = [dx.value_and_grad(loss)(row) for row in batch]
    monkeypatch.setattr(_vmap, "_vmap_loop", no_loop)
    values, grads = dx.vmap(dx.value_and_grad(loss))(batch)
    for i, (value, grad) in enumerate(expected):
        np.testing.assert_allclose(float(values[i]), float(value), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(grads[i]), np.asarray(grad), rtol=1e-10)
