"""Gradients through the stiff solvers against finite differences, on both backends."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.integrate

import difflux.core as dx
from difflux import ode

HAS_JAX = importlib.util.find_spec("jax") is not None

# A stiff nonlinear system: y[0] relaxes at rate p[0] = 200 onto sin(y[1]).
PARAMS = np.array([200.0, 0.7])
Y0 = np.array([1.0, 0.5])

# Reverse mode through eager JAX dispatches every operation separately, so
# the JAX cases take tens of seconds.
BACKENDS = ["numpy", pytest.param("jax", marks=[pytest.mark.slow, pytest.mark.skipif(not HAS_JAX, reason="no JAX")])]

FIXED_STEP = [ode.ImplicitEuler(), ode.Kvaerno3(), ode.Kvaerno5(), ode.Rosenbrock23()]
FIXED_IDS = [type(solver).__name__ for solver in FIXED_STEP]


def relaxation(t, y, p):
    return dx.stack([-p[0] * (y[0] - dx.sin(y[1])), -p[1] * y[1] + 0.1 * y[0] * y[0]])


def central_differences(loss, y0, params, eps=1e-6):
    """Return the central-difference gradients in y0 and (relative steps) in params."""
    grad_y0 = np.array([(loss(y0 + eps * e, params) - loss(y0 - eps * e, params)) / (2 * eps) for e in np.eye(2)])
    grad_params = np.array(
        [
            (loss(y0, params * (1 + eps * e)) - loss(y0, params * (1 - eps * e))) / (2 * eps * params[i])
            for i, e in enumerate(np.eye(2))
        ]
    )
    return grad_y0, grad_params


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solver", FIXED_STEP, ids=FIXED_IDS)
def test_fixed_step_gradients_match_finite_differences(solver, backend, to_backend):
    # With constant steps the solve is one smooth map, so its gradient
    # matches finite differences closely. Tight tolerances make the Newton
    # iterations (whose stopping point is not smooth) converge fully.
    def loss(y0, params):
        sol = ode.solve(
            relaxation, y0, (0.0, 0.5), params, solver=solver, dt0=0.05, adaptive=False, rtol=1e-12, atol=1e-14
        )
        return dx.sum(sol.ys[-1] ** 2)

    grad_y0, grad_params = dx.grad(loss, argnums=(0, 1))(to_backend(Y0), to_backend(PARAMS))
    expected_y0, expected_params = central_differences(lambda y, p: float(loss(y, p)), Y0, PARAMS)
    np.testing.assert_allclose(np.asarray(grad_y0), expected_y0, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(np.asarray(grad_params), expected_params, rtol=1e-5, atol=1e-9)


def exact_loss(y0, params):
    def f(t, y):
        return np.asarray(relaxation(t, y, params))

    sol = scipy.integrate.solve_ivp(f, (0.0, 1.0), y0, method="Radau", rtol=1e-12, atol=1e-14)
    return float(np.sum(sol.y[:, -1] ** 2))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solver", [ode.Kvaerno5(), ode.BDF(), None], ids=["Kvaerno5", "BDF", "AutoSwitch"])
def test_adaptive_gradients_match_exact_derivative(solver, backend, to_backend):
    # Finite differences of an adaptive solve jump with its step sizes, so
    # the oracle is the derivative of the exact solution: central
    # differences of SciPy's Radau at rtol 1e-12.
    def loss(y0, params):
        sol = ode.solve(relaxation, y0, (0.0, 1.0), params, solver=solver, rtol=1e-7, atol=1e-9, max_steps=256)
        return dx.sum(sol.ys[-1] ** 2)

    grad_y0, grad_params = dx.grad(loss, argnums=(0, 1))(to_backend(Y0), to_backend(PARAMS))
    expected_y0, expected_params = central_differences(exact_loss, Y0, PARAMS, eps=1e-5)
    np.testing.assert_allclose(np.asarray(grad_y0), expected_y0, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(np.asarray(grad_params), expected_params, rtol=1e-3, atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_jit_gradient_matches_eager():
    y0, params = dx.asarray(Y0, backend="jax"), dx.asarray(PARAMS, backend="jax")

    def loss(y0, params):
        sol = ode.solve(relaxation, y0, (0.0, 1.0), params, solver=ode.Kvaerno5(), rtol=1e-8, atol=1e-10)
        return dx.sum(sol.ys[-1] ** 2)

    gradient = dx.grad(loss, argnums=(0, 1))
    for eager, compiled in zip(gradient(y0, params), dx.jit(gradient)(y0, params)):
        np.testing.assert_allclose(np.asarray(compiled), np.asarray(eager), rtol=1e-8)


@pytest.mark.parametrize("solver", [ode.Kvaerno5(), ode.Rosenbrock23()], ids=["Kvaerno5", "Rosenbrock23"])
def test_forward_mode_matches_finite_differences(solver):
    def final(params):
        sol = ode.solve(
            relaxation, Y0, (0.0, 0.5), params, solver=solver, dt0=0.05, adaptive=False, rtol=1e-12, atol=1e-14
        )
        return sol.ys[-1]

    direction, eps = np.array([1.0, 0.3]), 1e-6
    _, tangent = dx.jvp(final, (PARAMS,), (direction,))
    expected = (np.asarray(final(PARAMS + eps * direction)) - np.asarray(final(PARAMS - eps * direction))) / (2 * eps)
    np.testing.assert_allclose(np.asarray(tangent), expected, rtol=1e-6, atol=1e-10)
