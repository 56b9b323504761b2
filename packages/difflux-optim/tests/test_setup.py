"""The setup/update interface: models, freezing, adjusting, and errors on bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from conftest import HAS_JAX
from difflux import optim


class Dense(dx.Module):
    weight: Any
    bias: Any
    activation: Any = dx.tanh

    def __call__(self, x):
        y = x @ self.weight
        return self.activation(y if self.bias is None else y + self.bias)


class MLP(dx.Module):
    layers: list

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def make_mlp(convert) -> MLP:
    rng = np.random.default_rng(0)
    return MLP(
        [Dense(convert(rng.normal(size=(3, 4))), convert(np.zeros(4))), Dense(convert(rng.normal(size=(4, 1))), None)]
    )


def mlp_loss(convert):
    x, y = convert(np.linspace(-1, 1, 15).reshape(5, 3)), convert(np.linspace(0, 0.5, 5).reshape(5, 1))
    return lambda model: dx.mean((model(x) - y) ** 2)


def test_update_trains_module(to_backend):
    model, loss = make_mlp(to_backend), mlp_loss(to_backend)
    state = optim.setup(optim.Adam(0.05), model)
    start = float(loss(model))
    for _ in range(60):
        state, model = optim.update(state, model, dx.grad(loss)(model))
    assert isinstance(model, MLP)
    assert model.layers[1].bias is None
    assert model.layers[0].activation is dx.tanh
    assert float(loss(model)) < 0.2 * start


def test_update_accepts_lists_and_tuples(to_backend):
    params = [to_backend([1.0]), (to_backend([2.0]), to_backend([3.0]))]
    state = optim.setup(optim.Descent(0.5), params)
    state, params = optim.update(state, params, [to_backend([1.0]), (to_backend([1.0]), None)])
    assert isinstance(params[1], tuple)
    np.testing.assert_allclose([float(params[0][0]), float(params[1][0][0]), float(params[1][1][0])], [0.5, 1.5, 3.0])


def test_update_mutates_nothing(to_backend):
    params = {"w": to_backend([1.0, 2.0])}
    state = optim.setup(optim.Adam(0.1), params)
    new_state, new_params = optim.update(state, params, {"w": to_backend([1.0, 1.0])})
    assert int(state.inner.count) == 0
    np.testing.assert_array_equal(np.asarray(params["w"]), [1.0, 2.0])
    assert int(new_state.inner.count) == 1
    assert new_params is not params


def test_rules_accept_update_without_params(to_backend):
    updates, _ = optim.Adam(0.1).update({"w": to_backend([1.0])}, optim.Adam(0.1).init({"w": to_backend([0.0])}))
    np.testing.assert_allclose(np.asarray(updates["w"]), [-0.1])
    with pytest.raises(ValueError, match="Lamb needs the parameters"):
        optim.Lamb().update({"w": to_backend([1.0])}, optim.Lamb().init({"w": to_backend([0.0])}))


# --------------------------------------------------------------------------
# Freezing
# --------------------------------------------------------------------------


def test_freeze_keeps_values_and_state(to_backend):
    model, loss = make_mlp(to_backend), mlp_loss(to_backend)
    state = optim.setup(optim.Adam(0.05), model)
    state, model = optim.update(state, model, dx.grad(loss)(model))
    frozen = optim.freeze(state, "layers.0")
    before = model
    for _ in range(3):
        frozen, model = optim.update(frozen, model, dx.grad(loss)(model))
    np.testing.assert_array_equal(np.asarray(model.layers[0].weight), np.asarray(before.layers[0].weight))
    assert not np.array_equal(np.asarray(model.layers[1].weight), np.asarray(before.layers[1].weight))
    moments = frozen.inner.slots["mu"].layers[0].weight
    np.testing.assert_array_equal(np.asarray(moments), np.asarray(state.inner.slots["mu"].layers[0].weight))

    thawed = optim.thaw(frozen)
    thawed, model = optim.update(thawed, model, dx.grad(loss)(model))
    assert not np.array_equal(np.asarray(model.layers[0].weight), np.asarray(before.layers[0].weight))


def test_freeze_by_predicate_tuple_and_mask(to_backend):
    model = make_mlp(to_backend)
    state = optim.setup(optim.Descent(), model)
    by_predicate = optim.freeze(state, lambda path: path[-1] == "bias")
    by_tuple = optim.freeze(state, ("layers", 0, "bias"))
    mask = dx.tree_map(lambda x: x.ndim == 1, model)
    by_mask = optim.freeze(state, mask)
    # Leaves: layers[0].weight, layers[0].bias, layers[1].weight, layers[1].bias (None).
    assert by_predicate.frozen == (False, True, False, True)
    assert by_tuple.frozen == (False, True, False, False)
    assert by_mask.frozen == (False, True, False, False)
    assert optim.thaw(by_predicate, "layers.1").frozen == (False, True, False, False)


def test_freeze_unknown_path_raises(to_backend):
    state = optim.setup(optim.Descent(), {"w": to_backend([1.0])})
    with pytest.raises(ValueError, match=r"no parameter has the path 'v'.*w"):
        optim.freeze(state, "v")


def test_freeze_rejects_bare_rule_state(to_backend):
    with pytest.raises(TypeError, match=r"optim.freeze expects the state that optim.setup returns"):
        optim.freeze(optim.Adam().init(to_backend([1.0])), "w")


# --------------------------------------------------------------------------
# adjust
# --------------------------------------------------------------------------


def test_adjust_changes_every_rule_and_keeps_moments(to_backend):
    rule = optim.chain(optim.Adam(0.1), optim.WeightDecay(1e-2, learning_rate=0.1))
    state = optim.setup(rule, {"w": to_backend([1.0])})
    state, _ = optim.update(state, {"w": to_backend([1.0])}, {"w": to_backend([1.0])})
    adjusted = optim.adjust(state, lr=0.01)
    assert adjusted.rule.transforms[0].learning_rate == 0.01
    assert adjusted.rule.transforms[1].learning_rate == 0.01
    assert int(adjusted.inner[0].count) == 1
    np.testing.assert_array_equal(
        np.asarray(adjusted.inner[0].slots["mu"]["w"]), np.asarray(state.inner[0].slots["mu"]["w"])
    )
    assert optim.adjust(state, 0.5, b1=0.5).rule.transforms[0].b1 == 0.5


def test_adjust_inside_wrappers():
    rule = optim.skip_nonfinite(optim.masked(optim.accumulate(optim.Adam(0.1), 2), {"w": True}))
    assert optim.adjust(rule, b2=0.9).transform.transform.transform.b2 == 0.9


def test_adjust_rejects_unknown_and_invalid(to_backend):
    state = optim.setup(optim.Adam(), {"w": to_backend([1.0])})
    with pytest.raises(ValueError, match="hyperparameter named 'momentum'"):
        optim.adjust(state, momentum=0.9)
    with pytest.raises(ValueError, match=r"-0\.5"):
        optim.adjust(state, -0.5)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


def test_gradient_shape_mismatch_names_path(to_backend):
    model = make_mlp(to_backend)
    state = optim.setup(optim.Adam(), model)
    grads = dx.tree_map(lambda x: x, model)
    grads = dx.replace(grads, layers=[dx.replace(grads.layers[0], bias=to_backend(np.zeros(5))), grads.layers[1]])
    with pytest.raises(ValueError, match=r"\.layers\[0\]\.bias has shape \(5,\) but the parameter has shape \(4,\)"):
        optim.update(state, model, grads)


def test_gradient_structure_mismatch_names_path(to_backend):
    params = {"encoder": {"w": to_backend([1.0]), "b": to_backend([1.0])}}
    state = optim.setup(optim.Adam(), params)
    with pytest.raises(ValueError, match=r"a dict with keys \['c', 'w'\] at \['encoder'\].*keys \['b', 'w'\]"):
        optim.update(state, params, {"encoder": {"w": to_backend([1.0]), "c": to_backend([1.0])}})
    with pytest.raises(ValueError, match=r"a leaf at \['encoder'\]"):
        optim.update(state, params, {"encoder": to_backend([1.0])})


def test_gradient_for_absent_parameter_raises(to_backend):
    params = {"w": to_backend([1.0]), "b": None}
    with pytest.raises(ValueError, match=r"at \['b'\] is an array but the parameter there is None"):
        optim.Adam().update({"w": to_backend([1.0]), "b": to_backend([1.0])}, optim.Adam().init(params), params)


def test_state_for_other_parameters_raises(to_backend):
    state = optim.Adam().init({"w": to_backend([1.0])})
    params = {"w": to_backend([1.0]), "v": to_backend([1.0])}
    with pytest.raises(ValueError, match="state was built for other parameters"):
        optim.Adam().update(params, state, params)


@pytest.mark.parametrize("rule", [optim.Adam(), optim.Momentum()], ids=["Adam", "Momentum"])
def test_state_for_other_shapes_raises(to_backend, rule):
    # On JAX the moments would broadcast to the new shape without an error.
    params = {"w": to_backend([1.0, 2.0])}
    state = rule.init({"w": to_backend([5.0])})
    with pytest.raises(ValueError, match=r"state at \['w'\] has shape \(1,\) but the parameter has shape \(2,\)"):
        rule.update(params, state, params)
    with pytest.raises(ValueError, match="state was built for other parameters"):
        optim.update(optim.setup(rule, {"w": to_backend([5.0])}), params, params)


def test_accumulate_checks_gradients_and_sums(to_backend):
    rule = optim.accumulate(optim.Descent(1.0), 2)
    params = {"w": to_backend([1.0, 2.0])}
    with pytest.raises(ValueError, match=r"accumulate: the gradient at \['w'\] has shape \(1,\)"):
        rule.update({"w": to_backend([1.0])}, rule.init(params), params)
    with pytest.raises(ValueError, match=r"accumulate: the gradient sum at \['w'\] has shape \(1,\)"):
        rule.update(params, rule.init({"w": to_backend([1.0])}), params)
    with pytest.raises(ValueError, match=r"accumulate: the gradients have a dict with keys \['w'\]"):
        rule.update(params, rule.init(params), {"w": params["w"], "b": to_backend([1.0])})


def test_skip_nonfinite_names_mismatched_gradients(to_backend):
    rule = optim.skip_nonfinite(optim.Descent(1.0))
    params = {"w": to_backend([1.0, 2.0]), "b": to_backend([0.0])}
    with pytest.raises(ValueError, match=r"skip_nonfinite: the gradients have a dict with keys \['w'\]"):
        rule.update({"w": params["w"]}, rule.init(params), params)


def test_python_float_parameter_with_gradient_raises(to_backend):
    # dx.grad differentiates a Python float in a dict, but no rule updates it.
    params = {"w": 0.5, "b": to_backend([0.0])}
    grads = dx.grad(lambda p: (p["w"] - 3.0) ** 2 + dx.sum(p["b"]))(params)
    state = optim.setup(optim.Adam(0.1), params)
    with pytest.raises(TypeError, match=r"parameter at \['w'\] is the Python float 0.5.*np.asarray\(0.5\)"):
        optim.update(state, params, grads)
    state, new = optim.update(state, params, {"w": None, "b": grads["b"]})
    assert new["w"] == 0.5


def test_rule_errors_name_value():
    with pytest.raises(ValueError, match=r"Adam: learning_rate must be a non-negative finite number, got -0.001"):
        optim.Adam(-1e-3)
    with pytest.raises(ValueError, match=r"Adam: b2 must be in \[0, 1\), got 1.0"):
        optim.Adam(b2=1.0)
    with pytest.raises(ValueError, match=r"Adam: eps must be a positive finite number, got 0.0"):
        optim.Adam(eps=0.0)
    with pytest.raises(TypeError, match=r"b1 must be a Python number, got '0\.9'"):
        optim.Adam(b1="0.9")
    with pytest.raises(TypeError, match=r"eps must be a Python number, got np\.True_"):
        optim.Adam(eps=np.True_)


def test_rules_accept_numpy_scalars():
    rule = optim.Adam(np.float32(0.1), b1=np.float64(0.9))
    params = {"w": np.array([1.0, -2.0])}
    _, new = optim.update(optim.setup(rule, params), params, {"w": np.array([1.0, -1.0])})
    np.testing.assert_allclose(new["w"], [0.9, -1.9], rtol=1e-6)


def test_complex_parameters_rejected(backend):
    params = {"z": dx.asarray(np.ones(2, dtype=np.complex128), backend=backend)}
    with pytest.raises(NotImplementedError, match="complex dtype complex128"):
        optim.Adam().init(params)


def test_setup_rejects_non_optimiser(to_backend):
    with pytest.raises(TypeError, match=r"optim\.Adam"):
        optim.setup("adam", {"w": to_backend([1.0])})


# --------------------------------------------------------------------------
# Under dx.jit
# --------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_jit_step_on_module_with_frozen_layer():
    convert = lambda x: dx.asarray(x, backend="jax")  # noqa: E731
    model, loss = make_mlp(convert), mlp_loss(convert)
    traces = []

    @dx.jit
    def step(state, model):
        traces.append(1)
        return optim.update(state, model, dx.grad(loss)(model))

    state = optim.freeze(optim.setup(optim.Adam(optim.warmup_cosine(0.05, 5, 50)), model), "layers.1")
    frozen_weight = np.asarray(model.layers[1].weight)
    start = float(loss(model))
    for _ in range(20):
        state, model = step(state, model)
    assert len(traces) == 1
    assert float(loss(model)) < start
    np.testing.assert_array_equal(np.asarray(model.layers[1].weight), frozen_weight)
