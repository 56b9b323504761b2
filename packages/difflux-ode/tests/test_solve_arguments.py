"""solve: invalid t_span and solver arguments raise at once, and traced time spans still work."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import difflux.core as dx
from difflux import ode

HAS_JAX = importlib.util.find_spec("jax") is not None
TSIT5 = ode.Tsit5()
# Gradient tests keep max_steps <= 32, as in test_solve.py, so that an eager
# solve on JAX runs in Python and does not compile.
MAX_STEPS = 32
HINT = r"pass \(t_span\[0\], t_span\[-1\]\) as t_span and saveat=ode\.SaveAt\(ts=t_span\)"


def decay(t, y, args):
    return -y


def test_time_grid_t_span_raises(backend, to_backend):
    # A grid of output times, as torchdiffeq takes it. Without the check, solve
    # integrates to the second time only and reports success.
    with pytest.raises(ValueError, match=r"t_span must be a pair \(t0, t1\), got an array of shape \(5,\)") as error:
        ode.solve(decay, to_backend([1.0, 2.0]), to_backend(np.linspace(0.0, 1.0, 5)))
    assert error.match(HINT)


def test_three_times_t_span_raises(backend, to_backend):
    with pytest.raises(ValueError, match=r"t_span must be a pair \(t0, t1\), got a tuple of length 3") as error:
        ode.solve(decay, to_backend([1.0, 2.0]), (0.0, 0.5, 1.0))
    assert error.match(HINT)


@pytest.mark.parametrize(
    ("t_span", "given"),
    [
        (1.0, r"the scalar 1\.0"),
        (np.float64(1.0), r"the scalar np\.float64\(1\.0\)"),
        ((1.0,), r"a tuple of length 1"),
        ([], r"a list of length 0"),
        ("01", r"an object of type str"),
        (None, r"an object of type NoneType"),
        (np.zeros((2, 2)), r"an array of shape \(2, 2\)"),
    ],
    ids=["float", "numpy-scalar", "one-time", "empty", "string", "none", "matrix"],
)
def test_non_pair_t_span_raises(t_span, given):
    with pytest.raises(ValueError, match=rf"t_span must be a pair \(t0, t1\), got {given}\.$"):
        ode.solve(decay, np.array([1.0, 2.0]), t_span)


@pytest.mark.parametrize(
    ("t_span", "message"),
    [
        ((0.0, np.nan), r"t1 = t_span\[1\] must be finite, got nan"),
        ((0.0, np.inf), r"t1 = t_span\[1\] must be finite, got inf"),
        ((-np.inf, 0.0), r"t0 = t_span\[0\] must be finite, got -inf"),
        ((np.nan, np.nan), r"t0 = t_span\[0\] must be finite, got nan"),
    ],
    ids=["t1-nan", "t1-inf", "t0-minus-inf", "both-nan"],
)
def test_nonfinite_t_span_raises(t_span, message, backend, to_backend):
    y0 = to_backend([1.0, 2.0])
    with pytest.raises(ValueError, match=message):
        ode.solve(decay, y0, t_span)
    # The same times as arrays of the backend.
    with pytest.raises(ValueError, match=message):
        ode.solve(decay, y0, (to_backend(t_span[0]), to_backend(t_span[1])))


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_nonfinite_t_span_raises_under_jit():
    # dx.jit keeps Python floats static, so the check reads their values while tracing.
    def final(y0):
        return ode.solve(decay, y0, (0.0, float("nan"))).ys

    with pytest.raises(ValueError, match=r"t1 = t_span\[1\] must be finite, got nan"):
        dx.jit(final)(dx.asarray(np.array([1.0, 2.0]), backend="jax"))


def test_non_scalar_time_raises(backend, to_backend):
    with pytest.raises(ValueError, match=r"t0 = t_span\[0\] must be a scalar, got an array of shape \(1,\)"):
        ode.solve(decay, to_backend([1.0, 2.0]), (to_backend([0.0]), 1.0))


def test_non_numeric_time_raises():
    with pytest.raises(ValueError, match=r"t1 = t_span\[1\] must be a real number, got '1'"):
        ode.solve(decay, np.array([1.0, 2.0]), (0.0, "1"))
    with pytest.raises(ValueError, match=r"t0 = t_span\[0\] must be a real number, got None"):
        ode.solve(decay, np.array([1.0, 2.0]), (None, 1.0))


def test_equal_times_return_initial_state(backend, to_backend):
    # On NumPy, Tsit5 runs in the NumPy loop and Kvaerno5 in the generic loop.
    # On JAX both take the generic loop, so Tsit5 alone covers it there.
    solvers = [TSIT5, ode.Kvaerno5()] if backend == "numpy" else [TSIT5]
    for solver in solvers:
        sol = ode.solve(decay, to_backend([1.0, 2.0]), (0.5, 0.5), solver=solver)
        assert sol.result is ode.Status.SUCCESSFUL
        np.testing.assert_array_equal(np.asarray(sol.ts), [0.5])
        np.testing.assert_array_equal(np.asarray(sol.ys), [[1.0, 2.0]])


def test_solver_class_raises():
    with pytest.raises(TypeError, match=r"got the class Tsit5\. Pass an instance such as Tsit5\(\)\.$"):
        ode.solve(decay, np.array([1.0, 2.0]), (0.0, 1.0), solver=ode.Tsit5)


@pytest.mark.parametrize(
    ("solver", "given"),
    [
        ("tsit5", "an object of type str"),
        (ode.EulerMaruyama, "the class EulerMaruyama"),
        (ode.EulerMaruyama(), "an object of type EulerMaruyama"),
    ],
    ids=["string", "sde-solver-class", "sde-solver"],
)
def test_non_solver_raises(solver, given):
    with pytest.raises(
        TypeError, match=rf"solver must be an instance of an ode\.AbstractRungeKutta subclass.*got {given}$"
    ):
        ode.solve(decay, np.array([1.0, 2.0]), (0.0, 1.0), solver=solver)


def final_sum(y0, t_span, **options):
    return dx.sum(ode.solve(decay, y0, t_span, solver=TSIT5, max_steps=MAX_STEPS, **options).ys[-1])


def test_gradient_of_end_time():
    # d/dt1 of sum(y0 * exp(-t1)) at t1 = 1 is -sum(y0) * exp(-1).
    # test_jit_gradient_of_end_time covers JAX.
    y0 = np.array([1.0, 2.0])
    expected = -3.0 * np.exp(-1.0)
    grad = dx.grad(lambda t1: final_sum(y0, (0.0, t1)))(np.array(1.0))
    assert float(grad) == pytest.approx(expected, rel=1e-5)
    grad = dx.grad(lambda t1: final_sum(y0, (0.0, t1), sensitivity=ode.BacksolveAdjoint()))(np.array(1.0))
    assert float(grad) == pytest.approx(expected, rel=1e-5)


def test_gradient_of_t_span_array(backend, to_backend):
    y0 = to_backend([1.0, 2.0])
    grad = dx.grad(lambda t_span: final_sum(y0, t_span))(to_backend([0.0, 1.0]))
    np.testing.assert_allclose(np.asarray(grad), [3.0 * np.exp(-1.0), -3.0 * np.exp(-1.0)], rtol=1e-5)


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_jit_gradient_of_end_time():
    y0 = dx.asarray(np.array([1.0, 2.0]), backend="jax")
    t1 = dx.asarray(1.0, backend="jax")
    grad = dx.jit(dx.grad(lambda t1: final_sum(y0, (0.0, t1))))(t1)
    assert float(grad) == pytest.approx(-3.0 * np.exp(-1.0), rel=1e-5)
    ys = dx.jit(lambda t1: ode.solve(decay, y0, (0.0, t1), solver=TSIT5).ys)(t1)
    np.testing.assert_allclose(np.asarray(ys), [[np.exp(-1.0), 2.0 * np.exp(-1.0)]], rtol=1e-5)


def test_vmap_over_end_time():
    # On NumPy, dx.vmap batches with difflux tracers. On JAX it is jax.vmap, whose
    # JAX tracers pass the t_span check as under dx.jit (test_jit_gradient_of_end_time).
    y0 = np.array([1.0, 2.0])
    ys = dx.vmap(lambda t1: ode.solve(decay, y0, (0.0, t1), solver=TSIT5).ys[-1])(np.array([0.5, 1.0]))
    expected = np.exp(-np.array([[0.5], [1.0]])) * np.array([1.0, 2.0])
    np.testing.assert_allclose(np.asarray(ys), expected, rtol=1e-5)


# --------------------------------------------------------------------------
# States and event conditions of unsupported kinds
# --------------------------------------------------------------------------


def test_complex_y0_raises():
    # Cast to float64, the imaginary part was dropped with only a NumPy warning.
    with pytest.raises(TypeError, match=r"y0 has the complex dtype complex128; the solvers support real states only"):
        ode.solve(lambda t, y, args: -1j * y, np.array([1.0 + 0.0j]), (0.0, 1.0), solver=TSIT5)


def test_complex_vector_field_raises():
    with pytest.raises(TypeError, match=r"vector field returned the complex dtype complex128 for a real state"):
        ode.solve(lambda t, y, args: 1j * y, np.array([1.0]), (0.0, 1.0), solver=TSIT5)


def test_empty_y0_raises(backend, to_backend):
    # Without the check every step was rejected (the error norm of no entries
    # is NaN) until max_steps, which was then reported as the cause.
    with pytest.raises(ValueError, match=r"y0 has no entries \(shapes \[\(0,\)\]\)"):
        ode.solve(decay, to_backend(np.zeros(0)), (0.0, 1.0), solver=TSIT5)


def test_boolean_event_condition_raises(backend, to_backend):
    def fall(t, y, g):
        return dx.stack([y[1], -g + 0.0 * y[0]])

    with pytest.raises(TypeError, match=r"condition 0 returned dtype bool.*y\[0\] - 0\.5 in place of y\[0\] > 0\.5"):
        ode.solve(
            fall, to_backend([1.0, 0.0]), (0.0, 5.0), 9.81, solver=TSIT5, events=ode.Event(lambda t, y, g: y[0] > 0.5)
        )
    solution = ode.solve(
        fall, to_backend([1.0, 0.0]), (0.0, 5.0), 9.81, solver=TSIT5, events=ode.Event(lambda t, y, g: y[0] - 0.5)
    )
    assert float(solution.event_time) == pytest.approx(np.sqrt(2 * 0.5 / 9.81), rel=1e-6)


def test_numpy_field_in_implicit_solver_explains():
    # Robertson's kinetics turn stiff at once, so the default solver switches
    # to Kvaerno5, whose Jacobian cannot see through NumPy functions.
    def robertson(t, y, args):
        return np.array(
            [-0.04 * y[0] + 1e4 * y[1] * y[2], 0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2, 3e7 * y[1] ** 2]
        )

    with pytest.raises(TypeError, match=r"an implicit solver .* computes df/dy with dx\.jacfwd") as error:
        ode.solve(robertson, np.array([1.0, 0.0, 0.0]), (0.0, 0.4))
    assert error.match(r"choose an explicit solver such as ode\.Tsit5\(\)")
