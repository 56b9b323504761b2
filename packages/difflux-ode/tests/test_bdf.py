"""The variable-order BDF (NDF) solver: local orders, error constants, order selection and stiff solves."""

from __future__ import annotations

from math import comb, factorial

import numpy as np
import pytest
import scipy.linalg

import difflux.core as dx
from difflux import ode
from difflux.ode._solver_bdf import _NDF_KAPPA

# A stiff linear system: eigenvalues -1 +- 2i and -500.
MATRIX = np.array([[-1.0, 2.0, 0.0], [-2.0, -1.0, 1.0], [0.0, 0.0, -500.0]])
Y0 = np.array([1.0, 0.0, 0.5])

# The coefficients kappa_k of the NDF of order k (Shampine and Reichelt,
# The MATLAB ODE Suite, 1997, Table 1), with gamma_k = 1 + 1/2 + ... + 1/k.
KAPPA = [-0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0]


def linear(t, y, matrix):
    return matrix @ y


def blow_up(t, y):
    # y' = y^2 from y(0) = 1/2: y(t) = 1 / (2 - t), y^(m)(0) = m! / 2^(m + 1).
    return y * y


def blow_up_solution(t):
    return np.array([1.0 / (2.0 - t)])


def one_step_from_exact_history(order, h):
    """Take one step of ``order`` from t = 0 with the exact backward differences of y = 1 / (2 - t)."""
    solver = ode.BDF(kappa=1e-2, max_newton_iterations=30)
    t, y = np.asarray(0.0), blow_up_solution(0.0)
    state = solver.init_state(blow_up, t, y, blow_up(t, y), 1e-12, 1e-14)
    differences = np.zeros_like(state["differences"])
    for j in range(order + 2):
        differences[j] = sum((-1) ** i * comb(j, i) * blow_up_solution(-i * h) for i in range(j + 1))
    state.update(differences=differences, order=np.int32(order), step_of_differences=np.asarray(h))
    y1, y_error, _, _, new_state = solver.step_with_state(blow_up, t, y, blow_up(t, y), np.asarray(h), state)
    assert bool(new_state["converged"])
    return y1[0] - blow_up_solution(h)[0], y_error[0]


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_local_error_has_order_plus_one(order):
    step_sizes = [0.04, 0.02, 0.01]
    errors = [abs(one_step_from_exact_history(order, h)[0]) for h in step_sizes]
    slope, _ = np.polyfit(np.log(step_sizes), np.log(errors), 1)
    assert slope == pytest.approx(order + 1, abs=0.15)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_local_error_constant_matches_ndf(order):
    # The NDF's local error is (kappa_k gamma_k + 1 / (k + 1)) / alpha_k h^(k+1) y^(k+1).
    gamma = sum(1.0 / j for j in range(1, order + 1))
    kappa = KAPPA[order - 1]
    error_constant = kappa * gamma + 1.0 / (order + 1)
    alpha = (1.0 - kappa) * gamma
    h = 0.01
    error, estimate = one_step_from_exact_history(order, h)
    derivative = factorial(order + 1) / 2.0 ** (order + 2)
    assert error / (h ** (order + 1) * derivative) == pytest.approx(error_constant / alpha, rel=0.05)
    # The estimate error_constant * (y1 - predictor) exceeds the error by
    # about alpha_k + error_constant = gamma_k + 1 / (k + 1), because the
    # difference to the predictor contains the error itself.
    assert estimate / error == pytest.approx(gamma + 1.0 / (order + 1), rel=0.08)


def test_stability_angles_of_solver_coefficients():
    # For y' = lambda y the order-k NDF reads sum_m (1/m) nabla^m y_{n+1}
    # - kappa_k gamma_k nabla^(k+1) y_{n+1} = z y_{n+1} with z = h lambda.
    # Its stability region lies outside the boundary locus z(theta), where
    # nabla = 1 - exp(-i theta). The largest sector |arg(-z)| < angle
    # inside the region excludes the locus points left of the imaginary axis.
    expected_angles = [90.0, 90.0, 80.4, 66.2, 51.8]
    nabla = 1.0 - np.exp(-1j * np.linspace(1e-6, 2 * np.pi - 1e-6, 200_001))
    for order, expected in zip(range(1, 6), expected_angles):
        gamma = sum(1.0 / j for j in range(1, order + 1))
        kappa = _NDF_KAPPA[order]
        assert kappa == pytest.approx(KAPPA[order - 1])
        locus = sum(nabla**m / m for m in range(1, order + 1)) - kappa * gamma * nabla ** (order + 1)
        left = locus[locus.real < -1e-12]
        angle = 90.0 if left.size == 0 else float(np.degrees(np.min(np.abs(np.angle(-left)))))
        assert angle == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize("rtol", [1e-5, 1e-8, 1e-10])
def test_stiff_linear_system_meets_tolerance(rtol, backend, to_backend):
    exact = scipy.linalg.expm(MATRIX) @ Y0
    sol = ode.solve(linear, to_backend(Y0), (0.0, 1.0), to_backend(MATRIX), solver=ode.BDF(), rtol=rtol, atol=rtol)
    assert int(sol.status) == ode.Status.SUCCESSFUL
    error = np.max(np.abs(np.asarray(sol.ys[-1]) - exact))
    assert error < 30 * rtol


def test_backward_integration_matches_expm():
    # y' = -A y from y(1) = y1 back to t = 0 gives y(0) = expm(A) y1.
    exact = scipy.linalg.expm(MATRIX[:2, :2]) @ Y0[:2]
    sol = ode.solve(linear, Y0[:2], (1.0, 0.0), -MATRIX[:2, :2], solver=ode.BDF(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(sol.ys[-1]), exact, rtol=1e-6)


def test_higher_orders_take_fewer_steps():
    steps = {}
    for max_order in (1, 2, 5):
        sol = ode.solve(
            linear, Y0, (0.0, 1.0), MATRIX, solver=ode.BDF(max_order=max_order), rtol=1e-8, atol=1e-10, max_steps=10**5
        )
        steps[max_order] = int(sol.stats["num_steps"])
    assert steps[2] < steps[1] / 10
    assert steps[5] < steps[2] / 4


def test_saved_times_interpolate_within_tolerance():
    ts = np.linspace(0.0, 1.0, 41)
    sol = ode.solve(linear, Y0, (0.0, 1.0), MATRIX, solver=ode.BDF(), saveat=ode.SaveAt(ts=ts), rtol=1e-8, atol=1e-10)
    exact = np.stack([scipy.linalg.expm(MATRIX * t) @ Y0 for t in ts])
    np.testing.assert_allclose(np.asarray(sol.ys), exact, atol=1e-6)


def test_interpolant_reproduces_step_ends():
    # The differences after a step give y1 at theta = 1 and y0 at theta = 0.
    solver = ode.BDF()
    differences = np.array([[2.0, 1.0], [0.5, -0.25], [0.1, 0.2], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    y1 = differences[0]
    y0 = y1 - differences[1]
    for theta, expected in ((1.0, y1), (0.0, y0)):
        value = solver.interpolate(y0, y1, y0, y1, 0.1, differences, np.array([theta]))
        np.testing.assert_allclose(value, expected, rtol=1e-15)


def test_float32_state_stays_float32():
    sol = ode.solve(
        linear, Y0.astype(np.float32), (0.0, 1.0), MATRIX.astype(np.float32), solver=ode.BDF(), rtol=1e-4, atol=1e-6
    )
    assert sol.ys.dtype == np.float32
    np.testing.assert_allclose(sol.ys[-1], scipy.linalg.expm(MATRIX) @ Y0, atol=1e-3)


def test_user_jacobian_gives_same_solution():
    sol_forward = ode.solve(linear, Y0, (0.0, 1.0), MATRIX, solver=ode.BDF(), rtol=1e-8, atol=1e-10)
    sol_user = ode.solve(
        linear, Y0, (0.0, 1.0), MATRIX, solver=ode.BDF(jacobian=lambda t, y: MATRIX), rtol=1e-8, atol=1e-10
    )
    np.testing.assert_allclose(np.asarray(sol_user.ys), np.asarray(sol_forward.ys), rtol=1e-12)
    # Without dx.jacfwd the Jacobians cost no evaluations of f.
    assert int(sol_user.stats["num_fevals"]) < int(sol_forward.stats["num_fevals"])


def test_vmap_matches_separate_solves():
    starts = np.stack([Y0, 0.5 * Y0 + 0.1])

    def final(y0):
        return ode.solve(linear, y0, (0.0, 1.0), MATRIX, solver=ode.BDF(), rtol=1e-7, atol=1e-9).ys[-1]

    batched = np.asarray(dx.vmap(final)(starts))
    for row, y0 in zip(batched, starts):
        np.testing.assert_allclose(row, np.asarray(final(y0)), rtol=1e-10)


@pytest.mark.parametrize(
    "options",
    [{"max_order": 0}, {"max_order": 6}, {"max_order": 2.0}, {"kappa": 0.0}, {"max_newton_iterations": 0}],
    ids=["order-0", "order-6", "order-float", "kappa-0", "no-iterations"],
)
def test_invalid_options_raise(options):
    with pytest.raises(ValueError, match="BDF"):
        ode.BDF(**options)
