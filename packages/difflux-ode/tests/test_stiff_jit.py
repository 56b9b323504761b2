"""Derivatives of the stiff solvers and of the default solver, eagerly and under ``dx.jit``.

The oracle is a central finite difference of the exact solution
``y(t) = expm(A t) y0`` of a stiff linear system, so it does not depend on
the solver under test.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.linalg

import difflux.core as dx
from difflux import ode
from difflux.ode._newton import lu_factor, lu_solve_p

HAS_JAX = importlib.util.find_spec("jax") is not None

# y' = A y with A = [[p0, 0.5], [0.2, p1]]: eigenvalues near -1 and -2000.
PARAMS = np.array([-1.0, -2000.0])
Y0 = np.array([1.0, 0.5])
TS = np.array([0.002, 0.1, 0.5])
TANGENT_Y0 = np.array([0.3, -0.7])
TANGENT_PARAMS = np.array([0.5, 40.0])

# Reverse mode through eager JAX dispatches every operation separately, and
# each compiled case compiles a whole adaptive solve, so the JAX cases take
# tens of seconds each.
JAX = pytest.param("jax", marks=[pytest.mark.slow, pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")])
# dx.jit is the identity on NumPy arrays, so NumPy runs eagerly only.
RUNS = ["numpy-eager", pytest.param("jax-eager", marks=JAX.marks), pytest.param("jax-jit", marks=JAX.marks)]

SOLVERS = [None, ode.Kvaerno5(), ode.Rodas5P(), ode.BDF()]
SOLVER_IDS = ["default", "Kvaerno5", "Rodas5P", "BDF"]


def linear(t, y, p):
    return dx.stack([p[0] * y[0] + 0.5 * y[1], 0.2 * y[0] + p[1] * y[1]])


def solve(solver, y0, params):
    return ode.solve(linear, y0, (0.0, 0.5), params, solver=solver, saveat=ode.SaveAt(ts=TS), rtol=1e-6, atol=1e-8)


def loss(solver, y0, params):
    return dx.sum(solve(solver, y0, params).ys ** 2)


def exact_loss(y0, params):
    a = np.array([[params[0], 0.5], [0.2, params[1]]])
    return sum(float(np.sum((scipy.linalg.expm(a * t) @ y0) ** 2)) for t in TS)


def central_difference(direction_y0, direction_params, eps=1e-6):
    """Return the derivative of the exact loss along (direction_y0, direction_params)."""
    forward = exact_loss(Y0 + eps * direction_y0, PARAMS + eps * direction_params)
    backward = exact_loss(Y0 - eps * direction_y0, PARAMS - eps * direction_params)
    return (forward - backward) / (2 * eps)


def exact_gradients():
    grad_y0 = np.array([central_difference(e, 0 * e) for e in np.eye(2)])
    # A relative step in the stiff rate, which is of order 1e3.
    grad_params = np.array(
        [central_difference(0 * e, e * abs(PARAMS)) / abs(PARAMS[i]) for i, e in enumerate(np.eye(2))]
    )
    return grad_y0, grad_params


def transform(run, function):
    return dx.jit(function) if run == "jax-jit" else function


def as_run_backend(run, x):
    return dx.asarray(x, backend=run.split("-")[0])


def test_default_solver_switches_to_stiff():
    # The default solver's derivatives below go through the stiff branch only if it switches.
    sol = solve(None, Y0, PARAMS)
    assert int(sol.stats["num_stiff_steps"]) > 0


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("solver", SOLVERS, ids=SOLVER_IDS)
def test_gradient_matches_finite_differences(solver, run):
    gradient = transform(run, dx.grad(lambda y0, params: loss(solver, y0, params), argnums=(0, 1)))

    grad_y0, grad_params = gradient(as_run_backend(run, Y0), as_run_backend(run, PARAMS))

    expected_y0, expected_params = exact_gradients()
    # The solver's error at rtol=1e-6 limits the agreement with the exact derivative.
    np.testing.assert_allclose(np.asarray(grad_y0), expected_y0, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(grad_params), expected_params, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("solver", SOLVERS, ids=SOLVER_IDS)
def test_jvp_matches_finite_differences(solver, run):
    def derivative(y0, params, tangent_y0, tangent_params):
        return dx.jvp(lambda y, p: loss(solver, y, p), (y0, params), (tangent_y0, tangent_params))

    arrays = [as_run_backend(run, x) for x in (Y0, PARAMS, TANGENT_Y0, TANGENT_PARAMS)]
    value, tangent = transform(run, derivative)(*arrays)

    assert float(value) == pytest.approx(exact_loss(Y0, PARAMS), rel=1e-5)
    assert float(tangent) == pytest.approx(central_difference(TANGENT_Y0, TANGENT_PARAMS), rel=1e-4)


@pytest.mark.parametrize("run", RUNS)
def test_lu_solve_traced_factors_take_derivative_from_matrix(run):
    # Factors that a loop or cond hands back as tracers must not raise, and
    # the derivative of a^{-1} b in a comes from the rule for a alone.
    a0 = np.array([[4.0, 1.0], [2.0, 3.0]])
    b = np.array([1.0, -2.0])
    factors = lu_factor(as_run_backend(run, a0))

    def solve_traced(a):
        lu = factors[0] + 0.0 * dx.sum(a)  # a tracer with a zero derivative
        return dx.sum(lu_solve_p(a, lu, factors[1], as_run_backend(run, b), trans=False) ** 2)

    gradient = transform(run, dx.grad(solve_traced))(as_run_backend(run, a0))
    _, tangent = transform(run, lambda a, t: dx.jvp(solve_traced, (a,), (t,)))(
        as_run_backend(run, a0), as_run_backend(run, np.eye(2))
    )

    def exact(a):
        return float(np.sum(np.linalg.solve(a, b) ** 2))

    def central(direction, eps=1e-6):
        return (exact(a0 + eps * direction) - exact(a0 - eps * direction)) / (2 * eps)

    expected = np.array([central(e.reshape(2, 2)) for e in np.eye(4)]).reshape(2, 2)
    np.testing.assert_allclose(np.asarray(gradient), expected, rtol=1e-6)
    assert float(tangent) == pytest.approx(central(np.eye(2)), rel=1e-6)
