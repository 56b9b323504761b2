"""Failed solves: each status with its message, throw=True and throw=False, eagerly and under jit."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import difflux.core as dx
from difflux import ode

HAS_JAX = importlib.util.find_spec("jax") is not None
TSIT5 = ode.Tsit5()


def decay(t, y, args):
    return -y


def nan_after_half(t, y, args):
    # Finite up to t = 0.5 and nan beyond, so trial stages past 0.5 fail.
    return dx.where(t > 0.5, float("nan"), -1.0) * y


def saved(ts):
    return ode.SaveAt(ts=ts, t1=True)


def test_max_steps_reached(backend, to_backend):
    kwargs = {"solver": TSIT5, "saveat": saved(to_backend([0.1, 50.0])), "max_steps": 10}
    sol = ode.solve(decay, to_backend([1.0]), (0.0, 100.0), throw=False, **kwargs)
    assert sol.result is ode.Status.MAX_STEPS_REACHED
    assert "took max_steps steps" in sol.message
    ys = np.asarray(sol.ys)[:, 0]
    assert ys[0] == pytest.approx(np.exp(-0.1), rel=1e-6)
    # Times the solve did not reach, and t1, are nan.
    assert np.isnan(ys[1:]).all()
    with pytest.raises(ode.ODESolveError, match=r"stopped at t = .* before t1 = 100.0 \(MAX_STEPS_REACHED, after 10"):
        ode.solve(decay, to_backend([1.0]), (0.0, 100.0), **kwargs)


def test_nonfinite_vector_field_with_fixed_steps(backend, to_backend):
    kwargs = {"solver": ode.RK4(), "dt0": 0.125, "saveat": saved(to_backend([0.25, 0.75]))}
    sol = ode.solve(nan_after_half, to_backend([1.0]), (0.0, 1.0), throw=False, **kwargs)
    assert sol.result is ode.Status.NONFINITE
    assert "non-finite value" in sol.message
    ys = np.asarray(sol.ys)[:, 0]
    assert ys[0] == pytest.approx(np.exp(-0.25), rel=1e-6)
    assert np.isnan(ys[1:]).all()
    with pytest.raises(ode.ODESolveError, match=r"stopped at t = 0.5 before t1 = 1.0 \(NONFINITE"):
        ode.solve(nan_after_half, to_backend([1.0]), (0.0, 1.0), **kwargs)


def test_nonfinite_trial_states_underflow_the_step(backend, to_backend):
    # The adaptive solver rejects every step past 0.5 and shrinks it to nothing.
    kwargs = {"solver": TSIT5, "saveat": saved(to_backend([0.25, 0.75]))}
    sol = ode.solve(nan_after_half, to_backend([1.0]), (0.0, 1.0), throw=False, **kwargs)
    assert sol.result is ode.Status.DT_UNDERFLOW
    assert "step size fell below the resolution of t" in sol.message
    ys = np.asarray(sol.ys)[:, 0]
    assert ys[0] == pytest.approx(np.exp(-0.25), rel=1e-6)
    assert np.isnan(ys[1:]).all()
    with pytest.raises(ode.ODESolveError, match=r"stopped at t = 0\.(49|5)\d* before t1 = 1.0 \(DT_UNDERFLOW"):
        ode.solve(nan_after_half, to_backend([1.0]), (0.0, 1.0), **kwargs)


def test_blow_up_underflows_the_step():
    # y' = y^2, y(0) = 1 is 1 / (1 - t): the step size collapses near t = 1.
    sol = ode.solve(lambda t, y, args: y**2, np.array([1.0]), (0.0, 2.0), solver=TSIT5, throw=False)
    assert sol.result is ode.Status.DT_UNDERFLOW
    assert float(sol.ts[-1]) == pytest.approx(1.0, abs=1e-3)
    assert np.isnan(np.asarray(sol.ys)).all()


def test_nonfinite_initial_state(backend, to_backend):
    sol = ode.solve(decay, to_backend([np.inf]), (0.0, 1.0), solver=TSIT5, throw=False)
    assert sol.result is ode.Status.NONFINITE
    assert int(sol.stats["num_accepted"]) == 0
    with pytest.raises(ode.ODESolveError, match=r"stopped at t = 0.0 before t1 = 1.0 \(NONFINITE"):
        ode.solve(decay, to_backend([np.inf]), (0.0, 1.0), solver=TSIT5)


class FailsAfterThreeSteps(ode.Tsit5):
    """Tsit5 that reports a solver failure (as an implicit solver's Newton iteration would) after three steps."""

    def init_state(self, f, t0, y0, f0, rtol, atol):
        return {"steps": dx.astype(dx.zeros_like(t0), dx.int32)}

    def update_state(self, state, accepted):
        return {"steps": state["steps"] + dx.astype(accepted, dx.int32)}

    def failed(self, state):
        return state["steps"] >= 3


def test_solver_failure_stops_with_newton_status(backend, to_backend):
    kwargs = {
        "solver": FailsAfterThreeSteps(),
        "dt0": 0.125,
        "adaptive": False,
        "saveat": saved(to_backend([0.25, 0.5])),
    }
    sol = ode.solve(decay, to_backend([1.0]), (0.0, 1.0), throw=False, **kwargs)
    assert sol.result is ode.Status.NEWTON_FAILED
    assert "Newton iteration kept failing" in sol.message
    assert int(sol.stats["num_steps"]) == 3
    ys = np.asarray(sol.ys)[:, 0]
    assert ys[0] == pytest.approx(np.exp(-0.25), rel=1e-6)
    assert np.isnan(ys[1:]).all()
    with pytest.raises(ode.ODESolveError, match=r"stopped at t = 0.375 before t1 = 1.0 \(NEWTON_FAILED, after 3 steps"):
        ode.solve(decay, to_backend([1.0]), (0.0, 1.0), **kwargs)


def test_shape_mismatch_names_both_shapes(backend, to_backend):
    def wrong_length(t, y, args):
        return dx.concat([y, y])

    with pytest.raises(ValueError, match=r"returned shapes \[\(4,\)\].*y0 has shapes \[\(2,\)\]"):
        ode.solve(wrong_length, to_backend([1.0, 2.0]), (0.0, 1.0))


def test_structure_mismatch_names_both_structures():
    def drops_a_leaf(t, y, args):
        return {"a": -y["a"]}

    with pytest.raises(
        ValueError, match=r"returned shapes \[\(\)\] \(structure .*\), but y0 has shapes \[\(\), \(2,\)\]"
    ):
        ode.solve(drops_a_leaf, {"a": np.array(1.0), "b": np.ones(2)}, (0.0, 1.0))


def test_sde_nonfinite_state(backend, to_backend):
    key = dx.random.key(0, backend=backend)

    def explodes(t, y, args):
        return dx.where(t >= 0.5, float("inf"), 0.0) + 0.0 * y

    sol = ode.solve_sde(explodes, decay, to_backend([1.0]), (0.0, 1.0), key=key, dt=0.25, throw=False)
    assert int(sol.status) == ode.Status.NONFINITE
    assert np.isnan(np.asarray(sol.ys)).all()
    sol = ode.solve_sde(
        explodes, decay, to_backend([1.0]), (0.0, 1.0), key=key, dt=0.25, saveat=ode.SaveAt(steps=True), throw=False
    )
    ys = np.asarray(sol.ys)[:, 0]
    assert np.isfinite(ys[:3]).all()
    assert np.isnan(ys[3:]).all()
    with pytest.raises(ode.ODESolveError, match=r"solve_sde stopped at t = 0.75 before t1 = 1.0 \(NONFINITE\)"):
        ode.solve_sde(explodes, decay, to_backend([1.0]), (0.0, 1.0), key=key, dt=0.25)


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_throw_inside_jit_raises_when_run():
    import jax

    y0 = dx.asarray(np.array([1.0]), backend="jax")

    def final(y0, t1):
        return ode.solve(decay, y0, (0.0, t1), solver=TSIT5, max_steps=10).ys

    compiled = dx.jit(final)
    np.testing.assert_allclose(np.asarray(compiled(y0, 1.0)), [[np.exp(-1.0)]], rtol=1e-6)
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"ODESolveError: solve stopped .*MAX_STEPS_REACHED"):
        np.asarray(compiled(y0, 100.0))


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_jit_calls_back_only_on_failure(monkeypatch):
    import jax

    from difflux.ode import _solution

    calls = []
    report = _solution._raise_failure

    def counted(*values):
        calls.append(values)
        report(*values)

    monkeypatch.setattr(_solution, "_raise_failure", counted)
    y0 = dx.asarray(np.array([1.0]), backend="jax")

    def final(y0, t1):
        return ode.solve(decay, y0, (0.0, t1), solver=TSIT5, max_steps=10).ys

    compiled = dx.jit(final)
    t1 = dx.asarray(1.0, backend="jax")
    np.testing.assert_allclose(np.asarray(compiled(y0, t1)), [[np.exp(-1.0)]], rtol=1e-6)
    assert calls == []
    # The same compiled function fails now, and JAX 0.10 reports the
    # callback's error from such a later call as a ValueError.
    with pytest.raises((jax.errors.JaxRuntimeError, ValueError), match="MAX_STEPS_REACHED"):
        np.asarray(compiled(y0, t1 * 100.0))
    assert len(calls) == 1


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_status_inside_jit_without_throw():
    y0 = dx.asarray(np.array([1.0]), backend="jax")

    def final(y0):
        sol = ode.solve(decay, y0, (0.0, 100.0), solver=TSIT5, max_steps=10, throw=False)
        return sol.status, sol.ys

    status, ys = dx.jit(final)(y0)
    assert int(status) == ode.Status.MAX_STEPS_REACHED
    assert np.isnan(np.asarray(ys)).all()


def test_vmap_reports_each_status(backend, to_backend):
    # Only the second initial state makes the vector field non-finite.
    def field(t, y, args):
        return dx.where(y > 1.5, float("nan"), -1.0) * y

    def status(y0):
        return ode.solve(field, y0, (0.0, 1.0), solver=ode.RK4(), dt0=0.25, throw=False).status

    statuses = dx.vmap(status)(to_backend([[1.0], [2.0]]))
    np.testing.assert_array_equal(np.asarray(statuses), [ode.Status.SUCCESSFUL, ode.Status.NONFINITE])


def test_dense_output_is_nan_after_failure(backend, to_backend):
    saveat = ode.SaveAt(dense=True)
    sol = ode.solve(
        nan_after_half, to_backend([1.0]), (0.0, 1.0), solver=ode.RK4(), dt0=0.125, saveat=saveat, throw=False
    )
    values = np.asarray(sol.evaluate(to_backend([0.25, 0.5, 0.75])))[:, 0]
    np.testing.assert_allclose(values[:2], np.exp(-np.array([0.25, 0.5])), rtol=1e-5)
    assert np.isnan(values[2])
