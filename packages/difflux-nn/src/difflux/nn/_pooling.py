"""Pooling layers and ``Flatten``.

All take channels-first inputs ``(N, C, *spatial)``, as ``dx.max_pool`` and
``dx.avg_pool`` do, and keep the batch and channel axes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import difflux.core as dx

from ._layer import Layer, format_call, positive_ints, shape_error, static_padding

Padding = str | int | Sequence[Any]


def _spatial_axes(layer: Any, x: Any, num_spatial: int | None) -> tuple[int, ...]:
    """Return the spatial axes of ``x``: its trailing ``num_spatial`` axes, or all after (N, C)."""
    if num_spatial is None:
        if x.ndim < 3:
            raise shape_error(layer, "an input of shape (N, C, *spatial) with at least one spatial axis", x)
        count = x.ndim - 2
    else:
        count = num_spatial
    if x.ndim < count + 1:
        raise shape_error(layer, f"an input with {count} spatial axes after the channel axis", x)
    return tuple(range(x.ndim - count, x.ndim))


class MaxPool(Layer):
    """``y = max over each window of x``: max pooling over the spatial axes.

    Shapes: ``x`` is ``(N, C, *spatial)`` and ``y`` is ``(N, C, *out_spatial)``
    with ``out_spatial[i] = (spatial[i] + padding - window[i]) // stride[i] + 1``.
    An int ``window`` applies to every spatial axis; a tuple pools its length
    of trailing axes. ``stride`` defaults to the window (non-overlapping
    windows) and padding to 0; padding never wins the maximum.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> pool = nn.MaxPool((2, 2))
        >>> pool
        MaxPool((2, 2))
        >>> pool(dx.ones((1, 3, 28, 28))).shape
        (1, 3, 14, 14)
    """

    window: int | tuple[int, ...]
    stride: int | tuple[int, ...] | None
    padding: Padding

    def __init__(
        self, window: int | Sequence[int], *, stride: int | Sequence[int] | None = None, padding: Padding = 0
    ) -> None:
        self.window = positive_ints(window, "window", "MaxPool")
        self.stride = None if stride is None else positive_ints(stride, "stride", "MaxPool")
        self.padding = static_padding(padding, "MaxPool")

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        _spatial_axes(self, x, None if isinstance(self.window, int) else len(self.window))
        return dx.max_pool(x, self.window, stride=self.stride, padding=self.padding)

    def __repr__(self) -> str:
        return format_call(
            "MaxPool",
            [repr(self.window)],
            {"stride": self.stride, "padding": self.padding},
            {"stride": None, "padding": 0},
        )


class MeanPool(Layer):
    """``y = mean over each window of x``: average pooling over the spatial axes.

    Shapes and arguments are those of :class:`MaxPool`. Padding reads zeros;
    with ``count_include_pad=False`` a window at the border averages only the
    input it covers (PyTorch's option of that name).

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> nn.MeanPool(2)(dx.ones((1, 3, 8))).shape
        (1, 3, 4)
    """

    window: int | tuple[int, ...]
    stride: int | tuple[int, ...] | None
    padding: Padding
    count_include_pad: bool

    def __init__(
        self,
        window: int | Sequence[int],
        *,
        stride: int | Sequence[int] | None = None,
        padding: Padding = 0,
        count_include_pad: bool = True,
    ) -> None:
        self.window = positive_ints(window, "window", "MeanPool")
        self.stride = None if stride is None else positive_ints(stride, "stride", "MeanPool")
        self.padding = static_padding(padding, "MeanPool")
        self.count_include_pad = count_include_pad

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        _spatial_axes(self, x, None if isinstance(self.window, int) else len(self.window))
        return dx.avg_pool(
            x, self.window, stride=self.stride, padding=self.padding, count_include_pad=self.count_include_pad
        )

    def __repr__(self) -> str:
        keywords = {"stride": self.stride, "padding": self.padding, "count_include_pad": self.count_include_pad}
        defaults = {"stride": None, "padding": 0, "count_include_pad": True}
        return format_call("MeanPool", [repr(self.window)], keywords, defaults)


# --------------------------------------------------------------------------
# Adaptive and global pooling
# --------------------------------------------------------------------------


def _adaptive_reduce(x: Any, output_size: tuple[int, ...], reduce: Callable[..., Any]) -> Any:
    """Pool the trailing ``len(output_size)`` axes to ``output_size`` (PyTorch's adaptive windows).

    Output position ``i`` of an axis of length ``n`` pooled to ``m`` covers
    ``[floor(i * n / m), ceil((i + 1) * n / m))``. Windows are products of
    such intervals, so the max and the mean of a window are the max and mean
    along one axis after another.
    """
    num_spatial = len(output_size)
    for offset, size in enumerate(output_size):
        axis = x.ndim - num_spatial + offset
        length = x.shape[axis]
        if length % size == 0:
            # Equal windows: split the axis into (size, length // size) and reduce the inner part.
            shape = x.shape[:axis] + (size, length // size) + x.shape[axis + 1 :]
            x = reduce(dx.reshape(x, shape), axis=axis + 1)
            continue
        pieces = []
        for i in range(size):
            start, stop = (i * length) // size, -((-(i + 1) * length) // size)
            window = x[(slice(None),) * axis + (slice(start, stop),)]
            pieces.append(reduce(window, axis=axis, keepdims=True))
        x = dx.concat(pieces, axis=axis)
    return x


class _AdaptivePool(Layer):
    output_size: int | tuple[int, ...]

    def __init__(self, output_size: int | Sequence[int]) -> None:
        self.output_size = positive_ints(output_size, "output_size", type(self).__name__)

    def _pool(self, x: Any, reduce: Callable[..., Any]) -> Any:
        if isinstance(self.output_size, int):
            axes = _spatial_axes(self, x, None)
            output_size = (self.output_size,) * len(axes)
        else:
            _spatial_axes(self, x, len(self.output_size))
            output_size = self.output_size
        spatial = x.shape[x.ndim - len(output_size) :]
        small = [f"{n} < {m}" for n, m in zip(spatial, output_size) if n < m]
        if small:
            raise shape_error(self, f"spatial sizes of at least {output_size} (found {', '.join(small)})", x)
        return _adaptive_reduce(x, output_size, reduce)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.output_size!r})"


class AdaptiveMaxPool(_AdaptivePool):
    """``y = max over adaptive windows of x``: max pooling to a fixed output size.

    Shapes: ``x`` is ``(N, C, *spatial)`` and ``y`` is ``(N, C, *output_size)``,
    whatever the input size. The windows are PyTorch's: output position ``i``
    of an axis of length ``n`` covers ``[floor(i * n / m), ceil((i + 1) * n / m))``
    for output size ``m``. An int ``output_size`` applies to every spatial axis.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> nn.AdaptiveMaxPool((3, 3))(dx.ones((2, 4, 10, 7))).shape
        (2, 4, 3, 3)
    """

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        return self._pool(x, dx.max)


class AdaptiveMeanPool(_AdaptivePool):
    """``y = mean over adaptive windows of x``: average pooling to a fixed output size.

    Shapes and windows are those of :class:`AdaptiveMaxPool`.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> nn.AdaptiveMeanPool(1)(dx.ones((2, 4, 10, 7))).shape
        (2, 4, 1, 1)
    """

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        return self._pool(x, dx.mean)


class GlobalMaxPool(Layer):
    """``y[n, c] = max of x[n, c]`` over all spatial axes, which stay as axes of size 1.

    Shapes: ``x`` is ``(N, C, *spatial)`` and ``y`` is ``(N, C, 1, ..., 1)``,
    as in Flux; follow it with ``Flatten()`` for ``(N, C)``.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> nn.GlobalMaxPool()(dx.ones((2, 4, 5, 5))).shape
        (2, 4, 1, 1)
    """

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        return dx.max(x, axis=_spatial_axes(self, x, None), keepdims=True)

    def __repr__(self) -> str:
        return "GlobalMaxPool()"


class GlobalMeanPool(Layer):
    """``y[n, c] = mean of x[n, c]`` over all spatial axes, which stay as axes of size 1.

    Shapes are those of :class:`GlobalMaxPool`.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> nn.GlobalMeanPool()(dx.ones((2, 4, 5))).shape
        (2, 4, 1)
    """

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        return dx.mean(x, axis=_spatial_axes(self, x, None), keepdims=True)

    def __repr__(self) -> str:
        return "GlobalMeanPool()"


class Flatten(Layer):
    """``y = reshape(x, (*x.shape[:start_axis], -1))``: merge the trailing axes into one.

    Shapes: ``(N, C, H, W)`` becomes ``(N, C * H * W)`` with the default
    ``start_axis=1``.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> nn.Flatten()(dx.ones((2, 3, 4, 5))).shape
        (2, 60)
    """

    start_axis: int = 1

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        if not -x.ndim <= self.start_axis < x.ndim:
            raise shape_error(self, f"an input with an axis {self.start_axis} to flatten from", x)
        start = self.start_axis % x.ndim
        return dx.reshape(x, tuple(x.shape[:start]) + (math.prod(x.shape[start:]),))

    def __repr__(self) -> str:
        return "Flatten()" if self.start_axis == 1 else f"Flatten(start_axis={self.start_axis})"
