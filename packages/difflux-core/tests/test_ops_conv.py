"""Values of convolution and pooling against PyTorch and JAX.

PyTorch (``torch.nn.functional``) and ``jax.lax`` are test-only oracles.
The sweep (``cases_conv.py``) checks gradients against finite differences.
This file checks values, layouts, gradient conventions (ties, the transpose
relation) and error messages.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import difflux.core as dx
from difflux.core import _ops_conv, _ops_patches, _ops_pool

RNG = np.random.default_rng(0)


def _torch():
    return pytest.importorskip("torch")


def _as_numpy(x) -> np.ndarray:
    return np.asarray(x)


def _torch_padded(torch, x: np.ndarray, pairs) -> object:
    """Pad the spatial axes of ``x`` by (low, high) pairs; negative amounts crop."""
    widths = []
    for low, high in reversed(pairs):
        widths += [low, high]
    return torch.nn.functional.pad(torch.tensor(x), widths)


def _torch_conv(x, w, stride, pairs, dilation, groups):
    torch = _torch()
    functional = torch.nn.functional
    conv = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}[w.ndim - 2]
    return conv(
        _torch_padded(torch, x, pairs), torch.tensor(w), stride=stride, dilation=dilation, groups=groups
    ).numpy()


# (x shape, kernel shape, stride, padding as (low, high) pairs, dilation, groups)
CONV_CONFIGS = [
    ((2, 3, 9), (4, 3, 3), 1, [(0, 0)], 1, 1),
    ((2, 4, 10), (6, 2, 3), 2, [(2, 1)], 2, 2),
    ((1, 3, 7), (3, 1, 4), 3, [(1, 1)], 1, 3),
    ((2, 3, 7, 6), (5, 3, 3, 2), (2, 1), [(1, 1), (0, 2)], (1, 2), 1),
    ((1, 4, 6, 6), (8, 1, 3, 3), 1, [(1, 1), (1, 1)], 1, 4),
    ((2, 4, 8, 5), (2, 2, 2, 3), (3, 2), [(0, 0), (2, 2)], (3, 1), 2),
    ((1, 2, 5, 4, 6), (3, 2, 2, 3, 2), (1, 2, 2), [(1, 0), (1, 1), (0, 0)], (2, 1, 1), 1),
    ((2, 2, 4, 4, 4), (4, 1, 2, 2, 2), 2, [(1, 1), (1, 1), (1, 1)], 1, 2),
    ((1, 1, 6, 5), (1, 1, 2, 2), 1, [(-1, 0), (0, -1)], 1, 1),
]


@pytest.mark.parametrize("config", CONV_CONFIGS, ids=[f"{len(c[0]) - 2}d-{i}" for i, c in enumerate(CONV_CONFIGS)])
def test_conv_matches_torch(config, to_backend):
    x_shape, w_shape, stride, pairs, dilation, groups = config
    x = RNG.standard_normal(x_shape)
    w = RNG.standard_normal(w_shape)
    out = dx.conv(to_backend(x), to_backend(w), stride=stride, padding=pairs, dilation=dilation, groups=groups)
    expected = _torch_conv(x, w, stride, pairs, dilation, groups)
    np.testing.assert_allclose(_as_numpy(out), expected, rtol=1e-12, atol=1e-12)


def test_conv_int_padding_matches_torch(to_backend):
    torch = _torch()
    x = RNG.standard_normal((2, 3, 6, 5))
    w = RNG.standard_normal((4, 3, 3, 3))
    out = dx.conv(to_backend(x), to_backend(w), padding=(2, 1), stride=2)
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=(2, 1), stride=2).numpy()
    np.testing.assert_allclose(_as_numpy(out), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv_same_matches_jax(stride, to_backend):
    lax = pytest.importorskip("jax.lax")
    x = RNG.standard_normal((2, 2, 7, 8))
    w = RNG.standard_normal((3, 2, 4, 3))
    out = dx.conv(to_backend(x), to_backend(w), stride=stride, padding="same", dilation=(1, 2))
    expected = lax.conv_general_dilated(x, w, (stride, stride), "SAME", rhs_dilation=(1, 2))
    assert out.shape == (2, 3, -(-7 // stride), -(-8 // stride))
    np.testing.assert_allclose(_as_numpy(out), np.asarray(expected), rtol=1e-12, atol=1e-12)


def test_conv_unbatched_input(to_backend):
    x = RNG.standard_normal((3, 6, 5))
    w = RNG.standard_normal((2, 3, 2, 2))
    unbatched = dx.conv(to_backend(x), to_backend(w), padding=1)
    batched = dx.conv(to_backend(x[None]), to_backend(w), padding=1)
    assert unbatched.shape == (2, 7, 6)
    np.testing.assert_allclose(_as_numpy(unbatched), _as_numpy(batched)[0])


def test_conv_keeps_float32(to_backend):
    x = dx.astype(to_backend(RNG.standard_normal((1, 2, 5, 5))), np.float32)
    w = dx.astype(to_backend(RNG.standard_normal((3, 2, 3, 3))), np.float32)
    assert dx.conv(x, w).dtype == np.float32
    assert dx.max_pool(x, 2).dtype == np.float32
    assert dx.avg_pool(x, 2, padding=1, count_include_pad=False).dtype == np.float32


# (x shape, kernel shape, stride, padding, output_padding, dilation, groups)
TRANSPOSE_CONFIGS = [
    ((2, 3, 5), (3, 2, 3), 1, 0, 0, 1, 1),
    ((2, 4, 4), (4, 3, 4), 3, 2, 1, 2, 2),
    ((1, 2, 4, 3), (2, 3, 3, 2), (2, 3), (1, 0), (1, 2), (2, 1), 1),
    ((2, 6, 4, 5), (6, 2, 3, 2), (2, 3), (1, 0), (1, 2), (2, 1), 3),
    ((1, 3, 3, 3), (3, 1, 3, 3), 2, 1, 0, 1, 3),
    ((1, 2, 3, 2, 3), (2, 2, 2, 3, 2), (2, 1, 2), (0, 1, 1), (1, 0, 0), 1, 1),
]


@pytest.mark.parametrize(
    "config", TRANSPOSE_CONFIGS, ids=[f"{len(c[0]) - 2}d-{i}" for i, c in enumerate(TRANSPOSE_CONFIGS)]
)
def test_conv_transpose_matches_torch(config, to_backend):
    torch = _torch()
    x_shape, w_shape, stride, padding, output_padding, dilation, groups = config
    x = RNG.standard_normal(x_shape)
    w = RNG.standard_normal(w_shape)
    out = dx.conv_transpose(
        to_backend(x),
        to_backend(w),
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
    )
    functional = torch.nn.functional
    transpose = {1: functional.conv_transpose1d, 2: functional.conv_transpose2d, 3: functional.conv_transpose3d}
    expected = transpose[len(x_shape) - 2](
        torch.tensor(x),
        torch.tensor(w),
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
    ).numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(_as_numpy(out), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["SAME", "VALID", [(2, 0), (1, 1)]])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_conv_transpose_is_conv_input_gradient(padding, stride, to_backend):
    jax = pytest.importorskip("jax")
    x = RNG.standard_normal((2, 4, 3, 4))
    w = RNG.standard_normal((4, 3, 3, 2))
    out = dx.conv_transpose(to_backend(x), to_backend(w), stride=stride, padding=padding, dilation=(1, 2))

    def forward(y):
        return jax.lax.conv_general_dilated(y, w, (stride, stride), padding, rhs_dilation=(1, 2))

    forward_input = np.zeros((2, 3) + out.shape[2:])
    forward_out, pullback = jax.vjp(forward, forward_input)
    assert forward_out.shape == x.shape
    np.testing.assert_allclose(_as_numpy(out), np.asarray(pullback(x)[0]), rtol=1e-12, atol=1e-12)


def test_conv_transpose_is_difflux_conv_pullback(to_backend):
    x = RNG.standard_normal((1, 4, 3, 3))
    w = RNG.standard_normal((4, 2, 3, 3))
    y = to_backend(np.zeros((1, 4, 6, 6)))
    _, pullback = dx.pullback(lambda y: dx.conv(y, to_backend(w), stride=2, padding="SAME", groups=2), y)
    (expected,) = pullback(to_backend(x))
    out = dx.conv_transpose(to_backend(x), to_backend(w), stride=2, padding="SAME", groups=2)
    np.testing.assert_allclose(_as_numpy(out), _as_numpy(expected), rtol=1e-12, atol=1e-12)


# (x shape, window, stride, padding, dilation)
POOL_CONFIGS = [
    ((2, 3, 9), 3, None, 0, 1),
    ((2, 3, 10), 3, 2, 1, 2),
    ((2, 2, 7, 6), (3, 2), (2, 1), (1, 1), (1, 2)),
    ((1, 3, 8, 8), 2, None, 0, 1),
    ((1, 2, 5, 6, 4), (2, 3, 2), (1, 2, 2), (1, 1, 0), 1),
]


@pytest.mark.parametrize("config", POOL_CONFIGS, ids=[f"{len(c[0]) - 2}d-{i}" for i, c in enumerate(POOL_CONFIGS)])
def test_max_pool_matches_torch(config, to_backend):
    torch = _torch()
    x_shape, window, stride, padding, dilation = config
    x = RNG.standard_normal(x_shape)
    out = dx.max_pool(to_backend(x), window, stride=stride, padding=padding, dilation=dilation)
    functional = torch.nn.functional
    pool = {1: functional.max_pool1d, 2: functional.max_pool2d, 3: functional.max_pool3d}[len(x_shape) - 2]
    expected = pool(torch.tensor(x), window, stride=stride, padding=padding, dilation=dilation).numpy()
    assert out.shape == expected.shape
    np.testing.assert_array_equal(_as_numpy(out), expected)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(
    "config", [c for c in POOL_CONFIGS if c[4] == 1], ids=lambda c: f"{len(c[0]) - 2}d-{c[1]}-{c[3]}"
)
def test_avg_pool_matches_torch(config, count_include_pad, to_backend):
    torch = _torch()
    x_shape, window, stride, padding, _ = config
    x = RNG.standard_normal(x_shape)
    out = dx.avg_pool(to_backend(x), window, stride=stride, padding=padding, count_include_pad=count_include_pad)
    functional = torch.nn.functional
    pool = {1: functional.avg_pool1d, 2: functional.avg_pool2d, 3: functional.avg_pool3d}[len(x_shape) - 2]
    expected = pool(
        torch.tensor(x), window, stride=stride, padding=padding, count_include_pad=count_include_pad
    ).numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(_as_numpy(out), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["SAME", [(2, 1), (0, 1)]])
def test_pools_match_jax_reduce_window(padding, to_backend):
    jax = pytest.importorskip("jax")
    x = RNG.standard_normal((2, 3, 7, 5))
    window, stride, dilation = (3, 2), (2, 2), (2, 1)
    max_out = dx.max_pool(to_backend(x), window, stride=stride, padding=padding, dilation=dilation)
    sum_out = dx.avg_pool(to_backend(x), window, stride=stride, padding=padding, dilation=dilation)

    if isinstance(padding, str):
        pairs = jax.lax.padtype_to_pads(x.shape[2:], (5, 2), stride, padding)
    else:
        pairs = padding
    full_pairs = [(0, 0), (0, 0)] + list(pairs)
    max_expected = jax.lax.reduce_window(
        x, -np.inf, jax.lax.max, (1, 1) + window, (1, 1) + stride, full_pairs, window_dilation=(1, 1) + dilation
    )
    sum_expected = jax.lax.reduce_window(
        x, 0.0, jax.lax.add, (1, 1) + window, (1, 1) + stride, full_pairs, window_dilation=(1, 1) + dilation
    )
    np.testing.assert_array_equal(_as_numpy(max_out), np.asarray(max_expected))
    np.testing.assert_allclose(_as_numpy(sum_out), np.asarray(sum_expected) / 6, rtol=1e-12, atol=1e-12)


def test_max_pool_ties_share_gradient(to_backend):
    x = to_backend(np.array([[[1.0, 3.0, 3.0, 0.0, 2.0, 2.0, 2.0, 2.0]]]))
    grad = dx.grad(lambda x: dx.sum(dx.max_pool(x, 4)))(x)
    np.testing.assert_allclose(_as_numpy(grad), [[[0.0, 0.5, 0.5, 0.0, 0.25, 0.25, 0.25, 0.25]]])


def test_max_pool_tangent_shares_ties(to_backend):
    x = to_backend(np.array([[[5.0, 5.0, 1.0]]]))
    t = to_backend(np.array([[[1.0, 3.0, 7.0]]]))
    _, tangent = dx.jvp(lambda x: dx.max_pool(x, 3), (x,), (t,))
    np.testing.assert_allclose(_as_numpy(tangent), [[[2.0]]])


def test_max_pool_gradient_skips_padding(to_backend):
    x = to_backend(-np.arange(1.0, 5.0).reshape(1, 1, 4))
    grad = dx.grad(lambda x: dx.sum(dx.max_pool(x, 3, stride=1, padding=1)))(x)
    # Windows over [-inf, -1, -2, -3, -4, -inf] pick -1, -1, -2 and -3.
    np.testing.assert_allclose(_as_numpy(grad), [[[2.0, 1.0, 1.0, 0.0]]])


def test_max_pool_integer_input(backend):
    x = dx.asarray(np.array([[[-7, -3, -9, -1, -5]]]), backend=backend)
    out = dx.max_pool(x, 2, padding=[(1, 0)])
    np.testing.assert_array_equal(_as_numpy(out), [[[-7, -3, -1]]])


def test_pool_on_leading_axes(to_backend):
    x = RNG.standard_normal((3, 6, 4))
    out = dx.max_pool(to_backend(x), (2, 2))
    assert out.shape == (3, 3, 2)
    np.testing.assert_array_equal(_as_numpy(out), x.reshape(3, 3, 2, 2, 2).max(axis=(2, 4)))


def test_extract_and_fold_are_adjoint(to_backend):
    x = RNG.standard_normal((2, 3, 7, 6))
    options = {"stride": (2, 1), "dilation": (1, 2), "padding": [(2, -1), (0, 3)]}
    patches = dx.extract_patches(to_backend(x), (3, 2), **options)
    p = RNG.standard_normal(patches.shape)
    folded = dx.fold_patches(to_backend(p), (7, 6), **options)
    assert folded.shape == x.shape
    lhs = np.sum(_as_numpy(patches) * p)
    rhs = np.sum(x * _as_numpy(folded))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_extract_patches_layout(to_backend):
    x = np.arange(20.0).reshape(1, 1, 4, 5)
    patches = dx.extract_patches(to_backend(x), (2, 3), stride=(2, 1), dilation=(1, 2), padding=[(0, 0), (1, 0)])
    assert patches.shape == (1, 1, 2, 2, 2, 3)
    padded = np.pad(x, ((0, 0), (0, 0), (0, 0), (1, 0)))
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(
                _as_numpy(patches)[0, 0, i, j], padded[0, 0, 2 * i : 2 * i + 2, j : j + 5 : 2]
            )


def test_conv_gradient_under_jax_jit():
    jax = pytest.importorskip("jax")
    x = RNG.standard_normal((2, 2, 6, 6))
    w = RNG.standard_normal((3, 2, 3, 3))

    def loss(x, w):
        h = dx.conv(x, w, stride=2, padding="SAME")
        return dx.sum(dx.square(dx.max_pool(h, 2, stride=1))) + dx.sum(dx.avg_pool(h, 2, count_include_pad=False))

    eager = dx.grad(loss, argnums=(0, 1))(x, w)
    jitted = jax.jit(dx.grad(loss, argnums=(0, 1)))(jax.numpy.asarray(x), jax.numpy.asarray(w))
    for expected, actual in zip(eager, jitted):
        np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-12, atol=1e-12)


def test_docstring_examples():
    for module in (_ops_conv, _ops_patches, _ops_pool):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__


# -- errors ---------------------------------------------------------------------


def test_conv_rejects_channel_mismatch():
    x = np.zeros((2, 3, 8, 8))
    w = np.zeros((8, 2, 3, 3))
    with pytest.raises(ValueError, match=r"C_in=3 channels.*\(8, 2, 3, 3\).*groups=2 expects C_in = 2 \* 2 = 4"):
        dx.conv(x, w, groups=2)


def test_conv_rejects_output_channels_not_divisible():
    with pytest.raises(ValueError, match="C_out=5 output channels, which groups=2 does not divide"):
        dx.conv(np.zeros((1, 4, 5)), np.zeros((5, 2, 3)), groups=2)


def test_conv_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"2 spatial axes, so x must have shape .* got shape \(3, 8\)"):
        dx.conv(np.zeros((3, 8)), np.zeros((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="at least one spatial axis"):
        dx.conv(np.zeros((2, 3)), np.zeros((4, 3)))


def test_conv_rejects_input_smaller_than_kernel():
    with pytest.raises(ValueError, match=r"spatial axis 1 the padded input has size 3.*dilated window extent 5"):
        dx.conv(np.zeros((1, 1, 8, 3)), np.zeros((1, 1, 3, 3)), dilation=2)


def test_conv_rejects_bad_arguments():
    x, w = np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match="padding='FULL' is not a padding mode"):
        dx.conv(x, w, padding="FULL")
    with pytest.raises(ValueError, match=r"stride=\(1, 2, 1\) has 3 entries, but the operation has 2 spatial axes"):
        dx.conv(x, w, stride=(1, 2, 1))
    with pytest.raises(ValueError, match="every entry of dilation must be at least 1"):
        dx.conv(x, w, dilation=0)
    with pytest.raises(ValueError, match="padding entry"):
        dx.conv(x, w, padding=[(1, 1, 1), 0])
    with pytest.raises(ValueError, match="groups must be a positive int"):
        dx.conv(x, w, groups=0)


def test_conv_transpose_rejects_bad_arguments():
    x = np.zeros((1, 4, 5))
    with pytest.raises(ValueError, match=r"C_in=4 channels, but the kernel of shape \(3, 2, 3\) expects 3"):
        dx.conv_transpose(x, np.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match="output_padding=2 along spatial axis 0 must be smaller than stride=2"):
        dx.conv_transpose(x, np.zeros((4, 2, 3)), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding must be 0"):
        dx.conv_transpose(x, np.zeros((4, 2, 3)), stride=2, padding="SAME", output_padding=1)
    with pytest.raises(ValueError, match="leaves an output of size"):
        dx.conv_transpose(np.zeros((1, 4, 1)), np.zeros((4, 2, 3)), padding=2)


def test_pool_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"x of shape \(4,\) has no spatial axes for window=2"):
        dx.max_pool(np.zeros(4), 2)
    with pytest.raises(ValueError, match="every entry of window must be at least 1"):
        dx.avg_pool(np.zeros((1, 1, 4)), 0)
    with pytest.raises(ValueError, match="padded input has size 3"):
        dx.max_pool(np.zeros((1, 1, 3)), 4)


def test_fold_patches_rejects_mismatched_positions():
    with pytest.raises(ValueError, match=r"output positions \(3,\), but .* give \(4,\)"):
        dx.fold_patches(np.zeros((1, 1, 3, 2)), (5,))
