"""Gradients of every sensitivity method against central finite differences.

The oracle is computed once on NumPy from solves at tight tolerances; each
method's gradient on each backend must match it with respect to ``y0``, the
parameters, ``t0``, ``t1`` and the saved times.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import difflux.core as dx
from difflux import ode

MATRIX = np.array([[-0.5, 1.0], [-1.0, -0.3]])
POINT = {
    "y0": np.array([1.0, -0.5]),
    "matrix": MATRIX,
    "forcing": np.array([0.3, 0.1]),
    "t0": np.array(0.1),
    "t1": np.array(1.6),
    "ts": np.array([0.4, 0.9]),
}
WEIGHTS = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 1.0], [-2.0, 0.5]])
TOLERANCES = {"rtol": 1e-10, "atol": 1e-12}
METHODS = [
    ode.RecursiveCheckpointAdjoint(),
    ode.BacksolveAdjoint(),
    ode.InterpolatingAdjoint(),
    ode.ForwardSensitivity(),
]
SLOW_ON_JAX = (ode.RecursiveCheckpointAdjoint, ode.InterpolatingAdjoint, ode.ForwardSensitivity)


def damped(t, y, params):
    matrix, forcing = params
    return matrix @ y + forcing * dx.sin(t)


def loss(point, sensitivity, weights=WEIGHTS):
    saveat = ode.SaveAt(t0=True, ts=point["ts"], t1=True)
    sol = ode.solve(
        damped,
        point["y0"],
        (point["t0"], point["t1"]),
        (point["matrix"], point["forcing"]),
        saveat=saveat,
        sensitivity=sensitivity,
        max_steps=64,
        **TOLERANCES,
    )
    return dx.sum(weights * sol.ys**2)


@functools.cache
def finite_difference_gradient() -> dict[str, np.ndarray]:
    eps = 1e-6
    gradient = {}
    for name, value in POINT.items():
        flat = np.zeros(value.size)
        for i in range(value.size):
            step = np.zeros(value.size)
            step[i] = eps
            up = dict(POINT, **{name: value + step.reshape(value.shape)})
            down = dict(POINT, **{name: value - step.reshape(value.shape)})
            flat[i] = (float(loss(up, None)) - float(loss(down, None))) / (2 * eps)
        gradient[name] = flat.reshape(value.shape)
    return gradient


# Compiling the differentiated loops on JAX takes 15-30 s per method on a
# loaded 2-core machine, so only the backsolve runs on JAX in the fast suite.
GRADIENT_CASES = [
    pytest.param(
        method,
        backend,
        id=f"{type(method).__name__}-{backend}",
        marks=[pytest.mark.slow] if backend == "jax" and type(method) in SLOW_ON_JAX else [],
    )
    for method in METHODS
    for backend in ("numpy", "jax")
]


@pytest.mark.parametrize(("sensitivity", "backend"), GRADIENT_CASES)
def test_gradient_matches_finite_differences(sensitivity, backend, to_backend):
    if backend == "jax":
        pytest.importorskip("jax")
    point = {name: to_backend(value) for name, value in POINT.items()}
    gradient = dx.grad(lambda point: loss(point, sensitivity, to_backend(WEIGHTS)))(point)
    expected = finite_difference_gradient()
    for name in POINT:
        np.testing.assert_allclose(np.asarray(gradient[name]), expected[name], rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("sensitivity", METHODS, ids=lambda method: type(method).__name__)
def test_forward_mode_matches_finite_differences(sensitivity):
    # The continuous methods define reverse rules only, so dx.jvp transposes them.
    direction = {name: np.linspace(-1.0, 1.0, value.size).reshape(value.shape) for name, value in POINT.items()}
    _, tangent = dx.jvp(lambda point: loss(point, sensitivity), (POINT,), (direction,))
    gradient = finite_difference_gradient()
    expected = sum(float(np.sum(gradient[name] * direction[name])) for name in POINT)
    assert float(tangent) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("sensitivity", METHODS, ids=lambda method: type(method).__name__)
def test_values_match_recursive_checkpoint(sensitivity):
    expected = float(loss(POINT, ode.RecursiveCheckpointAdjoint()))
    assert float(loss(POINT, sensitivity)) == pytest.approx(expected, rel=1e-13)


class Decay(dx.Module):
    rate: object
    offset: object

    def __call__(self, t, y, args):
        return {"x": -self.rate * (y["x"] - self.offset), "v": -y["v"] * self.rate[0] * args}


@pytest.mark.parametrize("sensitivity", METHODS[1:], ids=lambda method: type(method).__name__)
def test_module_field_and_structured_state(sensitivity):
    check_module_field(sensitivity, lambda x: np.asarray(x, dtype=float))


@pytest.mark.slow
@pytest.mark.parametrize("sensitivity", METHODS[1:], ids=lambda method: type(method).__name__)
def test_module_field_on_jax(sensitivity):
    pytest.importorskip("jax")
    check_module_field(sensitivity, lambda x: dx.asarray(np.asarray(x, dtype=float), backend="jax"))


def check_module_field(sensitivity, to_backend):
    field = Decay(rate=to_backend([0.5]), offset=to_backend([1.0]))
    y0 = {"x": to_backend([3.0]), "v": to_backend([[1.0, 2.0]])}

    def final(field, y0, scale):
        sol = ode.solve(field, y0, (0.0, 2.0), scale, sensitivity=sensitivity, **TOLERANCES)
        return dx.sum(sol.ys["x"]) + dx.sum(sol.ys["v"])

    grad_field, grad_y0, grad_scale = dx.grad(final, argnums=(0, 1, 2))(field, y0, to_backend(1.5))
    # x(2) = offset + (x0 - offset) exp(-2 rate); v(2) = v0 exp(-2 rate scale).
    decay, decay_v = np.exp(-1.0), np.exp(-1.5)
    assert float(grad_field.offset[0]) == pytest.approx(1.0 - decay, rel=1e-7)
    assert float(grad_field.rate[0]) == pytest.approx(-4.0 * decay - 3.0 * 2.0 * 1.5 * decay_v, rel=1e-7)
    assert float(grad_y0["x"][0]) == pytest.approx(decay, rel=1e-7)
    np.testing.assert_allclose(np.asarray(grad_y0["v"]), [[decay_v, decay_v]], rtol=1e-7)
    assert float(grad_scale) == pytest.approx(-3.0 * 2.0 * 0.5 * decay_v, rel=1e-7)


@pytest.mark.parametrize("sensitivity", METHODS[1:], ids=lambda method: type(method).__name__)
def test_steps_and_dense_raise(sensitivity):
    with pytest.raises(NotImplementedError, match="RecursiveCheckpointAdjoint"):
        ode.solve(
            lambda t, y, args: -y, np.array([1.0]), (0.0, 1.0), saveat=ode.SaveAt(dense=True), sensitivity=sensitivity
        )


def test_unknown_sensitivity_raises():
    with pytest.raises(TypeError, match="sensitivity must be"):
        ode.solve(lambda t, y, args: -y, np.array([1.0]), (0.0, 1.0), sensitivity="adjoint")
