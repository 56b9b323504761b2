"""Activations: values against closed forms, gradients, and extreme inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

import difflux.core as dx
from conftest import to_numpy
from difflux import nn
from difflux.core.testing import check_grads

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _softplus(x):
    return np.logaddexp(0.0, x)


# name, function, closed form in NumPy/SciPy
CLOSED_FORMS = [
    ("relu", nn.relu, lambda x: np.maximum(x, 0)),
    ("relu6", nn.relu6, lambda x: np.clip(x, 0, 6)),
    ("leaky_relu", nn.leaky_relu, lambda x: np.where(x >= 0, x, 0.01 * x)),
    ("elu", nn.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    ("selu", nn.selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))),
    ("celu", lambda x: nn.celu(x, 2.0), lambda x: np.maximum(x, 0) + np.minimum(0, 2 * np.expm1(np.minimum(x, 0) / 2))),
    ("gelu", nn.gelu, lambda x: x * special.ndtr(x)),
    ("gelu_tanh", lambda x: nn.gelu(x, approximate=True), _gelu_tanh),
    ("silu", nn.silu, lambda x: x * special.expit(x)),
    ("softplus", nn.softplus, _softplus),
    ("sigmoid", nn.sigmoid, special.expit),
    ("log_sigmoid", nn.log_sigmoid, lambda x: -_softplus(-x)),
    ("hard_sigmoid", nn.hard_sigmoid, lambda x: np.clip(x + 3, 0, 6) / 6),
    ("hard_tanh", nn.hard_tanh, lambda x: np.clip(x, -1, 1)),
    ("hard_swish", nn.hard_swish, lambda x: x * np.clip(x + 3, 0, 6) / 6),
    ("tanh", nn.tanh, np.tanh),
    ("softsign", nn.softsign, lambda x: x / (1 + np.abs(x))),
    ("mish", nn.mish, lambda x: x * np.tanh(_softplus(x))),
]
IDS = [case[0] for case in CLOSED_FORMS]

MODERATE = np.array([-3.7, -1.3, -0.4, 0.3, 0.9, 2.2, 4.1, 7.5])
EXTREME = np.array([-1000.0, -50.0, 50.0, 1000.0])


@pytest.mark.parametrize(("name", "function", "reference"), CLOSED_FORMS, ids=IDS)
def test_activation_values(backend, to_backend, name, function, reference):
    x = np.concatenate([MODERATE, EXTREME])
    np.testing.assert_allclose(to_numpy(function(to_backend(x))), reference(x), rtol=1e-12, atol=1e-300)


# JAX compiles every new operation, so second order runs on JAX only for the
# activations built on special functions and softplus. The rest run first order there.
SECOND_ORDER_ON_JAX = {"gelu", "elu", "softplus", "log_sigmoid", "mish"}


@pytest.mark.parametrize(("name", "function", "reference"), CLOSED_FORMS, ids=IDS)
def test_activation_gradients(backend, to_backend, name, function, reference):
    # Points away from the kinks, where finite differences are valid.
    order = 2 if backend == "numpy" or name in SECOND_ORDER_ON_JAX else 1
    check_grads(lambda x: function(x), (to_backend(MODERATE),), order=order)


@pytest.mark.parametrize(("name", "function", "reference"), CLOSED_FORMS, ids=IDS)
def test_activation_gradient_finite_at_extremes(backend, to_backend, name, function, reference):
    gradient = dx.grad(lambda x: dx.sum(function(x)))(to_backend(EXTREME))
    assert np.all(np.isfinite(to_numpy(gradient)))


def test_sigmoid_saturates(backend, to_backend):
    values = to_numpy(nn.sigmoid(to_backend([-1000.0, 1000.0])))
    np.testing.assert_array_equal(values, [0.0, 1.0])


def test_softplus_large_input(backend, to_backend):
    value, slope = dx.value_and_grad(lambda x: dx.sum(nn.softplus(x)))(to_backend([1000.0]))
    assert float(value) == 1000.0
    assert to_numpy(slope).tolist() == [1.0]


def test_log_sigmoid_large_negative(backend, to_backend):
    assert to_numpy(nn.log_sigmoid(to_backend([-1000.0]))).tolist() == [-1000.0]


def test_relu_gradient_at_zero_is_zero(backend, to_backend):
    assert to_numpy(dx.grad(lambda x: dx.sum(nn.relu(x)))(to_backend([0.0]))).tolist() == [0.0]


def test_gelu_exact_left_tail(backend, to_backend):
    # x * Phi(x) at x = -30 is about -1.5e-196; 1 + erf underflows to 0 there.
    value = float(nn.gelu(to_backend(-30.0)))
    assert value == pytest.approx(-30.0 * special.ndtr(-30.0), rel=1e-10)
    assert value < 0


def test_gelu_approximations_close(backend, to_backend):
    x = to_backend(np.linspace(-4, 4, 41))
    difference = to_numpy(nn.gelu(x) - nn.gelu(x, approximate=True))
    assert np.max(np.abs(difference)) < 1e-3


def test_softmax_large_logits(backend, to_backend):
    logits = to_backend([[1e4, 0.0, -1e4]])
    np.testing.assert_allclose(to_numpy(nn.softmax(logits)), [[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(to_numpy(nn.log_softmax(logits)), [[0.0, -1e4, -2e4]])


def test_log_softmax_matches_scipy(backend, to_backend):
    x = np.array([[1.0, 2.0, 3.0], [-5.0, 0.5, 800.0]])
    np.testing.assert_allclose(to_numpy(nn.log_softmax(to_backend(x), axis=-1)), special.log_softmax(x, axis=-1))


def test_swish_is_silu():
    assert nn.swish is nn.silu


def test_selu_fixed_point():
    # SELU keeps a standard normal input at mean 0 and variance 1.
    rng = np.random.default_rng(0)
    y = to_numpy(nn.selu(rng.standard_normal(400_000)))
    assert abs(y.mean()) < 0.01
    assert math.isclose(y.var(), 1.0, abs_tol=0.01)
