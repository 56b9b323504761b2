"""Convergence orders of the implicit solvers, fitted from error slopes, on both backends."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

import difflux.core as dx
from difflux import ode

# (solver, claimed order, step sizes over t in [0, 1]).
CASES = [
    (ode.ImplicitEuler(), 1, [1 / 8, 1 / 16, 1 / 32, 1 / 64]),
    (ode.Kvaerno3(), 3, [1 / 8, 1 / 16, 1 / 32, 1 / 64]),
    (ode.Kvaerno4(), 4, [1 / 8, 1 / 16, 1 / 32, 1 / 64]),
    (ode.Kvaerno5(), 5, [1 / 4, 1 / 8, 1 / 16, 1 / 32]),
    (ode.Rosenbrock23(), 2, [1 / 8, 1 / 16, 1 / 32, 1 / 64]),
]
IDS = [type(case[0]).__name__ for case in CASES]

# A stiff linear system: eigenvalues -1 +- 2i and -500.
MATRIX = np.array([[-1.0, 2.0, 0.0], [-2.0, -1.0, 1.0], [0.0, 0.0, -500.0]])
Y0 = np.array([1.0, 0.0, 0.5])


def linear(t, y, matrix):
    return matrix @ y


def logistic(t, y, rate):
    return rate * y * (1.0 - y)


def fitted_order(step_sizes, errors):
    slope, _ = np.polyfit(np.log(step_sizes), np.log(errors), 1)
    return slope


def final_value(vector_field, y0, args, solver, dt):
    # Tight tolerances make the Newton iterations' error negligible next to the truncation error.
    sol = ode.solve(vector_field, y0, (0.0, 1.0), args, solver=solver, dt0=dt, adaptive=False, rtol=1e-13, atol=1e-15)
    return np.asarray(sol.ys[-1])


@pytest.mark.parametrize(("solver", "order", "step_sizes"), CASES, ids=IDS)
def test_order_on_stiff_linear_system(solver, order, step_sizes, backend, to_backend):
    exact = scipy.linalg.expm(MATRIX) @ Y0
    y0, matrix = to_backend(Y0), to_backend(MATRIX)
    errors = [np.max(np.abs(final_value(linear, y0, matrix, solver, dt) - exact)) for dt in step_sizes]
    assert fitted_order(step_sizes, errors) == pytest.approx(order, abs=0.3)


@pytest.mark.parametrize(("solver", "order", "step_sizes"), CASES, ids=IDS)
def test_order_on_logistic_equation(solver, order, step_sizes, backend, to_backend):
    rate, start = 3.0, 0.1
    exact = 1.0 / (1.0 + (1.0 / start - 1.0) * np.exp(-rate))
    y0, args = to_backend([start]), to_backend(rate)
    errors = [abs(final_value(logistic, y0, args, solver, dt)[0] - exact) for dt in step_sizes]
    assert fitted_order(step_sizes, errors) == pytest.approx(order, abs=0.3)


# A first-order method needs loose tolerances to finish in a few thousand steps.
ADAPTIVE_CASES = [(case[0], 1e-3 if case[1] == 1 else 1e-6) for case in CASES]


@pytest.mark.parametrize(("solver", "rtol"), ADAPTIVE_CASES, ids=IDS)
def test_adaptive_solve_meets_tolerance(solver, rtol, backend, to_backend):
    exact = scipy.linalg.expm(2.0 * MATRIX) @ Y0
    sol = ode.solve(linear, to_backend(Y0), (0.0, 2.0), to_backend(MATRIX), solver=solver, rtol=rtol, atol=1e-3 * rtol)
    np.testing.assert_allclose(np.asarray(sol.ys[-1]), exact, rtol=100 * rtol, atol=0.1 * rtol)
    stats = {name: int(value) for name, value in sol.stats.items()}
    assert stats["num_steps"] == stats["num_accepted"] + stats["num_rejected"]
    assert 1 <= stats["num_jacobians"] <= stats["num_steps"]
    assert stats["num_jacobians"] <= stats["num_lu"] <= stats["num_steps"]


@pytest.mark.parametrize("solver", [ode.Kvaerno5(), ode.Rosenbrock23()], ids=["Kvaerno5", "Rosenbrock23"])
def test_dense_output_matches_expm(solver, backend, to_backend):
    sol = ode.solve(
        linear,
        to_backend(Y0),
        (0.0, 2.0),
        to_backend(MATRIX),
        solver=solver,
        rtol=1e-7,
        atol=1e-9,
        saveat=ode.SaveAt(dense=True, ts=np.linspace(0.0, 2.0, 7)),
    )
    for t in (0.05, 0.77, 1.5):
        exact = scipy.linalg.expm(t * MATRIX) @ Y0
        np.testing.assert_allclose(np.asarray(sol.evaluate(t)), exact, rtol=1e-3, atol=1e-5)
    for t, value in zip(np.linspace(0.0, 2.0, 7), np.asarray(sol.ys)):
        np.testing.assert_allclose(value, scipy.linalg.expm(t * MATRIX) @ Y0, rtol=1e-3, atol=1e-5)


def test_user_jacobian_gives_the_same_solution():
    def jacobian(t, y):
        return MATRIX

    kwargs = {"rtol": 1e-8, "atol": 1e-10}
    automatic = ode.solve(linear, Y0, (0.0, 1.0), MATRIX, solver=ode.Kvaerno4(), **kwargs)
    supplied = ode.solve(linear, Y0, (0.0, 1.0), MATRIX, solver=ode.Kvaerno4(jacobian=jacobian), **kwargs)
    np.testing.assert_allclose(np.asarray(supplied.ys), np.asarray(automatic.ys), rtol=1e-12)
    # A supplied Jacobian costs no evaluations of f.
    assert int(supplied.stats["num_fevals"]) < int(automatic.stats["num_fevals"])


def test_user_jacobian_of_wrong_shape_raises():
    with pytest.raises(ValueError, match=r"returned shape \(2, 2\), but the state has 3 entries"):
        ode.solve(linear, Y0, (0.0, 1.0), MATRIX, solver=ode.Kvaerno3(jacobian=lambda t, y: np.eye(2)))


@pytest.mark.parametrize("solver", [ode.Kvaerno5(), ode.Rosenbrock23()], ids=["Kvaerno5", "Rosenbrock23"])
def test_backward_integration_matches_expm(solver):
    # From t = 1 back to t = 0 the stiff mode grows, so take the non-stiff block.
    matrix, y1 = MATRIX[:2, :2], np.array([1.0, 0.5])
    sol = ode.solve(linear, y1, (1.0, 0.0), matrix, solver=solver, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(sol.ys[-1]), scipy.linalg.expm(-matrix) @ y1, rtol=1e-4)


@pytest.mark.parametrize("solver", [ode.Kvaerno5(), ode.Rosenbrock23()], ids=["Kvaerno5", "Rosenbrock23"])
def test_float32_state_keeps_dtype(solver):
    y0, matrix = Y0.astype(np.float32), MATRIX.astype(np.float32)
    sol = ode.solve(linear, y0, (0.0, 1.0), matrix, solver=solver, rtol=1e-4, atol=1e-6)
    assert sol.ys.dtype == np.float32
    np.testing.assert_allclose(np.asarray(sol.ys[-1]), scipy.linalg.expm(MATRIX) @ Y0, rtol=1e-2, atol=1e-4)


def nonautonomous(t, y, args):
    return dx.stack([dx.cos(t) * y[0], t * t - y[1]])


def nonautonomous_solution(t):
    # y0' = cos(t) y0 and y1' = t^2 - y1 from (0.5, 1).
    return np.array([0.5 * np.exp(np.sin(t)), t * t - 2 * t + 2 - np.exp(-t)])


RODAS5P_STEPS = [1 / 4, 1 / 8, 1 / 16, 1 / 32]


def test_rodas5p_order_on_logistic_equation(backend, to_backend):
    exact = 1.0 / (1.0 + 9.0 * np.exp(-3.0))
    errors = [
        abs(final_value(logistic, to_backend([0.1]), to_backend(3.0), ode.Rodas5P(), dt)[0] - exact)
        for dt in RODAS5P_STEPS
    ]
    assert fitted_order(RODAS5P_STEPS, errors) == pytest.approx(5, abs=0.3)


def test_time_dependent_field_keeps_order(backend, to_backend):
    # df/dt enters the Rosenbrock stages; a wrong term would cost an order.
    exact = nonautonomous_solution(1.0)
    for solver, order in ((ode.Rodas5P(), 5), (ode.Rosenbrock23(), 2)):
        errors = [
            np.max(np.abs(final_value(nonautonomous, to_backend([0.5, 1.0]), None, solver, dt) - exact))
            for dt in RODAS5P_STEPS
        ]
        assert fitted_order(RODAS5P_STEPS, errors) >= order - 0.3
