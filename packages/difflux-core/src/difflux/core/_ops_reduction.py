"""Reductions: sum, mean, prod, max, min, var, std."""

from __future__ import annotations

from typing import Any

from ._core import Primitive
from ._dispatch import make_impl, shape_of
from ._ops_shape import _normalize_axes, broadcast_to, reshape


def _keepdims_shape(shape: tuple[int, ...], axis: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axis else s for i, s in enumerate(shape))


def _expand_to_input(g: Any, x: Any, axis: tuple[int, ...]) -> Any:
    """Broadcast a reduced cotangent back to the shape of the reduced input."""
    shape = shape_of(x)
    return broadcast_to(reshape(g, _keepdims_shape(shape, axis)), shape)


sum_p = Primitive(
    "sum",
    make_impl("sum"),
    pullbacks=(lambda g, out, x, axis, keepdims: _expand_to_input(g, x, axis),),
    jvps=(lambda t, out, x, axis, keepdims: sum(t, axis=axis, keepdims=keepdims),),
)


def sum(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum of ``x`` over ``axis`` (all axes when ``None``)."""
    axis = _normalize_axes(axis, len(shape_of(x)))
    return sum_p(x, axis=axis, keepdims=keepdims)


def mean(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
    """Arithmetic mean of ``x`` over ``axis``."""
    shape = shape_of(x)
    axes = _normalize_axes(axis, len(shape))
    count = 1
    for a in axes:
        count *= shape[a]
    from ._ops_elementwise import divide

    return divide(sum(x, axis=axes, keepdims=keepdims), float(count))
