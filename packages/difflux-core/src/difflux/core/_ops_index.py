"""Functional index updates: ``index_update`` (set), ``index_add``.

These return a new array and never modify their input, on both backends, so
they are safe inside differentiated code. ``x.at[idx].set(v)`` on tracers and
``dx.at(x)[idx].set(v)`` on any array call them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import backend_of
from ._core import Primitive, value_of
from ._dispatch import shape_of


def _index_add_impl(x: Any, values: Any, index: Any) -> Any:
    if backend_of((x, values), "index_add") == "numpy":
        out = np.array(x, copy=True, dtype=np.result_type(x, values))
        np.add.at(out, index, values)
        return out
    return x.at[index].add(values)


def _index_set_impl(x: Any, values: Any, index: Any) -> Any:
    if backend_of((x, values), "index_update") == "numpy":
        out = np.array(x, copy=True, dtype=np.result_type(x, values))
        out[index] = values
        return out
    return x.at[index].set(values)


def _values_cotangent(g: Any, values: Any, index: Any) -> Any:
    from ._dispatch import unbroadcast
    from ._ops_shape import getitem

    return unbroadcast(getitem(g, index), shape_of(values))


index_add_p = Primitive(
    "index_add",
    _index_add_impl,
    pullbacks=(
        lambda g, out, x, values, index: g,
        lambda g, out, x, values, index: _values_cotangent(g, values, index),
    ),
    jvps=(
        lambda t, out, x, values, index: t,
        lambda t, out, x, values, index: index_add(_zeros_of(out), index, t),
    ),
)


def _zeros_of(x: Any) -> Any:
    from ._ops_creation import zeros_like

    return zeros_like(x)


def _index_set_x_cotangent(g: Any, index: Any) -> Any:
    return index_update(g, index, 0.0)


index_update_p = Primitive(
    "index_update",
    _index_set_impl,
    pullbacks=(
        lambda g, out, x, values, index: _index_set_x_cotangent(g, index),
        lambda g, out, x, values, index: _values_cotangent(g, values, index),
    ),
    jvp=lambda tangents, out, x, values, index: index_update(
        _zeros_of(out) if tangents[0] is None else tangents[0],
        index,
        0.0 if tangents[1] is None else tangents[1],
    ),
)


def _static_index(index: Any) -> Any:
    if isinstance(index, tuple):
        return tuple(_static_index(i) for i in index)
    return value_of(index)


def index_add(x: Any, index: Any, values: Any) -> Any:
    """Return a copy of ``x`` with ``values`` added at ``index``.

    Repeated indices accumulate (like ``np.add.at``), which makes this the
    transpose of ``x[index]``.
    """
    return index_add_p(x, values, index=_static_index(index))


def index_update(x: Any, index: Any, values: Any) -> Any:
    """Return a copy of ``x`` with ``x[index]`` replaced by ``values``.

    With repeated indices the winning write is unspecified, as in JAX.
    """
    return index_update_p(x, values, index=_static_index(index))


class _IndexUpdateRef:
    __slots__ = ("array", "index")

    def __init__(self, array: Any, index: Any) -> None:
        self.array = array
        self.index = index

    def set(self, values: Any) -> Any:
        return index_update(self.array, self.index, values)

    def add(self, values: Any) -> Any:
        return index_add(self.array, self.index, values)

    def multiply(self, values: Any) -> Any:
        from ._ops_elementwise import multiply
        from ._ops_shape import getitem

        current = getitem(self.array, self.index)
        return index_update(self.array, self.index, multiply(current, values))

    def get(self) -> Any:
        from ._ops_shape import getitem

        return getitem(self.array, self.index)


class _IndexHelper:
    __slots__ = ("array",)

    def __init__(self, array: Any) -> None:
        self.array = array

    def __getitem__(self, index: Any) -> _IndexUpdateRef:
        return _IndexUpdateRef(self.array, index)


def at(x: Any) -> _IndexHelper:
    """Functional index update in JAX's style: ``dx.at(x)[0, 1:].set(v)``."""
    return _IndexHelper(x)
