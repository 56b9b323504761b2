"""Modes and state: train_mode, test_mode, apply, update_state, trainable, and dx.jit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from conftest import NUMPY_KEY, needs_jax, on_backend, to_numpy
from difflux import nn

RNG = np.random.default_rng(0)
K1, K2, K3 = dx.random.split(NUMPY_KEY, 3)


def _model():
    return nn.Chain(
        nn.Dense(3, 8, key=K1),
        nn.BatchNorm(8, nn.relu),
        nn.Dropout(0.3),
        nn.Dense(8, 2, key=K2),
    )


class Wrapper(dx.Module):
    """A user module around nn layers, to check that modes and state reach through it."""

    body: Any
    training: bool = False

    def __call__(self, x, *, key=None):
        return self.body(x, key=key)


def test_modes_switch_every_flag():
    model = Wrapper(nn.Chain(_model(), nn.MultiHeadAttention(2, 1, key=K3)))
    training = nn.train_mode(model)
    flags = [m.training for _, _, m in nn.named_modules(training) if hasattr(m, "training")]
    assert flags == [True, True, True, True]
    assert all(not m.training for _, _, m in nn.named_modules(nn.test_mode(training)) if hasattr(m, "training"))
    assert all(not m.training for _, _, m in nn.named_modules(model) if hasattr(m, "training"))


def test_modes_keep_parameters():
    model = _model()
    training = nn.train_mode(model)
    assert training[0].weight is model[0].weight
    assert repr(training[2]) == "Dropout(0.3, training=True)"


def test_apply_returns_updated_statistics(backend, convert, to_backend):
    model = nn.train_mode(convert(_model()))
    x = to_backend(RNG.normal(size=(16, 3)))
    key = dx.random.key(0, backend=backend)
    y, new_model = nn.apply(model, x, key=key)
    assert tuple(y.shape) == (16, 2)
    hidden = to_numpy(model[0](x))
    np.testing.assert_allclose(to_numpy(new_model[1].running_mean), 0.1 * hidden.mean(0), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(new_model[1].running_var), 0.9 + 0.1 * hidden.var(0, ddof=1), rtol=1e-12)
    assert new_model[0].weight is model[0].weight
    assert to_numpy(model[1].running_mean).tolist() == [0.0] * 8


def test_apply_in_test_mode_returns_same_model():
    model = _model()
    x = RNG.normal(size=(4, 3))
    y, same = nn.apply(model, x)
    assert same is model
    np.testing.assert_allclose(y, model(x))


def test_apply_through_user_module():
    model = nn.train_mode(Wrapper(_model()))
    _, new_model = nn.apply(model, RNG.normal(size=(8, 3)), key=K3)
    assert np.any(new_model.body[1].running_mean != 0)
    assert new_model.training


def test_training_step_with_value_and_grad(backend, convert, to_backend):
    model = nn.train_mode(convert(_model()))
    x, labels = to_backend(RNG.normal(size=(16, 3))), dx.asarray(RNG.integers(0, 2, size=16), backend=backend)
    key = dx.random.key(0, backend=backend)

    def loss_fn(model, x, labels, key):
        logits, model = nn.apply(model, x, key=key)
        return nn.logit_cross_entropy(logits, labels), model

    (loss, new_model), grads = dx.value_and_grad(loss_fn, has_aux=True)(model, x, labels, key)
    assert np.isfinite(float(loss))
    assert tuple(grads[0].weight.shape) == (8, 3)
    assert np.all(to_numpy(grads[1].running_mean) == 0)
    # The new statistics are plain arrays, not values still being differentiated.
    assert not isinstance(new_model[1].running_mean, dx.Tracer)
    assert not isinstance(new_model[0].weight, dx.Tracer)
    assert np.any(to_numpy(new_model[1].running_mean) != 0)


@needs_jax
def test_jit_parity_with_batchnorm_and_dropout():
    model = nn.train_mode(on_backend(_model(), "jax"))
    x = dx.asarray(RNG.normal(size=(16, 3)), backend="jax")
    key = dx.random.key(0, backend="jax")

    def step(model, x, key):
        return nn.apply(model, x, key=key)

    y_eager, model_eager = step(model, x, key)
    compiled = dx.jit(step)
    y_jit, model_jit = compiled(model, x, key)
    np.testing.assert_allclose(to_numpy(y_jit), to_numpy(y_eager), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(model_jit[1].running_mean), to_numpy(model_eager[1].running_mean), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(model_jit[1].running_var), to_numpy(model_eager[1].running_var), rtol=1e-12)
    assert model_jit[2].training

    # The test-mode model compiles separately (the flag is static) and uses the new statistics.
    tested = nn.test_mode(model_jit)
    y_test, same = compiled(tested, x, key)
    np.testing.assert_allclose(to_numpy(y_test), to_numpy(tested(x)), rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(same[1].running_mean), to_numpy(tested[1].running_mean))


@needs_jax
def test_jit_training_step_gradients_match_eager():
    model = nn.train_mode(on_backend(_model(), "jax"))
    x = dx.asarray(RNG.normal(size=(8, 3)), backend="jax")
    target = dx.asarray(RNG.normal(size=(8, 2)), backend="jax")
    key = dx.random.key(1, backend="jax")

    def loss_fn(model, x, target, key):
        y, model = nn.apply(model, x, key=key)
        return nn.mse(y, target), model

    def step(model, x, target, key):
        return dx.value_and_grad(loss_fn, has_aux=True)(model, x, target, key)

    (loss_eager, _), grads_eager = step(model, x, target, key)
    (loss_jit, model_jit), grads_jit = dx.jit(step)(model, x, target, key)
    assert float(loss_jit) == pytest.approx(float(loss_eager), rel=1e-12)
    np.testing.assert_allclose(to_numpy(grads_jit[0].weight), to_numpy(grads_eager[0].weight), rtol=1e-10)
    assert np.any(to_numpy(model_jit[1].running_mean) != 0)


class Counter(nn.Layer):
    """A layer with state: counts the examples it has seen in training mode."""

    seen: Any = nn.state_field()
    training: bool = False

    def __call__(self, x, *, key=None):
        if self.training:
            nn.update_state(self, seen=self.seen + x.shape[0])
        return x


def test_custom_state_layer():
    layer = nn.train_mode(Counter(np.zeros(())))
    model = nn.Chain(layer, nn.relu)
    for _ in range(3):
        _, model = nn.apply(model, np.ones((5, 2)))
    assert float(model[0].seen) == 15.0
    mask = nn.trainable(model)
    assert mask[0].seen is False


def test_update_state_errors():
    layer = nn.train_mode(Counter(np.zeros(())))
    with pytest.raises(RuntimeError, match="called directly, so the new values would be lost"):
        layer(np.ones((2, 1)))

    class Wrong(nn.Layer):
        seen: Any = nn.state_field()

        def __call__(self, x, *, key=None):
            nn.update_state(self, count=1.0)
            return x

    with pytest.raises(TypeError, match="Wrong has no state field 'count'; its state fields are"):
        nn.apply(Wrong(np.zeros(())), np.ones(2))

    class BuildsLayerInside(dx.Module):
        def __call__(self, x):
            return nn.train_mode(nn.BatchNorm(2))(x)

    with pytest.raises(RuntimeError, match=r"is not part of the model passed to nn\.apply"):
        nn.apply(BuildsLayerInside(), np.ones((3, 2)))


def test_trainable_mask():
    model = nn.Chain(nn.Dense(2, 2, key=K1), nn.BatchNorm(2), nn.relu)
    mask = nn.trainable(model)
    assert mask[0].weight is True
    assert mask[0].bias is True
    assert (mask[1].scale, mask[1].bias, mask[1].running_mean, mask[1].running_var) == (True, True, False, False)
    assert dx.tree_structure(mask) == dx.tree_structure(model)
    # The last leaf is the relu function, which is not trained either.
    assert dx.tree_leaves(mask) == [True, True, True, True, False, False, False]


def test_named_modules_paths():
    model = nn.Chain(nn.Dense(2, 2, key=K1), nn.SkipConnection(nn.Chain(d=nn.Dense(2, 2, key=K2))))
    paths = [(path, depth, type(module).__name__) for path, depth, module in nn.named_modules(model)]
    assert paths == [
        ("", 0, "Chain"),
        ("layers.0", 1, "Dense"),
        ("layers.1", 1, "SkipConnection"),
        ("layers.1.layer", 2, "Chain"),
        ("layers.1.layer.layers.d", 3, "Dense"),
    ]


class ScanOverBatches(dx.Module):
    """Runs a BatchNorm once per leading slice of the input, inside dx.scan."""

    norm: Any

    def __call__(self, xs, *, key=None):
        def body(carry, x):
            return carry, self.norm(x)

        return dx.scan(body, dx.zeros_like(xs[0, 0, 0]), xs)[1]


@needs_jax
def test_state_update_inside_scan_raises_on_jax():
    model = nn.train_mode(ScanOverBatches(nn.BatchNorm(2, backend="jax")))
    xs = dx.asarray(RNG.normal(size=(3, 4, 2)), backend="jax")
    with pytest.raises(RuntimeError, match=r"updated its state inside a dx\.scan"):
        nn.apply(model, xs)
