"""Convergence orders fitted from error slopes, adaptive accuracy and dense output."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import difflux.core as dx
from difflux import ode

# (solver, claimed order, step sizes over t in [0, 1]): large enough steps
# that the error stays far above rounding, small enough for the asymptotic range.
FIXED_STEP_CASES = [
    (ode.Euler(), 1, [1 / 16, 1 / 32, 1 / 64, 1 / 128]),
    (ode.Heun(), 2, [1 / 16, 1 / 32, 1 / 64, 1 / 128]),
    (ode.Midpoint(), 2, [1 / 16, 1 / 32, 1 / 64, 1 / 128]),
    (ode.Ralston(), 2, [1 / 16, 1 / 32, 1 / 64, 1 / 128]),
    (ode.RK4(), 4, [1 / 16, 1 / 32, 1 / 64, 1 / 128]),
    (ode.Bosh3(), 3, [1 / 8, 1 / 16, 1 / 32, 1 / 64]),
    (ode.Dopri5(), 5, [1 / 16, 1 / 32, 1 / 64, 1 / 128]),
    (ode.Tsit5(), 5, [1 / 16, 1 / 32, 1 / 64, 1 / 128]),
]

CASE_IDS = [type(case[0]).__name__ for case in FIXED_STEP_CASES]

MATRIX = np.array([[-0.5, 2.0, 0.0], [-2.0, -0.5, 0.3], [0.1, 0.0, -1.0]])
Y0 = np.array([1.0, 0.0, 0.5])


def linear(t, y, matrix):
    return matrix @ y


def logistic(t, y, rate):
    return rate * y * (1.0 - y)


def logistic_solution(t, y0, rate):
    return 1.0 / (1.0 + (1.0 / y0 - 1.0) * np.exp(-rate * t))


def fitted_order(step_sizes, errors):
    slope, _ = np.polyfit(np.log(step_sizes), np.log(errors), 1)
    return slope


def final_value(vector_field, y0, args, solver, dt):
    sol = ode.solve(vector_field, y0, (0.0, 1.0), args, solver=solver, dt0=dt, adaptive=False)
    return np.asarray(sol.ys[-1])


@pytest.mark.parametrize(("solver", "order", "step_sizes"), FIXED_STEP_CASES, ids=CASE_IDS)
def test_order_on_linear_system(solver, order, step_sizes):
    exact = scipy.linalg.expm(MATRIX) @ Y0
    errors = [np.max(np.abs(final_value(linear, Y0, MATRIX, solver, dt) - exact)) for dt in step_sizes]
    assert fitted_order(step_sizes, errors) == pytest.approx(order, abs=0.25)


@pytest.mark.parametrize(("solver", "order", "step_sizes"), FIXED_STEP_CASES, ids=CASE_IDS)
def test_order_on_logistic_equation(solver, order, step_sizes):
    y0, rate = np.array([0.1]), 3.0
    exact = logistic_solution(1.0, 0.1, rate)
    errors = [abs(final_value(logistic, y0, rate, solver, dt)[0] - exact) for dt in step_sizes]
    assert fitted_order(step_sizes, errors) == pytest.approx(order, abs=0.3)


def lotka_volterra(t, y, params):
    alpha, beta, delta, gamma = params[0], params[1], params[2], params[3]
    prey, predator = y[0], y[1]
    return dx.stack([alpha * prey - beta * prey * predator, delta * prey * predator - gamma * predator])


LV_PARAMS = np.array([1.5, 1.0, 1.0, 3.0])
LV_Y0 = np.array([1.0, 1.0])
LV_TS = np.linspace(0.0, 5.0, 11)


def lotka_volterra_reference():
    def rhs(t, y):
        return np.asarray(lotka_volterra(t, y, LV_PARAMS))

    return scipy.integrate.solve_ivp(rhs, (0.0, 5.0), LV_Y0, method="DOP853", rtol=1e-12, atol=1e-12, t_eval=LV_TS).y.T


@pytest.mark.parametrize("solver", [ode.Bosh3(), ode.Dopri5(), ode.Tsit5()], ids=lambda s: type(s).__name__)
def test_adaptive_matches_scipy(solver, backend, to_backend):
    reference = lotka_volterra_reference()
    sol = ode.solve(
        lotka_volterra,
        to_backend(LV_Y0),
        (0.0, 5.0),
        to_backend(LV_PARAMS),
        solver=solver,
        saveat=ode.SaveAt(ts=to_backend(LV_TS)),
        rtol=1e-8,
        atol=1e-10,
    )
    assert int(sol.status) == 0
    np.testing.assert_allclose(np.asarray(sol.ys), reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(sol.ts), LV_TS)


@pytest.mark.parametrize("solver", [ode.Bosh3(), ode.Dopri5(), ode.Tsit5()], ids=lambda s: type(s).__name__)
def test_error_is_proportional_to_tolerance(solver):
    reference = lotka_volterra_reference()[-1]
    errors = []
    for rtol in (1e-5, 1e-8):
        sol = ode.solve(lotka_volterra, LV_Y0, (0.0, 5.0), LV_PARAMS, solver=solver, rtol=rtol, atol=rtol * 1e-2)
        errors.append(np.max(np.abs(np.asarray(sol.ys[-1]) - reference)))
    assert errors[0] < 1e-2
    assert errors[1] < 2e-5
    # Three decades tighter tolerance gives at least two decades smaller error.
    assert errors[1] < errors[0] / 100


@pytest.mark.parametrize(
    ("solver", "kwargs", "atol"),
    [
        (ode.Tsit5(), {"rtol": 1e-8, "atol": 1e-10}, 1e-6),
        (ode.Dopri5(), {"rtol": 1e-8, "atol": 1e-10}, 1e-6),
        (ode.Bosh3(), {"rtol": 1e-8, "atol": 1e-10}, 1e-6),
        (ode.RK4(), {"dt0": 0.01}, 1e-6),
    ],
    ids=["Tsit5", "Dopri5", "Bosh3", "RK4"],
)
def test_dense_output_between_steps(solver, kwargs, atol, backend, to_backend):
    sol = ode.solve(
        logistic, to_backend(np.array([0.1])), (0.0, 2.0), 3.0, solver=solver, saveat=ode.SaveAt(dense=True), **kwargs
    )
    ts = np.linspace(0.0, 2.0, 41) + 0.013
    ts[-1] = 2.0
    values = np.asarray(sol.evaluate(to_backend(ts)))[:, 0]
    np.testing.assert_allclose(values, logistic_solution(ts, 0.1, 3.0), rtol=0, atol=atol)
    assert float(np.asarray(sol(1.0))[0]) == pytest.approx(logistic_solution(1.0, 0.1, 3.0), abs=atol)


def test_dense_output_order_of_tsit5():
    # With constant steps the interpolant's error between steps shrinks as
    # h**5 (a fourth-order interpolant), so halving h gains at least 16x.
    errors = []
    ts = np.linspace(0.0, 1.0, 37)[1:-1]
    for dt in (1 / 4, 1 / 8):
        sol = ode.solve(
            logistic, np.array([0.1]), (0.0, 1.0), 3.0, dt0=dt, adaptive=False, saveat=ode.SaveAt(dense=True)
        )
        errors.append(np.max(np.abs(np.asarray(sol.evaluate(ts))[:, 0] - logistic_solution(ts, 0.1, 3.0))))
    assert errors[1] < errors[0] / 16


def test_steps_are_saved():
    sol = ode.solve(logistic, np.array([0.1]), (0.0, 2.0), 3.0, saveat=ode.SaveAt(steps=True))
    assert sol.ts.shape == (int(sol.stats["num_accepted"]) + 1,)
    assert float(sol.ts[0]) == 0.0
    assert float(sol.ts[-1]) == 2.0
    assert np.all(np.diff(np.asarray(sol.ts)) > 0)
    np.testing.assert_allclose(np.asarray(sol.ys)[:, 0], logistic_solution(np.asarray(sol.ts), 0.1, 3.0), atol=1e-6)


def test_backward_integration():
    ts = np.array([1.0, 0.5, 0.0])
    sol = ode.solve(linear, Y0, (1.0, 0.0), MATRIX, saveat=ode.SaveAt(ts=ts, t1=True), rtol=1e-10, atol=1e-12)
    expected = np.stack(
        [Y0, scipy.linalg.expm(-0.5 * MATRIX) @ Y0, scipy.linalg.expm(-MATRIX) @ Y0, scipy.linalg.expm(-MATRIX) @ Y0]
    )
    np.testing.assert_allclose(np.asarray(sol.ys), expected, atol=1e-8)


def test_constant_steps_land_on_t1():
    sol = ode.solve(linear, Y0, (0.0, 1.0), MATRIX, solver=ode.RK4(), dt0=0.1)
    assert int(sol.stats["num_steps"]) == 10
    assert int(sol.stats["num_fevals"]) == 1 + 10 * 4
