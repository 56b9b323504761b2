"""Control flow inside dx.vmap's batching rules: masked, vectorised loops.

Each construct is compared with a Python loop over the examples, and a
counter in the body checks that the body runs once per step for the whole
batch (the vectorised route) rather than once per example and step (the
loop fallback).
"""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx

STARTS = np.array([10.0, 3.0, 0.5, 100.0])


def halvings(x, calls=None):
    def body(v):
        if calls is not None:
            calls.append(1)
        return v / 2.0

    return dx.while_loop(lambda v: v > 1.0, body, x, max_steps=100)


def test_while_loop_values_and_one_body_call_per_step(to_backend) -> None:
    calls: list[int] = []
    # Under dx.grad the batching trace runs (on JAX too, where a bare
    # dx.vmap would hand the function to jax.vmap).
    out = dx.vmap(lambda x: halvings(x, calls))(to_backend(STARTS))
    expected = [float(halvings(x)) for x in STARTS]
    np.testing.assert_allclose(np.asarray(out), expected)
    if dx.backend_of(out) == "numpy":
        # 100 -> 0.78 takes 7 halvings: one batched body call per step.
        assert len(calls) == 7


@pytest.mark.parametrize("order", ["vmap_of_grad", "grad_of_vmap"])
def test_while_loop_gradients_equal_per_example(to_backend, order: str) -> None:
    xs = to_backend(STARTS)
    if order == "vmap_of_grad":
        grads = dx.vmap(dx.grad(halvings))(xs)
    else:
        grads = dx.grad(lambda x: dx.sum(dx.vmap(halvings)(x)))(xs)
    expected = [float(dx.grad(halvings)(x)) for x in STARTS]
    np.testing.assert_allclose(np.asarray(grads), expected)


def test_while_loop_jvp_under_vmap(to_backend) -> None:
    def tangent(x):
        return dx.jvp(halvings, (x,), (dx.ones_like(x),))[1]

    out = dx.vmap(tangent)(to_backend(STARTS))
    np.testing.assert_allclose(np.asarray(out), 1.0 / 2.0 ** np.array([4, 2, 0, 7]))


def test_while_loop_carry_structure_and_closure(to_backend) -> None:
    # The carry is a tuple with an integer counter; the body closes over a
    # batched value (the per-example step factor).
    def count_steps(x, factor):
        def body(carry):
            v, n = carry
            return v * factor, n + 1

        return dx.while_loop(lambda c: c[0] < 50.0, body, (x, dx.asarray(0, dtype=dx.int32)), max_steps=50)

    xs, factors = to_backend(np.array([1.0, 2.0, 60.0])), to_backend(np.array([2.0, 3.0, 2.0]))
    values, steps = dx.vmap(count_steps)(xs, factors)
    expected = [count_steps(x, f) for x, f in zip([1.0, 2.0, 60.0], [2.0, 3.0, 2.0])]
    np.testing.assert_allclose(np.asarray(values), [float(v) for v, _ in expected])
    np.testing.assert_array_equal(np.asarray(steps), [int(n) for _, n in expected])
    assert np.asarray(steps).dtype == np.int32


def test_while_loop_respects_max_steps_per_batch(to_backend) -> None:
    out = dx.vmap(lambda x: dx.while_loop(lambda v: v > 0.0, lambda v: v - 1.0, x, max_steps=3))(
        to_backend(np.array([2.0, 10.0]))
    )
    np.testing.assert_allclose(np.asarray(out), [0.0, 7.0])


def test_cond_with_batched_predicate(to_backend) -> None:
    def f(x):
        return dx.cond(x > 1.0, lambda: x**2, lambda: -x)

    xs = to_backend(STARTS)
    np.testing.assert_allclose(np.asarray(dx.vmap(f)(xs)), [100.0, 9.0, -0.5, 1e4])
    grads = dx.grad(lambda x: dx.sum(dx.vmap(f)(x)))(xs)
    np.testing.assert_allclose(np.asarray(grads), [20.0, 6.0, -1.0, 200.0])


def test_scan_and_fori_loop_under_vmap(to_backend) -> None:
    factors = to_backend(np.array([1.0, 2.0, 3.0]))

    def f(x):
        return dx.scan(lambda c, a: (c * a, c), x, factors)

    carry, ys = dx.vmap(f)(to_backend(np.array([1.0, 2.0])))
    np.testing.assert_allclose(np.asarray(carry), [6.0, 12.0])
    np.testing.assert_allclose(np.asarray(ys), [[1.0, 1.0, 2.0], [2.0, 2.0, 4.0]])
    doubled = dx.vmap(lambda x: dx.fori_loop(0, 3, lambda i, v: v * 2.0, x))(to_backend(np.array([1.0, 0.5])))
    np.testing.assert_allclose(np.asarray(doubled), [8.0, 4.0])


def test_creation_and_stop_gradient_of_batched_values(to_backend) -> None:
    def f(x):
        zero = dx.zeros_like(x)  # one example's shape, the same for all examples
        return dx.stop_gradient(x) * x + zero + dx.full_like(x, 1.0)

    xs = to_backend(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_allclose(np.asarray(dx.vmap(f)(xs)), np.asarray(xs) ** 2 + 1.0)
    grads = dx.grad(lambda x: dx.sum(dx.vmap(f)(x)))(xs)
    np.testing.assert_allclose(np.asarray(grads), np.asarray(xs))
    assert dx.vmap(lambda x: dx.asarray(dx.result_type(x, 1.0) == x.dtype))(xs).all()
