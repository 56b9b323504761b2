"""Composition: chain, clipping, weight decay, masks, accumulation, skipping, plateaus."""

from __future__ import annotations

import math

import numpy as np
import pytest

import difflux.core as dx
from conftest import HAS_JAX
from difflux import optim


def as_numpy(tree):
    return dx.tree_map(lambda x: None if x is None else np.asarray(x), tree)


# --------------------------------------------------------------------------
# chain
# --------------------------------------------------------------------------


def test_chain_applies_in_order(to_backend):
    rule = optim.chain(optim.ClipValue(1.0), optim.Descent(0.5))
    params = {"w": to_backend([0.0, 0.0])}
    updates, state = rule.update({"w": to_backend([3.0, -0.5])}, rule.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["w"]), [-0.5, 0.25])
    assert isinstance(state, tuple)
    assert len(state) == 2


def test_chain_rejects_weight_decay_before_rule():
    with pytest.raises(ValueError, match=r"WeightDecay.*after the rule"):
        optim.chain(optim.WeightDecay(1e-2), optim.Adam())


def test_chain_rejects_two_rules():
    with pytest.raises(ValueError, match=r"Descent.*reverse their sign"):
        optim.chain(optim.Adam(), optim.Descent())


def test_chain_rejects_non_optimiser():
    with pytest.raises(TypeError, match="init and update"):
        optim.chain(optim.Adam(), "sgd")


def test_chain_weight_decay_equals_adamw(to_backend):
    params = {"w": to_backend([0.5, -1.5, 2.0])}
    grads = [{"w": to_backend(g)} for g in ([1.0, -2.0, 0.5], [-0.5, -3.0, 0.25])]
    adamw = optim.AdamW(0.1, weight_decay=0.1)
    chained = optim.chain(optim.Adam(0.1), optim.WeightDecay(0.1, learning_rate=0.1))
    results = []
    for rule in (adamw, chained):
        p, state = params, rule.init(params)
        for g in grads:
            updates, state = rule.update(g, state, p)
            p = dx.apply_updates(p, updates)
        results.append(np.asarray(p["w"]))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-14)


# --------------------------------------------------------------------------
# Clipping
# --------------------------------------------------------------------------


def test_clip_value_bounds_each_coordinate(to_backend):
    clip = optim.ClipValue(0.5)
    updates, _ = clip.update({"a": to_backend([-2.0, 0.1]), "b": None}, clip.init(None))
    np.testing.assert_array_equal(np.asarray(updates["a"]), [-0.5, 0.1])
    assert updates["b"] is None


def test_clip_norm_acts_per_array(to_backend):
    clip = optim.ClipNorm(1.0)
    params = {"big": to_backend([0.0, 0.0]), "small": to_backend([0.0, 0.0])}
    grads = {"big": to_backend([3.0, 4.0]), "small": to_backend([0.3, 0.4])}
    updates, _ = clip.update(grads, clip.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["big"]), [0.6, 0.8])
    np.testing.assert_allclose(np.asarray(updates["small"]), [0.3, 0.4])


@pytest.mark.parametrize(("order", "expected"), [(1, [1 / 7 * 3, 1 / 7 * 4]), (math.inf, [0.75, 1.0])])
def test_clip_norm_other_orders(order, expected, to_backend):
    clip = optim.ClipNorm(1.0, ord=order)
    updates, _ = clip.update(to_backend([3.0, 4.0]), clip.init(to_backend([0.0, 0.0])))
    np.testing.assert_allclose(np.asarray(updates), expected)


def test_clip_global_norm_keeps_direction(to_backend):
    clip = optim.ClipGlobalNorm(1.0)
    grads = {"a": to_backend([3.0]), "b": to_backend([4.0]), "c": None}
    updates, _ = clip.update(grads, clip.init(None))
    np.testing.assert_allclose(np.asarray(updates["a"]), [0.6])
    np.testing.assert_allclose(np.asarray(updates["b"]), [0.8])
    assert updates["c"] is None


def test_clipping_zero_gradient_is_finite(to_backend):
    zeros = {"a": to_backend([0.0, 0.0])}
    for clip in (optim.ClipNorm(1.0), optim.ClipGlobalNorm(1.0), optim.ClipNorm(1.0, ord=math.inf)):
        updates, _ = clip.update(zeros, clip.init(zeros), zeros)
        np.testing.assert_array_equal(np.asarray(updates["a"]), [0.0, 0.0])


def test_clip_global_norm_keeps_float32(backend):
    grads = {"a": dx.asarray(np.array([30.0], np.float32), backend=backend), "b": dx.asarray([40.0], backend=backend)}
    updates, _ = optim.ClipGlobalNorm(1.0).update(grads, None)
    assert updates["a"].dtype == np.float32
    assert updates["b"].dtype == np.float64


# --------------------------------------------------------------------------
# masked
# --------------------------------------------------------------------------


def test_masked_rule_freezes_outside(to_backend):
    params = {"w": to_backend([1.0, 1.0]), "b": to_backend([1.0])}
    rule = optim.masked(optim.Adam(0.1), {"w": True, "b": False})
    state = rule.init(params)
    assert state.slots["mu"]["b"] is None
    updates, _ = rule.update({"w": to_backend([1.0, 1.0]), "b": to_backend([1.0])}, state, params)
    assert updates["b"] is None
    np.testing.assert_allclose(np.asarray(updates["w"]), [-0.1, -0.1])


def test_masked_transform_passes_through_outside(to_backend):
    params = {"w": to_backend([2.0]), "b": to_backend([2.0])}
    decay = optim.masked(optim.WeightDecay(0.5), {"w": True, "b": False})
    rule = optim.chain(optim.Descent(1.0), decay)
    state = rule.init(params)
    updates, _ = rule.update({"w": to_backend([1.0]), "b": to_backend([1.0])}, state, params)
    np.testing.assert_allclose(np.asarray(updates["w"]), [-2.0])
    np.testing.assert_allclose(np.asarray(updates["b"]), [-1.0])


def test_masked_prefix_and_function_masks(to_backend):
    params = {"encoder": {"w": to_backend([1.0]), "b": to_backend([1.0])}, "head": to_backend([[1.0]])}
    grads = dx.tree_map(lambda x: x, params)
    prefix = optim.masked(optim.Descent(1.0), {"encoder": False, "head": True})
    by_rank = optim.masked(optim.Descent(1.0), lambda p: dx.tree_map(lambda x: x.ndim > 1, p))
    for rule in (prefix, by_rank):
        updates, _ = rule.update(grads, rule.init(params), params)
        assert updates["encoder"]["w"] is None
        np.testing.assert_allclose(np.asarray(updates["head"]), [[-1.0]])


def test_masked_rejects_incomplete_mask(to_backend):
    params = {"w": to_backend([1.0]), "b": to_backend([1.0])}
    with pytest.raises(ValueError, match=r"no entry for the parameter at \['b'\]"):
        optim.masked(optim.Adam(), {"w": True}).init(params)


def test_masked_rejects_non_boolean_mask(to_backend):
    with pytest.raises(TypeError, match="Python booleans"):
        optim.masked(optim.Adam(), {"w": 1}).init({"w": to_backend([1.0])})


def test_masked_hashes_by_value():
    first = optim.masked(optim.Adam(), {"w": True, "b": False})
    second = optim.masked(optim.Adam(), {"w": True, "b": False})
    assert first == second
    assert hash(first) == hash(second)


# --------------------------------------------------------------------------
# accumulate
# --------------------------------------------------------------------------


def test_accumulate_steps_with_mean_gradient(to_backend):
    params = {"w": to_backend([1.0, -1.0])}
    grads = [to_backend(g) for g in ([1.0, 2.0], [3.0, -2.0], [0.5, 0.5], [1.5, 1.5])]
    rule = optim.accumulate(optim.Adam(0.1), every=2)
    state = rule.init(params)
    reference, reference_state = params, optim.Adam(0.1).init(params)
    p = params
    for index, g in enumerate(grads):
        updates, state = rule.update({"w": g}, state, p)
        p = dx.apply_updates(p, updates)
        if index % 2 == 0:
            np.testing.assert_array_equal(np.asarray(updates["w"]), [0.0, 0.0])
        else:
            mean = {"w": (grads[index - 1] + g) / 2}
            reference_updates, reference_state = optim.Adam(0.1).update(mean, reference_state, reference)
            reference = dx.apply_updates(reference, reference_updates)
        np.testing.assert_allclose(np.asarray(p["w"]), np.asarray(reference["w"]), rtol=1e-14)
    assert int(state.inner.count) == 2
    assert int(state.calls) == 0


def test_accumulate_rejects_bad_count():
    with pytest.raises(ValueError, match="every must be a positive integer, got 0"):
        optim.accumulate(optim.Adam(), 0)


# --------------------------------------------------------------------------
# skip_nonfinite
# --------------------------------------------------------------------------


def test_skip_nonfinite_keeps_params_and_state(to_backend):
    params = {"w": to_backend([1.0, 2.0]), "n": np.arange(2)}
    rule = optim.skip_nonfinite(optim.Adam(0.1))
    state = rule.init(params)
    updates, state = rule.update({"w": to_backend([1.0, 1.0]), "n": None}, state, params)
    good_state = state
    for bad in (np.nan, np.inf):
        updates, state = rule.update({"w": to_backend([bad, 1.0]), "n": None}, state, params)
        np.testing.assert_array_equal(np.asarray(updates["w"]), [0.0, 0.0])
        assert updates["n"] is None
        np.testing.assert_array_equal(
            np.asarray(state.inner.slots["mu"]["w"]), np.asarray(good_state.inner.slots["mu"]["w"])
        )
    assert int(state.skipped) == 2
    assert int(state.consecutive) == 2
    assert int(state.inner.count) == 1
    _, state = rule.update({"w": to_backend([1.0, 1.0]), "n": None}, state, params)
    assert int(state.consecutive) == 0
    assert int(state.skipped) == 2


# --------------------------------------------------------------------------
# reduce_on_plateau
# --------------------------------------------------------------------------


def test_plateau_follows_pytorch_rules(to_backend):
    rule = optim.reduce_on_plateau(optim.Descent(1.0), factor=0.5, patience=2, cooldown=1, min_scale=0.2)
    state = optim.setup(rule, to_backend([0.0]))
    # Losses and the scale expected after each report, worked out from the
    # rules of PyTorch's ReduceLROnPlateau.
    losses = [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0]
    scales = [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
    for loss, scale in zip(losses, scales):
        state = optim.report(state, loss)
        assert float(state.inner.scale) == scale
    # min_scale bounds further reductions.
    for _ in range(8):
        state = optim.report(state, 3.0)
    assert float(state.inner.scale) == 0.2


def test_plateau_scales_steps(to_backend):
    rule = optim.reduce_on_plateau(optim.Descent(1.0), factor=0.5, patience=0)
    state = optim.setup(rule, to_backend([0.0]))
    state = optim.report(optim.report(state, 1.0), 2.0)
    state, params = optim.update(state, to_backend([0.0]), to_backend([1.0]))
    np.testing.assert_allclose(np.asarray(params), [-0.5])


def test_report_without_plateau_raises(to_backend):
    state = optim.setup(optim.Adam(), to_backend([0.0]))
    with pytest.raises(ValueError, match="reduce_on_plateau"):
        optim.report(state, 1.0)


def test_plateau_inside_chain_and_bare_state(to_backend):
    rule = optim.chain(optim.ClipNorm(), optim.reduce_on_plateau(optim.Adam(), patience=0, factor=0.5))
    state = rule.init(to_backend([0.0]))
    state = optim.report(optim.report(state, 1.0, rule=rule), 2.0, rule=rule)
    assert float(state[1].scale) == 0.5


# --------------------------------------------------------------------------
# Under dx.jit
# --------------------------------------------------------------------------


def _jit_pair(rule):
    """Return an eager step, its dx.jit-compiled twin, the start values and a trace counter."""
    traces = []
    centre = dx.asarray([1.0, -2.0], backend="jax")

    def step(state, params, scale):
        traces.append(1)

        def loss(p):
            return dx.sum(scale * (p["w"] - centre) ** 2) + dx.sum(p["b"] ** 2)

        return optim.update(state, params, dx.grad(loss)(params))

    params = {"w": dx.asarray([0.0, 0.0], backend="jax"), "b": dx.asarray([1.0], backend="jax")}
    return step, dx.jit(step), (optim.setup(rule, params), params), traces


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
@pytest.mark.parametrize(
    "rule",
    [
        optim.chain(optim.ClipGlobalNorm(1.0), optim.Adam(0.1), optim.WeightDecay(1e-2)),
        optim.accumulate(optim.Adam(0.1), every=3),
        optim.skip_nonfinite(optim.Momentum(0.1)),
        optim.reduce_on_plateau(optim.Adam(0.1)),
        optim.masked(optim.Adam(0.1), {"w": True, "b": False}),
    ],
    ids=["chain", "accumulate", "skip_nonfinite", "reduce_on_plateau", "masked"],
)
def test_composition_jit_matches_eager(rule):
    step, compiled, start, traces = _jit_pair(rule)
    eager = jitted = start
    scales = [1.0, 2.0, 1.0, 0.5, 1.0, 3.0]
    for scale in scales:
        eager = step(*eager, dx.asarray(scale, backend="jax"))
        jitted = compiled(*jitted, dx.asarray(scale, backend="jax"))
    np.testing.assert_allclose(np.asarray(jitted[1]["w"]), np.asarray(eager[1]["w"]), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jitted[1]["b"]), np.asarray(eager[1]["b"]), rtol=1e-12)
    # One trace besides the eager calls: the step compiled once.
    assert len(traces) == len(scales) + 1


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_skip_nonfinite_under_jit():
    _, compiled, start, _ = _jit_pair(optim.skip_nonfinite(optim.Adam(0.1)))
    state, params = compiled(*start, dx.asarray(1.0, backend="jax"))
    skipped_state, skipped_params = compiled(state, params, dx.asarray(np.nan, backend="jax"))
    np.testing.assert_array_equal(np.asarray(skipped_params["w"]), np.asarray(params["w"]))
    assert int(skipped_state.inner.skipped) == 1
    assert int(skipped_state.inner.inner.count) == 1
