"""difflux.core gradients and Hessians against JAX's, in float64.

Each function is written once against an array namespace ``xp`` and run with
``xp = difflux.core`` (differentiated by difflux) and ``xp = jax.numpy``
(differentiated by ``jax.grad``), which is possible because difflux.core
exports the Array API's names. The difflux gradient is taken on NumPy and JAX
arrays, and inside ``jax.jit``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import difflux.core as dx

RTOL = 1e-10
ATOL = 1e-12


@dataclass(frozen=True)
class Function:
    """A test function ``fn(xp, *args)`` and the shapes of its arguments."""

    name: str
    fn: Callable[..., Any]
    shapes: tuple[tuple[int, ...], ...]

    def draw(self, seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [rng.uniform(-1.5, 1.5, size=shape) for shape in self.shapes]

    def argnums(self) -> tuple[int, ...]:
        return tuple(range(len(self.shapes)))


def sin_times_gaussian(xp, x):
    return xp.sum(xp.sin(x) * xp.exp(-x * x))


def tanh_layer(xp, w, x, b):
    return xp.sum(xp.tanh(xp.matmul(w, x) + b))


def where_branches(xp, x):
    # Both branches are smooth where they are selected. The kink at 0 has
    # probability zero under the continuous random inputs.
    return xp.sum(xp.where(x > 0, x**3, xp.sin(x)))


def logaddexp_pair(xp, x, y):
    return xp.sum(xp.logaddexp(x, 2.0 * y))


def softplus_sum(xp, x):
    return xp.sum(xp.logaddexp(0.0, x))


def two_layer_mse(xp, w1, w2, inputs, targets):
    hidden = xp.tanh(xp.matmul(inputs, w1))
    prediction = xp.matmul(hidden, w2)
    return xp.mean(xp.square(prediction - targets))


def euclidean_norm(xp, x):
    return xp.sqrt(xp.sum(x * x))


def log1p_ratio(xp, x, y):
    return xp.sum(xp.log1p(x * x) / (1.0 + y * y))


FUNCTIONS = [
    Function("sin_times_gaussian", sin_times_gaussian, ((5,),)),
    Function("tanh_layer", tanh_layer, ((3, 4), (4,), (3,))),
    Function("where_branches", where_branches, ((7,),)),
    Function("logaddexp_pair", logaddexp_pair, ((2, 3), (3,))),
    Function("softplus_sum", softplus_sum, ((6,),)),
    Function("two_layer_mse", two_layer_mse, ((3, 5), (5, 2), (8, 3), (8, 2))),
    Function("euclidean_norm", euclidean_norm, ((4,),)),
    Function("log1p_ratio", log1p_ratio, ((2, 2), (2, 2))),
]

IDS = [function.name for function in FUNCTIONS]


def reference_grad(function: Function, args: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    grad_fn = jax.grad(functools.partial(function.fn, jnp), argnums=function.argnums())
    return tuple(np.asarray(g) for g in grad_fn(*[jnp.asarray(a) for a in args]))


def assert_grads_close(actual: tuple[Any, ...], expected: tuple[np.ndarray, ...]) -> None:
    assert len(actual) == len(expected)
    for index, (a, e) in enumerate(zip(actual, expected)):
        assert np.shape(a) == e.shape, f"gradient {index} has shape {np.shape(a)}, expected {e.shape}"
        np.testing.assert_allclose(np.asarray(a), e, rtol=RTOL, atol=ATOL, err_msg=f"gradient {index}")


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_grad_matches_jax_grad(function, backend):
    args = function.draw()
    expected = reference_grad(function, args)

    grad_fn = dx.grad(functools.partial(function.fn, dx), argnums=function.argnums())
    actual = grad_fn(*[dx.asarray(a, backend=backend) for a in args])

    assert_grads_close(actual, expected)


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
def test_grad_under_jit_matches_jax_grad(function):
    args = function.draw(seed=1)
    expected = reference_grad(function, args)

    grad_fn = jax.jit(dx.grad(functools.partial(function.fn, dx), argnums=function.argnums()))
    actual = grad_fn(*[jnp.asarray(a) for a in args])

    assert_grads_close(actual, expected)


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
def test_value_matches_jax(function):
    args = function.draw(seed=2)
    expected = function.fn(jnp, *[jnp.asarray(a) for a in args])

    actual = function.fn(dx, *[dx.asarray(a, backend="jax") for a in args])

    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=RTOL, atol=ATOL)


HESSIAN_FUNCTIONS = [f for f in FUNCTIONS if len(f.shapes) == 1]


@pytest.mark.parametrize("function", HESSIAN_FUNCTIONS, ids=[f.name for f in HESSIAN_FUNCTIONS])
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_hessian_matches_jax_hessian(function, backend):
    (x,) = function.draw(seed=3)
    expected = np.asarray(jax.hessian(functools.partial(function.fn, jnp))(jnp.asarray(x)))

    actual = dx.hessian(functools.partial(function.fn, dx))(dx.asarray(x, backend=backend))

    assert np.shape(actual) == expected.shape
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL)


def test_hessian_of_weights_in_mse():
    # The constants are JAX arrays so that they combine with the JAX
    # parameters on both sides, because difflux rejects mixed NumPy and JAX
    # arrays.
    w1, w2, inputs, targets = (jnp.asarray(a) for a in FUNCTIONS[IDS.index("two_layer_mse")].draw(seed=4))

    def loss(xp, w):
        return two_layer_mse(xp, w1, w, inputs, targets)

    expected = np.asarray(jax.hessian(functools.partial(loss, jnp))(w2))
    actual = dx.hessian(functools.partial(loss, dx))(w2)

    assert np.shape(actual) == (5, 2, 5, 2)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL)
