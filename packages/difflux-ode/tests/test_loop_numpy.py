"""The NumPy loop of eager solves against the generic loop, which must give the same bits."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from difflux import ode
from difflux.ode import _loop_numpy, _solve

THETA = np.array([0.55, 0.028, 0.8, 0.024])
Z0 = np.array([33.9, 5.9])
YEARS = np.arange(21.0)


def lotka_volterra(t, z, theta):
    return dx.stack([(theta[0] - theta[1] * z[1]) * z[0], (-theta[2] + theta[3] * z[0]) * z[1]])


def oscillator(t, y, args):
    return {"x": y["v"], "v": -y["x"]}


def nan_after_half(t, y, args):
    return y * dx.where(t > 0.5, float("nan"), 1.0)


def robertson(t, y, rates):
    k1, k2, k3 = rates[0], rates[1], rates[2]
    return dx.stack([-k1 * y[0] + k3 * y[1] * y[2], k1 * y[0] - k2 * y[1] * y[1] - k3 * y[1] * y[2], k2 * y[1] * y[1]])


def _solve_robertson(solver, **options):
    # Stiff kinetics: the solvers that carry a Jacobian and its factors between steps.
    options = {"saveat": ode.SaveAt(ts=np.array([1.0, 40.0, 400.0])), "rtol": 1e-8, "atol": 1e-10, **options}
    rates, y0 = np.array([0.04, 3e7, 1e4]), np.array([1.0, 0.0, 0.0])
    return ode.solve(robertson, y0, (0.0, 400.0), rates, solver=solver, throw=False, **options)


def _solve_lv(z0, theta, **options):
    options = {"solver": ode.Tsit5(), "saveat": ode.SaveAt(ts=YEARS), "rtol": 1e-6, "atol": 1e-6, **options}
    return ode.solve(lotka_volterra, z0, (0.0, 20.0), theta, throw=False, **options)


def _vmapped_lv():
    z0s = np.stack([Z0, 1.5 * Z0, 0.5 * Z0])
    thetas = np.stack([THETA, 1.1 * THETA, THETA])
    return dx.vmap(lambda z0, theta: _solve_lv(z0, theta))(z0s, thetas)


def _forward_sensitivity_gradients():
    def loss(theta):
        sol = _solve_lv(Z0, theta, sensitivity=ode.ForwardSensitivity())
        return dx.sum(sol.ys)

    return dx.vmap(dx.value_and_grad(loss))(np.stack([THETA, 1.1 * THETA]))


PROBLEMS = [
    ("save_times", lambda: _solve_lv(Z0, THETA)),
    (
        "backwards_with_t0_and_t1",
        lambda: ode.solve(
            lotka_volterra,
            Z0,
            (20.0, 0.0),
            THETA,
            solver=ode.Tsit5(),
            saveat=ode.SaveAt(t0=True, ts=YEARS[::-1], t1=True),
            rtol=1e-6,
            atol=1e-6,
        ),
    ),
    ("dopri5", lambda: ode.solve(lotka_volterra, Z0, (0.0, 20.0), THETA, solver=ode.Dopri5())),
    ("bosh3", lambda: _solve_lv(Z0, THETA, solver=ode.Bosh3(), rtol=1e-5)),
    (
        "constant_steps",
        lambda: ode.solve(lotka_volterra, Z0, (0.0, 3.0), THETA, solver=ode.RK4(), dt0=0.1, saveat=ode.SaveAt(t1=True)),
    ),
    ("float32", lambda: _solve_lv(Z0.astype(np.float32), THETA.astype(np.float32), rtol=1e-4, atol=1e-4)),
    ("max_steps_reached", lambda: _solve_lv(Z0, THETA, max_steps=10)),
    (
        "nonfinite_field",
        lambda: ode.solve(nan_after_half, np.ones(2), (0.0, 1.0), None, solver=ode.Tsit5(), throw=False),
    ),
    (
        "structured_state",
        lambda: ode.solve(oscillator, {"x": np.ones(2), "v": np.zeros(2)}, (0.0, 3.0), None, solver=ode.Tsit5()),
    ),
    ("save_time_repeats_t0", lambda: _solve_lv(Z0, THETA, saveat=ode.SaveAt(ts=np.array([0.0, 0.0, 5.0, 20.0])))),
    ("bdf", lambda: _solve_robertson(ode.BDF())),
    ("bdf_order_2", lambda: _solve_robertson(ode.BDF(max_order=2), saveat=ode.SaveAt(t0=True, t1=True))),
    ("bdf_max_steps_reached", lambda: _solve_robertson(ode.BDF(), max_steps=20)),
    ("kvaerno5", lambda: _solve_robertson(ode.Kvaerno5())),
    (
        "kvaerno5_pid_beta3",
        lambda: _solve_robertson(ode.Kvaerno5(), controller=ode.PIDController(beta1=0.6, beta2=-0.2, beta3=0.1)),
    ),
    ("kvaerno5_constant_steps", lambda: _solve_robertson(ode.Kvaerno5(), dt0=0.5, adaptive=False, max_steps=1000)),
    (
        "bdf_backwards",
        lambda: ode.solve(
            lotka_volterra,
            Z0,
            (20.0, 0.0),
            THETA,
            solver=ode.BDF(),
            saveat=ode.SaveAt(t0=True, ts=YEARS[::-1], t1=True),
            rtol=1e-6,
            atol=1e-6,
        ),
    ),
    ("bdf_float32", lambda: _solve_lv(Z0.astype(np.float32), THETA.astype(np.float32), solver=ode.BDF(), rtol=1e-4)),
    ("rodas5p", lambda: _solve_robertson(ode.Rodas5P())),
    ("default_solver", lambda: _solve_lv(Z0, THETA, solver=None)),
    ("vmap", _vmapped_lv),
    ("vmap_forward_sensitivity_gradients", _forward_sensitivity_gradients),
]


def _run(problem, monkeypatch, *, numpy_loop):
    """Run ``problem`` with the NumPy loop or the generic loop; return its leaves and how often the NumPy loop ran."""
    runs = []

    def counted(*args, **kwargs):
        solution = _loop_numpy.solve_numpy(*args, **kwargs) if numpy_loop else None
        if solution is not None:
            runs.append(1)
        return solution

    monkeypatch.setattr(_solve, "solve_numpy", counted)
    return [np.asarray(leaf) for leaf in dx.tree_leaves(problem())], len(runs)


@pytest.mark.parametrize(("name", "problem"), PROBLEMS, ids=[case[0] for case in PROBLEMS])
def test_numpy_loop_matches_generic_loop(name, problem, monkeypatch):
    expected, _ = _run(problem, monkeypatch, numpy_loop=False)
    got, runs = _run(problem, monkeypatch, numpy_loop=True)
    assert runs >= 1
    assert len(got) == len(expected)
    for value, reference in zip(got, expected):
        assert value.dtype == reference.dtype
        np.testing.assert_array_equal(value, reference)


def test_vmap_records_vector_field_once():
    calls = []

    def counted(t, z, theta):
        calls.append(1)
        return lotka_volterra(t, z, theta)

    z0s = np.stack([Z0, 2.0 * Z0, 0.5 * Z0, Z0])
    dx.vmap(lambda z0: ode.solve(counted, z0, (0.0, 20.0), THETA, solver=ode.Tsit5(), rtol=1e-6))(z0s)
    assert len(calls) == 1


def test_field_that_reads_values_is_called_directly(monkeypatch):
    # A Python `if` on the state cannot be recorded; one example still runs
    # in the NumPy loop, calling the vector field at every stage.
    calls = []

    def branching(t, y, args):
        calls.append(1)
        return -y if float(y[0]) > 0 else y

    runs = []

    def counted(*args, **kwargs):
        solution = _loop_numpy.solve_numpy(*args, **kwargs)
        runs.append(solution is not None)
        return solution

    monkeypatch.setattr(_solve, "solve_numpy", counted)
    sol = ode.solve(branching, np.ones(2), (0.0, 1.0), None, solver=ode.Tsit5(), rtol=1e-8, atol=1e-10)
    assert runs == [True]
    assert len(calls) > 10
    np.testing.assert_allclose(np.asarray(sol.ys[-1]), np.exp(-1.0) * np.ones(2), rtol=1e-7)


def test_vmap_of_unrecordable_field_uses_generic_loop(monkeypatch):
    runs = []

    def counted(*args, **kwargs):
        solution = _loop_numpy.solve_numpy(*args, **kwargs)
        runs.append(solution is not None)
        return solution

    monkeypatch.setattr(_solve, "solve_numpy", counted)

    def solve_one(y0):
        return ode.solve(lambda t, y, a: -y if float(y[0]) > 0 else y, y0, (0.0, 1.0), None, rtol=1e-8).ys

    out = dx.vmap(solve_one)(np.ones((2, 2)))
    assert runs[0] is False
    np.testing.assert_allclose(np.asarray(out[:, -1]), np.exp(-1.0) * np.ones((2, 2)), rtol=1e-7)


def test_failed_solve_raises_with_status():
    with pytest.raises(ode.ODESolveError, match="MAX_STEPS_REACHED"):
        ode.solve(lotka_volterra, Z0, (0.0, 20.0), THETA, solver=ode.Tsit5(), max_steps=5)


def test_vmap_of_stateful_solver_matches_single_solves(monkeypatch):
    # A solver's carried state (a Jacobian, its factors) has no axis of
    # examples, so the NumPy loop declines the batch.
    runs = []

    def counted(*args, **kwargs):
        solution = _loop_numpy.solve_numpy(*args, **kwargs)
        runs.append(solution is not None)
        return solution

    monkeypatch.setattr(_solve, "solve_numpy", counted)
    batched = dx.vmap(lambda z0: _solve_lv(z0, THETA, solver=ode.BDF()).ys)(np.stack([Z0, 1.5 * Z0]))
    single = _solve_lv(1.5 * Z0, THETA, solver=ode.BDF()).ys
    assert runs[0] is False
    np.testing.assert_allclose(np.asarray(batched[1]), np.asarray(single), rtol=1e-12)


def test_derivative_tracer_uses_generic_loop(monkeypatch):
    runs = []

    def counted(*args, **kwargs):
        solution = _loop_numpy.solve_numpy(*args, **kwargs)
        runs.append(solution is not None)
        return solution

    monkeypatch.setattr(_solve, "solve_numpy", counted)

    def loss(theta):
        sol = _solve_lv(Z0, theta, sensitivity=ode.RecursiveCheckpointAdjoint(), saveat=ode.SaveAt(t1=True))
        return dx.sum(sol.ys)

    dx.grad(loss)(THETA)
    assert runs == [False]


@pytest.mark.parametrize("batched", [False, True])
def test_recorded_solve_reruns_the_loop_for_new_inputs(batched):
    # Inside a recording the solve is one call of the program, which runs the
    # adaptive loop on the inputs of each replay: its steps follow them.
    from difflux.core._record import record

    def final(z0):
        sol = _solve_lv(z0, THETA)
        return sol.ys, sol.stats["num_steps"]

    function = dx.vmap(final) if batched else final
    starts = [Z0, 2.0 * Z0, 0.5 * Z0]
    inputs = [np.stack([z0, 1.5 * z0]) if batched else z0 for z0 in starts]
    program = record(function, [inputs[0]])
    steps = set()
    for z0 in inputs:
        got, expected = program(z0), function(z0)
        for value, reference in zip(got, expected):
            np.testing.assert_array_equal(np.asarray(value), np.asarray(reference))
        steps.add(int(np.max(got[1])))
    assert len(steps) == len(starts)


def test_recorded_stateful_solve_cannot_be_recorded():
    from difflux.core._record import RecordingError, record

    # The implicit solver's loop reads the state to decide its Newton
    # iterations, so a recording of it stops with an error.
    def final(y0):
        return ode.solve(robertson, y0, (0.0, 40.0), np.array([0.04, 3e7, 1e4]), solver=ode.Kvaerno5()).ys

    with pytest.raises(RecordingError):
        record(final, [np.array([1.0, 0.0, 0.0])])
