"""Explicit Runge-Kutta steps traced with their stages in a loop (``rolled_stages``)."""

from __future__ import annotations

import numpy as np
import pytest

from difflux import ode
from difflux.ode._runge_kutta import rolled_stages

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

SOLVERS = [
    ode.Euler,
    ode.Heun,
    ode.Midpoint,
    ode.Ralston,
    ode.RK4,
    ode.Bosh3,
    ode.Dopri5,
    ode.Tsit5,
    ode.Vern7,
    ode.Dopri8,
]


def field(t, y):
    # Nonlinear in y and t, so every stage value and node matters.
    return jnp.stack([jnp.sin(t) * y[1] - y[0] ** 2, jnp.tanh(y[0]) + 0.5 * t * y[1]])


def take_step(solver, rolled):
    def step(t, y, h):
        return solver.step(field, t, y, field(t, y), h)

    y = jnp.asarray([0.7, -0.4])
    if rolled:
        with rolled_stages():
            return jax.jit(step)(0.3, y, 0.25)
    return jax.jit(step)(0.3, y, 0.25)


@pytest.mark.parametrize("solver_class", SOLVERS, ids=lambda cls: cls.__name__)
def test_rolled_step_matches_unrolled(solver_class):
    solver = solver_class()
    y1, error, ks, f1 = take_step(solver, rolled=False)
    rolled_y1, rolled_error, rolled_ks, rolled_f1 = take_step(solver, rolled=True)
    np.testing.assert_allclose(np.asarray(rolled_y1), np.asarray(y1), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(np.asarray(rolled_ks), np.asarray(ks), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(np.asarray(rolled_f1), np.asarray(f1), rtol=1e-14, atol=1e-15)
    assert (rolled_error is None) == (error is None)
    if error is not None:
        np.testing.assert_allclose(np.asarray(rolled_error), np.asarray(error), rtol=1e-12, atol=1e-16)


def test_rolled_step_loops_over_stages():
    # The traced step evaluates the field once inside one loop, not once per
    # stage. Each trace gets its own function, because JAX caches traces by function.
    def program():
        def step(t, y, h):
            return ode.Tsit5().step(field, t, y, field(t, y), h)[0]

        return str(jax.make_jaxpr(step)(0.3, jnp.asarray([0.7, -0.4]), 0.25))

    with rolled_stages():
        rolled = program()
    unrolled = program()
    assert rolled.count("tanh") == 2
    assert unrolled.count("tanh") == 7
    assert "scan" in rolled or "while" in rolled


def test_rolled_stages_leaves_concrete_values_unrolled():
    # Outside jax.jit the values are concrete, so the step runs eagerly and unrolled inside the block too.
    y = jnp.asarray([0.7, -0.4])
    with rolled_stages():
        y1, _, ks, _ = ode.Tsit5().step(field, 0.3, y, field(0.3, y), 0.25)
    expected_y1, _, expected_ks, _ = take_step(ode.Tsit5(), rolled=False)
    np.testing.assert_allclose(np.asarray(y1), np.asarray(expected_y1), rtol=1e-14)
    assert ks.shape == expected_ks.shape
