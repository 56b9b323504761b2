"""difflux.ode gradients against Diffrax's, in float64.

Both libraries solve the same problems with Tsit5 at ``rtol = atol = 1e-10``
and save at the same times. Each difflux sensitivity method (on NumPy and
JAX arrays) must give the gradient of a loss of the saved states, with
respect to ``y0``, the parameters and ``t1``, that Diffrax (0.7.2) gives
with its ``RecursiveCheckpointAdjoint``. The two take different steps
(their PID controllers and first-step choices differ), so the gradients
agree to the solves' accuracy, about 1e-7 in relative terms, not to
rounding. Diffrax's ``BacksolveAdjoint`` is compared with difflux's
``BacksolveAdjoint`` on the same footing, for ``y0`` and the parameters
only, because Diffrax's backsolve does not differentiate the times.

Each JAX case compiles both solves (about 30 s on a loaded 2-core
machine), so JAX runs the Lotka-Volterra problem only.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import difflux.core as dx
from difflux import ode

TOLERANCE = 1e-10
TS = np.linspace(0.0, 2.0, 6)
METHODS = [
    ode.RecursiveCheckpointAdjoint(),
    ode.BacksolveAdjoint(),
    ode.InterpolatingAdjoint(),
    ode.ForwardSensitivity(),
]


def lotka_volterra(t, y, params, ops):
    alpha, beta, gamma, delta = params[0], params[1], params[2], params[3]
    prey, predator = y[0], y[1]
    return ops.stack([alpha * prey - beta * prey * predator, delta * prey * predator - gamma * predator])


def forced_oscillator(t, y, params, ops):
    stiffness, damping, amplitude = params[0], params[1], params[2]
    return ops.stack([y[1], -stiffness * y[0] - damping * y[1] + amplitude * ops.sin(2.0 * t)])


PROBLEMS = {
    "lotka_volterra": (lotka_volterra, np.array([1.0, 1.0]), np.array([1.5, 1.0, 3.0, 1.0])),
    "forced_oscillator": (forced_oscillator, np.array([1.0, 0.0]), np.array([4.0, 0.3, 0.5])),
}


def difflux_loss(field, sensitivity, moving_end=True):
    def loss(y0, params, t1):
        times = dx.concat([dx.zeros_like(t1) + TS[:-1], t1[None]]) if moving_end else TS
        sol = ode.solve(
            lambda t, y, p: field(t, y, p, dx),
            y0,
            (0.0, t1),
            params,
            solver=ode.Tsit5(),
            saveat=ode.SaveAt(ts=times),
            rtol=TOLERANCE,
            atol=TOLERANCE,
            max_steps=2048,
            sensitivity=sensitivity,
        )
        return dx.sum(sol.ys**2) + dx.sum(dx.sin(sol.ys[:, 0]))

    return loss


def diffrax_loss(field, adjoint, moving_end=True):
    def loss(y0, params, t1):
        times = jnp.concatenate([jnp.asarray(TS[:-1]), t1[None]]) if moving_end else jnp.asarray(TS)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, p: field(t, y, p, jnp)),
            diffrax.Tsit5(),
            0.0,
            t1,
            None,
            y0,
            params,
            saveat=diffrax.SaveAt(ts=times),
            stepsize_controller=diffrax.PIDController(rtol=TOLERANCE, atol=TOLERANCE),
            adjoint=adjoint,
            max_steps=2048,
        )
        return jnp.sum(sol.ys**2) + jnp.sum(jnp.sin(sol.ys[:, 0]))

    return loss


def diffrax_gradient(name, adjoint, moving_end=True):
    field, y0, params = PROBLEMS[name]
    argnums = (0, 1, 2) if moving_end else (0, 1)
    gradient = jax.jit(jax.grad(diffrax_loss(field, adjoint, moving_end), argnums=argnums))
    return [np.asarray(g) for g in gradient(jnp.asarray(y0), jnp.asarray(params), jnp.asarray(TS[-1]))]


CASES = [
    (name, backend)
    for name in sorted(PROBLEMS)
    for backend in ("numpy", "jax")
    if backend == "numpy" or name == "lotka_volterra"
]


@pytest.mark.parametrize(("name", "backend"), CASES)
@pytest.mark.parametrize("sensitivity", METHODS, ids=lambda method: type(method).__name__)
def test_gradient_matches_diffrax(name, backend, sensitivity):
    field, y0, params = PROBLEMS[name]
    args = [dx.asarray(np.asarray(v, dtype=float), backend=backend) for v in (y0, params, TS[-1])]
    gradient = dx.grad(difflux_loss(field, sensitivity), argnums=(0, 1, 2))
    if backend == "jax":
        gradient = dx.jit(gradient)
    actual = gradient(*args)
    expected = diffrax_gradient(name, diffrax.RecursiveCheckpointAdjoint())
    for label, a, e in zip(("y0", "params", "t1"), actual, expected):
        np.testing.assert_allclose(np.asarray(a), e, rtol=1e-6, atol=1e-8, err_msg=label)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_backsolve_matches_diffrax_backsolve(name):
    field, y0, params = PROBLEMS[name]
    args = [dx.asarray(np.asarray(v, dtype=float), backend="jax") for v in (y0, params, TS[-1])]
    loss = difflux_loss(field, ode.BacksolveAdjoint(), moving_end=False)
    actual = dx.jit(dx.grad(loss, argnums=(0, 1)))(*args)
    expected = diffrax_gradient(name, diffrax.BacksolveAdjoint(), moving_end=False)
    for label, a, e in zip(("y0", "params"), actual, expected):
        np.testing.assert_allclose(np.asarray(a), e, rtol=1e-6, atol=1e-8, err_msg=label)
