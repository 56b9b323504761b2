"""The NumPy path of Adam and the single-pass ``optim.update``: same results as the general code, nothing mutated."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from difflux import optim


def _leaf_inputs(dtype, transposed):
    rng = np.random.default_rng(0)
    grad = rng.standard_normal((6, 5)).astype(dtype)
    if transposed:
        grad = np.ascontiguousarray(grad.T).T  # a transposed view, as the pullback of x @ w.T gives
    mu = rng.standard_normal((6, 5)).astype(dtype)
    nu = rng.random((6, 5)).astype(dtype)
    return grad, mu, nu


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("learning_rate", [1e-3, "array"])
def test_adam_numpy_leaf_matches_general(dtype, transposed, learning_rate):
    rule = optim.Adam(1e-3, b1=0.8, b2=0.95, eps=1e-6)
    grad, mu, nu = _leaf_inputs(dtype, transposed)
    lr = np.asarray(2e-3, dtype) if learning_rate == "array" else learning_rate
    t = np.asarray(3, dtype)
    saved = (grad.copy(), mu.copy(), nu.copy())

    expected, (expected_mu, expected_nu) = rule.update_leaf(grad, (mu, nu), None, t, lr)
    update, (new_mu, new_nu) = rule.update_leaf_numpy(grad, (mu, nu), None, t, lr)

    np.testing.assert_array_equal(update, expected)
    np.testing.assert_array_equal(new_mu, expected_mu)
    np.testing.assert_array_equal(new_nu, expected_nu)
    assert update.dtype == dtype
    assert new_mu.dtype == dtype
    # The slots passed in belong to the caller's old state.
    np.testing.assert_array_equal(grad, saved[0])
    np.testing.assert_array_equal(mu, saved[1])
    np.testing.assert_array_equal(nu, saved[2])


def _params():
    rng = np.random.default_rng(1)
    return {
        "w": rng.standard_normal((4, 3)).astype(np.float32),
        "b": np.zeros(3, np.float32),
        "steps": np.arange(3),
        "none": None,
    }


def _grads(params, step):
    rng = np.random.default_rng(10 + step)
    return {
        "w": np.ascontiguousarray(rng.standard_normal((3, 4)).astype(np.float32)).T,
        "b": rng.standard_normal(3).astype(np.float32),
        "steps": None,
        "none": None,
    }


@pytest.mark.parametrize(
    "rule",
    [optim.Adam(0.1), optim.Momentum(0.1), optim.chain(optim.ClipGlobalNorm(1.0), optim.Adam(0.1))],
    ids=["Adam", "Momentum", "chain"],
)
def test_update_matches_protocol_steps(rule):
    params = _params()
    state = optim.setup(rule, params)
    inner, expected = rule.init(params), params
    before = _params()

    for step in range(3):
        grads = _grads(params, step)
        state, params = optim.update(state, params, grads)
        updates, inner = rule.update(grads, inner, expected)
        expected = dx.apply_updates(expected, updates)

    for name in ("w", "b"):
        np.testing.assert_allclose(params[name], expected[name], rtol=1e-6)
        assert params[name].dtype == np.float32
    np.testing.assert_array_equal(params["steps"], before["steps"])
    assert params["none"] is None
    if not isinstance(state.inner, tuple):  # a single rule, whose state counts the steps
        assert int(state.inner.count) == 3


def test_update_keeps_frozen_leaf():
    params = _params()
    state = optim.freeze(optim.setup(optim.Adam(0.1), params), "w")
    state, new = optim.update(state, params, _grads(params, 0))

    np.testing.assert_array_equal(new["w"], params["w"])
    assert not np.array_equal(new["b"], params["b"])


def test_gradient_shape_error_names_path():
    params = _params()
    grads = _grads(params, 0)
    grads["b"] = np.zeros(4, np.float32)
    state = optim.setup(optim.Adam(0.1), params)

    with pytest.raises(ValueError, match=r"\['b'\] has shape \(4,\)"):
        optim.update(state, params, grads)


def test_update_with_zero_dimensional_gradients():
    # A gradient may come back as a 0-d array (a scalar parameter's
    # forward-mode derivative, say), not a NumPy scalar.
    params = {"scale": np.asarray(0.5), "w": np.ones(3)}
    grads = {"scale": np.asarray(0.25), "w": np.full(3, 0.5)}
    rule = optim.Adam(0.1)
    state = optim.setup(rule, params)
    state, new = optim.update(state, params, grads)
    updates, _ = rule.update(grads, rule.init(params), params)
    expected = dx.apply_updates(params, updates)
    for name in ("scale", "w"):
        np.testing.assert_allclose(np.asarray(new[name]), np.asarray(expected[name]), rtol=1e-12)
