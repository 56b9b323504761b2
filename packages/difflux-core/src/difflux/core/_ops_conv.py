"""N-dimensional convolution and transposed convolution, channels first.

Both are compositions of differentiable operations, not primitives of their
own. ``conv`` extracts the input's patches (im2col) and multiplies them by
the kernel in one matrix product per group. ``conv_transpose`` multiplies
its input by the kernel and folds the resulting patches back (col2im), which
is exactly the input-gradient of ``conv``. Their derivatives of every order
therefore come from the rules of ``extract_patches``, ``fold_patches``,
``matmul`` and the shape operations.

Layout, for ``d`` = 1, 2 or 3 spatial axes (any ``d >= 1`` works):

* input ``x``: ``(N, C_in, *spatial)``, or ``(C_in, *spatial)`` without a batch
  axis;
* kernel ``w`` of ``conv``: ``(C_out, C_in // groups, *kernel_spatial)``, as in
  PyTorch (JAX's ``"OIHW"``);
* kernel ``w`` of ``conv_transpose``: ``(C_in, C_out // groups,
  *kernel_spatial)``, as in PyTorch's ``conv_transpose``, which is the layout of
  the ``conv`` kernel whose input-gradient it computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._dispatch import shape_of
from ._ops_matmul import matmul
from ._ops_patches import (
    Pairs,
    effective_window,
    extract_patches_p,
    fold_patches_p,
    normalize_ints,
    normalize_padding,
    output_spatial,
    same_padding,
)
from ._ops_shape import permute_dims, reshape


def _check_operands(x: Any, w: Any, groups: int, op: str, kernel_layout: str) -> tuple[bool, int]:
    """Validate the ranks; return whether ``x`` has a batch axis and the number of spatial axes."""
    x_shape, w_shape = shape_of(x), shape_of(w)
    nd = len(w_shape) - 2
    if nd < 1:
        raise ValueError(
            f"{op}: the kernel must have shape {kernel_layout} with at least one spatial axis, got shape {w_shape}"
        )
    if len(x_shape) not in (nd + 1, nd + 2):
        raise ValueError(
            f"{op}: a kernel of shape {w_shape} has {nd} spatial axes, so x must have shape "
            f"(N, C, *spatial) or (C, *spatial) with {nd} spatial axes, got shape {x_shape}"
        )
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    return len(x_shape) == nd + 2, nd


def _spatial_args(
    nd: int, window: Sequence[int], stride: Any, dilation: Any, op: str
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    stride_t = normalize_ints(stride, nd, "stride", op)
    dilation_t = normalize_ints(dilation, nd, "dilation", op)
    return stride_t, dilation_t, effective_window(window, dilation_t)


def conv(
    x: Any,
    w: Any,
    /,
    *,
    stride: int | Sequence[int] = 1,
    padding: str | int | Sequence[Any] = "VALID",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> Any:
    """N-dimensional convolution (cross-correlation, as in PyTorch and JAX).

    With ``x`` of shape ``(N, C_in, *spatial)`` and ``w`` of shape
    ``(C_out, C_in // groups, *kernel)``, output channel ``o`` of group
    ``g = o // (C_out // groups)`` is

        out[n, o, p] = sum over c in group g and k of
                       padded_x[n, c, p * stride + k * dilation] * w[o, c - g * C_in // groups, k]

    where ``p`` and ``k`` run over the spatial and kernel positions. The
    kernel is not flipped. The result has shape ``(N, C_out, *out_spatial)``
    with ``out_spatial[i] = (spatial[i] + low[i] + high[i] - dilation[i] *
    (kernel[i] - 1) - 1) // stride[i] + 1``. Without a batch axis (``x`` of
    shape ``(C_in, *spatial)``) the result has none either.

    Args:
        x: the input, channels first.
        w: the kernel, ``(C_out, C_in // groups, *kernel)``.
        stride: the step between output positions, an int or one per spatial axis.
        padding: ``"VALID"`` (none), ``"SAME"`` (``ceil(size / stride)``
            outputs, with an odd total's extra element at the high side, as
            XLA does), an int for both sides of every axis, or per spatial
            axis an int or a ``(low, high)`` pair. The padding is zeros, and
            negative amounts crop.
        dilation: the spacing between kernel elements (``rhs_dilation`` in JAX).
        groups: split the channels into this many independent groups;
            ``groups=C_in`` with ``C_out = m * C_in`` is a depthwise convolution.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> x = np.arange(5.0).reshape(1, 1, 5)
        >>> w = np.array([[[1.0, 0.0, -1.0]]])
        >>> dx.conv(x, w, padding=1)
        array([[[-1., -2., -2., -2.,  3.]]])
    """
    batched, nd = _check_operands(x, w, groups, "conv", "(C_out, C_in // groups, *kernel)")
    if not batched:
        x = reshape(x, (1,) + shape_of(x))
    x_shape, w_shape = shape_of(x), shape_of(w)
    n, c_in, spatial = x_shape[0], x_shape[1], x_shape[2:]
    c_out, c_group, window = w_shape[0], w_shape[1], w_shape[2:]
    if c_in != c_group * groups:
        raise ValueError(
            f"conv: x of shape {x_shape} has C_in={c_in} channels, but the kernel of shape {w_shape} "
            f"with groups={groups} expects C_in = {c_group} * {groups} = {c_group * groups}. The kernel "
            "layout is (C_out, C_in // groups, *kernel); check the channel axis of x (channels first) "
            "and the groups argument"
        )
    if c_out % groups:
        raise ValueError(
            f"conv: the kernel of shape {w_shape} has C_out={c_out} output channels, which "
            f"groups={groups} does not divide"
        )
    stride_t, dilation_t, extent = _spatial_args(nd, window, stride, dilation, "conv")
    pairs = normalize_padding(padding, spatial, extent, stride_t, "conv")
    out_spatial = output_spatial(spatial, extent, stride_t, pairs, "conv")

    # Patches (N, C_in, *out, *kernel) -> rows (groups, N * out, C_in // groups * kernel),
    # so one matrix product per group covers the whole batch.
    patches = extract_patches_p(x, window=window, stride=stride_t, dilation=dilation_t, padding=pairs, pad_value=0)
    patches = reshape(patches, (n, groups, c_group) + out_spatial + window)
    patch_axes = (1, 0) + tuple(range(3, 3 + nd)) + (2,) + tuple(range(3 + nd, 3 + 2 * nd))
    rows = reshape(permute_dims(patches, patch_axes), (groups, -1, c_group * _product(window)))
    kernel = permute_dims(reshape(w, (groups, c_out // groups, -1)), (0, 2, 1))
    product = matmul(rows, kernel)

    # (groups, N * out, C_out // groups) -> (N, C_out, *out).
    product = reshape(product, (groups, n) + out_spatial + (c_out // groups,))
    out_axes = (1, 0, 2 + nd) + tuple(range(2, 2 + nd))
    out = reshape(permute_dims(product, out_axes), (n, c_out) + out_spatial)
    return out if batched else reshape(out, shape_of(out)[1:])


def conv_transpose(
    x: Any,
    w: Any,
    /,
    *,
    stride: int | Sequence[int] = 1,
    padding: str | int | Sequence[Any] = "VALID",
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> Any:
    """N-dimensional transposed convolution (the gradient of :func:`conv` with
    respect to its input; sometimes called deconvolution).

    With ``x`` of shape ``(N, C_in, *spatial)`` and ``w`` of shape
    ``(C_in, C_out // groups, *kernel)``, ``conv_transpose(x, w, ...)`` is the
    pullback of ``y -> conv(y, w, ...)`` applied to ``x``, for ``y`` of shape
    ``(N, C_out, *out_spatial)``. Every input element scatters a copy of the
    kernel, scaled by its value, into the output at ``stride`` spacing. This
    is PyTorch's ``conv_transpose1d/2d/3d`` with the same argument names and
    kernel layout, and the gradient of ``jax.lax.conv_general_dilated``.

    ``stride``, ``padding`` and ``dilation`` describe the forward ``conv``:
    with integer padding ``(low, high)`` the output has

        out_spatial[i] = (spatial[i] - 1) * stride[i] - low[i] - high[i]
                         + dilation[i] * (kernel[i] - 1) + 1 + output_padding[i]

    elements. ``output_padding`` (smaller than ``stride``) picks among the
    forward input sizes that give the same output size. ``padding="SAME"``
    gives ``spatial[i] * stride[i]`` elements, the forward ``conv`` with
    ``"SAME"`` padding from that size; ``"VALID"`` means no padding.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> x = np.array([[[1.0, 2.0]]])
        >>> w = np.array([[[1.0, 10.0, 100.0]]])
        >>> dx.conv_transpose(x, w, stride=2)
        array([[[  1.,  10., 102.,  20., 200.]]])
    """
    batched, nd = _check_operands(x, w, groups, "conv_transpose", "(C_in, C_out // groups, *kernel)")
    if not batched:
        x = reshape(x, (1,) + shape_of(x))
    x_shape, w_shape = shape_of(x), shape_of(w)
    n, c_in, spatial = x_shape[0], x_shape[1], x_shape[2:]
    window = w_shape[2:]
    if c_in != w_shape[0]:
        raise ValueError(
            f"conv_transpose: x of shape {x_shape} has C_in={c_in} channels, but the kernel of shape "
            f"{w_shape} expects {w_shape[0]}. The kernel layout is (C_in, C_out // groups, *kernel), "
            "as in torch.nn.functional.conv_transpose2d"
        )
    if c_in % groups:
        raise ValueError(f"conv_transpose: C_in={c_in} of x with shape {x_shape} is not divisible by groups={groups}")
    c_out = w_shape[1] * groups
    stride_t, dilation_t, extent = _spatial_args(nd, window, stride, dilation, "conv_transpose")
    extra = normalize_ints(output_padding, nd, "output_padding", "conv_transpose", minimum=0)
    out_spatial, pairs = _transposed_geometry(spatial, extent, stride_t, padding, extra)

    # x (N, C_in, *in) -> rows (groups, N * in, C_in // groups); times the kernel
    # (groups, C_in // groups, C_out // groups * kernel) gives the patches.
    c_group_in = c_in // groups
    rows = reshape(x, (n, groups, c_group_in, -1))
    rows = reshape(permute_dims(rows, (1, 0, 3, 2)), (groups, -1, c_group_in))
    kernel = reshape(w, (groups, c_group_in, -1))
    product = reshape(matmul(rows, kernel), (groups, n) + spatial + (c_out // groups,) + window)

    # (groups, N, *in, C_out // groups, *kernel) -> (N, C_out, *in, *kernel), folded.
    patch_axes = (1, 0, 2 + nd) + tuple(range(2, 2 + nd)) + tuple(range(3 + nd, 3 + 2 * nd))
    patches = reshape(permute_dims(product, patch_axes), (n, c_out) + spatial + window)
    out = fold_patches_p(
        patches, spatial_shape=out_spatial, window=window, stride=stride_t, dilation=dilation_t, padding=pairs
    )
    return out if batched else reshape(out, shape_of(out)[1:])


def _transposed_geometry(
    spatial: Sequence[int],
    extent: Sequence[int],
    stride: Sequence[int],
    padding: Any,
    output_padding: Sequence[int],
) -> tuple[tuple[int, ...], Pairs]:
    """Return the output size and the forward conv's padding of a transposed conv."""
    nd = len(spatial)
    for axis, (extra, s) in enumerate(zip(output_padding, stride)):
        if extra >= s:
            raise ValueError(
                f"conv_transpose: output_padding={extra} along spatial axis {axis} must be smaller than "
                f"stride={s}; a larger output is not the gradient of a conv with this stride"
            )
    if isinstance(padding, str) and padding.upper() == "SAME":
        if any(output_padding):
            raise ValueError(
                "conv_transpose: padding='SAME' fixes the output size at spatial * stride, so "
                f"output_padding must be 0, got {tuple(output_padding)}"
            )
        out = tuple(size * s for size, s in zip(spatial, stride))
        return out, same_padding(out, extent, stride)
    pairs = normalize_padding(padding, (0,) * nd, extent, stride, "conv_transpose")
    out = tuple(
        (size - 1) * s - lo - hi + k + extra
        for size, s, (lo, hi), k, extra in zip(spatial, stride, pairs, extent, output_padding)
    )
    for axis, size in enumerate(out):
        if size < 1:
            raise ValueError(
                f"conv_transpose: padding {pairs[axis]} along spatial axis {axis} leaves an output of "
                f"size {size}; reduce the padding"
            )
    return out, pairs


def _product(values: Sequence[int]) -> int:
    total = 1
    for v in values:
        total *= v
    return total
