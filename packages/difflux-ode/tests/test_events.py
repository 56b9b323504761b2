"""Events: crossing times against closed forms, their gradients, records and errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import difflux.core as dx
import difflux.core.testing
from difflux import ode

HAS_JAX = importlib.util.find_spec("jax") is not None
GRAVITY = 9.81
# Differentiated eagerly with max_steps <= 32, a JAX loop runs in Python
# and skips compiling; test_event_gradient_under_jit covers the compiled one.
MAX_STEPS = 32
# Most tests pin Tsit5, an explicit solver that compiles quickly on JAX; the
# bouncing ball and the structured state run with the default solver.
TSIT5 = ode.Tsit5()


def fall(t, y, gravity):
    height, velocity = y[0], y[1]
    return dx.stack([velocity, -gravity + 0.0 * height])


def height(t, y, args):
    return y[0]


def fall_time(h0, gravity):
    return np.sqrt(2.0 * h0 / gravity)


def test_ball_hits_ground_at_closed_form_time(backend, to_backend):
    y0, gravity = to_backend([1.5, 0.0]), to_backend(GRAVITY)
    sol = ode.solve(fall, y0, (0.0, 5.0), gravity, events=ode.Event(height), max_steps=MAX_STEPS, solver=TSIT5)
    assert float(sol.event_time) == pytest.approx(fall_time(1.5, GRAVITY), rel=1e-12)
    assert int(sol.event_index) == 0
    assert float(sol.event_y[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(sol.event_y[1]) == pytest.approx(-np.sqrt(2.0 * GRAVITY * 1.5), rel=1e-12)
    # SaveAt(t1=True) reports the event instead of t1.
    assert float(sol.ts[-1]) == pytest.approx(fall_time(1.5, GRAVITY), rel=1e-12)
    assert int(sol.status) == ode.Status.SUCCESSFUL
    assert sol.message.startswith("Terminal event 0 stopped the solve at t = 0.553")


def test_ball_event_time_gradient(backend, to_backend):
    def event_time(h0, gravity):
        y0 = dx.stack([h0, 0.0 * h0])
        return ode.solve(
            fall, y0, (0.0, 5.0), gravity, events=ode.Event(height), max_steps=MAX_STEPS, solver=TSIT5
        ).event_time

    h0, gravity = 1.5, GRAVITY
    grad_h0, grad_gravity = dx.grad(event_time, argnums=(0, 1))(to_backend(h0), to_backend(gravity))
    # t = sqrt(2 h0 / g): dt/dh0 = 1 / sqrt(2 h0 g), dt/dg = -sqrt(2 h0) / (2 g^(3/2)).
    assert float(grad_h0) == pytest.approx(1.0 / np.sqrt(2.0 * h0 * gravity), rel=1e-9)
    assert float(grad_gravity) == pytest.approx(-np.sqrt(2.0 * h0) / (2.0 * gravity**1.5), rel=1e-9)


def test_ball_event_state_gradient():
    # The velocity at impact is -sqrt(2 g h0), so d/dh0 = -sqrt(g / (2 h0)).
    def impact_velocity(h0):
        y0 = dx.stack([h0, 0.0 * h0])
        return ode.solve(
            fall, y0, (0.0, 5.0), GRAVITY, events=ode.Event(height), max_steps=MAX_STEPS, solver=TSIT5
        ).event_y[1]

    gradient = dx.grad(impact_velocity)(np.array(2.0))
    assert float(gradient) == pytest.approx(-np.sqrt(GRAVITY / 4.0), rel=1e-9)


def test_bouncing_ball_restarts():
    # Bounces with restitution e: the k-th flight after the first fall lasts
    # 2 e^k v / g with v = sqrt(2 g h0) the first impact speed.
    restitution, h0 = 0.8, 1.0
    y0, t0, impacts = np.array([h0, 0.0]), 0.0, []
    for _ in range(4):
        event = ode.Event(height, direction=-1)
        sol = ode.solve(fall, y0, (t0, 20.0), GRAVITY, events=event, rtol=1e-10, atol=1e-12)
        t0 = float(sol.event_time)
        impacts.append(t0)
        y0 = np.array([0.0, -restitution * float(sol.event_y[1])])
    speed = np.sqrt(2.0 * GRAVITY * h0)
    flights = 2.0 * restitution ** np.arange(1, 4) * speed / GRAVITY
    expected = fall_time(h0, GRAVITY) + np.concatenate([[0.0], np.cumsum(flights)])
    np.testing.assert_allclose(impacts, expected, rtol=1e-9)


def decay(t, y, rate):
    return -rate * y


def test_exponential_threshold_crossing(backend, to_backend):
    # y = y0 exp(-k t) reaches c at t = log(y0 / c) / k.
    threshold = ode.Event(lambda t, y, rate: y[0] - 0.25, direction=-1)
    y0, rate = to_backend([2.0]), to_backend(0.7)
    sol = ode.solve(
        decay, y0, (0.0, 10.0), rate, events=threshold, rtol=1e-8, atol=1e-10, max_steps=MAX_STEPS, solver=TSIT5
    )
    assert float(sol.event_time) == pytest.approx(np.log(2.0 / 0.25) / 0.7, rel=1e-8)
    assert float(sol.event_y[0]) == pytest.approx(0.25, rel=1e-12)


def test_threshold_time_gradient_matches_finite_differences(backend, to_backend):
    threshold = ode.Event(lambda t, y, rate: y[0] - 0.25)

    def crossing(y0, rate):
        sol = ode.solve(
            decay, y0, (0.0, 10.0), rate, events=threshold, rtol=1e-8, atol=1e-10, max_steps=MAX_STEPS, solver=TSIT5
        )
        return sol.event_time

    y0, rate = to_backend([2.0]), to_backend(0.7)
    grad_y0, grad_rate = dx.grad(crossing, argnums=(0, 1))(y0, rate)
    # t = log(y0 / c) / k: dt/dy0 = 1 / (k y0), dt/dk = -t / k.
    t = np.log(2.0 / 0.25) / 0.7
    assert float(grad_y0[0]) == pytest.approx(1.0 / (0.7 * 2.0), rel=1e-6)
    assert float(grad_rate) == pytest.approx(-t / 0.7, rel=1e-6)
    if backend == "numpy":
        difflux.core.testing.check_grads(crossing, (y0, rate), order=1, rtol=1e-5, atol=1e-7)


def oscillator(t, y, args):
    return dx.stack([y[1], -y[0]])


def test_non_terminal_events_are_recorded(backend, to_backend):
    # y = cos t crosses zero at pi/2 (falling), 3 pi/2 (rising), 5 pi/2 (falling).
    both = ode.Event(lambda t, y, args: y[0], terminal=False, max_records=4)
    rising = ode.Event(lambda t, y, args: y[0], terminal=False, direction=1, max_records=4)
    y0 = to_backend([1.0, 0.0])
    sol = ode.solve(oscillator, y0, (0.0, 8.0), events=[both, rising], rtol=1e-8, atol=1e-10, solver=TSIT5)
    np.testing.assert_array_equal(np.asarray(sol.events.counts), [3, 1])
    ts_both = np.asarray(sol.events.ts[0])
    np.testing.assert_allclose(ts_both[:3], np.pi * np.array([0.5, 1.5, 2.5]), rtol=1e-7)
    assert np.isnan(ts_both[3])
    np.testing.assert_allclose(np.asarray(sol.events.ts[1])[:1], [1.5 * np.pi], rtol=1e-7)
    # The state at each crossing: y = (0, -sin t).
    ys_both = np.asarray(sol.events.ys[0])
    np.testing.assert_allclose(ys_both[:3, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(ys_both[:3, 1], [-1.0, 1.0, -1.0], rtol=1e-7)
    # No terminal event: the solve reaches t1.
    assert int(sol.event_index) == -1
    assert np.isnan(float(sol.event_time))
    assert float(sol.ts[-1]) == 8.0


def test_overflowing_records_are_counted():
    event = ode.Event(lambda t, y, args: y[0], terminal=False, max_records=2)
    sol = ode.solve(oscillator, np.array([1.0, 0.0]), (0.0, 8.0), events=event, rtol=1e-10, solver=TSIT5)
    assert int(sol.events.counts[0]) == 3
    np.testing.assert_allclose(np.asarray(sol.events.ts[0]), np.pi * np.array([0.5, 1.5]), rtol=1e-9)


def test_first_terminal_event_wins():
    # The ball crosses 0.5 m before 0 m; the non-terminal crossing at 0.8 m is recorded.
    events = [
        ode.Event(height),
        ode.Event(lambda t, y, args: y[0] - 0.5),
        ode.Event(lambda t, y, args: y[0] - 0.8, terminal=False),
    ]
    sol = ode.solve(fall, np.array([1.0, 0.0]), (0.0, 5.0), GRAVITY, events=events, solver=TSIT5)
    assert int(sol.event_index) == 1
    assert float(sol.event_time) == pytest.approx(fall_time(0.5, GRAVITY), rel=1e-12)
    assert float(np.asarray(sol.events.ts[2])[0]) == pytest.approx(fall_time(0.2, GRAVITY), rel=1e-12)
    np.testing.assert_array_equal(np.asarray(sol.events.counts), [0, 1, 1])


def test_event_crossing_in_same_step_as_terminal_is_not_recorded_after_it():
    # One constant step of 1 passes both crossings; the later one is not recorded.
    events = [ode.Event(lambda t, y, args: y[0] - 0.3), ode.Event(lambda t, y, args: y[0] - 0.6, terminal=False)]
    sol = ode.solve(
        lambda t, y, args: dx.ones_like(y), np.array([0.0]), (0.0, 1.0), solver=ode.RK4(), dt0=1.0, events=events
    )
    assert float(sol.event_time) == pytest.approx(0.3, rel=1e-12)
    np.testing.assert_array_equal(np.asarray(sol.events.counts), [1, 0])


def test_condition_zero_at_start_does_not_fire():
    # Thrown up from the ground at speed v, the ball lands at 2 v / g.
    sol = ode.solve(fall, np.array([0.0, 3.0]), (0.0, 5.0), GRAVITY, events=ode.Event(height), solver=TSIT5)
    assert float(sol.event_time) == pytest.approx(2.0 * 3.0 / GRAVITY, rel=1e-12)


def test_saved_values_stop_at_terminal_event():
    saveat = ode.SaveAt(ts=[0.1, 0.3, 0.5, 1.0], steps=True, dense=True)
    sol = ode.solve(
        fall, np.array([1.0, 0.0]), (0.0, 5.0), GRAVITY, events=ode.Event(height), saveat=saveat, solver=TSIT5
    )
    event_time = fall_time(1.0, GRAVITY)
    ts, ys = np.asarray(sol.ts), np.asarray(sol.ys)
    np.testing.assert_allclose(ys[:2, 0], 1.0 - 0.5 * GRAVITY * np.array([0.1, 0.3]) ** 2, rtol=1e-12)
    assert np.isnan(ys[2:4]).all()
    # The saved steps end at the event.
    assert ts[-1] == pytest.approx(event_time, rel=1e-12)
    assert ys[-1, 0] == pytest.approx(0.0, abs=1e-12)
    # The dense output covers the solve up to the event.
    assert float(sol.evaluate(0.4)[0]) == pytest.approx(1.0 - 0.5 * GRAVITY * 0.16, rel=1e-12)


def test_event_when_integrating_backwards():
    # Backwards from t = 2, y = exp(-(t - 2)) rises and reaches 3 at t = 2 - log 3.
    # Direction +1 refers to increasing t, where y falls through 3: it still fires.
    event = ode.Event(lambda t, y, args: y[0] - 3.0, direction=1)
    sol = ode.solve(
        lambda t, y, args: -y, np.array([1.0]), (2.0, 0.0), events=event, rtol=1e-10, atol=1e-12, solver=TSIT5
    )
    assert np.isnan(float(sol.event_time))
    event = ode.Event(lambda t, y, args: y[0] - 3.0, direction=-1)
    sol = ode.solve(
        lambda t, y, args: -y, np.array([1.0]), (2.0, 0.0), events=event, rtol=1e-10, atol=1e-12, solver=TSIT5
    )
    assert float(sol.event_time) == pytest.approx(2.0 - np.log(3.0), rel=1e-9)


def test_structured_state_condition():
    def field(t, y, args):
        return {"position": y["velocity"], "velocity": -GRAVITY + 0.0 * y["velocity"]}

    y0 = {"position": np.array(2.0), "velocity": np.array(0.0)}
    sol = ode.solve(field, y0, (0.0, 5.0), events=ode.Event(lambda t, y, args: y["position"]))
    assert float(sol.event_time) == pytest.approx(fall_time(2.0, GRAVITY), rel=1e-12)
    assert sol.event_y["velocity"].shape == ()


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_events_under_jit_match_eager():
    y0 = dx.asarray(np.array([1.0, 0.0]), backend="jax")
    gravity = dx.asarray(GRAVITY, backend="jax")
    events = [ode.Event(height), ode.Event(lambda t, y, args: y[0] - 0.8, terminal=False)]

    def run(y0, gravity):
        sol = ode.solve(fall, y0, (0.0, 5.0), gravity, events=events, max_steps=MAX_STEPS, solver=TSIT5)
        return sol.event_time, sol.events.ts[1]

    compiled, eager = dx.jit(run)(y0, gravity), run(y0, gravity)
    assert float(compiled[0]) == pytest.approx(float(eager[0]), rel=1e-14)
    np.testing.assert_allclose(np.asarray(compiled[1]), np.asarray(eager[1]), rtol=1e-14)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_event_gradient_under_jit():
    y0 = dx.asarray(np.array([1.0, 0.0]), backend="jax")
    gravity = dx.asarray(GRAVITY, backend="jax")

    def event_time(y0, gravity):
        return ode.solve(
            fall, y0, (0.0, 5.0), gravity, events=ode.Event(height), max_steps=MAX_STEPS, solver=TSIT5
        ).event_time

    gradient = dx.jit(dx.grad(event_time, argnums=(0, 1)))(y0, gravity)
    assert float(gradient[0][0]) == pytest.approx(1.0 / np.sqrt(2.0 * GRAVITY), rel=1e-9)
    assert float(gradient[1]) == pytest.approx(-np.sqrt(2.0) / (2.0 * GRAVITY**1.5), rel=1e-9)


def test_no_events_record_raises():
    sol = ode.solve(decay, np.array([1.0]), (0.0, 1.0), 1.0, solver=TSIT5)
    with pytest.raises(ValueError, match="had no events"):
        _ = sol.event_time


def test_invalid_events_raise():
    with pytest.raises(ValueError, match="direction must be -1, 0 or \\+1, got 2"):
        ode.Event(height, direction=2)
    with pytest.raises(ValueError, match="max_records must be a positive integer"):
        ode.Event(height, max_records=0)
    with pytest.raises(TypeError, match="condition must be a function"):
        ode.Event(1.0)
    with pytest.raises(TypeError, match=r"events\[1\] is a function; wrap the condition in ode.Event"):
        ode.solve(fall, np.array([1.0, 0.0]), (0.0, 1.0), GRAVITY, events=[ode.Event(height), height], solver=TSIT5)
    with pytest.raises(ValueError, match=r"condition 0 returned shape \(2,\)"):
        ode.solve(fall, np.array([1.0, 0.0]), (0.0, 1.0), GRAVITY, events=ode.Event(lambda t, y, args: y), solver=TSIT5)


def test_events_need_checkpointed_sensitivity():
    with pytest.raises(NotImplementedError, match="events need sensitivity=RecursiveCheckpointAdjoint"):
        ode.solve(
            fall,
            np.array([1.0, 0.0]),
            (0.0, 1.0),
            GRAVITY,
            events=ode.Event(height),
            sensitivity=ode.ForwardSensitivity(),
        )


def test_event_time_forward_mode(backend, to_backend):
    def event_time(h0):
        y0 = dx.stack([h0, 0.0 * h0])
        return ode.solve(
            fall, y0, (0.0, 5.0), GRAVITY, events=ode.Event(height), solver=TSIT5, max_steps=MAX_STEPS
        ).event_time

    value, tangent = dx.jvp(event_time, (to_backend(1.5),), (to_backend(1.0),))
    assert float(value) == pytest.approx(fall_time(1.5, GRAVITY), rel=1e-12)
    assert float(tangent) == pytest.approx(1.0 / np.sqrt(2.0 * 1.5 * GRAVITY), rel=1e-9)


def test_event_time_second_derivatives():
    # t = sqrt(2 h0 / g): d2t/dh0^2 = -t / (4 h0^2), d2t/dg^2 = 3 t / (4 g^2),
    # d2t/dh0 dg = -t / (4 h0 g).
    def event_time(params):
        y0 = dx.stack([params[0], 0.0 * params[0]])
        sol = ode.solve(fall, y0, (0.0, 5.0), params[1], events=ode.Event(height), solver=TSIT5, max_steps=MAX_STEPS)
        return sol.event_time

    h0, gravity = 1.5, GRAVITY
    t = fall_time(h0, gravity)
    hessian = np.asarray(dx.hessian(event_time)(np.array([h0, gravity])))
    expected = np.array(
        [[-t / (4 * h0**2), -t / (4 * h0 * gravity)], [-t / (4 * h0 * gravity), 3 * t / (4 * gravity**2)]]
    )
    np.testing.assert_allclose(hessian, expected, rtol=1e-8)
