"""Shape manipulation and indexing: linear operations, so each tangent is the
operation applied to the tangent and each pullback is its transpose."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._core import Primitive, value_of
from ._dispatch import make_impl, shape_of


def _normalize_axes(axes: Any, ndim: int) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    if type(axes) is int and -ndim <= axes < ndim:  # the common case, checked cheaply
        return (axes % ndim,)
    if isinstance(axes, int | np.integer):
        axes = (axes,)
    normalized = []
    for axis in axes:
        axis = int(axis)
        if not -ndim <= axis < max(ndim, 1):
            raise ValueError(f"axis {axis} is out of bounds for an array with {ndim} dimensions")
        normalized.append(axis % ndim if ndim else 0)
    return tuple(normalized)


# -- reshape and broadcast_to --------------------------------------------------

reshape_p = Primitive(
    "reshape",
    make_impl("reshape"),
    pullbacks=(lambda g, out, x, shape: reshape(g, shape_of(x)),),
    jvps=(lambda t, out, x, shape: reshape(t, shape),),
)


def reshape(x: Any, /, shape: Sequence[int]) -> Any:
    """Return ``x`` with a new shape (one entry may be ``-1``)."""
    shape = tuple(int(s) for s in shape)
    if shape_of(x) == shape:
        return x
    return reshape_p(x, shape=shape)


def _broadcast_to_pullback(g: Any, out: Any, x: Any, shape: tuple[int, ...]) -> Any:
    from ._dispatch import unbroadcast

    return unbroadcast(g, shape_of(x))


broadcast_to_p = Primitive(
    "broadcast_to",
    make_impl("broadcast_to"),
    pullbacks=(_broadcast_to_pullback,),
    jvps=(lambda t, out, x, shape: broadcast_to(t, shape),),
)


def broadcast_to(x: Any, /, shape: Sequence[int]) -> Any:
    """Broadcast ``x`` to ``shape`` following the Array API broadcasting rules."""
    shape = tuple(int(s) for s in shape)
    if shape_of(x) == shape:
        return x
    try:
        np.broadcast_shapes(shape_of(x), shape)
    except ValueError:
        raise ValueError(f"cannot broadcast an array of shape {shape_of(x)} to shape {shape}") from None
    return broadcast_to_p(x, shape=shape)


# -- axis permutations -----------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _inverse_permutation(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(range(len(axes)), key=axes.__getitem__))


def _transpose_numpy(x: Any, axes: tuple[int, ...]) -> Any:
    # The method skips np.transpose's Python wrapper, which costs more than
    # the transpose (a view) itself.
    return x.transpose(axes) if type(x) is np.ndarray else np.transpose(x, axes)


permute_dims_p = Primitive(
    "permute_dims",
    make_impl("permute_dims", _transpose_numpy, "jax.numpy.transpose"),
    pullbacks=(lambda g, out, x, axes: permute_dims(g, _inverse_permutation(axes)),),
    # A NumPy transpose is a view, so the cotangent costs no copy.
    numpy_pullbacks=(lambda g, out, x, axes: g.transpose(_inverse_permutation(axes)),),
    jvps=(lambda t, out, x, axes: permute_dims(t, axes),),
)


def permute_dims(x: Any, /, axes: Sequence[int]) -> Any:
    """Permute the axes of ``x``: output axis ``i`` is input axis ``axes[i]``."""
    axes = _normalize_axes(axes, len(shape_of(x)))
    if axes == tuple(range(len(axes))):
        return x
    return permute_dims_p(x, axes=axes)


def matrix_transpose(x: Any, /) -> Any:
    """Swap the last two axes of ``x``."""
    ndim = len(shape_of(x))
    if ndim < 2:
        raise ValueError(f"matrix_transpose needs at least 2 dimensions, got shape {shape_of(x)}")
    axes = tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)
    # Already normalised and never the identity, so permute_dims's checks
    # are skipped.
    return permute_dims_p(x, axes=axes)


def expand_dims(x: Any, /, axis: int = 0) -> Any:
    """Insert an axis of length one at position ``axis``."""
    shape = list(shape_of(x))
    ndim = len(shape) + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of bounds for expand_dims with result rank {ndim}")
    shape.insert(axis % ndim, 1)
    return reshape(x, shape)


def squeeze(x: Any, /, axis: int | tuple[int, ...]) -> Any:
    """Remove axes of length one."""
    shape = shape_of(x)
    axes = _normalize_axes(axis, len(shape))
    for a in axes:
        if shape[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of shape {shape}: its length is not 1")
    return reshape(x, [s for i, s in enumerate(shape) if i not in axes])


# -- indexing ----------------------------------------------------------------------


def _index_to_static(index: Any) -> Any:
    """Strip tracers from integer index arrays; indices carry no derivative."""
    if isinstance(index, tuple):
        return tuple(_index_to_static(i) for i in index)
    return value_of(index)


def _getitem_pullback(g: Any, out: Any, x: Any, index: Any) -> Any:
    from ._ops_creation import zeros_like
    from ._ops_index import index_add

    return index_add(zeros_like(x), index, g)


def _getitem_impl(x: Any, index: Any) -> Any:
    return x[index]


def _getitem_numpy_pullback(g: Any, out: Any, x: Any, index: Any) -> Any:
    # What _getitem_pullback's index_add computes on NumPy, without its
    # dispatch. np.add.at accumulates where an integer index repeats.
    result = np.zeros(np.shape(x), dtype=np.result_type(x, g))
    np.add.at(result, index, g)
    return result


getitem_p = Primitive(
    "getitem",
    _getitem_impl,
    pullbacks=(_getitem_pullback,),
    numpy_pullbacks=(_getitem_numpy_pullback,),
    jvps=(lambda t, out, x, index: getitem(t, index),),
)


def getitem(x: Any, index: Any) -> Any:
    """Return ``x[index]``: basic, integer-array and boolean-mask indexing."""
    return getitem_p(x, index=_index_to_static(index))
