"""Normalisation layers: values against PyTorch and closed forms, running statistics, gradients."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from conftest import needs_jax, needs_torch, to_numpy
from difflux import nn
from difflux.core.testing import check_grads

RNG = np.random.default_rng(0)
X = RNG.normal(loc=1.5, scale=2.0, size=(4, 3, 2, 5))


def _with_parameters(layer, convert):
    """Give a layer random scale and bias, so that the affine part is tested too."""
    shape = layer.scale.shape
    return convert(dx.replace(layer, scale=RNG.normal(size=shape), bias=RNG.normal(size=shape)))


# -- BatchNorm ---------------------------------------------------------------------


def test_batchnorm_test_mode_uses_running_statistics(backend, convert, to_backend):
    mean, var = RNG.normal(size=3), RNG.uniform(0.5, 2.0, size=3)
    bn = _with_parameters(dx.replace(nn.BatchNorm(3), running_mean=mean, running_var=var), convert)
    y = bn(to_backend(X))
    shape = (1, 3, 1, 1)
    expected = (X - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-5)
    expected = expected * to_numpy(bn.scale).reshape(shape) + to_numpy(bn.bias).reshape(shape)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12)


@needs_torch
def test_batchnorm_training_matches_torch(backend, convert, to_backend):
    import torch

    bn = _with_parameters(nn.train_mode(nn.BatchNorm(3, momentum=0.3)), convert)
    reference = torch.nn.BatchNorm2d(3, momentum=0.3, dtype=torch.float64)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(to_numpy(bn.scale)))
        reference.bias.copy_(torch.from_numpy(to_numpy(bn.bias)))
    reference.train()

    for batch in (X, 0.5 * X + 1.0):
        y, bn = nn.apply(bn, to_backend(batch))
        expected = reference(torch.from_numpy(batch)).detach().numpy()
        np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_numpy(bn.running_mean), reference.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(bn.running_var), reference.running_var.numpy(), rtol=1e-12)

    reference.eval()
    tested = nn.test_mode(bn)
    expected = reference(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(to_numpy(tested(to_backend(X))), expected, rtol=1e-10, atol=1e-12)


def test_batchnorm_dense_input(backend, to_backend):
    x = RNG.normal(size=(6, 4))
    y, bn = nn.apply(nn.train_mode(nn.BatchNorm(4, backend=backend)), to_backend(x))
    np.testing.assert_allclose(to_numpy(y), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-10)
    np.testing.assert_allclose(to_numpy(bn.running_mean), 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(bn.running_var), 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-12)


def test_batchnorm_training_direct_call_raises():
    bn = nn.train_mode(nn.BatchNorm(3))
    with pytest.raises(RuntimeError, match=r"BatchNorm\(3, training=True\) is in training mode .* nn.apply"):
        bn(X)


def test_batchnorm_without_tracking_uses_batch_statistics(backend, to_backend):
    bn = nn.BatchNorm(3, track_stats=False, affine=False, backend=backend)
    assert bn.running_mean is None
    assert bn.scale is None
    y = to_numpy(bn(to_backend(X)))
    mean, var = X.mean(axis=(0, 2, 3), keepdims=True), X.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, (X - mean) / np.sqrt(var + 1e-5), rtol=1e-10)
    assert repr(bn) == "BatchNorm(3, affine=False, track_stats=False)"


def test_batchnorm_gradients(backend, convert, to_backend):
    # The running statistics carry no gradient by design, so only the
    # trained parameters and the input are perturbed.
    bn = _with_parameters(nn.BatchNorm(2), convert)
    x = to_backend(RNG.normal(size=(3, 2, 2)))

    def run(scale, bias, x, model):
        return nn.apply(dx.replace(model, scale=scale, bias=bias), x)[0]

    check_grads(lambda s, b, x: run(s, b, x, bn), (bn.scale, bn.bias, x), order=2)
    training = nn.train_mode(bn)
    check_grads(lambda s, b, x: run(s, b, x, training), (bn.scale, bn.bias, x), order=1)


def test_batchnorm_running_statistics_get_no_gradient(backend, convert, to_backend):
    bn = convert(nn.BatchNorm(3))
    grads = dx.grad(lambda m: dx.sum(m(to_backend(X)) ** 2))(bn)
    assert np.all(to_numpy(grads.running_mean) == 0)
    assert np.all(to_numpy(grads.running_var) == 0)


def test_batchnorm_single_value_per_channel_raises():
    bn = nn.train_mode(nn.BatchNorm(3))
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.apply(bn, np.ones((1, 3)))


def test_batchnorm_shape_error():
    with pytest.raises(ValueError, match=r"BatchNorm\(3\) expects an input of shape \(N, 3\) or \(N, 3, \*spatial\)"):
        nn.BatchNorm(3)(np.ones((2, 4, 5)))


def test_batchnorm_rejects_bad_momentum():
    with pytest.raises(ValueError, match="momentum must lie in"):
        nn.BatchNorm(3, momentum=1.5)


def test_batchnorm_float32_statistics_stay_float32():
    bn = nn.train_mode(nn.BatchNorm(3, dtype=np.float32))
    _, bn = nn.apply(bn, X)
    assert bn.running_mean.dtype == np.float32
    assert bn.running_var.dtype == np.float32


# -- LayerNorm, GroupNorm, InstanceNorm, RMSNorm ------------------------------------


def _normalised(x, axes, eps=1e-5):
    return (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)


def test_layernorm(backend, convert, to_backend):
    norm = _with_parameters(nn.LayerNorm((2, 5)), convert)
    expected = _normalised(X, (2, 3)) * to_numpy(norm.scale) + to_numpy(norm.bias)
    np.testing.assert_allclose(to_numpy(norm(to_backend(X))), expected, rtol=1e-10)


def test_groupnorm_matches_formula(backend, convert, to_backend):
    x = RNG.normal(size=(2, 6, 3, 2))
    norm = _with_parameters(nn.GroupNorm(3, 6), convert)
    grouped = x.reshape(2, 3, 2, 3, 2)
    expected = _normalised(grouped, (2, 3, 4)).reshape(x.shape)
    shape = (1, 6, 1, 1)
    expected = expected * to_numpy(norm.scale).reshape(shape) + to_numpy(norm.bias).reshape(shape)
    np.testing.assert_allclose(to_numpy(norm(to_backend(x))), expected, rtol=1e-10)


@needs_torch
def test_groupnorm_matches_torch(backend, convert, to_backend):
    import torch

    x = RNG.normal(size=(2, 6, 3, 2))
    norm = _with_parameters(nn.GroupNorm(3, 6), convert)
    expected = torch.nn.functional.group_norm(
        torch.from_numpy(x), 3, torch.from_numpy(to_numpy(norm.scale)), torch.from_numpy(to_numpy(norm.bias))
    )
    np.testing.assert_allclose(to_numpy(norm(to_backend(x))), expected.numpy(), rtol=1e-10, atol=1e-12)


def test_instancenorm(backend, convert, to_backend):
    plain = nn.InstanceNorm(3)
    assert plain.scale is None
    np.testing.assert_allclose(to_numpy(plain(to_backend(X))), _normalised(X, (2, 3)), rtol=1e-10)
    affine = _with_parameters(nn.InstanceNorm(3, affine=True), convert)
    shape = (1, 3, 1, 1)
    expected = _normalised(X, (2, 3)) * to_numpy(affine.scale).reshape(shape) + to_numpy(affine.bias).reshape(shape)
    np.testing.assert_allclose(to_numpy(affine(to_backend(X))), expected, rtol=1e-10)


def test_instancenorm_equals_groupnorm_with_one_channel_per_group(backend, to_backend):
    x = to_backend(X)
    np.testing.assert_allclose(to_numpy(nn.InstanceNorm(3)(x)), to_numpy(nn.GroupNorm(3, 3, affine=False)(x)))


def test_rmsnorm(backend, convert, to_backend):
    norm = convert(dx.replace(nn.RMSNorm(5), scale=RNG.normal(size=5)))
    expected = X / np.sqrt(np.mean(X**2, axis=-1, keepdims=True) + 1e-6) * to_numpy(norm.scale)
    np.testing.assert_allclose(to_numpy(norm(to_backend(X))), expected, rtol=1e-10)


SMALL = RNG.normal(size=(2, 4, 3))
GRADIENT_CASES = [
    ("layernorm", lambda: nn.LayerNorm(3)),
    ("groupnorm", lambda: nn.GroupNorm(2, 4)),
    ("instancenorm", lambda: nn.InstanceNorm(4, affine=True)),
    ("rmsnorm", lambda: nn.RMSNorm(3)),
]


@pytest.mark.parametrize(("name", "make"), GRADIENT_CASES, ids=[name for name, _ in GRADIENT_CASES])
def test_norm_gradients(backend, convert, to_backend, name, make):
    check_grads(lambda m, x: m(x), (convert(make()), to_backend(SMALL)), order=2)


def test_norm_shape_errors():
    with pytest.raises(ValueError, match=r"LayerNorm\(\(4,\)\) expects an input whose trailing axes are \(4,\)"):
        nn.LayerNorm(4)(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 6\) expects an input of shape \(N, 6, \*spatial\)"):
        nn.GroupNorm(2, 6)(np.ones((2, 4, 3)))
    with pytest.raises(ValueError, match="num_groups=4 must divide num_channels=6"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"InstanceNorm\(3\) expects .* with a spatial axis"):
        nn.InstanceNorm(3)(np.ones((2, 3)))


def test_norm_invalid_sizes():
    with pytest.raises(ValueError, match=r"^BatchNorm: num_features must be a positive integer, got -3$"):
        nn.BatchNorm(-3)
    with pytest.raises(
        TypeError, match=r"^InstanceNorm: num_features must be a positive integer, got 3\.5 of type float$"
    ):
        nn.InstanceNorm(3.5)
    with pytest.raises(ValueError, match=r"^GroupNorm: num_groups must be a positive integer, got 0$"):
        nn.GroupNorm(0, 6)
    with pytest.raises(
        TypeError, match=r"^GroupNorm: num_channels must be a positive integer, got 6\.0 of type float$"
    ):
        nn.GroupNorm(2, 6.0)
    norm = nn.BatchNorm(np.int64(3))
    assert type(norm.num_features) is int


@pytest.mark.parametrize("layer", [nn.LayerNorm, nn.RMSNorm])
def test_norm_invalid_shape(layer):
    name = layer.__name__
    with pytest.raises(ValueError, match=rf"^{name}: shape must be a positive integer, got 0$"):
        layer(0)
    with pytest.raises(ValueError, match=rf"^{name}: every entry of shape must be at least 1, got shape=\(3, -1\)$"):
        layer((3, -1))
    with pytest.raises(TypeError, match=rf"^{name}: shape must be a positive integer, got 2\.5 of type float$"):
        layer(2.5)


@pytest.mark.parametrize(
    "build", [nn.BatchNorm, nn.LayerNorm, lambda n, **kw: nn.GroupNorm(1, n, **kw), nn.InstanceNorm, nn.RMSNorm]
)
def test_norm_invalid_eps(build):
    with pytest.raises(ValueError, match=r"eps must be a finite number of at least 0, got -1\.0$"):
        build(4, eps=-1.0)
    with pytest.raises(ValueError, match=r"eps must be a finite number of at least 0, got nan$"):
        build(4, eps=float("nan"))
    with pytest.raises(TypeError, match=r"eps must be a Python number, got '1e-5'$"):
        build(4, eps="1e-5")


@needs_jax
def test_backend_mismatch_names_layer():
    x = dx.asarray(np.ones((2, 3)), backend="jax")
    with pytest.raises(
        TypeError, match=r"BatchNorm\(3\) has numpy arrays but received a jax input. Build it with backend='jax'"
    ):
        nn.BatchNorm(3, backend="numpy")(x)
    with pytest.raises(TypeError, match=r"LayerNorm\(\(3,\)\) has numpy arrays"):
        nn.LayerNorm(3, backend="numpy")(x)


def test_norm_reprs():
    assert repr(nn.BatchNorm(4, nn.relu, momentum=0.2)) == "BatchNorm(4, relu, momentum=0.2)"
    assert repr(nn.LayerNorm(8, eps=1e-6)) == "LayerNorm((8,), eps=1e-06)"
    assert repr(nn.GroupNorm(2, 8, affine=False)) == "GroupNorm(2, 8, affine=False)"
    assert repr(nn.InstanceNorm(3, affine=True)) == "InstanceNorm(3, affine=True)"
    assert repr(nn.RMSNorm((2, 3))) == "RMSNorm((2, 3))"
