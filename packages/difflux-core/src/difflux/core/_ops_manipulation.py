"""Joining, splitting and rearranging arrays: concat, stack, unstack, flip,
roll, moveaxis, tile, repeat, tril, triu."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _backend
from ._core import Primitive
from ._dispatch import make_impl, shape_of
from ._ops_creation import zeros_like
from ._ops_shape import _normalize_axes, getitem, permute_dims, reshape


def _concat_pullback(index: int) -> Any:
    def pullback(g: Any, out: Any, *arrays: Any, axis: int) -> Any:
        start = 0
        for a in arrays[:index]:
            start += shape_of(a)[axis]
        size = shape_of(arrays[index])[axis]
        selector = [slice(None)] * len(shape_of(g))
        selector[axis] = slice(start, start + size)
        return getitem(g, tuple(selector))

    return pullback


def _concat_jvp(tangents: list[Any], out: Any, *arrays: Any, axis: int) -> Any:
    filled = [zeros_like(a) if t is None else t for a, t in zip(arrays, tangents)]
    return concat_p(*filled, axis=axis)


class _VariadicRules(tuple):
    """Pullback rules for a primitive with any number of arguments."""

    def __new__(cls, factory: Any) -> _VariadicRules:
        instance = super().__new__(cls, ())
        instance.factory = factory  # type: ignore[attr-defined]
        return instance

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, index: Any) -> Any:  # type: ignore[override]
        return self.factory(index)  # type: ignore[attr-defined]


def _concat_numpy(*arrays: Any, axis: int) -> Any:
    return np.concatenate(arrays, axis=axis)


def _concat_jax(*arrays: Any, axis: int) -> Any:
    import jax.numpy as jnp

    return jnp.concatenate(arrays, axis=axis)


concat_p = Primitive("concat", make_impl("concat", _concat_numpy, _concat_jax), jvp=_concat_jvp)
concat_p.pullbacks = _VariadicRules(_concat_pullback)


def concat(arrays: Sequence[Any], /, *, axis: int | None = 0) -> Any:
    """Join arrays along an existing axis (``axis=None`` flattens them first)."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("concat needs at least one array")
    if axis is None:
        arrays = [reshape(a, (-1,)) for a in arrays]
        axis = 0
    ndim = len(shape_of(arrays[0]))
    axis = _normalize_axes(axis, ndim)[0]
    for a in arrays[1:]:
        s0, s = shape_of(arrays[0]), shape_of(a)
        if len(s) != ndim or any(x != y for i, (x, y) in enumerate(zip(s0, s)) if i != axis):
            raise ValueError(f"concat along axis {axis}: shapes {s0} and {s} differ off that axis")
    if len(arrays) == 1:
        return arrays[0]
    return concat_p(*arrays, axis=axis)


def stack(arrays: Sequence[Any], /, *, axis: int = 0) -> Any:
    """Join arrays of equal shape along a new axis."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack needs at least one array")
    if _all_plain_numpy(arrays):
        # np.stack gives what the reshapes and the concat below give, without
        # dispatching one difflux operation per entry: a vector field that
        # stacks its components calls this once per evaluation. Invalid
        # shapes or axes fall through to the checks below for their messages.
        try:
            return np.stack(arrays, axis=axis)
        except ValueError:
            pass
    shape = shape_of(arrays[0])
    for a in arrays[1:]:
        if shape_of(a) != shape:
            raise ValueError(f"stack needs arrays of equal shape, got {shape} and {shape_of(a)}")
    ndim = len(shape) + 1
    axis = _normalize_axes(axis, ndim)[0]
    new_shape = shape[:axis] + (1,) + shape[axis:]
    return concat([reshape(a, new_shape) for a in arrays], axis=axis)


_PYTHON_SCALARS = (bool, int, float, complex)


def _all_plain_numpy(values: list[Any]) -> bool:
    """Return whether every value is a NumPy array or scalar, so that the joined array is a NumPy array.

    Python numbers join on the default backend, so they count only when it
    is NumPy, as in ``bind``.
    """
    numpy_default = _backend.default_backend() == "numpy"
    for value in values:
        kind = type(value)
        if kind is np.ndarray or (kind in _backend._SCALAR_TYPES and (numpy_default or kind not in _PYTHON_SCALARS)):
            continue
        return False
    return True


def unstack(x: Any, /, *, axis: int = 0) -> tuple[Any, ...]:
    """Split ``x`` along ``axis`` into a tuple of arrays with that axis removed."""
    shape = shape_of(x)
    axis = _normalize_axes(axis, len(shape))[0]
    selector: list[Any] = [slice(None)] * len(shape)
    parts = []
    for i in range(shape[axis]):
        selector[axis] = i
        parts.append(getitem(x, tuple(selector)))
    return tuple(parts)


def moveaxis(x: Any, source: int, destination: int, /) -> Any:
    """Move axis ``source`` of ``x`` to position ``destination``."""
    ndim = len(shape_of(x))
    source = _normalize_axes(source, ndim)[0]
    destination = _normalize_axes(destination, ndim)[0]
    order = [i for i in range(ndim) if i != source]
    order.insert(destination, source)
    return permute_dims(x, tuple(order))


flip_p = Primitive(
    "flip",
    make_impl("flip"),
    pullbacks=(lambda g, out, x, axis: flip_p(g, axis=axis),),
    jvps=(lambda t, out, x, axis: flip_p(t, axis=axis),),
)


def flip(x: Any, /, *, axis: int | tuple[int, ...] | None = None) -> Any:
    """Reverse the order of elements along ``axis`` (all axes when ``None``)."""
    return flip_p(x, axis=_normalize_axes(axis, len(shape_of(x))))


roll_p = Primitive(
    "roll",
    make_impl("roll"),
    pullbacks=(lambda g, out, x, shift, axis: roll_p(g, shift=tuple(-s for s in shift), axis=axis),),
    jvps=(lambda t, out, x, shift, axis: roll_p(t, shift=shift, axis=axis),),
)


def roll(x: Any, /, shift: int | tuple[int, ...], *, axis: int | tuple[int, ...] | None = None) -> Any:
    """Shift elements cyclically along ``axis`` (over the flattened array when ``None``)."""
    if axis is None:
        return reshape(roll(reshape(x, (-1,)), shift, axis=0), shape_of(x))
    axes = _normalize_axes(axis, len(shape_of(x)))
    shifts = (shift,) * len(axes) if isinstance(shift, int) else tuple(shift)
    return roll_p(x, shift=shifts, axis=axes)


def tile(x: Any, repetitions: tuple[int, ...], /) -> Any:
    """Repeat the whole of ``x`` along each axis (Array API ``tile``)."""
    shape = shape_of(x)
    reps = tuple(repetitions)
    ndim = max(len(shape), len(reps))
    shape = (1,) * (ndim - len(shape)) + shape
    reps = (1,) * (ndim - len(reps)) + reps
    from ._ops_shape import broadcast_to

    # Broadcast to (r0, s0, r1, s1, ...) then merge each pair of axes.
    interleaved = tuple(v for pair in zip((1,) * ndim, shape) for v in pair)
    target = tuple(v for pair in zip(reps, shape) for v in pair)
    expanded = broadcast_to(reshape(x, interleaved), target)
    return reshape(expanded, tuple(r * s for r, s in zip(reps, shape)))


def repeat(x: Any, repeats: int, /, *, axis: int | None = None) -> Any:
    """Repeat each element ``repeats`` times along ``axis`` (flattened when ``None``)."""
    if not isinstance(repeats, int | np.integer):
        raise NotImplementedError("repeat supports an integer repeat count only, not an array of counts")
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    shape = shape_of(x)
    axis = _normalize_axes(axis, len(shape))[0]
    from ._ops_shape import broadcast_to

    expanded = broadcast_to(
        reshape(x, shape[: axis + 1] + (1,) + shape[axis + 1 :]),
        shape[: axis + 1] + (int(repeats),) + shape[axis + 1 :],
    )
    return reshape(expanded, shape[:axis] + (shape[axis] * int(repeats),) + shape[axis + 1 :])


def _triangle_mask(x: Any, k: int, lower: bool) -> Any:
    n, m = shape_of(x)[-2:]
    rows = np.arange(n)[:, None]
    cols = np.arange(m)[None, :]
    keep = cols - rows <= k if lower else cols - rows >= k
    from ._backend import backend_of_value
    from ._core import value_of

    if backend_of_value(value_of(x)) == "jax":
        import jax.numpy as jnp

        return jnp.asarray(keep)
    return keep


def tril(x: Any, /, *, k: int = 0) -> Any:
    """Zero the elements above the ``k``-th diagonal of the last two axes."""
    from ._ops_elementwise import where

    return where(_triangle_mask(x, k, lower=True), x, 0.0)


def triu(x: Any, /, *, k: int = 0) -> Any:
    """Zero the elements below the ``k``-th diagonal of the last two axes."""
    from ._ops_elementwise import where

    return where(_triangle_mask(x, k, lower=False), x, 0.0)
