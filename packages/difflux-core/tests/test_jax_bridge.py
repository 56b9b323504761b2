"""Tests of dx.from_jax, checked against JAX's own derivatives."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from difflux.core.testing import check_grads

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")


def layer(x, w):
    return jnp.tanh(w @ x) ** 2


bridged_layer = dx.from_jax(layer)


def difflux_loss(x, w):
    return dx.sum(dx.sin(bridged_layer(x, w)) * 1.5)


def jax_loss(x, w):
    return jnp.sum(jnp.sin(layer(x, w)) * 1.5)


X = np.array([0.3, -0.5, 1.0])
W = np.array([[1.0, 2.0, 0.5], [-0.3, 0.2, 0.1]])


def _jax_inputs():
    return dx.asarray(X, backend="jax"), dx.asarray(W, backend="jax")


def test_bridge_value():
    x, w = _jax_inputs()
    np.testing.assert_allclose(np.asarray(bridged_layer(x, w)), np.asarray(layer(x, w)), rtol=1e-14)


def test_bridge_gradient_under_jit():
    x, w = _jax_inputs()
    got = jax.jit(dx.grad(difflux_loss, argnums=(0, 1)))(x, w)
    expected = jax.jit(jax.grad(jax_loss, argnums=(0, 1)))(x, w)
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(expected[0]), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(got[1]), np.asarray(expected[1]), rtol=1e-12)


def test_bridge_hessian_under_jit():
    x, w = _jax_inputs()
    got = jax.jit(dx.hessian(difflux_loss))(x, w)
    expected = jax.jit(jax.hessian(jax_loss))(x, w)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-12, atol=1e-14)


def test_bridge_reverse_over_reverse_under_jit():
    x, w = _jax_inputs()

    def difflux_penalty(x):
        return dx.sum(dx.grad(difflux_loss)(x, w) ** 2)

    def jax_penalty(x):
        return jnp.sum(jax.grad(jax_loss)(x, w) ** 2)

    got = jax.jit(dx.grad(difflux_penalty))(x)
    expected = jax.jit(jax.grad(jax_penalty))(x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-12)


def test_bridge_third_order():
    x = dx.asarray(0.7, backend="jax")
    cube = dx.from_jax(lambda x: jnp.sin(x) * x**2)
    third = dx.grad(dx.grad(dx.grad(cube)))(x)
    expected = jax.grad(jax.grad(jax.grad(lambda x: jnp.sin(x) * x**2)))(x)
    assert float(third) == pytest.approx(float(expected), rel=1e-12)


def test_bridge_forward_mode():
    x, w = _jax_inputs()
    tx = dx.asarray([1.0, 0.5, -2.0], backend="jax")
    out, tangent = dx.jvp(lambda x: bridged_layer(x, w), (x,), (tx,))
    expected_out, expected_tangent = jax.jvp(lambda x: layer(x, w), (x,), (tx,))
    np.testing.assert_allclose(np.asarray(out), np.asarray(expected_out), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(tangent), np.asarray(expected_tangent), rtol=1e-12)


def test_bridge_check_grads():
    check_grads(bridged_layer, _jax_inputs(), order=2)


def test_bridge_structured_output_with_integer_leaf():
    def features(x):
        return {"sin": jnp.sin(x), "argmax": jnp.argmax(x), "pair": (x**2, jnp.cos(x))}

    bridged = dx.from_jax(features)
    x = dx.asarray([0.3, 1.1, -0.4], backend="jax")
    out = bridged(x)
    assert int(out["argmax"]) == 1

    def loss(x):
        out = bridged(x)
        return dx.sum(out["sin"]) + dx.sum(out["pair"][1] * out["pair"][0])

    expected = jax.grad(lambda x: jnp.sum(jnp.sin(x)) + jnp.sum(jnp.cos(x) * x**2))(x)
    np.testing.assert_allclose(np.asarray(jax.jit(dx.grad(loss))(x)), np.asarray(expected), rtol=1e-12)
    check_grads(lambda x: bridged(x)["pair"], (x,), order=1)


def test_bridge_integer_argument_not_differentiated():
    take = dx.from_jax(lambda x, i: x[i] * 2.0)
    x = dx.asarray([1.0, 2.0, 3.0], backend="jax")
    index = jnp.asarray(2)
    g = dx.grad(lambda x: take(x, index))(x)
    np.testing.assert_allclose(np.asarray(g), [0.0, 0.0, 2.0])


def test_bridge_float32_output():
    half = dx.from_jax(lambda x: (x * x).astype(jnp.float32))
    x = dx.asarray([1.0, 3.0], backend="jax")
    g = dx.grad(lambda x: dx.sum(half(x)))(x)
    np.testing.assert_allclose(np.asarray(g), [2.0, 6.0])


def test_bridge_rejects_numpy_arrays():
    with pytest.raises(TypeError, match="JAX backend only"):
        bridged_layer(X, W)
    with pytest.raises(TypeError, match="argument 0"):
        dx.grad(lambda x: dx.sum(bridged_layer(x, W)))(X)
