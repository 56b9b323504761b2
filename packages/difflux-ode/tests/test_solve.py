"""solve: gradients, jit, structured states, statuses and errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import difflux.core as dx
import difflux.core.testing
from difflux import ode

HAS_JAX = importlib.util.find_spec("jax") is not None

# Gradient tests keep max_steps <= 32: differentiated eagerly on JAX, such a
# loop runs in Python and skips compiling; test_jit_matches_eager covers lax.
MAX_STEPS = 32
MATRIX = np.array([[-0.5, 1.0], [-1.0, -0.3]])


def damped(t, y, params):
    matrix, forcing = params
    return matrix @ y + forcing * dx.sin(t)


class Decay(dx.Module):
    rate: object
    offset: object

    def __call__(self, t, y):
        return -self.rate * (y - self.offset)


def decay_field(t, y, model):
    return {"x": model(t, y["x"]), "v": -y["v"] * model.rate[0]}


def loss_for(solver, **kwargs):
    def loss(y0, matrix, forcing):
        sol = ode.solve(
            damped,
            y0,
            (0.0, 1.5),
            (matrix, forcing),
            solver=solver,
            saveat=ode.SaveAt(ts=np.linspace(0.0, 1.5, 4), t1=True),
            max_steps=MAX_STEPS,
            **kwargs,
        )
        return dx.sum(sol.ys**2)

    return loss


# Each finite difference on JAX compiles a solve, so Dopri5 runs on NumPy only.
GRADIENT_CASES = [
    (ode.Tsit5(), {"rtol": 1e-8, "atol": 1e-10}, "numpy"),
    (ode.Tsit5(), {"rtol": 1e-8, "atol": 1e-10}, "jax"),
    (ode.Dopri5(), {"rtol": 1e-8, "atol": 1e-10}, "numpy"),
    (ode.RK4(), {"dt0": 0.1}, "numpy"),
    (ode.RK4(), {"dt0": 0.1}, "jax"),
]


@pytest.mark.parametrize(
    ("solver", "kwargs", "backend"),
    [
        pytest.param(*case, marks=pytest.mark.skipif(case[2] == "jax" and not HAS_JAX, reason="JAX is not installed"))
        for case in GRADIENT_CASES
    ],
    ids=[f"{type(case[0]).__name__}-{case[2]}" for case in GRADIENT_CASES],
)
def test_gradients_match_finite_differences(solver, kwargs, backend, to_backend):
    args = (to_backend([1.0, -0.5]), to_backend(MATRIX), to_backend([0.3, 0.0]))
    difflux.core.testing.check_grads(loss_for(solver, **kwargs), args, order=1, rtol=1e-5, atol=1e-7)


def test_gradient_of_exponential_decay(backend, to_backend):
    # y(1) = y0 exp(-k): d/dy0 = exp(-k), d/dk = -y0 exp(-k).
    def final(y0, rate):
        return ode.solve(lambda t, y, k: -k * y, y0, (0.0, 1.0), rate, rtol=1e-10, atol=1e-12, max_steps=32).ys[0]

    grad_y0, grad_rate = dx.grad(final, argnums=(0, 1))(to_backend(2.0), to_backend(0.7))
    assert float(grad_y0) == pytest.approx(np.exp(-0.7), rel=1e-8)
    assert float(grad_rate) == pytest.approx(-2.0 * np.exp(-0.7), rel=1e-8)


def test_structured_state_and_module_args(backend, to_backend):
    model = Decay(rate=to_backend([0.5]), offset=to_backend([1.0]))
    y0 = {"x": to_backend([3.0]), "v": to_backend([[1.0, 2.0]])}
    sol = ode.solve(decay_field, y0, (0.0, 2.0), model, saveat=ode.SaveAt(ts=to_backend([0.0, 1.0, 2.0])), rtol=1e-10)
    assert sol.ys["x"].shape == (3, 1)
    assert sol.ys["v"].shape == (3, 1, 2)
    expected_x = 1.0 + 2.0 * np.exp(-0.5 * np.array([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(np.asarray(sol.ys["x"])[:, 0], expected_x, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(sol.ys["v"])[2, 0], [np.exp(-1.0), 2.0 * np.exp(-1.0)], rtol=1e-8)

    def loss(model):
        out = ode.solve(decay_field, y0, (0.0, 2.0), model, rtol=1e-9, atol=1e-11, max_steps=32)
        return dx.sum(out.ys["x"])

    grads = dx.grad(loss)(model)
    # x(2) = offset + (x0 - offset) exp(-2 rate).
    assert float(grads.offset[0]) == pytest.approx(1.0 - np.exp(-1.0), rel=1e-6)
    assert float(grads.rate[0]) == pytest.approx(-2.0 * 2.0 * np.exp(-1.0), rel=1e-6)


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_jit_matches_eager():
    y0, matrix, forcing = (
        dx.asarray(np.asarray(v, dtype=float), backend="jax") for v in ([1.0, -0.5], MATRIX, [0.3, 0.0])
    )
    loss = loss_for(ode.Tsit5(), rtol=1e-8, atol=1e-10)
    assert float(dx.jit(loss)(y0, matrix, forcing)) == pytest.approx(float(loss(y0, matrix, forcing)), rel=1e-12)

    gradient = dx.grad(loss, argnums=(0, 1, 2))
    for eager, compiled in zip(gradient(y0, matrix, forcing), dx.jit(gradient)(y0, matrix, forcing)):
        np.testing.assert_allclose(np.asarray(compiled), np.asarray(eager), rtol=1e-10)

    def dense(y0):
        return ode.solve(damped, y0, (0.0, 1.5), (matrix, forcing), saveat=ode.SaveAt(dense=True, steps=True))

    compiled, eager = dx.jit(dense)(y0), dense(y0)
    assert int(compiled.status) == 0
    assert compiled.message == "The solver reached t1."
    np.testing.assert_allclose(np.asarray(compiled.evaluate(0.77)), np.asarray(eager.evaluate(0.77)), rtol=1e-12)
    # Inside jit the step buffers keep their max_steps + 1 rows, padded with inf.
    steps = int(compiled.stats["num_accepted"])
    np.testing.assert_allclose(np.asarray(compiled.ts)[: steps + 1], np.asarray(eager.ts), rtol=1e-12)
    assert np.all(np.isinf(np.asarray(compiled.ts)[steps + 1 :]))


def test_stats_count_steps_and_evaluations():
    sol = ode.solve(lambda t, y, args: -y, np.array([1.0]), (0.0, 10.0), rtol=1e-8)
    stats = {name: int(value) for name, value in sol.stats.items()}
    assert stats["num_steps"] == stats["num_accepted"] + stats["num_rejected"]
    # Tsit5 is FSAL: 6 new evaluations per step, plus f(t0, y0) and one for the initial step.
    assert stats["num_fevals"] == 6 * stats["num_steps"] + 2
    assert int(sol.status) == ode.Status.SUCCESSFUL


def test_max_steps_reached_status(backend, to_backend):
    sol = ode.solve(
        lambda t, y, args: -y, to_backend([1.0]), (0.0, 100.0), dt0=0.1, adaptive=False, max_steps=10, throw=False
    )
    assert int(sol.status) == ode.Status.MAX_STEPS_REACHED
    assert sol.result is ode.Status.MAX_STEPS_REACHED
    assert "max_steps" in sol.message
    assert np.isnan(np.asarray(sol.ys)).all()


def test_max_steps_reached_raises():
    with pytest.raises(ode.ODESolveError, match="MAX_STEPS_REACHED, after 10 steps"):
        ode.solve(lambda t, y, args: -y, np.array([1.0]), (0.0, 100.0), max_steps=10)


@pytest.mark.parametrize("solver", [ode.Tsit5(), ode.RK4()], ids=["Tsit5", "RK4"])
def test_nan_vector_field_status(solver, backend, to_backend):
    def field(t, y, args):
        return dx.where(t > 0.5, float("nan"), 1.0) * y

    sol = ode.solve(field, to_backend([1.0]), (0.0, 1.0), solver=solver, dt0=0.1, throw=False)
    assert sol.result in (ode.Status.NONFINITE, ode.Status.DT_UNDERFLOW)
    assert int(sol.stats["num_steps"]) < 4096
    assert np.isnan(np.asarray(sol.ys)).all()


def test_nan_at_initial_state_is_nonfinite():
    sol = ode.solve(lambda t, y, args: y * float("nan"), np.array([1.0]), (0.0, 1.0), throw=False)
    assert sol.result is ode.Status.NONFINITE
    assert "non-finite" in sol.message
    with pytest.raises(ode.ODESolveError, match="NONFINITE"):
        ode.solve(lambda t, y, args: y * float("nan"), np.array([1.0]), (0.0, 1.0))


def test_blow_up_stops_with_status():
    # y' = y**2, y(0) = 1 has the solution 1 / (1 - t), which blows up at t = 1.
    sol = ode.solve(lambda t, y, args: y**2, np.array([1.0]), (0.0, 2.0), throw=False)
    assert sol.result in (ode.Status.DT_UNDERFLOW, ode.Status.MAX_STEPS_REACHED, ode.Status.NONFINITE)
    assert sol.result is not ode.Status.SUCCESSFUL


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"returned shapes \[\(3,\)\].*y0 has shapes \[\(2,\)\]"):
        ode.solve(lambda t, y, args: dx.concat([y, y[:1]]), np.array([1.0, 2.0]), (0.0, 1.0))


def test_fixed_step_solver_needs_dt0():
    with pytest.raises(ValueError, match="need the step size dt0"):
        ode.solve(lambda t, y, args: -y, np.array([1.0]), (0.0, 1.0), solver=ode.Euler())


def test_fixed_step_solver_cannot_adapt():
    with pytest.raises(ValueError, match="has no error estimate"):
        ode.solve(lambda t, y, args: -y, np.array([1.0]), (0.0, 1.0), solver=ode.Euler(), dt0=0.1, adaptive=True)


def test_saveat_ts_outside_span_raises():
    with pytest.raises(ValueError, match=r"ts must lie in \[0.0, 1.0\]"):
        ode.solve(lambda t, y, args: -y, np.array([1.0]), (0.0, 1.0), saveat=ode.SaveAt(ts=[0.5, 2.0]))


def test_evaluate_needs_dense():
    sol = ode.solve(lambda t, y, args: -y, np.array([1.0]), (0.0, 1.0))
    with pytest.raises(ValueError, match="SaveAt\\(dense=True\\)"):
        sol.evaluate(0.5)


def test_float32_state_keeps_dtype(backend):
    y0 = dx.asarray(np.ones(2, dtype=np.float32), backend=backend)
    sol = ode.solve(lambda t, y, args: -y, y0, (0.0, 1.0), saveat=ode.SaveAt(ts=np.linspace(0.0, 1.0, 3)), rtol=1e-4)
    assert sol.ys.dtype == np.float32
    assert sol.ts.dtype == np.float32
    np.testing.assert_allclose(np.asarray(sol.ys)[:, 0], np.exp(-np.linspace(0.0, 1.0, 3)), rtol=1e-4)


def test_scalar_and_integer_y0():
    scalar = ode.solve(lambda t, y, args: -y, 1.0, (0.0, 1.0), rtol=1e-8)
    assert scalar.ys.shape == (1,)
    assert float(scalar.ys[0]) == pytest.approx(np.exp(-1.0), rel=1e-7)
    integer = ode.solve(lambda t, y, args: -y, np.array([1, 2]), (0.0, 1.0), rtol=1e-8)
    assert integer.ys.dtype == np.float64
    np.testing.assert_allclose(np.asarray(integer.ys[0]), [np.exp(-1.0), 2 * np.exp(-1.0)], rtol=1e-7)


class TanhField(dx.Module):
    weight: object

    def __call__(self, t, y, args):
        return dx.tanh(self.weight @ y)


def test_module_vector_field_gradients(backend, to_backend):
    field = TanhField(to_backend([[-0.5, 1.0], [-1.0, -0.2]]))
    y0 = to_backend([1.0, 0.5])

    def loss(field, y0):
        return dx.sum(ode.solve(field, y0, (0.0, 1.0), rtol=1e-8, atol=1e-10, max_steps=MAX_STEPS).ys ** 2)

    if backend == "numpy":
        difflux.core.testing.check_grads(loss, (field, y0), order=1)
    gradient = dx.grad(loss)(field, y0).weight
    numpy_field = TanhField(np.array([[-0.5, 1.0], [-1.0, -0.2]]))
    expected = dx.grad(loss)(numpy_field, np.array([1.0, 0.5])).weight
    np.testing.assert_allclose(np.asarray(gradient), expected, rtol=1e-12)


def test_saveat_combines_outputs_in_order():
    saveat = ode.SaveAt(t0=True, ts=[0.25, 0.5], t1=True)
    sol = ode.solve(lambda t, y, args: -y, np.array([1.0]), (0.0, 1.0), saveat=saveat, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(sol.ts), [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(np.asarray(sol.ys)[:, 0], np.exp(-np.asarray(sol.ts)), rtol=1e-8)


def test_saveat_needs_an_output():
    with pytest.raises(ValueError, match="nothing to save"):
        ode.SaveAt()


def test_invalid_settings_raise():
    with pytest.raises(ValueError, match="dt0 must be positive"):
        ode.solve(lambda t, y, args: -y, np.array([1.0]), (0.0, 1.0), solver=ode.RK4(), dt0=0.0)
    with pytest.raises(ValueError, match="atol > 0"):
        ode.solve(lambda t, y, args: -y, np.array([1.0]), (0.0, 1.0), atol=0.0)
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        ode.solve(lambda t, y, args: -y, np.array([1.0]), (0.0, 1.0), max_steps=0)
