"""Searching, sorting, gathering and set functions of the Array API.

Index results (``argmax``, ``argsort``, ``searchsorted``, ``nonzero``, the
``unique_*`` functions) have no derivative. ``sort``, ``top_k``, ``take`` and
``take_along_axis`` are gathers, differentiable in the gathered array: the
gradient is scattered back to the positions the values came from, with
``index_add``, so repeated indices accumulate.

``nonzero`` and the ``unique_*`` functions return arrays whose length depends
on the values. Under ``jax.jit`` that length must be static, so on JAX they
take JAX's ``size`` and ``fill_value`` arguments, and NumPy honours them too so
code behaves the same on both backends.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._backend import backend_of, namespace
from ._core import Primitive, value_of
from ._dispatch import shape_of
from ._ops_shape import _normalize_axes, getitem, reshape

# -- argmax, argmin ---------------------------------------------------------------


def _arg_extremum_impl(name: str) -> Any:
    def impl(x: Any, *, axis: int | None, keepdims: bool) -> Any:
        xp = namespace(backend_of((x,), name))
        return getattr(xp, name)(x, axis=axis, keepdims=keepdims)

    return impl


argmax_p = Primitive("argmax", _arg_extremum_impl("argmax"), differentiable=False)
argmin_p = Primitive("argmin", _arg_extremum_impl("argmin"), differentiable=False)


def _single_axis(name: str, x: Any, axis: int | None) -> int | None:
    if axis is None:
        return None
    if not isinstance(axis, int | np.integer):
        raise TypeError(f"{name} takes a single integer axis or None, got {axis!r}")
    return _normalize_axes(axis, len(shape_of(x)))[0]


def argmax(x: Any, /, *, axis: int | None = None, keepdims: bool = False) -> Any:
    """Return the index of the first maximum along ``axis`` (of the flattened array when ``None``)."""
    return argmax_p(x, axis=_single_axis("argmax", x, axis), keepdims=keepdims)


def argmin(x: Any, /, *, axis: int | None = None, keepdims: bool = False) -> Any:
    """Return the index of the first minimum along ``axis`` (of the flattened array when ``None``)."""
    return argmin_p(x, axis=_single_axis("argmin", x, axis), keepdims=keepdims)


# -- argsort, sort, top_k -----------------------------------------------------------


def _argsort_impl(x: Any, *, axis: int, descending: bool, stable: bool) -> Any:
    xp = namespace(backend_of((x,), "argsort"))
    if not descending:
        return xp.argsort(x, axis=axis, stable=stable)

    # A stable descending order: sort the reversed array ascending, reverse
    # the result and map positions back, so equal values keep their order.
    n = x.shape[axis]
    ascending = xp.argsort(xp.flip(x, axis=axis), axis=axis, stable=stable)
    return (n - 1) - xp.flip(ascending, axis=axis)


argsort_p = Primitive("argsort", _argsort_impl, differentiable=False)


def argsort(x: Any, /, *, axis: int = -1, descending: bool = False, stable: bool = True) -> Any:
    """Return the indices that sort ``x`` along ``axis``.

    With ``stable=True`` (the default) equal values keep their relative
    order, in ascending and descending sorts alike. NaNs sort last.
    """
    axis = _normalize_axes(axis, len(shape_of(x)))[0]
    return argsort_p(x, axis=axis, descending=descending, stable=stable)


def sort(x: Any, /, *, axis: int = -1, descending: bool = False, stable: bool = True) -> Any:
    """Sort ``x`` along ``axis``; differentiable.

    The gradient of each sorted entry flows back to the entry it came from,
    through the permutation that ``argsort`` returns.
    """
    order = argsort(x, axis=axis, descending=descending, stable=stable)
    return take_along_axis(x, order, axis=axis)


def top_k(x: Any, k: int, /, *, axis: int = -1) -> tuple[Any, Any]:
    """Return the ``k`` largest entries along ``axis`` and their indices, largest first.

    The values are differentiable in ``x``. Among equal values the lower
    index comes first, as in ``jax.lax.top_k``.
    """
    shape = shape_of(x)
    axis = _normalize_axes(axis, len(shape))[0]
    if not 0 <= k <= shape[axis]:
        raise ValueError(
            f"top_k's k must be between 0 and {shape[axis]}, the length of axis {axis} of the input "
            f"of shape {shape}, but got k={k}"
        )
    order = argsort(x, axis=axis, descending=True, stable=True)
    index = [slice(None)] * len(shape)
    index[axis] = slice(0, k)
    indices = order[tuple(index)]
    return take_along_axis(x, indices, axis=axis), indices


# -- take and take_along_axis -------------------------------------------------------


def _as_index_array(indices: Any, x: Any) -> Any:
    """Return ``indices`` as an integer array (lists become NumPy arrays)."""
    indices = value_of(indices)
    if isinstance(indices, list | tuple | int | np.integer):
        indices = np.asarray(indices)
    dtype = getattr(indices, "dtype", None)
    if dtype is None or np.dtype(dtype).kind not in "iu":
        raise TypeError(f"indices must be an integer array, got {type(indices).__name__} of dtype {dtype}")
    return indices


def take(x: Any, indices: Any, /, *, axis: int | None = None) -> Any:
    """Return the entries of ``x`` at ``indices`` along ``axis``; differentiable in ``x``.

    With ``axis=None`` the flattened array is indexed, as in NumPy and JAX.
    """
    indices = _as_index_array(indices, x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    axis = _normalize_axes(axis, len(shape_of(x)))[0]
    return getitem(x, (slice(None),) * axis + (indices,))


def _along_axis_index(indices: Any, axis: int, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """Build the advanced index that picks ``x[..., indices[...], ...]`` along ``axis``."""
    ndim = len(shape)
    index = []
    for d in range(ndim):
        if d == axis:
            index.append(indices)
            continue
        positions_shape = [1] * ndim
        positions_shape[d] = shape[d]
        index.append(np.arange(shape[d]).reshape(positions_shape))
    return tuple(index)


def take_along_axis(x: Any, indices: Any, /, *, axis: int = -1) -> Any:
    """Pick ``x`` at ``indices`` along ``axis``, matching the other axes; differentiable in ``x``.

    ``indices`` has as many dimensions as ``x``, and the two broadcast
    against each other off ``axis``. The gradient scatters back to the
    picked positions, accumulating where an index repeats.
    """
    shape = shape_of(x)
    indices = _as_index_array(indices, x)
    if len(shape_of(indices)) != len(shape):
        raise ValueError(
            f"take_along_axis needs indices with as many dimensions as x: x has shape {shape}, "
            f"indices have shape {shape_of(indices)}. Insert axes of length 1 with dx.expand_dims."
        )
    axis = _normalize_axes(axis, len(shape))[0]
    return getitem(x, _along_axis_index(indices, axis, shape))


# -- searchsorted -----------------------------------------------------------------


def _searchsorted_impl(x1: Any, x2: Any, *sorter: Any, side: str) -> Any:
    xp = namespace(backend_of((x1, x2, *sorter), "searchsorted"))
    return xp.searchsorted(x1, x2, side=side, sorter=sorter[0] if sorter else None)


searchsorted_p = Primitive("searchsorted", _searchsorted_impl, differentiable=False)


def searchsorted(x1: Any, x2: Any, /, *, side: str = "left", sorter: Any = None) -> Any:
    """Return the indices where ``x2``'s entries would be inserted into sorted 1-D ``x1``.

    ``side="left"`` gives the first suitable position, ``"right"`` the last.
    ``sorter`` is an optional permutation that sorts ``x1`` (as from
    ``argsort``).
    """
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted's side must be 'left' or 'right', got {side!r}")
    if len(shape_of(x1)) != 1:
        raise ValueError(f"searchsorted needs a 1-D sorted array x1, got shape {shape_of(x1)}")
    if sorter is None:
        return searchsorted_p(x1, x2, side=side)
    return searchsorted_p(x1, x2, value_of(sorter), side=side)


# -- nonzero and the set functions ---------------------------------------------------


def _is_jax(x: Any) -> bool:
    return backend_of((x,), "nonzero") == "jax"


def _pad_to_size(values: np.ndarray, size: int, fill: Any) -> np.ndarray:
    """Cut or pad a 1-D NumPy result to ``size`` entries, as JAX's ``size`` argument does."""
    if values.shape[0] >= size:
        return values[:size]
    padding = np.full(size - values.shape[0], fill, dtype=values.dtype)
    return np.concatenate([values, padding])


def _nonzero_impl(x: Any, *, size: int | None, fill_value: Any) -> Any:
    if _is_jax(x):
        import jax.numpy as jnp

        return jnp.nonzero(x, size=size, fill_value=fill_value)
    found = np.nonzero(x)
    if size is None:
        return found
    fill = 0 if fill_value is None else fill_value
    return tuple(_pad_to_size(f, size, fill) for f in found)


nonzero_p = Primitive("nonzero", _nonzero_impl, differentiable=False)


def nonzero(x: Any, /, *, size: int | None = None, fill_value: Any = None) -> tuple[Any, ...]:
    """Return the indices of the non-zero entries of ``x``, one integer array per axis.

    Args:
        x: an array with at least one dimension.
        size: the number of indices to return (cut or padded with
            ``fill_value``, 0 by default). Needed inside ``jax.jit``, where
            result shapes must be static; without it the call fails there.
        fill_value: the padding index when fewer than ``size`` entries are
            non-zero.
    """
    if len(shape_of(x)) == 0:
        raise ValueError("nonzero needs an array with at least one dimension, got a 0-d array")
    return nonzero_p(x, size=size, fill_value=fill_value)


class UniqueAllResult(NamedTuple):
    """The result of :func:`unique_all`."""

    values: Any
    indices: Any
    inverse_indices: Any
    counts: Any


class UniqueCountsResult(NamedTuple):
    """The result of :func:`unique_counts`."""

    values: Any
    counts: Any


class UniqueInverseResult(NamedTuple):
    """The result of :func:`unique_inverse`."""

    values: Any
    inverse_indices: Any


def _unique_impl(x: Any, *, size: int | None, fill_value: Any) -> Any:
    """Return ``(values, first indices, inverse indices, counts)``, values sorted."""
    if _is_jax(x):
        import jax.numpy as jnp

        values, indices, inverse, counts = jnp.unique(
            x, return_index=True, return_inverse=True, return_counts=True, size=size, fill_value=fill_value
        )
        return values, indices, jnp.reshape(inverse, x.shape), counts
    values, indices, inverse, counts = np.unique(
        np.asarray(x).reshape(-1), return_index=True, return_inverse=True, return_counts=True
    )
    if size is not None:
        # As in JAX, padding repeats the smallest value and occurs zero times.
        if fill_value is None:
            fill_value = values[0] if values.size else 0
        values = _pad_to_size(values, size, fill_value)
        indices = _pad_to_size(indices, size, 0)
        counts = _pad_to_size(counts, size, 0)
    return values, indices, inverse.reshape(np.shape(x)), counts


unique_p = Primitive("unique", _unique_impl, differentiable=False)


def _unique(x: Any, size: int | None, fill_value: Any) -> tuple[Any, Any, Any, Any]:
    return unique_p(x, size=size, fill_value=fill_value)


def unique_values(x: Any, /, *, size: int | None = None, fill_value: Any = None) -> Any:
    """Return the distinct values of ``x``, sorted, as a 1-D array (no derivative).

    ``size`` (needed inside ``jax.jit``) cuts or pads the result; padding
    repeats the smallest value unless ``fill_value`` is given.

    NOTE: NaNs compare equal here, as in ``np.unique``, while the Array API
    counts each NaN as distinct.
    """
    return _unique(x, size, fill_value)[0]


def unique_counts(x: Any, /, *, size: int | None = None, fill_value: Any = None) -> UniqueCountsResult:
    """Return the distinct values of ``x`` and how often each occurs."""
    values, _, _, counts = _unique(x, size, fill_value)
    return UniqueCountsResult(values, counts)


def unique_inverse(x: Any, /, *, size: int | None = None, fill_value: Any = None) -> UniqueInverseResult:
    """Return the distinct values of ``x`` and, per entry of ``x``, the index of its value."""
    values, _, inverse, _ = _unique(x, size, fill_value)
    return UniqueInverseResult(values, inverse)


def unique_all(x: Any, /, *, size: int | None = None, fill_value: Any = None) -> UniqueAllResult:
    """Return the distinct values, their first indices in flattened ``x``, the inverse indices and the counts."""
    return UniqueAllResult(*_unique(x, size, fill_value))
