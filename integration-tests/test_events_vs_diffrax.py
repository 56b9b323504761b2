"""difflux.ode event times and their gradients against Diffrax's, in float64.

The prey of a Lotka-Volterra system first reaches 2 at a time with no
closed form. Diffrax (0.7.2) locates it with ``diffrax.Event`` and an
Optimistix Newton root finder and differentiates it through its
checkpointed adjoint. difflux locates it on the dense output and
differentiates it by the implicit function theorem. Both solve with Tsit5
at ``rtol = atol = 1e-10``, so the times and gradients agree to about the
solves' accuracy, not to rounding.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix
import pytest

import difflux.core as dx
from difflux import ode

TOLERANCE = 1e-10
THRESHOLD = 2.0
Y0 = np.array([1.0, 1.0])
PARAMS = np.array([1.5, 1.0, 3.0, 1.0])


def lotka_volterra(t, y, params, ops):
    alpha, beta, gamma, delta = params[0], params[1], params[2], params[3]
    prey, predator = y[0], y[1]
    return ops.stack([alpha * prey - beta * prey * predator, delta * prey * predator - gamma * predator])


def diffrax_event_time(y0, params):
    event = diffrax.Event(
        lambda t, y, args, **kwargs: y[0] - THRESHOLD, root_finder=optimistix.Newton(rtol=1e-12, atol=1e-12)
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, p: lotka_volterra(t, y, p, jnp)),
        diffrax.Tsit5(),
        0.0,
        10.0,
        None,
        y0,
        params,
        stepsize_controller=diffrax.PIDController(rtol=TOLERANCE, atol=TOLERANCE),
        event=event,
    )
    return sol.ts[-1]


def difflux_event_time(y0, params):
    sol = ode.solve(
        lambda t, y, p: lotka_volterra(t, y, p, dx),
        y0,
        (0.0, 10.0),
        params,
        solver=ode.Tsit5(),
        rtol=TOLERANCE,
        atol=TOLERANCE,
        events=ode.Event(lambda t, y, p: y[0] - THRESHOLD),
        max_steps=64,
    )
    return sol.event_time


@pytest.fixture(scope="module")
def reference():
    y0, params = jnp.asarray(Y0), jnp.asarray(PARAMS)
    time = float(diffrax_event_time(y0, params))
    grad_y0, grad_params = jax.grad(diffrax_event_time, argnums=(0, 1))(y0, params)
    return time, np.asarray(grad_y0), np.asarray(grad_params)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_event_time_and_gradient_match_diffrax(backend, reference):
    time, grad_y0, grad_params = reference
    y0, params = (dx.asarray(value, backend=backend) for value in (Y0, PARAMS))
    assert float(difflux_event_time(y0, params)) == pytest.approx(time, rel=1e-9)
    gradient = dx.grad(difflux_event_time, argnums=(0, 1))(y0, params)
    np.testing.assert_allclose(np.asarray(gradient[0]), grad_y0, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.asarray(gradient[1]), grad_params, rtol=1e-7, atol=1e-9)
