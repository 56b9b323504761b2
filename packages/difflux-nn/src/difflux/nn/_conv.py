"""Convolution layers: ``Conv`` and ``ConvTranspose`` in 1, 2 or 3 dimensions.

Both are channels first, as ``dx.conv``: inputs ``(N, C, *spatial)`` or
``(C, *spatial)``. The number of spatial axes is the length of the
``kernel_size`` tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import difflux.core as dx

from ._initialisers import glorot_uniform, zeros
from ._layer import Layer, as_positive_int, as_tuple, identity, name_of, shape_error, static_padding

Initialiser = Callable[..., Any]
Padding = str | int | Sequence[Any]


def _kernel_tuple(kernel_size: Any, owner: str) -> tuple[int, ...]:
    if not isinstance(kernel_size, Sequence) or isinstance(kernel_size, str) or not kernel_size:
        raise TypeError(
            f"{owner}: kernel_size must be a tuple with one size per spatial axis, got {kernel_size!r}; "
            "write (3,) for a 1-D kernel or (3, 3) for a 2-D one"
        )
    return as_tuple(kernel_size, len(kernel_size), "kernel_size", owner)


def _broadcast_bias(bias: Any, num_spatial: int) -> Any:
    return dx.reshape(bias, (bias.shape[0],) + (1,) * num_spatial)


def _check_input(layer: Any, x: Any, channels: int, num_spatial: int) -> None:
    batched_or_not = (num_spatial + 1, num_spatial + 2)
    if x.ndim not in batched_or_not or x.shape[-num_spatial - 1] != channels:
        expected = (
            f"an input of shape (N, {channels}, *spatial) or ({channels}, *spatial) with {num_spatial} spatial axes"
        )
        raise shape_error(layer, expected, x)


def _format(layer: Any, kind: str, in_channels: int, out_channels: int, extras: dict[str, Any]) -> str:
    parts = [f"{tuple(layer.kernel_size)}", f"{in_channels} => {out_channels}"]
    if layer.activation is not identity:
        parts.append(name_of(layer.activation))
    ones = (1,) * len(layer.kernel_size)
    defaults = {"stride": ones, "padding": 0, "dilation": ones, "groups": 1, "output_padding": (0,) * len(ones)}
    for name, value in extras.items():
        # A tuple of equal entries prints as one int, as it may be passed.
        printed = value
        if isinstance(value, tuple) and len(set(value)) == 1 and value == (value[0],) * len(ones):
            printed = value[0]
        default = defaults.get(name)
        if value == default or printed == default:
            continue
        parts.append(f"{name}={printed!r}")
    if layer.bias is None:
        parts.append("bias=False")
    return f"{kind}({', '.join(parts)})"


class Conv(Layer):
    """``y = activation(conv(x, weight) + bias)``: an N-dimensional convolution layer.

    Shapes: ``x`` is ``(N, in_channels, *spatial)`` (or without the batch
    axis) and ``y`` is ``(N, out_channels, *out_spatial)``, with
    ``out_spatial`` as in ``dx.conv``. ``weight`` is
    ``(out_channels, in_channels // groups, *kernel_size)`` (PyTorch's
    layout) and ``bias`` is ``(out_channels,)``. The weight is initialised
    with ``glorot_uniform`` (fans as in PyTorch), the bias with zeros.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        kernel_size: a tuple, one size per spatial axis: ``(5,)`` is 1-D,
            ``(3, 3)`` is 2-D, ``(3, 3, 3)`` is 3-D.
        activation: applied element-wise to the output.
        key: the random key for the initialisation.
        stride: an int or one per spatial axis.
        padding: ``0`` (default), an int, ``"SAME"``, ``"VALID"``, or per
            spatial axis an int or a ``(low, high)`` pair; zeros are padded.
        dilation: the spacing between kernel elements.
        groups: split the channels into independent groups; both channel
            counts must be divisible by it.
        depthwise: shorthand for ``groups=in_channels`` (``out_channels`` a
            multiple of ``in_channels``).
        bias: whether to add a bias.
        init: the initialiser of the weight.
        bias_init: the initialiser of the bias.
        dtype: the parameters' dtype.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> conv = nn.Conv(1, 8, (3, 3), nn.relu, key=dx.random.key(0, backend="numpy"), padding="SAME")
        >>> conv
        Conv((3, 3), 1 => 8, relu, padding='SAME')
        >>> conv(dx.ones((2, 1, 28, 28))).shape
        (2, 8, 28, 28)
    """

    weight: Any
    bias: Any
    activation: Callable[[Any], Any]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Padding
    dilation: tuple[int, ...]
    groups: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int],
        activation: Callable[[Any], Any] = identity,
        *,
        key: Any,
        stride: int | Sequence[int] = 1,
        padding: Padding = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        depthwise: bool = False,
        bias: bool = True,
        init: Initialiser = glorot_uniform,
        bias_init: Initialiser = zeros,
        dtype: Any = None,
    ) -> None:
        in_channels = as_positive_int(in_channels, "in_channels", "Conv")
        out_channels = as_positive_int(out_channels, "out_channels", "Conv")
        groups = as_positive_int(groups, "groups", "Conv")
        kernel = _kernel_tuple(kernel_size, "Conv")
        if depthwise:
            if groups not in (1, in_channels):
                raise ValueError(f"Conv: depthwise=True sets groups={in_channels}; do not pass groups={groups} too")
            groups = in_channels
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv: groups={groups} must divide both in_channels={in_channels} and out_channels={out_channels}"
            )
        weight_key, bias_key = dx.random.split(key)
        self.weight = init(weight_key, (out_channels, in_channels // groups, *kernel), dtype)
        self.bias = bias_init(bias_key, (out_channels,), dtype) if bias else None
        self.activation = activation
        self.kernel_size = kernel
        self.stride = as_tuple(stride, len(kernel), "stride", "Conv")
        self.padding = static_padding(padding, "Conv")
        self.dilation = as_tuple(dilation, len(kernel), "dilation", "Conv")
        self.groups = groups

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        in_channels = self.weight.shape[1] * self.groups
        _check_input(self, x, in_channels, len(self.kernel_size))
        y = dx.conv(
            x, self.weight, stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups
        )
        if self.bias is not None:
            y = y + _broadcast_bias(self.bias, len(self.kernel_size))
        return y if self.activation is identity else self.activation(y)

    def __repr__(self) -> str:
        extras = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}
        return _format(self, "Conv", self.weight.shape[1] * self.groups, self.weight.shape[0], extras)


class ConvTranspose(Layer):
    """``y = activation(conv_transpose(x, weight) + bias)``: the transpose (gradient) of ``Conv``.

    Shapes: ``x`` is ``(N, in_channels, *spatial)`` and ``y`` is
    ``(N, out_channels, *out_spatial)`` with, for integer padding
    ``(low, high)``, ``out_spatial[i] = (spatial[i] - 1) * stride[i] - low[i]
    - high[i] + dilation[i] * (kernel[i] - 1) + 1 + output_padding[i]``;
    ``padding="SAME"`` gives ``spatial[i] * stride[i]``. ``weight`` is
    ``(in_channels, out_channels // groups, *kernel_size)``, PyTorch's layout,
    initialised with ``glorot_uniform`` on that shape (fans as in PyTorch).
    Arguments are those of :class:`Conv`, plus ``output_padding``, which
    selects among the output sizes that a strided ``Conv`` maps to the same
    input size.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> up = nn.ConvTranspose(8, 4, (2, 2), key=dx.random.key(0, backend="numpy"), stride=2)
        >>> up
        ConvTranspose((2, 2), 8 => 4, stride=2)
        >>> up(dx.ones((1, 8, 7, 7))).shape
        (1, 4, 14, 14)
    """

    weight: Any
    bias: Any
    activation: Callable[[Any], Any]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Padding
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int],
        activation: Callable[[Any], Any] = identity,
        *,
        key: Any,
        stride: int | Sequence[int] = 1,
        padding: Padding = 0,
        output_padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        init: Initialiser = glorot_uniform,
        bias_init: Initialiser = zeros,
        dtype: Any = None,
    ) -> None:
        in_channels = as_positive_int(in_channels, "in_channels", "ConvTranspose")
        out_channels = as_positive_int(out_channels, "out_channels", "ConvTranspose")
        groups = as_positive_int(groups, "groups", "ConvTranspose")
        kernel = _kernel_tuple(kernel_size, "ConvTranspose")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"ConvTranspose: groups={groups} must divide both in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        weight_key, bias_key = dx.random.split(key)
        self.weight = init(weight_key, (in_channels, out_channels // groups, *kernel), dtype)
        self.bias = bias_init(bias_key, (out_channels,), dtype) if bias else None
        self.activation = activation
        self.kernel_size = kernel
        self.stride = as_tuple(stride, len(kernel), "stride", "ConvTranspose")
        self.padding = static_padding(padding, "ConvTranspose")
        self.output_padding = as_tuple(output_padding, len(kernel), "output_padding", "ConvTranspose", minimum=0)
        self.dilation = as_tuple(dilation, len(kernel), "dilation", "ConvTranspose")
        self.groups = groups

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        _check_input(self, x, self.weight.shape[0], len(self.kernel_size))
        y = dx.conv_transpose(
            x,
            self.weight,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
            groups=self.groups,
        )
        if self.bias is not None:
            y = y + _broadcast_bias(self.bias, len(self.kernel_size))
        return y if self.activation is identity else self.activation(y)

    def __repr__(self) -> str:
        extras = {
            "stride": self.stride,
            "padding": self.padding,
            "output_padding": self.output_padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }
        return _format(self, "ConvTranspose", self.weight.shape[0], self.weight.shape[1] * self.groups, extras)
