"""dx.linear, x @ weight.T + bias: values, gradients, batching, compilation and errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import difflux.core as dx

RNG = np.random.default_rng(3)


def _operands(x_shape: tuple[int, ...], out_features: int = 4, dtype: Any = np.float64) -> tuple[Any, Any, Any]:
    x = RNG.normal(size=x_shape).astype(dtype)
    weight = RNG.normal(size=(out_features, x_shape[-1])).astype(dtype)
    bias = RNG.normal(size=out_features).astype(dtype)
    return x, weight, bias


@pytest.mark.parametrize("x_shape", [(5, 3), (3,), (2, 5, 3)])
def test_linear_matches_composed_form(to_backend, x_shape):
    x, weight, bias = _operands(x_shape)
    out = dx.linear(to_backend(x), to_backend(weight), to_backend(bias))
    np.testing.assert_allclose(np.asarray(out), x @ weight.T + bias, rtol=1e-14)


def test_linear_without_bias(to_backend):
    x, weight, _ = _operands((5, 3))
    np.testing.assert_allclose(np.asarray(dx.linear(to_backend(x), to_backend(weight))), x @ weight.T, rtol=1e-14)


def test_linear_promotes_like_addition():
    x, weight, _ = _operands((5, 3), dtype=np.float32)
    bias = np.arange(4.0)  # float64
    out = dx.linear(x, weight, bias)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, x @ weight.T + bias)


def test_linear_gradients_match_composed_form(to_backend):
    x, weight, bias = _operands((5, 3))

    def fused(x, weight, bias):
        return dx.sum(dx.tanh(dx.linear(x, weight, bias)))

    def composed(x, weight, bias):
        return dx.sum(dx.tanh(dx.matmul(x, dx.matrix_transpose(weight)) + bias))

    args = (to_backend(x), to_backend(weight), to_backend(bias))
    expected = dx.grad(composed, argnums=(0, 1, 2))(*args)
    for got, want in zip(dx.grad(fused, argnums=(0, 1, 2))(*args), expected):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13)


def test_linear_weight_gradient_is_c_contiguous():
    x, weight, bias = _operands((6, 3), dtype=np.float32)
    g = dx.grad(lambda w: dx.sum(dx.linear(x, w, bias) ** 2))(weight)
    assert g.flags.c_contiguous
    np.testing.assert_allclose(g, 2 * (x @ weight.T + bias).T @ x, rtol=1e-5)


# (x, weight, bias) batched or not, and the shape of one example of x.
BATCH_CASES = [
    ((True, False, False), (5, 3)),
    ((True, False, False), (3,)),
    ((False, True, False), (5, 3)),
    ((True, True, False), (5, 3)),
    ((False, False, True), (5, 3)),
    ((True, True, True), (3,)),
    ((True, True, True), (2, 5, 3)),
    ((False, True, True), (2, 5, 3)),
    ((True, False, True), (4, 2, 3)),
]


@pytest.mark.parametrize(("batched", "x_shape"), BATCH_CASES)
def test_linear_vmap_batches_in_one_call(backend, batched, x_shape):
    size = 3
    shapes = [x_shape, (4, x_shape[-1]), (4,)]
    args = [RNG.normal(size=((size,) if b else ()) + shape) for b, shape in zip(batched, shapes)]
    calls = []

    def per_example(x, weight, bias):
        calls.append(1)
        return dx.linear(x, weight, bias)

    in_axes = tuple(0 if b else None for b in batched)
    out = dx.vmap(per_example, in_axes=in_axes)(*[dx.asarray(a, backend=backend) for a in args])
    assert len(calls) == 1  # the batching rule ran, not the loop over examples
    examples = [[a[i] if b else a for a, b in zip(args, batched)] for i in range(size)]
    expected = np.stack([x @ weight.T + bias for x, weight, bias in examples])
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-13)


def test_linear_per_example_gradients_under_vmap(backend):
    x, weight, bias = _operands((6, 3))

    def loss(weight, bias, row):
        return dx.sum(dx.tanh(dx.linear(row, weight, bias)))

    per_example = dx.vmap(dx.grad(loss), in_axes=(None, None, 0))(
        dx.asarray(weight, backend=backend), dx.asarray(bias, backend=backend), dx.asarray(x, backend=backend)
    )
    for i in range(x.shape[0]):
        # tanh's last bits differ between NumPy and XLA, hence the tolerance.
        expected = dx.grad(loss)(weight, bias, x[i])
        np.testing.assert_allclose(np.asarray(per_example[i]), expected, rtol=1e-10, atol=1e-15)


def test_linear_under_jit():
    jax = pytest.importorskip("jax")
    x, weight, bias = _operands((5, 3))

    def loss(x, weight, bias):
        return dx.sum(dx.tanh(dx.linear(x, weight, bias)))

    step = jax.jit(dx.grad(loss, argnums=(1, 2)))
    compiled = step(*(jax.numpy.asarray(a) for a in (x, weight, bias)))
    for got, want in zip(compiled, dx.grad(loss, argnums=(1, 2))(x, weight, bias)):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-15)


def test_linear_rejects_mismatched_shapes():
    x, weight, bias = _operands((5, 3))
    with pytest.raises(ValueError, match=r"x needs 3 features on its last axis"):
        dx.linear(np.ones((5, 2)), weight, bias)
    with pytest.raises(ValueError, match=r"weight matrix of shape \(out_features, in_features\)"):
        dx.linear(x, np.ones(3), bias)
    with pytest.raises(ValueError, match=r"the bias must have shape \(4,\), got \(1, 4\)"):
        dx.linear(x, weight, bias[None])
