"""Tests of freezing: nn.freeze masks, nn.partition_trainable, and their use with fit and optim."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from difflux import nn, optim


def _model() -> nn.Chain:
    k1, k2 = dx.random.split(dx.random.key(0, backend="numpy"))
    return nn.Chain(nn.Dense(3, 4, nn.relu, key=k1), nn.BatchNorm(4), nn.Dense(4, 2, key=k2))


def test_masks_print_as_flags():
    # Layer reprs read their arrays' shapes, and a mask contains booleans instead.
    model = _model()
    assert repr(nn.trainable(model.layers[0])) == "Dense(weight=True, bias=True, activation=relu)"
    text = repr(nn.freeze(model, "layers.0"))
    assert "Dense(weight=False, bias=False, activation=relu)" in text
    assert repr(model.layers[0]) == "Dense(3 => 4, relu)"


def _flags(mask: Any) -> dict[str, bool]:
    leaves = dx.tree_leaves(mask)
    names = ["0.weight", "0.bias", "1.scale", "1.bias", "1.running_mean", "1.running_var", "2.weight", "2.bias"]
    assert len(leaves) == len(names)
    return dict(zip(names, leaves))


def test_freeze_layer_by_path():
    flags = _flags(nn.freeze(_model(), "layers.0"))
    assert flags["0.weight"] is False
    assert flags["0.bias"] is False
    assert flags["2.weight"] is True


def test_freeze_keeps_state_untrained():
    flags = _flags(nn.freeze(_model(), "layers.2.bias"))
    assert flags["1.running_mean"] is False
    assert flags["1.scale"] is True
    assert flags["2.bias"] is False
    assert flags["2.weight"] is True


def test_freeze_by_key_tuple_and_list():
    by_tuple = _flags(nn.freeze(_model(), ("layers", 0, "weight")))
    by_list = _flags(nn.freeze(_model(), ["layers.0.weight", ("layers", 2)]))
    assert by_tuple["0.weight"] is False
    assert by_tuple["0.bias"] is True
    assert by_list["0.weight"] is False
    assert by_list["2.weight"] is False
    assert by_list["2.bias"] is False
    assert by_list["0.bias"] is True


def test_freeze_by_predicate():
    flags = _flags(nn.freeze(_model(), lambda path: path[-1] == "bias"))
    assert flags["0.bias"] is False
    assert flags["1.bias"] is False
    assert flags["2.bias"] is False
    assert flags["0.weight"] is True


def test_freeze_calls_chain():
    model = _model()
    flags = _flags(nn.freeze(model, "layers.2", trainable=nn.freeze(model, "layers.0")))
    assert flags["0.weight"] is False
    assert flags["2.weight"] is False
    assert flags["1.scale"] is True


def test_freeze_unknown_path_lists_paths():
    with pytest.raises(ValueError, match=r"no leaf of the model has the path 'layers\.5'.*'layers\.0\.weight'"):
        nn.freeze(_model(), "layers.5")


def test_freeze_rejects_bad_selector():
    with pytest.raises(TypeError, match="expected a dotted path"):
        nn.freeze(_model(), 3)  # type: ignore[arg-type]


def test_partition_trainable_round_trip():
    model = _model()
    params, rest = nn.partition_trainable(model, nn.freeze(model, "layers.0"))
    assert params.layers[0].weight is None
    assert params.layers[1].running_mean is None
    assert rest.layers[2].weight is None
    np.testing.assert_array_equal(rest.layers[1].running_var, model.layers[1].running_var)
    combined = dx.combine(params, rest)
    for a, b in zip(dx.tree_leaves(combined), dx.tree_leaves(model)):
        assert a is b


def test_partition_skips_integer_arrays():
    model = {"w": np.ones(2), "count": np.array(3)}
    params, rest = nn.partition_trainable(model, {"w": True, "count": True})
    assert params["count"] is None
    assert rest["count"] == 3


def test_mask_with_subtree_booleans():
    model = {"encoder": {"w": np.ones(2), "b": np.ones(2)}, "head": np.ones(2)}
    params, _ = nn.partition_trainable(model, {"encoder": False, "head": True})
    assert params["encoder"] == {"w": None, "b": None}
    assert params["head"] is model["head"]


def test_mask_missing_entry():
    with pytest.raises(ValueError, match="no entry for the model's leaf 'head'"):
        nn.partition_trainable({"encoder": np.ones(2), "head": np.ones(2)}, {"encoder": True})


def test_mask_rejects_non_boolean_leaf():
    with pytest.raises(TypeError, match="has ndarray at 'w'"):
        nn.partition_trainable({"w": np.ones(2)}, {"w": np.ones(2)})


def test_frozen_leaves_get_no_gradient_in_custom_loop():
    model = _model()
    params, rest = nn.partition_trainable(model, nn.freeze(model, "layers.0"))
    x = np.ones((5, 3))
    grads = dx.grad(lambda p: dx.sum(dx.combine(p, rest)(x)))(params)
    assert grads.layers[0].weight is None
    assert grads.layers[2].weight.shape == (2, 4)


def test_mask_works_with_optim_masked():
    model = _model()
    mask = nn.freeze(model, "layers.0")
    rule = optim.masked(optim.Descent(0.5), mask)
    state = optim.setup(rule, model)
    grads = dx.tree_map(np.ones_like, model)
    _, updated = optim.update(state, model, grads)
    np.testing.assert_array_equal(updated.layers[0].weight, model.layers[0].weight)
    np.testing.assert_array_equal(updated.layers[1].running_mean, model.layers[1].running_mean)
    np.testing.assert_allclose(updated.layers[2].weight, model.layers[2].weight - 0.5)


def test_nn_and_optim_paths_agree():
    # optim.freeze takes the same dotted paths as nn.freeze.
    model = _model()
    grads = dx.tree_map(np.ones_like, model)
    state = optim.freeze(optim.setup(optim.Descent(0.5), model), "layers.0")
    _, by_optim = optim.update(state, model, grads)
    by_mask = optim.update(
        optim.setup(optim.masked(optim.Descent(0.5), nn.freeze(model, "layers.0")), model), model, grads
    )[1]
    np.testing.assert_array_equal(by_optim.layers[0].weight, by_mask.layers[0].weight)
    np.testing.assert_array_equal(by_optim.layers[2].weight, by_mask.layers[2].weight)
