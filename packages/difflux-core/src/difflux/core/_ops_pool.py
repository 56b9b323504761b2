"""N-dimensional max and average pooling.

Both reduce the window axes of :func:`extract_patches`: average pooling with
``dx.sum``, max pooling with ``dx.max``, which sends the gradient to the
window's maximum and splits it equally among ties, as ``dx.maximum`` does.
Both slide over the trailing ``len(window)`` axes and keep every leading
axis, so ``(N, C, *spatial)`` and ``(C, *spatial)`` both work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._backend import backend_of_value
from ._core import value_of
from ._dispatch import shape_of
from ._ops_creation import asarray
from ._ops_elementwise import divide
from ._ops_patches import (
    effective_window,
    extract_patches_p,
    normalize_ints,
    normalize_padding,
    output_spatial,
)
from ._ops_reduction import max as array_max
from ._ops_reduction import sum as array_sum


def _pool_geometry(
    x: Any, window: Any, stride: Any, padding: Any, dilation: Any, op: str
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], Any, tuple[int, ...]]:
    shape = shape_of(x)
    nd = len(shape) - 2 if isinstance(window, int | np.integer) else len(tuple(window))
    if nd < 1 or nd > len(shape):
        raise ValueError(
            f"{op}: x of shape {shape} has no spatial axes for window={window!r}. The window slides "
            "over the trailing axes: pass one window size per spatial axis, or x of shape "
            "(N, C, *spatial) with an int window"
        )
    window_t = normalize_ints(window, nd, "window", op)
    stride_t = window_t if stride is None else normalize_ints(stride, nd, "stride", op)
    dilation_t = normalize_ints(dilation, nd, "dilation", op)
    spatial = shape[-nd:]
    extent = effective_window(window_t, dilation_t)
    pairs = normalize_padding(padding, spatial, extent, stride_t, op)
    out_spatial = output_spatial(spatial, extent, stride_t, pairs, op)
    return window_t, stride_t, dilation_t, pairs, out_spatial


def _lowest_value(x: Any) -> Any:
    """Return the padding value of max pooling: the lowest value of ``x``'s dtype."""
    dtype: np.dtype[Any] = np.dtype(getattr(value_of(x), "dtype", np.float64))
    if np.issubdtype(dtype, np.inexact):
        return -np.inf
    if dtype == np.bool_:
        return False
    return np.iinfo(dtype).min


def max_pool(
    x: Any,
    /,
    window: int | Sequence[int],
    *,
    stride: int | Sequence[int] | None = None,
    padding: str | int | Sequence[Any] = "VALID",
    dilation: int | Sequence[int] = 1,
) -> Any:
    """N-dimensional max pooling: the maximum of each (strided, dilated) window.

    ``x`` has shape ``(*lead, *spatial)``; the window slides over the trailing
    ``len(window)`` axes (for an int ``window``, every axis after the first
    two, the layout ``(N, C, *spatial)``). The result has shape
    ``(*lead, *out_spatial)`` with ``out_spatial`` as in :func:`conv`.
    Padding reads ``-inf`` (the minimum integer for integer ``x``), so it never
    wins unless a window covers no input at all. The gradient goes to each
    window's maximum, and ties share it equally.

    Args:
        x: the input.
        window: the window size, an int for every spatial axis or one per axis.
        stride: the step between windows; ``None`` means ``window``
            (non-overlapping windows).
        padding: ``"VALID"``, ``"SAME"``, an int, or per spatial axis an int
            or ``(low, high)`` pair (see :func:`conv`).
        dilation: the spacing between window elements.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> x = np.array([[[1.0, 3.0, 2.0, 0.0, 5.0]]])
        >>> dx.max_pool(x, 2, padding=[(0, 1)])
        array([[[3., 2., 5.]]])
    """
    window_t, stride_t, dilation_t, pairs, _ = _pool_geometry(x, window, stride, padding, dilation, "max_pool")
    patches = extract_patches_p(
        x, window=window_t, stride=stride_t, dilation=dilation_t, padding=pairs, pad_value=_lowest_value(x)
    )
    ndim = len(shape_of(patches))
    return array_max(patches, axis=tuple(range(ndim - len(window_t), ndim)))


def avg_pool(
    x: Any,
    /,
    window: int | Sequence[int],
    *,
    stride: int | Sequence[int] | None = None,
    padding: str | int | Sequence[Any] = "VALID",
    dilation: int | Sequence[int] = 1,
    count_include_pad: bool = True,
) -> Any:
    """N-dimensional average pooling: the mean of each (strided, dilated) window.

    Shapes and arguments are those of :func:`max_pool`. Padding reads zeros.
    With ``count_include_pad=True`` (the default, as in PyTorch) every window
    sum is divided by the window size. With ``False`` it is divided by the
    number of input elements the window covers, so windows at the border
    average only real input.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> x = np.array([[[1.0, 3.0, 2.0]]])
        >>> dx.avg_pool(x, 2, stride=1, padding=1, count_include_pad=False)
        array([[[1. , 2. , 2.5, 2. ]]])
    """
    window_t, stride_t, dilation_t, pairs, out_spatial = _pool_geometry(
        x, window, stride, padding, dilation, "avg_pool"
    )
    patches = extract_patches_p(x, window=window_t, stride=stride_t, dilation=dilation_t, padding=pairs, pad_value=0)
    ndim = len(shape_of(patches))
    total = array_sum(patches, axis=tuple(range(ndim - len(window_t), ndim)))
    if count_include_pad:
        return divide(total, float(np.prod(window_t)))

    # The counts depend on shapes only, so they are computed once in NumPy and
    # moved to x's backend as a constant.
    spatial = shape_of(x)[-len(window_t) :]
    covered = extract_patches_p(
        np.ones(spatial), window=window_t, stride=stride_t, dilation=dilation_t, padding=pairs, pad_value=0
    )
    counts = np.sum(covered, axis=tuple(range(len(out_spatial), 2 * len(out_spatial))))
    # A window wholly in the padding covers no input, so its sum and its mean are 0.
    counts = np.maximum(counts, 1.0)
    backend = backend_of_value(value_of(x)) or "numpy"
    dtype = total.dtype if np.issubdtype(total.dtype, np.inexact) else None
    return divide(total, asarray(counts, dtype=dtype, backend=backend))
