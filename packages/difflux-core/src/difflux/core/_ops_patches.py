"""Sliding-window patches: ``extract_patches`` (im2col) and its transpose
``fold_patches`` (col2im), the two primitives under convolution and pooling.

``extract_patches`` pads the trailing ``len(window)`` axes of an array and
gathers every (strided, dilated) window into two groups of axes: output
positions, then window offsets. ``fold_patches`` scatter-adds such patches
back onto an array of the input's shape. Each is the other's transpose, so each
one's pullback is the other and, being linear, each one's tangent is itself.
Convolution is then a matrix product of patches and kernel, and pooling a
reduction over the window axes, so every derivative of conv and pooling, of
any order, comes from these two rules and the rules of ``matmul`` and ``sum``.

On NumPy the patches are a read-only strided view of the padded input
(``as_strided``: no copy), and folding loops over the window offsets only
(9 strided additions for a 3x3 window), never over pixels. On JAX both are
built from ``lax.slice`` and ``lax.pad``, which XLA fuses.

Padding follows ``jax.lax.pad``: a negative amount crops that side.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._backend import backend_of
from ._core import Primitive
from ._dispatch import shape_of

Pairs = tuple[tuple[int, int], ...]

# --------------------------------------------------------------------------
# Argument normalisation, shared by conv and pooling
# --------------------------------------------------------------------------


def normalize_ints(value: Any, ndim: int, name: str, op: str, minimum: int = 1) -> tuple[int, ...]:
    """Expand an int or a sequence of ``ndim`` ints, each at least ``minimum``."""
    if isinstance(value, int | np.integer):
        values = (int(value),) * ndim
    else:
        values = tuple(int(v) for v in value)
        if len(values) != ndim:
            raise ValueError(
                f"{op}: {name}={value!r} has {len(values)} entries, but the operation has {ndim} "
                f"spatial axes. Pass one int or {ndim} ints"
            )
    for v in values:
        if v < minimum:
            raise ValueError(f"{op}: every entry of {name} must be at least {minimum}, got {name}={value!r}")
    return values


def effective_window(window: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    """Return the extent of each dilated window axis: ``dilation * (size - 1) + 1``."""
    return tuple(d * (k - 1) + 1 for k, d in zip(window, dilation))


def same_padding(spatial: Sequence[int], extent: Sequence[int], stride: Sequence[int]) -> Pairs:
    """Return XLA's ``"SAME"`` padding: ``ceil(size / stride)`` outputs, any odd
    padding element going to the high side."""
    pairs = []
    for size, k, s in zip(spatial, extent, stride):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def normalize_padding(
    padding: Any,
    spatial: Sequence[int],
    extent: Sequence[int],
    stride: Sequence[int],
    op: str,
) -> Pairs:
    """Turn ``"VALID"``, ``"SAME"``, an int, or one int or ``(low, high)`` pair
    per spatial axis into a ``(low, high)`` pair per spatial axis."""
    ndim = len(spatial)
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0),) * ndim
        if mode == "SAME":
            return same_padding(spatial, extent, stride)
        raise ValueError(f"{op}: padding={padding!r} is not a padding mode. Use 'VALID', 'SAME' or integers")
    if isinstance(padding, int | np.integer):
        return ((int(padding), int(padding)),) * ndim
    entries = list(padding)
    if len(entries) != ndim:
        raise ValueError(
            f"{op}: padding={padding!r} has {len(entries)} entries, but the operation has {ndim} "
            "spatial axes. Pass one int or one (low, high) pair per spatial axis"
        )
    pairs = []
    for entry in entries:
        if isinstance(entry, int | np.integer):
            pairs.append((int(entry), int(entry)))
        elif len(entry) == 2:
            pairs.append((int(entry[0]), int(entry[1])))
        else:
            raise ValueError(f"{op}: padding entry {entry!r} is neither an int nor a (low, high) pair")
    return tuple(pairs)


def output_spatial(
    spatial: Sequence[int],
    extent: Sequence[int],
    stride: Sequence[int],
    padding: Pairs,
    op: str,
) -> tuple[int, ...]:
    """Return the number of window positions along each spatial axis."""
    sizes = []
    for axis, (size, k, s, (low, high)) in enumerate(zip(spatial, extent, stride, padding)):
        padded = size + low + high
        if padded < k:
            raise ValueError(
                f"{op}: along spatial axis {axis} the padded input has size {padded} "
                f"({size} + padding {low} + {high}), smaller than the dilated window extent {k}. "
                "Pad more, or use a smaller window or dilation"
            )
        sizes.append((padded - k) // s + 1)
    return tuple(sizes)


# --------------------------------------------------------------------------
# Implementations
# --------------------------------------------------------------------------


def _pad_or_crop_numpy(x: np.ndarray, pairs: Pairs, value: Any) -> np.ndarray:
    """Pad the trailing axes of ``x`` by ``pairs`` (negative amounts crop)."""
    lead = x.ndim - len(pairs)
    crop = (slice(None),) * lead + tuple(
        slice(max(-lo, 0), x.shape[lead + i] - max(-hi, 0)) for i, (lo, hi) in enumerate(pairs)
    )
    x = x[crop]
    widths = ((0, 0),) * lead + tuple((max(lo, 0), max(hi, 0)) for lo, hi in pairs)
    if any(lo or hi for lo, hi in widths):
        x = np.pad(x, widths, constant_values=value)
    return x


def _window_slices(
    offset: Sequence[int], out: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> tuple[slice, ...]:
    """Return the slices of a padded input read by window offset ``offset``."""
    return tuple(slice(i * d, i * d + s * (o - 1) + 1, s) for i, o, s, d in zip(offset, out, stride, dilation))


def _extract_numpy(
    x: np.ndarray,
    window: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: Pairs,
    pad_value: Any,
    out: tuple[int, ...],
) -> np.ndarray:
    padded = _pad_or_crop_numpy(x, padding, pad_value)
    nd = len(window)
    lead = padded.ndim - nd
    spatial_strides = padded.strides[lead:]
    shape = padded.shape[:lead] + out + window
    strides = (
        padded.strides[:lead]
        + tuple(st * s for st, s in zip(spatial_strides, stride))
        + tuple(st * d for st, d in zip(spatial_strides, dilation))
    )
    return np.lib.stride_tricks.as_strided(padded, shape, strides, writeable=False)


def _fold_numpy(
    p: np.ndarray,
    spatial_shape: tuple[int, ...],
    window: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: Pairs,
    out: tuple[int, ...],
) -> np.ndarray:
    nd = len(window)
    lead = p.shape[: p.ndim - 2 * nd]
    padded_shape = tuple(size + lo + hi for size, (lo, hi) in zip(spatial_shape, padding))
    buffer = np.zeros(lead + padded_shape, dtype=p.dtype)
    ellipsis = (Ellipsis,)
    for offset in itertools.product(*(range(k) for k in window)):
        buffer[ellipsis + _window_slices(offset, out, stride, dilation)] += p[ellipsis + offset]
    return _pad_or_crop_numpy(buffer, tuple((-lo, -hi) for lo, hi in padding), 0)


def _pad_config_jax(lead: int, pairs: Pairs, interior: Sequence[int] | None = None) -> list[tuple[int, int, int]]:
    interior = interior if interior is not None else (0,) * len(pairs)
    return [(0, 0, 0)] * lead + [(lo, hi, i) for (lo, hi), i in zip(pairs, interior)]


def _extract_jax(
    x: Any,
    window: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: Pairs,
    pad_value: Any,
    out: tuple[int, ...],
) -> Any:
    import jax.numpy as jnp
    from jax import lax

    nd = len(window)
    lead = x.ndim - nd
    padded = lax.pad(x, jnp.asarray(pad_value, dtype=x.dtype), _pad_config_jax(lead, padding))
    pieces = []
    for offset in itertools.product(*(range(k) for k in window)):
        starts = [0] * lead + [i * d for i, d in zip(offset, dilation)]
        limits = list(padded.shape[:lead]) + [
            i * d + s * (o - 1) + 1 for i, d, s, o in zip(offset, dilation, stride, out)
        ]
        pieces.append(lax.slice(padded, starts, limits, [1] * lead + list(stride)))
    stacked = jnp.stack(pieces, axis=-1)
    return stacked.reshape(padded.shape[:lead] + out + window)


def _fold_jax(
    p: Any,
    spatial_shape: tuple[int, ...],
    window: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: Pairs,
    out: tuple[int, ...],
) -> Any:
    from jax import lax

    nd = len(window)
    lead = p.ndim - 2 * nd
    zero = lax.full((), 0, p.dtype)
    total = None
    # Each window offset's slice is placed back by padding it: `stride - 1`
    # zeros between elements, and on each side whatever maps the window onto
    # the unpadded input (negative amounts crop).
    for offset in itertools.product(*(range(k) for k in window)):
        pairs = []
        for i, d, s, o, size, (lo, hi) in zip(offset, dilation, stride, out, spatial_shape, padding):
            low = i * d - lo
            high = size + lo + hi - (i * d + s * (o - 1) + 1) - hi
            pairs.append((low, high))
        piece = p[(Ellipsis,) + offset]
        placed = lax.pad(piece, zero, _pad_config_jax(lead, tuple(pairs), [s - 1 for s in stride]))
        total = placed if total is None else total + placed
    return total


def _extract_impl(
    x: Any,
    *,
    window: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: Pairs,
    pad_value: Any,
) -> Any:
    nd = len(window)
    out = output_spatial(shape_of(x)[-nd:], effective_window(window, dilation), stride, padding, "extract_patches")
    if backend_of((x,), "extract_patches") == "numpy":
        return _extract_numpy(np.asarray(x), window, stride, dilation, padding, pad_value, out)
    return _extract_jax(x, window, stride, dilation, padding, pad_value, out)


def _fold_impl(
    p: Any,
    *,
    spatial_shape: tuple[int, ...],
    window: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    padding: Pairs,
) -> Any:
    nd = len(window)
    out = shape_of(p)[-2 * nd : -nd]
    if backend_of((p,), "fold_patches") == "numpy":
        return _fold_numpy(np.asarray(p), spatial_shape, window, stride, dilation, padding, out)
    return _fold_jax(p, spatial_shape, window, stride, dilation, padding, out)


# --------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------


def _extract_transpose(
    g: Any, out: Any, x: Any, *, window: Any, stride: Any, dilation: Any, padding: Any, pad_value: Any
) -> Any:
    spatial_shape = shape_of(x)[-len(window) :]
    return fold_patches_p(
        g, spatial_shape=spatial_shape, window=window, stride=stride, dilation=dilation, padding=padding
    )


def _extract_tangent(
    t: Any, out: Any, x: Any, *, window: Any, stride: Any, dilation: Any, padding: Any, pad_value: Any
) -> Any:
    # The padding is a constant, so its tangent is zero whatever its value.
    return extract_patches_p(t, window=window, stride=stride, dilation=dilation, padding=padding, pad_value=0)


def _fold_transpose(
    g: Any, out: Any, p: Any, *, spatial_shape: Any, window: Any, stride: Any, dilation: Any, padding: Any
) -> Any:
    return extract_patches_p(g, window=window, stride=stride, dilation=dilation, padding=padding, pad_value=0)


def _fold_tangent(t: Any, out: Any, p: Any, **params: Any) -> Any:
    return fold_patches_p(t, **params)


extract_patches_p = Primitive(
    "extract_patches",
    _extract_impl,
    pullbacks=(_extract_transpose,),
    jvps=(_extract_tangent,),
)
fold_patches_p = Primitive(
    "fold_patches",
    _fold_impl,
    pullbacks=(_fold_transpose,),
    jvps=(_fold_tangent,),
)

# --------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------


def extract_patches(
    x: Any,
    /,
    window: int | Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: str | int | Sequence[Any] = "VALID",
    dilation: int | Sequence[int] = 1,
    pad_value: float = 0.0,
) -> Any:
    """Gather every sliding window of ``x`` (im2col, PyTorch's ``unfold``).

    The window slides over the trailing ``len(window)`` axes of ``x`` (for an
    int ``window``, every axis after the first two, as in the channels-first
    layout ``(N, C, *spatial)``). With ``x`` of shape ``(*lead, *spatial)`` the
    result has shape ``(*lead, *out_spatial, *window)`` and

        result[..., o_1, ..., o_d, k_1, ..., k_d]
            = padded_x[..., o_1 * stride_1 + k_1 * dilation_1, ...]

    where ``padded_x`` is ``x`` padded with ``pad_value`` and
    ``out_spatial[i] = (spatial[i] + low[i] + high[i] - dilation[i] * (window[i] - 1) - 1) // stride[i] + 1``.

    Args:
        x: the input array.
        window: the window size, one int for every spatial axis or one per axis.
        stride: the step between windows.
        padding: ``"VALID"`` (none), ``"SAME"`` (``ceil(size / stride)``
            windows, the odd element of padding at the high side, as in XLA),
            an int for both sides of every axis, or per axis an int or a
            ``(low, high)`` pair. Negative amounts crop.
        dilation: the spacing between window elements.
        pad_value: the value read in the padding (its derivative is zero).

    The derivative is :func:`fold_patches`, its transpose. On NumPy the result
    is a read-only view of the padded input, so copy it before writing to it.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> x = np.arange(5.0).reshape(1, 1, 5)
        >>> dx.extract_patches(x, 3, stride=2)[0, 0]
        array([[0., 1., 2.],
               [2., 3., 4.]])
    """
    ndim_x = len(shape_of(x))
    nd = ndim_x - 2 if isinstance(window, int | np.integer) else len(tuple(window))
    if nd < 1 or nd > ndim_x:
        raise ValueError(
            f"extract_patches: x of shape {shape_of(x)} has no spatial axes for window={window!r}. "
            "x needs the layout (N, C, *spatial), or pass one window size per trailing axis"
        )
    window_t = normalize_ints(window, nd, "window", "extract_patches")
    stride_t = normalize_ints(stride, nd, "stride", "extract_patches")
    dilation_t = normalize_ints(dilation, nd, "dilation", "extract_patches")
    spatial = shape_of(x)[-nd:]
    extent = effective_window(window_t, dilation_t)
    pairs = normalize_padding(padding, spatial, extent, stride_t, "extract_patches")
    output_spatial(spatial, extent, stride_t, pairs, "extract_patches")
    return extract_patches_p(
        x, window=window_t, stride=stride_t, dilation=dilation_t, padding=pairs, pad_value=pad_value
    )


def fold_patches(
    patches: Any,
    /,
    spatial_shape: Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: str | int | Sequence[Any] = "VALID",
    dilation: int | Sequence[int] = 1,
) -> Any:
    """Scatter-add patches back onto an array (col2im, PyTorch's ``fold``).

    The transpose of :func:`extract_patches`: ``patches`` of shape
    ``(*lead, *out_spatial, *window)`` become an array of shape
    ``(*lead, *spatial_shape)`` in which each element is the sum of every patch
    entry read from it. Entries that fall in the padding are dropped.
    ``stride``, ``padding`` and ``dilation`` mean what they mean for
    :func:`extract_patches` on an input with spatial shape ``spatial_shape``,
    and ``out_spatial`` must be the window count that call would give.
    """
    spatial = tuple(int(s) for s in spatial_shape)
    nd = len(spatial)
    shape = shape_of(patches)
    if nd < 1 or len(shape) < 2 * nd:
        raise ValueError(
            f"fold_patches: patches of shape {shape} cannot hold {nd} output-position axes and "
            f"{nd} window axes for spatial_shape={spatial}"
        )
    window = shape[-nd:]
    stride_t = normalize_ints(stride, nd, "stride", "fold_patches")
    dilation_t = normalize_ints(dilation, nd, "dilation", "fold_patches")
    extent = effective_window(window, dilation_t)
    pairs = normalize_padding(padding, spatial, extent, stride_t, "fold_patches")
    expected = output_spatial(spatial, extent, stride_t, pairs, "fold_patches")
    if shape[-2 * nd : -nd] != expected:
        raise ValueError(
            f"fold_patches: patches of shape {shape} have output positions {shape[-2 * nd : -nd]}, but "
            f"windows of size {window} with stride {stride_t}, dilation {dilation_t} and padding {pairs} "
            f"over spatial shape {spatial} give {expected}"
        )
    return fold_patches_p(
        patches, spatial_shape=spatial, window=window, stride=stride_t, dilation=dilation_t, padding=pairs
    )
