"""BFGS, L-BFGS and L-BFGS-B against SciPy's implementations and closed forms."""

from __future__ import annotations

import importlib.util
import itertools
import math

import numpy as np
import pytest
import scipy.optimize

import difflux.core as dx
from difflux import optim

ROSENBROCK_START = [-1.2, 1.0]


def rosenbrock(x):
    return dx.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_numpy(x):
    """Value and gradient as SciPy wants them, from the same difflux function."""
    value, grad = dx.value_and_grad(rosenbrock)(np.asarray(x, dtype=np.float64))
    return float(value), np.asarray(grad)


def start(n):
    return np.array(ROSENBROCK_START * (n // 2))


def scipy_lbfgsb(x0, bounds=None):
    options = {"gtol": 1e-10, "ftol": 1e-15, "maxiter": 1000, "maxcor": 10}
    return scipy.optimize.minimize(rosenbrock_numpy, x0, jac=True, method="L-BFGS-B", bounds=bounds, options=options)


# --------------------------------------------------------------------------
# Unconstrained: BFGS and L-BFGS
# --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", [optim.BFGS(tol=1e-9), optim.LBFGS(tol=1e-9)], ids=["bfgs", "lbfgs"])
@pytest.mark.parametrize("n", [2, 10])
def test_rosenbrock_reaches_minimum(solver, n):
    result = solver.minimize(rosenbrock, start(n))
    assert bool(result.success), result.message
    np.testing.assert_allclose(result.x, np.ones(n), atol=1e-6)
    assert float(result.fun) < 1e-12
    assert float(result.grad_norm) <= 1e-9
    assert int(result.status) == optim.Status.CONVERGED
    assert 0 < int(result.n_iter) < 200
    assert int(result.n_fev) >= int(result.n_iter) + 1


@pytest.mark.parametrize("solver", [optim.BFGS(tol=1e-8), optim.LBFGS(tol=1e-8)], ids=["bfgs", "lbfgs"])
def test_rosenbrock_agrees_with_scipy_bfgs(solver):
    reference = scipy.optimize.minimize(
        rosenbrock_numpy, start(2), jac=True, method="BFGS", options={"gtol": 1e-8, "maxiter": 1000}
    )
    result = solver.minimize(rosenbrock, start(2))
    assert reference.success
    np.testing.assert_allclose(result.x, reference.x, atol=1e-7)
    assert float(result.fun) == pytest.approx(reference.fun, abs=1e-14)
    # The same textbook method: the iteration counts are alike, not equal,
    # because the line searches differ.
    assert abs(int(result.n_iter) - reference.nit) <= 15


def test_rosenbrock_on_both_backends(backend, to_backend):
    result = optim.BFGS(tol=1e-8).minimize(rosenbrock, to_backend(ROSENBROCK_START))
    assert bool(result.success), result.message
    np.testing.assert_allclose(np.asarray(result.x), np.ones(2), atol=1e-6)
    assert type(result.x) is type(to_backend([0.0]))


def test_quadratic_converges_in_few_iterations():
    # On a strictly convex quadratic BFGS with exact-enough line searches
    # terminates in about n steps (Nocedal & Wright, theorem 6.4 remark).
    a = np.diag([1.0, 4.0, 9.0, 16.0])
    b = np.array([1.0, -2.0, 3.0, -4.0])
    result = optim.BFGS(tol=1e-10, c2=0.1).minimize(lambda x: 0.5 * dx.sum(x * (a @ x)) - dx.sum(b * x), np.zeros(4))
    np.testing.assert_allclose(result.x, np.linalg.solve(a, b), atol=1e-9)
    assert int(result.n_iter) <= 8


@pytest.mark.parametrize("history_size", [1, 3, 20])
def test_lbfgs_history_sizes(history_size):
    result = optim.LBFGS(tol=1e-8, history_size=history_size).minimize(rosenbrock, start(4))
    assert bool(result.success), result.message
    np.testing.assert_allclose(result.x, np.ones(4), atol=1e-6)


# --------------------------------------------------------------------------
# Bounds: L-BFGS-B
# --------------------------------------------------------------------------


# SciPy's run above stops on its relative-reduction test with ftol=1e-15;
# ftol=1e-13 stops these runs at the same precision.
STRICT = optim.LBFGSB(tol=1e-10, ftol=1e-13)


@pytest.mark.parametrize("n", [2, 10])
def test_lbfgsb_unbounded_agrees_with_scipy(n):
    reference = scipy_lbfgsb(start(n))
    result = STRICT.minimize(rosenbrock, start(n))
    assert bool(result.success), result.message
    np.testing.assert_allclose(result.x, reference.x, atol=1e-7)
    np.testing.assert_allclose(result.x, np.ones(n), atol=1e-7)


BOUND_CASES = {
    "box": [(-2.0, 0.5)] * 10,
    "one_sided": [(None, 2.0), (1.5, None)] * 5,
    "mixed": [(-1.0, 1.0), (None, None), (0.0, 0.3), (-math.inf, 0.5), (2.0, 3.0)] * 2,
}


@pytest.mark.parametrize("name", list(BOUND_CASES))
def test_lbfgsb_bounded_rosenbrock_agrees_with_scipy(name):
    bounds = BOUND_CASES[name]
    reference = scipy_lbfgsb(start(10), bounds)
    result = STRICT.minimize(rosenbrock, start(10), bounds=bounds)
    assert bool(result.success), result.message
    np.testing.assert_allclose(result.x, reference.x, atol=1e-7)
    assert float(result.fun) == pytest.approx(reference.fun, rel=1e-12)

    # Coordinates SciPy leaves on a bound sit exactly on it here too.
    lower = np.array([-np.inf if low is None else low for low, _ in bounds])
    upper = np.array([np.inf if high is None else high for _, high in bounds])
    active = (reference.x == lower) | (reference.x == upper)
    assert active.any()
    np.testing.assert_array_equal(result.x[active], reference.x[active])
    assert np.all(result.x >= lower)
    assert np.all(result.x <= upper)


def test_lbfgsb_optimum_on_bound_is_exact():
    # min sum((x - target)^2) over [0, 1]^4: the solution clips the target.
    target = np.array([-0.5, 0.25, 1.5, 0.75])
    result = optim.LBFGSB(tol=1e-12).minimize(lambda x: dx.sum((x - target) ** 2), np.full(4, 0.5), bounds=(0.0, 1.0))
    assert bool(result.success), result.message
    assert result.x[0] == 0.0
    assert result.x[2] == 1.0
    np.testing.assert_allclose(result.x[[1, 3]], target[[1, 3]], atol=1e-12)
    # The gradient does not vanish at the active bounds; the projected one does.
    assert float(result.grad[0]) == pytest.approx(1.0)
    assert float(result.grad_norm) <= 1e-12


def test_lbfgsb_projects_start_into_box():
    target = np.array([3.0, -3.0])
    result = optim.LBFGSB().minimize(lambda x: dx.sum((x - target) ** 2), np.array([10.0, -10.0]), bounds=(0.0, 1.0))
    np.testing.assert_array_equal(result.x, [1.0, 0.0])
    assert int(result.n_iter) == 0  # the projected start is already optimal
    assert bool(result.success)


def test_lbfgsb_fixed_variable_stays_fixed():
    bounds = [(0.7, 0.7), (None, None)]
    result = STRICT.minimize(rosenbrock, start(2), bounds=bounds)
    assert result.x[0] == 0.7
    assert float(result.x[1]) == pytest.approx(0.49, abs=1e-8)


def test_lbfgsb_rosenbrock_in_box():
    bounds = (np.array([-2.0, -2.0]), np.array([0.5, 2.0]))
    result = STRICT.minimize(rosenbrock, np.array(ROSENBROCK_START), bounds=bounds)
    assert bool(result.success), result.message
    np.testing.assert_allclose(np.asarray(result.x), [0.5, 0.25], atol=1e-8)
    assert float(result.x[0]) == 0.5


# --------------------------------------------------------------------------
# Stopping: statuses, messages, dtypes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "lbfgs-b"])
def test_iteration_limit_status(method):
    result = optim.minimize(rosenbrock, start(2), method=method, max_iter=5)
    assert int(result.status) == optim.Status.MAX_ITER
    assert not bool(result.success)
    assert int(result.n_iter) == 5
    assert result.message == "maximum number of iterations reached (max_iter=5)"


def test_zero_iterations_returns_start():
    result = optim.minimize(rosenbrock, start(2), max_iter=0)
    assert int(result.status) == optim.Status.MAX_ITER
    np.testing.assert_array_equal(result.x, start(2))
    assert int(result.n_fev) == 1


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "lbfgs-b"])
def test_non_finite_start_status(method):
    with np.errstate(invalid="ignore"):
        result = optim.minimize(lambda x: dx.sum(dx.log(x)), np.array([-1.0, 1.0]), method=method)
    assert int(result.status) == optim.Status.NON_FINITE
    assert not bool(result.success)
    assert int(result.n_iter) == 0
    assert int(result.n_fev) == 1
    assert result.message.startswith("the objective or its gradient is not finite at x0")


@dx.custom_vjp
def wrong_gradient(x):
    return dx.sum(x * x)


# The gradient has the wrong sign, so every "descent" direction goes uphill.
wrong_gradient.defvjp(lambda x: (dx.sum(x * x), x), lambda x, g: (-2.0 * g * x,))


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "lbfgs-b"])
def test_uphill_directions_end_in_line_search_failure(method):
    x0 = np.array([1.0, -2.0])
    result = optim.minimize(wrong_gradient, x0, method=method)
    assert int(result.status) == optim.Status.LINE_SEARCH_FAILED
    assert not bool(result.success)
    assert result.message == "line search failed to find a point satisfying the strong Wolfe conditions"
    np.testing.assert_array_equal(result.x, x0)
    assert int(result.n_iter) == 0
    assert int(result.n_fev) == 1 + 20


def test_small_reduction_status():
    result = optim.LBFGSB(tol=0.0, ftol=1e-6).minimize(rosenbrock, start(2))
    assert int(result.status) == optim.Status.SMALL_REDUCTION
    assert bool(result.success)
    assert result.message == "relative reduction of the objective below ftol 1.0e-06"


def test_converged_message_names_norm_and_tol():
    result = optim.minimize(rosenbrock, start(2), tol=1e-8)
    norm = float(result.grad_norm)
    assert result.message == f"gradient norm {norm:.1e} below tol 1e-08"


def test_infeasible_trials_are_shortened():
    # x - log(x) is NaN for x < 0; the first steepest-descent trials overshoot there.
    with np.errstate(invalid="ignore", divide="ignore"):
        result = optim.BFGS(tol=1e-10).minimize(lambda x: dx.sum(x - dx.log(x)), np.array([5.0, 0.1]))
    assert bool(result.success), result.message
    np.testing.assert_allclose(result.x, [1.0, 1.0], atol=1e-9)


@pytest.mark.parametrize("method", ["bfgs", "lbfgs", "lbfgs-b"])
def test_float32_stays_float32(method):
    x0 = start(2).astype(np.float32)
    result = optim.minimize(rosenbrock, x0, method=method, tol=1e-3)
    assert result.x.dtype == np.float32
    assert result.grad.dtype == np.float32
    assert result.fun.dtype == np.float32
    np.testing.assert_allclose(result.x, [1.0, 1.0], atol=1e-2)


def test_zero_ftol_ignores_rounded_values():
    # Near 1e20 every change of the quadratic rounds away, so the objective
    # never decreases; with ftol=0 only the gradient decides.
    def lifted(x):
        return 1e20 + dx.sum((x - 1.0) ** 2)

    result = optim.BFGS(tol=1e-8).minimize(lifted, np.zeros(3))
    assert int(result.status) == optim.Status.CONVERGED
    np.testing.assert_allclose(result.x, np.ones(3), atol=1e-8)
    rounded = optim.LBFGSB(tol=1e-8).minimize(lifted, np.zeros(3))
    assert int(rounded.status) == optim.Status.SMALL_REDUCTION


# --------------------------------------------------------------------------
# One iteration at a time: init, step, result
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "solver", [optim.BFGS(tol=1e-8), optim.LBFGS(tol=1e-8), STRICT], ids=["bfgs", "lbfgs", "lbfgs-b"]
)
def test_stepping_matches_minimize(solver):
    bounds = (-2.0, 0.5) if solver.supports_bounds else None
    state = solver.init(rosenbrock, start(2), bounds=bounds)
    values = [float(state.f)]
    while not state.done:
        state = solver.step(rosenbrock, state)
        values.append(float(state.f))
    stepped = solver.result(state)
    whole = solver.minimize(rosenbrock, start(2), bounds=bounds)
    np.testing.assert_array_equal(stepped.x, whole.x)
    assert int(stepped.n_iter) == int(whole.n_iter)
    assert int(stepped.n_fev) == int(whole.n_fev)
    assert stepped.message == whole.message
    assert all(later <= earlier for earlier, later in itertools.pairwise(values))


def test_step_after_stop_changes_nothing():
    solver = optim.LBFGS(max_iter=3)
    state = solver.init(rosenbrock, start(2))
    for _ in range(3):
        state = solver.step(rosenbrock, state)
    assert state.done
    again = solver.step(rosenbrock, state)
    np.testing.assert_array_equal(again.x, state.x)
    assert int(again.n_fev) == int(state.n_fev)
    assert int(solver.result(again).status) == optim.Status.MAX_ITER


def test_state_params_have_structure_of_x0():
    x0 = {"a": np.array([-1.2]), "b": np.array([1.0])}
    solver = optim.BFGS()
    state = solver.step(
        lambda p: rosenbrock(dx.concat([p["a"], p["b"]])),
        solver.init(lambda p: rosenbrock(dx.concat([p["a"], p["b"]])), x0),
    )
    assert set(state.params) == {"a", "b"}
    assert state.params["a"].shape == (1,)
    assert int(state.n_iter) == 1


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_jitted_step_on_jax():
    solver = optim.LBFGSB(tol=1e-8)
    bounds = (-2.0, 0.5)
    state = solver.init(rosenbrock, dx.asarray(ROSENBROCK_START, backend="jax"), bounds=bounds)
    step = dx.jit(solver.step)
    while not state.done:
        state = step(rosenbrock, state)
    reference = solver.minimize(rosenbrock, start(2), bounds=bounds)
    np.testing.assert_allclose(np.asarray(state.params), reference.x, rtol=1e-12)
    assert int(state.n_iter) == int(reference.n_iter)
