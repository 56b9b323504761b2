"""Generic tests of every rule in rules_table.RULES, on NumPy and JAX."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import difflux.core as dx
from conftest import HAS_JAX
from difflux import optim
from rules_table import RULES, THETA0, RuleCase

CASES = [pytest.param(case, id=case.id) for case in RULES]
ADAPTIVE = [pytest.param(case, id=case.id) for case in RULES if case.adaptive]

# A badly conditioned quadratic with its minimum at CENTRE.
CURVATURE = np.array([1.0, 4.0, 0.5])
CENTRE = np.array([1.0, 2.0, -1.0])


def make_quadratic(convert):
    curvature, centre = convert(CURVATURE), convert(CENTRE)

    def quadratic(params):
        return 0.5 * dx.sum(curvature * (params["x"] - centre) ** 2)

    return quadratic


def rosenbrock(params):
    x, y = params["x"][0], params["x"][1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def run(rule, params, loss, steps):
    state = optim.setup(rule, params)
    for _ in range(steps):
        state, params = optim.update(state, params, dx.grad(loss)(params))
    return state, params


@pytest.mark.parametrize("case", CASES)
def test_rule_matches_equations_by_hand(case: RuleCase, to_backend):
    expected = case.by_hand(THETA0, case.grads)
    params = to_backend(THETA0)
    state = case.rule.init(params)
    for step, (grad, want) in enumerate(zip(case.grads, expected), start=1):
        updates, state = case.rule.update(to_backend(grad), state, params)
        params = dx.apply_updates(params, updates)
        np.testing.assert_allclose(np.asarray(params), want, rtol=1e-12, atol=1e-14, err_msg=f"step {step}")
    assert int(state.count) == len(case.grads)


@pytest.mark.parametrize("case", CASES)
def test_rule_reduces_quadratic(case: RuleCase, to_backend):
    quadratic = make_quadratic(to_backend)
    params = {"x": to_backend(THETA0)}
    start = float(quadratic(params))
    _, params = run(case.fit, params, quadratic, steps=case.steps)
    assert float(quadratic(params)) < 0.05 * start


@pytest.mark.parametrize("case", ADAPTIVE)
def test_rule_reduces_rosenbrock(case: RuleCase, to_backend):
    params = {"x": to_backend([-1.2, 1.0])}
    start = float(rosenbrock(params))
    fit = (
        case.fit
        if isinstance(case.fit, optim.AdaDelta)
        else dataclasses.replace(case.fit, learning_rate=case.rosenbrock_lr)
    )
    _, params = run(fit, params, rosenbrock, steps=300)
    assert float(rosenbrock(params)) < 0.2 * start


@pytest.mark.parametrize("case", CASES)
def test_rule_keeps_float32(case: RuleCase, backend):
    params = {"x": dx.asarray(THETA0.astype(np.float32), backend=backend)}
    state = case.rule.init(params)
    for grad in case.grads[:2]:
        grads = {"x": dx.asarray(grad.astype(np.float32), backend=backend)}
        updates, state = case.rule.update(grads, state, params)
        assert updates["x"].dtype == np.float32
        params = dx.apply_updates(params, updates)
    for name, slot in state.slots.items():
        assert slot["x"].dtype == np.float32, name
    assert state.count.dtype == np.int32


@pytest.mark.parametrize("case", CASES)
def test_rule_casts_float64_gradients(case: RuleCase, backend):
    params = {"x": dx.asarray(THETA0.astype(np.float32), backend=backend)}
    state = case.rule.init(params)
    updates, state = case.rule.update({"x": dx.asarray(case.grads[0], backend=backend)}, state, params)
    assert updates["x"].dtype == np.float32
    assert all(slot["x"].dtype == np.float32 for slot in state.slots.values())


@pytest.mark.parametrize("case", CASES)
def test_rule_zero_gradient_is_finite(case: RuleCase, to_backend):
    params = {"x": to_backend(THETA0), "zero": to_backend(np.zeros(3))}
    state = case.rule.init(params)
    for _ in range(3):
        grads = {"x": to_backend(np.zeros(3)), "zero": to_backend(np.zeros(3))}
        updates, state = case.rule.update(grads, state, params)
        for name in ("x", "zero"):
            assert np.all(np.isfinite(np.asarray(updates[name]))), name
        params = dx.apply_updates(params, updates)
    # Nothing pulls a zero parameter anywhere, weight decay included.
    np.testing.assert_array_equal(np.asarray(params["zero"]), np.zeros(3))


@pytest.mark.parametrize("case", CASES)
def test_rule_skips_non_float_leaves(case: RuleCase, to_backend):
    params = {"x": to_backend(THETA0), "n": np.arange(3), "none": None, "name": "layer"}
    state = case.rule.init(params)
    # The integer leaf comes first but the step count follows the floats' backend.
    assert ("jax" in type(state.count).__module__) == ("jax" in type(params["x"]).__module__)
    for slot in state.slots.values():
        assert slot["n"] is None
        assert slot["none"] is None
    grads = {"x": to_backend(case.grads[0]), "n": None, "none": None, "name": None}
    updates, state = case.rule.update(grads, state, params)
    assert updates["n"] is None
    assert updates["name"] is None
    new = dx.apply_updates(params, updates)
    np.testing.assert_array_equal(new["n"], np.arange(3))


@pytest.mark.parametrize("case", CASES)
def test_rule_none_gradient_keeps_state(case: RuleCase, to_backend):
    params = {"a": to_backend(THETA0), "b": to_backend(THETA0)}
    state = case.rule.init(params)
    grads = {"a": to_backend(case.grads[0]), "b": to_backend(case.grads[0])}
    _, state = case.rule.update(grads, state, params)
    updates, new_state = case.rule.update({"a": to_backend(case.grads[1]), "b": None}, state, params)
    assert updates["b"] is None
    for name in case.rule.slot_names:
        np.testing.assert_array_equal(np.asarray(new_state.slots[name]["b"]), np.asarray(state.slots[name]["b"]))


@pytest.mark.parametrize("case", CASES)
def test_rule_rejects_invalid_hyperparameters(case: RuleCase):
    for arguments in case.invalid:
        with pytest.raises(ValueError, match=type(case.rule).__name__) as info:
            dataclasses.replace(case.rule, **arguments)
        for value in arguments.values():
            assert repr(value) in str(info.value)


@pytest.mark.parametrize("case", CASES)
def test_rule_follows_optimiser_protocol(case: RuleCase):
    assert isinstance(case.rule, dx.Optimiser)
    assert hash(case.rule) == hash(dataclasses.replace(case.rule))
    assert case.rule.makes_steps


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
@pytest.mark.parametrize("case", CASES)
def test_rule_jit_matches_eager(case: RuleCase):
    traces = []
    quadratic = make_quadratic(lambda x: dx.asarray(x, backend="jax"))

    def step(state, params):
        traces.append(1)
        return optim.update(state, params, dx.grad(quadratic)(params))

    compiled = dx.jit(step)
    params = {"x": dx.asarray(THETA0, backend="jax")}
    eager_state = jit_state = optim.setup(case.rule, params)
    eager_params = jit_params = params
    for _ in range(4):
        eager_state, eager_params = step(eager_state, eager_params)
        jit_state, jit_params = compiled(jit_state, jit_params)
    np.testing.assert_allclose(np.asarray(jit_params["x"]), np.asarray(eager_params["x"]), rtol=1e-12, atol=1e-14)
    # Four eager calls and one trace: the state's arrays keep their types.
    assert len(traces) == 5
