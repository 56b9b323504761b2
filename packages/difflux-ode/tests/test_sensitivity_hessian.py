"""Second derivatives through solve: Hessian-vector products against finite differences of gradients."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from difflux import ode

START = np.array([1.0, -0.5, -0.5, 1.0, -1.0, -0.3, 0.3, 0.1])  # y0, the matrix by rows, the forcing
DIRECTION = np.linspace(-1.0, 1.0, 8)


def make_loss(sensitivity):
    def loss(x):
        y0, matrix, forcing = x[:2], dx.reshape(x[2:6], (2, 2)), x[6:]
        sol = ode.solve(
            lambda t, y, args: args[0] @ y + args[1] * dx.sin(t),
            y0,
            (0.0, 1.5),
            (matrix, forcing),
            saveat=ode.SaveAt(ts=np.linspace(0.0, 1.0, 3), t1=True),
            rtol=1e-8,
            atol=1e-10,
            max_steps=32,
            sensitivity=sensitivity,
        )
        return dx.sum(sol.ys**3)

    return loss


def gradient_difference(gradient, x, v, eps=1e-5):
    return (np.asarray(gradient(x + eps * v)) - np.asarray(gradient(x - eps * v))) / (2 * eps)


# The forward-sensitivity and interpolating cases take 20-40 s each on a
# loaded 2-core machine, so they run with the slow tests.
CASES = [
    pytest.param(ode.RecursiveCheckpointAdjoint(), "forward-over-reverse", id="checkpoint-fwd-rev"),
    pytest.param(ode.ForwardSensitivity(), "forward-over-reverse", id="forward-fwd-rev", marks=pytest.mark.slow),
    pytest.param(ode.BacksolveAdjoint(), "reverse-over-reverse", id="backsolve-rev-rev"),
    pytest.param(
        ode.InterpolatingAdjoint(), "reverse-over-reverse", id="interpolating-rev-rev", marks=pytest.mark.slow
    ),
]


@pytest.mark.parametrize(("sensitivity", "mode"), CASES)
def test_hessian_vector_product(sensitivity, mode):
    gradient = dx.grad(make_loss(sensitivity))
    x, v = START.copy(), DIRECTION.copy()
    if mode == "forward-over-reverse":
        product = dx.jvp(gradient, (x,), (v,))[1]
    else:
        product = dx.grad(lambda x: dx.sum(gradient(x) * v))(x)
    expected = gradient_difference(gradient, x, v)
    np.testing.assert_allclose(np.asarray(product), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_hessian_vector_product_on_jax():
    pytest.importorskip("jax")
    x, v = (dx.asarray(value, backend="jax") for value in (START, DIRECTION))
    gradient = dx.grad(make_loss(ode.RecursiveCheckpointAdjoint()))
    product = dx.jvp(gradient, (x,), (v,))[1]
    np.testing.assert_allclose(np.asarray(product), gradient_difference(gradient, x, v), rtol=1e-6, atol=1e-8)
