"""Saving at ``SaveAt(ts=...)`` and at every step: values, gradients, jit and vmap.

The solve loop saves only the times each step passes: a Python loop on
concrete values, one masked save plus a branch for further times under
``jit``, and masked writes under ``dx.vmap``. These tests make steps pass
zero, one and many save times and check every path against the closed form
of a linear system, against each other, and gradients against finite
differences of fixed-step solves.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from scipy.linalg import expm

import difflux.core as dx
from difflux import ode

HAS_JAX = importlib.util.find_spec("jax") is not None
MATRIX = np.array([[-0.5, 1.0], [-1.0, -0.3]])
Y0 = np.array([1.0, 0.5])
TSIT5 = ode.Tsit5()


def linear(t, y, matrix):
    return matrix @ y


def exact(ts, t0=0.0):
    return np.stack([expm(MATRIX * (t - t0)) @ Y0 for t in ts])


# Few save times (most steps pass none), many (every step passes several),
# repeated times, times on both ends, and times that end well before t1.
SAVE_TIMES = {
    "early": np.array([0.2, 0.25, 1.0]),
    "sparse": np.array([0.7, 2.9]),
    "dense": np.linspace(0.0, 3.0, 301),
    "repeated": np.array([0.0, 0.0, 1.0, 1.0, 1.0, 2.5, 3.0, 3.0]),
}


def solve_at(y0, matrix, ts, t_span=(0.0, 3.0), **options):
    options = {"solver": TSIT5, "rtol": 1e-10, "atol": 1e-12, **options}
    return ode.solve(linear, y0, t_span, matrix, saveat=ode.SaveAt(ts=ts), **options)


@pytest.mark.parametrize("name", sorted(SAVE_TIMES))
def test_saved_values_match_closed_form(backend, to_backend, name):
    ts = SAVE_TIMES[name]
    sol = solve_at(to_backend(Y0), to_backend(MATRIX), to_backend(ts))
    assert sol.ys.shape == (len(ts), 2)
    np.testing.assert_allclose(np.asarray(sol.ys), exact(ts), rtol=1e-8, atol=1e-9)


def test_backward_solve_saves_values(backend, to_backend):
    ts = np.linspace(3.0, 0.0, 41)
    sol = solve_at(to_backend(Y0), to_backend(MATRIX), to_backend(ts), t_span=(3.0, 0.0))
    np.testing.assert_allclose(np.asarray(sol.ys), exact(ts, t0=3.0), rtol=1e-8, atol=1e-9)


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
@pytest.mark.parametrize("name", sorted(SAVE_TIMES))
def test_jit_matches_eager_values(name):
    import jax.numpy as jnp

    ts = SAVE_TIMES[name]
    eager = solve_at(Y0, MATRIX, ts).ys
    compiled = dx.jit(lambda y0, matrix, ts: solve_at(y0, matrix, ts).ys)(
        jnp.asarray(Y0), jnp.asarray(MATRIX), jnp.asarray(ts)
    )
    np.testing.assert_allclose(np.asarray(compiled), eager, rtol=1e-12, atol=1e-14)


def test_vmap_matches_single_solves():
    ts = np.linspace(0.0, 3.0, 31)
    y0s = np.array([[1.0, 0.5], [0.0, 2.0], [-3.0, 1.0]])
    rates = np.array([1.0, 4.0, 0.25])

    def trajectory(y0, rate):
        return solve_at(y0, rate * MATRIX, ts, rtol=1e-8, atol=1e-10).ys

    batched = dx.vmap(trajectory)(y0s, rates)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(batched[i]), trajectory(y0s[i], rates[i]), rtol=1e-12, atol=1e-14)


def test_vmap_of_gradients_matches_single_gradients():
    ts = SAVE_TIMES["early"]
    y0s = np.array([[1.0, 0.5], [0.0, 2.0]])

    def loss(y0, matrix):
        return fixed_step_loss(y0, matrix, ts)

    batched = dx.vmap(dx.grad(loss, argnums=1), in_axes=(0, None))(y0s, MATRIX)
    for i in range(2):
        expected = dx.grad(loss, argnums=1)(y0s[i], MATRIX)
        assert np.all(np.isfinite(np.asarray(batched[i])))
        np.testing.assert_allclose(np.asarray(batched[i]), expected, rtol=1e-10, atol=1e-12)


def fixed_step_loss(y0, matrix, ts):
    sol = solve_at(y0, matrix, ts, dt0=0.3, adaptive=False, max_steps=16)
    return dx.sum(dx.sin(sol.ys))


def central_differences(fn, x, eps=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (fn(x + step) - fn(x - step)) / (2 * eps)
    return grad


@pytest.mark.parametrize("name", sorted(SAVE_TIMES))
def test_gradients_match_finite_differences(name):
    ts = SAVE_TIMES[name]
    grad_y0, grad_matrix = dx.grad(fixed_step_loss, argnums=(0, 1))(Y0, MATRIX, ts)
    np.testing.assert_allclose(
        grad_matrix, central_differences(lambda m: fixed_step_loss(Y0, m, ts), MATRIX), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        grad_y0, central_differences(lambda y: fixed_step_loss(y, MATRIX, ts), Y0), rtol=1e-6, atol=1e-7
    )
    # Forward mode along the first basis direction of the matrix.
    direction = np.zeros_like(MATRIX)
    direction[0, 1] = 1.0
    _, tangent = dx.jvp(lambda m: fixed_step_loss(Y0, m, ts), (MATRIX,), (direction,))
    np.testing.assert_allclose(float(tangent), grad_matrix[0, 1], rtol=1e-10)


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
@pytest.mark.parametrize("name", ["early", "dense"])
def test_jit_gradients_match_eager(name):
    _check_jit_gradients(name)


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
@pytest.mark.slow
@pytest.mark.parametrize("name", ["repeated", "sparse"])
def test_jit_gradients_match_eager_more_times(name):
    _check_jit_gradients(name)


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_jit_gradient_of_args_alone_matches_eager():
    # With y0 not differentiated, the save times inside jit are plain JAX
    # values, while the index of the next time to save is a difflux tracer.
    import jax.numpy as jnp

    ts = SAVE_TIMES["dense"]
    eager = dx.grad(fixed_step_loss, argnums=1)(Y0, MATRIX, ts)
    compiled = dx.jit(dx.grad(fixed_step_loss, argnums=1))(jnp.asarray(Y0), jnp.asarray(MATRIX), ts)
    np.testing.assert_allclose(np.asarray(compiled), eager, rtol=1e-10, atol=1e-12)


def _check_jit_gradients(name):
    import jax.numpy as jnp

    ts = SAVE_TIMES[name]
    eager = dx.grad(fixed_step_loss, argnums=(0, 1))(Y0, MATRIX, ts)
    compiled = dx.jit(dx.grad(fixed_step_loss, argnums=(0, 1)))(jnp.asarray(Y0), jnp.asarray(MATRIX), jnp.asarray(ts))
    for got, want in zip(compiled, eager):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12)


def test_saved_steps_skip_rejected_steps(backend, to_backend):
    # A first step far too large is rejected, so the rows must hold only accepted steps.
    sol = ode.solve(
        linear, to_backend(Y0), (0.0, 3.0), to_backend(MATRIX), solver=TSIT5, dt0=5.0,
        saveat=ode.SaveAt(steps=True, dense=True), rtol=1e-8, atol=1e-10,
    )  # fmt: skip
    assert int(sol.stats["num_rejected"]) > 0
    ts = np.asarray(sol.ts)
    assert len(ts) == int(sol.stats["num_accepted"]) + 1
    assert np.all(np.diff(ts) > 0)
    assert ts[0] == 0.0
    assert ts[-1] == 3.0
    np.testing.assert_allclose(np.asarray(sol.ys), exact(ts), rtol=1e-7, atol=1e-9)
    midpoints = (ts[:-1] + ts[1:]) / 2
    dense = np.stack([np.asarray(sol.evaluate(to_backend(t))) for t in midpoints])
    np.testing.assert_allclose(dense, exact(midpoints), rtol=1e-6, atol=1e-8)
