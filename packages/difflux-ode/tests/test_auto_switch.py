"""The default solver: Tsit5 until the problem turns stiff, then Kvaerno5."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate

import difflux.core as dx
from difflux import ode
from difflux.ode._auto_switch import tsit5_stiffness


def robertson(t, y, rates):
    k1, k2, k3 = rates[0], rates[1], rates[2]
    y1, y2, y3 = y[0], y[1], y[2]
    return dx.stack([-k1 * y1 + k3 * y2 * y3, k1 * y1 - k2 * y2 * y2 - k3 * y2 * y3, k2 * y2 * y2])


def van_der_pol(t, y, mu):
    return dx.stack([y[1], mu * ((1.0 - y[0] * y[0]) * y[1]) - y[0]])


def harmonic(t, y, omega):
    return dx.stack([y[1], -omega * omega * y[0]])


def stats_of(sol):
    return {name: int(value) for name, value in sol.stats.items()}


def run(backend, solve, *args):
    """Call ``solve(*args)``, compiled on JAX, where eager dispatch would take most of the test's time."""
    return dx.jit(solve)(*args) if backend == "jax" else solve(*args)


def test_switches_on_robertson(backend, to_backend):
    def solve(y0, rates):
        return ode.solve(robertson, y0, (0.0, 40.0), rates, rtol=1e-6)

    sol = run(backend, solve, to_backend([1.0, 0.0, 0.0]), to_backend([0.04, 3e7, 1e4]))
    stats = stats_of(sol)
    # Tsit5 alone needs thousands of stability-limited steps here.
    assert stats["num_stiff_steps"] > 0
    assert stats["num_steps"] < 200
    assert stats["num_jacobians"] >= 1
    np.testing.assert_allclose(np.asarray(sol.ys[-1]), [0.7158270687, 9.185534764e-6, 0.2841637457], rtol=1e-4)


def test_switches_on_van_der_pol():
    mu = 1000.0
    sol = ode.solve(van_der_pol, np.array([2.0, 0.0]), (0.0, 100.0), mu, rtol=1e-6, atol=1e-8)
    stats = stats_of(sol)
    assert stats["num_stiff_steps"] > 0
    # Tsit5 alone needs about 2 * mu * 100 / 3.5 steps here, stability-limited.
    assert stats["num_steps"] < 1000

    def f(t, y):
        return [y[1], mu * (1.0 - y[0] ** 2) * y[1] - y[0]]

    reference = scipy.integrate.solve_ivp(f, (0.0, 100.0), [2.0, 0.0], method="Radau", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(sol.ys[-1]), reference.y[:, -1], rtol=1e-4, atol=1e-7)


def test_stays_explicit_on_nonstiff_problem(backend, to_backend):
    y0, omega = to_backend([1.0, 0.0]), to_backend(2.0)

    def solve(y0, omega, solver):
        return ode.solve(
            harmonic, y0, (0.0, 10.0), omega, solver=solver, rtol=1e-8, atol=1e-10, saveat=ode.SaveAt(t1=True)
        )

    auto = run(backend, lambda y0, omega: solve(y0, omega, None), y0, omega)
    tsit5 = run(backend, lambda y0, omega: solve(y0, omega, ode.Tsit5()), y0, omega)
    stats = stats_of(auto)
    assert stats["num_stiff_steps"] == 0
    assert stats["num_jacobians"] == 0
    # With no switch the steps are Tsit5's, value for value.
    np.testing.assert_array_equal(np.asarray(auto.ys), np.asarray(tsit5.ys))
    assert stats["num_fevals"] == stats_of(tsit5)["num_fevals"]
    np.testing.assert_allclose(np.asarray(auto.ys[-1]), [np.cos(20.0), -2.0 * np.sin(20.0)], rtol=1e-6, atol=1e-7)


def test_stiffness_estimate_on_linear_problem():
    # For y' = lambda y the estimate is exactly h |lambda|.
    lam, h = -50.0, 0.01
    y0 = np.array([1.0])
    _, _, ks, _ = ode.Tsit5().step(lambda t, y: lam * y, 0.0, y0, lam * y0, h)
    assert float(tsit5_stiffness(h, np.asarray(ks))) == pytest.approx(abs(lam) * h, rel=1e-10)


def test_dense_output_spans_both_solvers():
    rates = np.array([0.04, 3e7, 1e4])
    sol = ode.solve(robertson, np.array([1.0, 0.0, 0.0]), (0.0, 10.0), rates, saveat=ode.SaveAt(dense=True), rtol=1e-8)
    assert 0 < int(sol.stats["num_stiff_steps"]) < int(sol.stats["num_steps"])

    def f(t, y):
        return np.asarray(robertson(t, y, rates))

    times = [1e-4, 1e-3, 0.3, 7.0]
    reference = scipy.integrate.solve_ivp(
        f, (0.0, 10.0), [1.0, 0.0, 0.0], method="Radau", t_eval=times, rtol=1e-11, atol=1e-14
    )
    np.testing.assert_allclose(np.asarray(sol.evaluate(np.array(times))), reference.y.T, rtol=1e-4, atol=1e-9)


@pytest.mark.slow
def test_jit_matches_eager_across_the_switch():
    pytest.importorskip("jax")
    y0, rates = dx.asarray([1.0, 0.0, 0.0], backend="jax"), dx.asarray([0.04, 3e7, 1e4], backend="jax")

    def final(y0, rates):
        sol = ode.solve(robertson, y0, (0.0, 40.0), rates, rtol=1e-6)
        return sol.ys[-1], sol.stats["num_stiff_steps"]

    compiled, eager = dx.jit(final)(y0, rates), final(y0, rates)
    np.testing.assert_allclose(np.asarray(compiled[0]), np.asarray(eager[0]), rtol=1e-10)
    assert int(compiled[1]) == int(eager[1])


def test_newton_failures_stop_the_solve():
    # No iteration meets a convergence threshold of 1e-300, so every stage fails.
    solver = ode.Kvaerno3(kappa=1e-300, max_newton_iterations=3)
    sol = ode.solve(lambda t, y, args: -y, np.array([1.0, 2.0]), (0.0, 1.0), solver=solver, throw=False)
    assert sol.result == ode.Status.NEWTON_FAILED
    stats = stats_of(sol)
    assert stats["num_accepted"] == 0
    assert stats["num_rejected"] == solver.max_newton_failures
    with pytest.raises(ode.ODESolveError, match="NEWTON_FAILED"):
        ode.solve(lambda t, y, args: -y, np.array([1.0, 2.0]), (0.0, 1.0), solver=solver)


def test_invalid_newton_settings_raise():
    with pytest.raises(ValueError, match="kappa must be positive"):
        ode.Kvaerno5(kappa=0.0)
    with pytest.raises(ValueError, match="max_newton_iterations must be at least 1"):
        ode.Kvaerno5(max_newton_iterations=0)


def test_rejects_non_esdirk_stiff_solver():
    with pytest.raises(TypeError, match="stiff must be an ESDIRK solver"):
        ode.AutoSwitch(stiff=ode.Rosenbrock23())
