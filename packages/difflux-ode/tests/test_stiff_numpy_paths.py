"""The plain-NumPy paths of the stiff solvers against their general paths.

On concrete NumPy values the LU factorisation calls LAPACK directly and the
simplified Newton iteration runs as a Python loop of NumPy calls. These
tests switch the plain paths off and check that the results do not change.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

import difflux.core as dx
from difflux import ode
from difflux.ode import _newton

RATES = np.array([0.04, 3e7, 1e4])
Y0 = np.array([1.0, 0.0, 0.0])


def robertson(t, y, rates):
    k1, k2, k3 = rates[0], rates[1], rates[2]
    y1, y2, y3 = y[0], y[1], y[2]
    return dx.stack([-k1 * y1 + k3 * y2 * y3, k1 * y1 - k2 * y2 * y2 - k3 * y2 * y3, k2 * y2 * y2])


def solve_robertson(solver):
    sol = ode.solve(
        robertson,
        Y0,
        (0.0, 1e3),
        RATES,
        solver=solver,
        saveat=ode.SaveAt(ts=np.array([1.0, 40.0, 1e3])),
        rtol=1e-8,
        atol=1e-10,
        max_steps=4096,
    )
    return np.asarray(sol.ys), {name: int(value) for name, value in sol.stats.items()}


def test_lu_factor_matches_scipy():
    matrix = np.array([[4.0, 1.0, -2.0], [0.5, -3.0, 1.0], [2.0, 2.0, 5.0]])
    lu, piv = _newton.lu_factor(matrix)
    expected_lu, expected_piv = scipy.linalg.lu_factor(matrix)
    np.testing.assert_array_equal(lu, expected_lu)
    np.testing.assert_array_equal(piv, expected_piv)


def test_lu_solve_matches_scipy():
    matrix = np.array([[4.0, 1.0, -2.0], [0.5, -3.0, 1.0], [2.0, 2.0, 5.0]])
    b = np.array([1.0, -2.0, 0.5])
    factors = _newton.lu_factor(matrix)
    x = _newton.lu_solve(matrix, factors, b)
    np.testing.assert_array_equal(x, scipy.linalg.lu_solve(scipy.linalg.lu_factor(matrix), b))
    np.testing.assert_allclose(matrix @ x, b, rtol=1e-14)


def test_lu_solve_primitive_matches_plain_path():
    # The primitive, which tracers go through, calls the same LAPACK routine.
    matrix = np.array([[4.0, 1.0], [0.5, -3.0]])
    b = np.array([1.0, -2.0])
    lu, piv = _newton.lu_factor(matrix)
    x = _newton.lu_solve_p(matrix, lu, piv, b, trans=False)
    np.testing.assert_array_equal(x, _newton.lu_solve(matrix, (lu, piv), b))
    x_transposed = _newton.lu_solve_p(matrix, lu, piv, b, trans=True)
    np.testing.assert_allclose(matrix.T @ x_transposed, b, rtol=1e-14)


def test_kvaerno5_newton_loop_matches_general_loop(monkeypatch):
    fast_ys, fast_stats = solve_robertson(ode.Kvaerno5())
    # Without the plain loop, newton_stage runs dx.while_loop over difflux operations.
    monkeypatch.setattr(_newton, "_newton_numpy", lambda *args: None)
    general_ys, general_stats = solve_robertson(ode.Kvaerno5())
    assert fast_stats == general_stats
    np.testing.assert_allclose(fast_ys, general_ys, rtol=1e-13, atol=1e-20)


def test_newton_falls_back_when_f_returns_tracer():
    # f closes over a value that dx.jvp traces, while the stage values are
    # plain NumPy: the plain loop hands over to the general one.
    rhs, scale, h_gamma = np.array([1.0, 0.5]), np.array([1e-6, 1e-6]), 0.1
    # W = I - h gamma J for f(z) = -2 z, exact at the traced rate's value.
    matrix = (1.0 + 2.0 * h_gamma) * np.eye(2)

    def stage(rate):
        def f(t, z):
            return -rate * z

        factors = _newton.lu_factor(matrix)
        z, converged, _, _ = _newton.newton_stage(f, 0.0, rhs, h_gamma, rhs, matrix, factors, scale, 1e-3, 20)
        assert bool(converged)
        return z

    value, tangent = dx.jvp(stage, (np.asarray(2.0),), (np.asarray(1.0),))
    # z = rhs / (1 + h_gamma rate), so dz/drate = -h_gamma rhs / (1 + h_gamma rate)^2.
    np.testing.assert_allclose(np.asarray(value), rhs / 1.2, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(tangent), -h_gamma * rhs / 1.2**2, rtol=1e-10)


@pytest.mark.parametrize("max_order", [2, 5])
def test_bdf_numpy_step_matches_general_step(monkeypatch, max_order):
    fast_ys, fast_stats = solve_robertson(ode.BDF(max_order=max_order))
    monkeypatch.setattr(ode.BDF, "_step_numpy", lambda *args: None)
    general_ys, general_stats = solve_robertson(ode.BDF(max_order=max_order))
    assert fast_stats == general_stats
    np.testing.assert_allclose(fast_ys, general_ys, rtol=1e-13, atol=1e-20)
