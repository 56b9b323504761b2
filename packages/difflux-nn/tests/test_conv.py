"""Conv and ConvTranspose against jax.lax.conv_general_dilated and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from conftest import NUMPY_KEY, needs_jax, needs_torch, on_backend, on_backends, to_numpy
from difflux import nn
from difflux.core.testing import check_grads

RNG = np.random.default_rng(0)

# in, out, kernel, options, input spatial shape
CONV_CASES = [
    (2, 3, (3,), {}, (9,)),
    (2, 4, (3,), {"stride": 2, "padding": 1, "dilation": 2}, (11,)),
    (3, 4, (3, 2), {"padding": "SAME"}, (6, 5)),
    (4, 6, (2, 2), {"groups": 2, "stride": (2, 1)}, (6, 5)),
    (3, 6, (3, 3), {"depthwise": True, "padding": ((1, 0), (2, 1))}, (5, 5)),
    (2, 2, (2, 2, 2), {"stride": 2}, (4, 4, 6)),
]


def _lax_conv(x, w, b, kernel, options, groups):
    import jax.numpy as jnp
    from jax import lax

    nd = len(kernel)
    stride = options.get("stride", 1)
    stride = (stride,) * nd if isinstance(stride, int) else stride
    dilation = options.get("dilation", 1)
    dilation = (dilation,) * nd if isinstance(dilation, int) else dilation
    padding = options.get("padding", 0)
    if isinstance(padding, int):
        padding = [(padding, padding)] * nd
    spatial = "DHW"[-nd:]
    dimension_numbers = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    out = lax.conv_general_dilated(
        jnp.asarray(x),
        jnp.asarray(w),
        window_strides=stride,
        padding=padding,
        rhs_dilation=dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=groups,
    )
    return np.asarray(out) + b.reshape((-1,) + (1,) * nd)


@needs_jax
@pytest.mark.parametrize(("backend", "case"), on_backends(CONV_CASES, [CONV_CASES[1], CONV_CASES[3]]))
def test_conv_matches_lax(convert, to_backend, case):
    c_in, c_out, kernel, options, spatial = case
    layer = nn.Conv(c_in, c_out, kernel, key=NUMPY_KEY, bias_init=nn.normal, **options)
    x = RNG.normal(size=(2, c_in, *spatial))
    expected = _lax_conv(x, layer.weight, layer.bias, kernel, options, layer.groups)
    y = convert(layer)(to_backend(x))
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10, atol=1e-12)


def test_conv_init_with_jax_key_is_jax():
    pytest.importorskip("jax")
    layer = nn.Conv(2, 3, (3, 3), key=dx.random.key(0, backend="jax"))
    assert not isinstance(layer.weight, np.ndarray)
    assert not isinstance(layer.bias, np.ndarray)


def test_conv_weight_layout_and_groups():
    layer = nn.Conv(4, 6, (3, 3), key=NUMPY_KEY, groups=2)
    assert tuple(layer.weight.shape) == (6, 2, 3, 3)
    depthwise = nn.Conv(3, 6, (3,), key=NUMPY_KEY, depthwise=True)
    assert depthwise.groups == 3
    assert tuple(depthwise.weight.shape) == (6, 1, 3)


def test_conv_unbatched_input(convert, to_backend):
    layer = convert(nn.Conv(2, 3, (3, 3), key=NUMPY_KEY, bias_init=nn.normal))
    x = RNG.normal(size=(2, 5, 5))
    np.testing.assert_allclose(to_numpy(layer(to_backend(x))), to_numpy(layer(to_backend(x[None])))[0])


def test_conv_activation(convert, to_backend):
    plain = convert(nn.Conv(1, 2, (2,), key=NUMPY_KEY))
    with_relu = convert(nn.Conv(1, 2, (2,), nn.relu, key=NUMPY_KEY))
    x = to_backend(RNG.normal(size=(1, 1, 6)))
    np.testing.assert_allclose(to_numpy(with_relu(x)), np.maximum(to_numpy(plain(x)), 0))


def test_conv_gradients(convert, to_backend):
    layer = nn.Conv(2, 2, (2, 2), nn.tanh, key=NUMPY_KEY, stride=(2, 1), padding=1, bias_init=nn.normal)
    x = to_backend(RNG.normal(size=(1, 2, 3, 3)))
    check_grads(lambda m, x: m(x), (convert(layer), x), order=1)


def test_conv_small_gradients_second_order(convert, to_backend):
    layer = convert(nn.Conv(1, 1, (2,), key=NUMPY_KEY, bias_init=nn.normal))
    check_grads(lambda m, x: m(x), (layer, to_backend(RNG.normal(size=(1, 1, 4)))), order=2)


def test_conv_errors():
    with pytest.raises(TypeError, match=r"kernel_size must be a tuple .* \(3, 3\)"):
        nn.Conv(1, 2, 3, key=NUMPY_KEY)
    with pytest.raises(ValueError, match="groups=2 must divide"):
        nn.Conv(3, 4, (3,), key=NUMPY_KEY, groups=2)
    with pytest.raises(ValueError, match="depthwise=True sets groups=3"):
        nn.Conv(3, 6, (3,), key=NUMPY_KEY, depthwise=True, groups=2)
    layer = nn.Conv(3, 4, (3, 3), key=NUMPY_KEY)
    message = r"Conv\(\(3, 3\), 3 => 4\) expects an input of shape \(N, 3, \*spatial\) or \(3, \*spatial\) with 2 spatial axes, got an input of shape"
    with pytest.raises(ValueError, match=message + r" \(2, 4, 8, 8\)"):
        layer(np.ones((2, 4, 8, 8)))
    with pytest.raises(ValueError, match=message + r" \(2, 3, 8\)"):
        layer(np.ones((2, 3, 8)))


def test_conv_invalid_sizes():
    with pytest.raises(ValueError, match=r"^Conv: out_channels must be a positive integer, got -8$"):
        nn.Conv(1, -8, (3,), key=NUMPY_KEY)
    with pytest.raises(TypeError, match=r"^Conv: in_channels must be a positive integer, got 1\.5 of type float$"):
        nn.Conv(1.5, 8, (3,), key=NUMPY_KEY)
    with pytest.raises(ValueError, match=r"^Conv: groups must be a positive integer, got 0$"):
        nn.Conv(4, 8, (3,), key=NUMPY_KEY, groups=0)
    with pytest.raises(ValueError, match=r"^ConvTranspose: in_channels must be a positive integer, got 0$"):
        nn.ConvTranspose(0, 8, (3,), key=NUMPY_KEY)
    with pytest.raises(
        TypeError, match=r"^ConvTranspose: out_channels must be a positive integer, got True of type bool$"
    ):
        nn.ConvTranspose(2, True, (3,), key=NUMPY_KEY)
    layer = nn.Conv(np.int64(4), np.int64(8), (3,), key=NUMPY_KEY, groups=np.int64(2))
    assert type(layer.groups) is int
    assert repr(layer) == "Conv((3,), 4 => 8, groups=2)"


@pytest.mark.parametrize("layer", [nn.Conv, nn.ConvTranspose])
def test_conv_invalid_kernel_and_steps(layer):
    name = layer.__name__
    with pytest.raises(TypeError, match=rf"^{name}: kernel_size must contain integers, got kernel_size=\(2\.9,\)$"):
        layer(1, 2, (2.9,), key=NUMPY_KEY)
    with pytest.raises(
        ValueError, match=rf"^{name}: every entry of kernel_size must be at least 1, got kernel_size=\(0, 3\)"
    ):
        layer(1, 2, (0, 3), key=NUMPY_KEY)
    with pytest.raises(ValueError, match=r"at least 1, got kernel_size=\(-1, 3\)"):
        layer(1, 2, (-1, 3), key=NUMPY_KEY)
    with pytest.raises(TypeError, match=rf"^{name}: stride must contain integers, got stride=1\.5$"):
        layer(1, 2, (3,), key=NUMPY_KEY, stride=1.5)
    with pytest.raises(ValueError, match=rf"^{name}: every entry of dilation must be at least 1, got dilation=0$"):
        layer(1, 2, (3,), key=NUMPY_KEY, dilation=0)


def test_conv_padding_checked_when_built():
    with pytest.raises(ValueError, match=r"^Conv: padding='bogus' is not a padding mode"):
        nn.Conv(1, 2, (3,), key=NUMPY_KEY, padding="bogus")
    with pytest.raises(ValueError, match=r"has an entry \(2,\); each entry is an int or a \(low, high\) pair"):
        nn.Conv(1, 2, (3, 3), key=NUMPY_KEY, padding=[(1, 1), (2,)])
    with pytest.raises(TypeError, match=r"^Conv: padding must contain integers, got padding=1\.0$"):
        nn.Conv(1, 2, (3,), key=NUMPY_KEY, padding=1.0)
    layer = nn.Conv(1, 2, (3, 3), key=NUMPY_KEY, padding=[(1, 1), 2])
    assert layer.padding == ((1, 1), 2)
    assert layer(np.ones((1, 1, 5, 5))).shape == (1, 2, 5, 7)


CONV_TRANSPOSE_CASES = [
    (2, 3, (3,), {"stride": 2}, (5,)),
    (2, 4, (3,), {"stride": 2, "padding": 1, "output_padding": 1}, (5,)),
    (4, 2, (2, 3), {"stride": (2, 1), "groups": 2}, (3, 4)),
    (2, 2, (3, 3), {"dilation": 2, "padding": 1}, (4, 4)),
    (1, 2, (2, 2, 2), {"stride": 2}, (2, 3, 2)),
]


@needs_torch
@pytest.mark.parametrize(("backend", "case"), on_backends(CONV_TRANSPOSE_CASES, [CONV_TRANSPOSE_CASES[2]]))
def test_conv_transpose_matches_torch(convert, to_backend, case):
    import torch

    c_in, c_out, kernel, options, spatial = case
    layer = nn.ConvTranspose(c_in, c_out, kernel, key=NUMPY_KEY, bias_init=nn.normal, **options)
    x = RNG.normal(size=(2, c_in, *spatial))
    functions = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d}
    function = functions.get(len(kernel), torch.nn.functional.conv_transpose3d)
    expected = function(torch.from_numpy(x), torch.from_numpy(layer.weight), torch.from_numpy(layer.bias), **options)
    np.testing.assert_allclose(to_numpy(convert(layer)(to_backend(x))), expected.numpy(), rtol=1e-10, atol=1e-12)


def _lax_conv_transpose(x, w, kernel, options, groups, out_spatial):
    """Return the input-gradient of lax's convolution with kernel ``w``: a transposed convolution."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    nd = len(kernel)
    stride = options.get("stride", 1)
    stride = (stride,) * nd if isinstance(stride, int) else stride
    dilation = options.get("dilation", 1)
    dilation = (dilation,) * nd if isinstance(dilation, int) else dilation
    padding = options.get("padding", 0)
    padding = [(padding, padding)] * nd if isinstance(padding, int) else padding
    spatial = "DHW"[-nd:]
    dimension_numbers = ("NC" + spatial, "OI" + spatial, "NC" + spatial)

    def forward(z):
        return lax.conv_general_dilated(
            z,
            jnp.asarray(w),
            window_strides=stride,
            padding=padding,
            rhs_dilation=dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=groups,
        )

    z = jnp.zeros((x.shape[0], w.shape[1] * groups, *out_spatial))
    _, pullback = jax.vjp(forward, z)
    return np.asarray(pullback(jnp.asarray(x))[0])


@needs_jax
@pytest.mark.parametrize("case", CONV_TRANSPOSE_CASES)
def test_conv_transpose_matches_lax_gradient(case):
    c_in, c_out, kernel, options, spatial = case
    layer = nn.ConvTranspose(c_in, c_out, kernel, key=NUMPY_KEY, bias=False, **options)
    x = RNG.normal(size=(2, c_in, *spatial))
    y = layer(x)
    expected = _lax_conv_transpose(x, layer.weight, kernel, options, layer.groups, y.shape[2:])
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_conv_transpose_same_padding(convert, to_backend):
    layer = convert(nn.ConvTranspose(3, 2, (3, 3), key=NUMPY_KEY, stride=2, padding="SAME"))
    assert tuple(layer(to_backend(np.ones((1, 3, 4, 5)))).shape) == (1, 2, 8, 10)


def test_conv_transpose_gradients(convert, to_backend):
    layer = nn.ConvTranspose(2, 1, (2, 2), nn.tanh, key=NUMPY_KEY, stride=2, bias_init=nn.normal)
    check_grads(lambda m, x: m(x), (convert(layer), to_backend(RNG.normal(size=(1, 2, 2, 2)))), order=1)


def test_conv_transpose_restores_conv_input_shape():
    down = nn.Conv(3, 8, (3, 3), key=NUMPY_KEY, stride=2, padding=1)
    up = nn.ConvTranspose(8, 3, (3, 3), key=NUMPY_KEY, stride=2, padding=1, output_padding=1)
    assert tuple(up(down(np.ones((1, 3, 16, 16)))).shape) == (1, 3, 16, 16)


def test_conv_transpose_channel_error():
    layer = nn.ConvTranspose(8, 4, (2, 2), key=NUMPY_KEY)
    with pytest.raises(
        ValueError, match=r"ConvTranspose\(\(2, 2\), 8 => 4\) expects an input of shape \(N, 8, \*spatial\)"
    ):
        layer(np.ones((1, 4, 3, 3)))


def test_conv_reprs():
    assert repr(nn.Conv(1, 8, (3, 3), nn.relu, key=NUMPY_KEY, stride=2)) == "Conv((3, 3), 1 => 8, relu, stride=2)"
    assert repr(nn.Conv(4, 4, (3,), key=NUMPY_KEY, groups=4, bias=False)) == "Conv((3,), 4 => 4, groups=4, bias=False)"
    transpose = nn.ConvTranspose(8, 4, (2, 2), key=NUMPY_KEY, stride=(2, 1))
    assert repr(transpose) == "ConvTranspose((2, 2), 8 => 4, stride=(2, 1))"


@needs_jax
def test_conv_under_jit():
    on_jax = on_backend(nn.Conv(2, 3, (3, 3), key=NUMPY_KEY, padding=1), "jax")
    x = dx.asarray(RNG.normal(size=(2, 2, 5, 5)), backend="jax")
    compiled = dx.jit(lambda m, x: m(x))
    np.testing.assert_allclose(to_numpy(compiled(on_jax, x)), to_numpy(on_jax(x)), rtol=1e-12)
