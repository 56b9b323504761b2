"""Python operators on tracers, mapped to difflux operations."""

from __future__ import annotations

from typing import Any

from . import _ops_elementwise as ew
from ._core import Tracer, bind
from ._ops_index import _IndexHelper
from ._ops_matmul import matmul
from ._ops_shape import getitem


def _swap(op: Any) -> Any:
    return lambda self, other: op(other, self)


_BINARY = {
    "add": ew.add,
    "sub": ew.subtract,
    "mul": ew.multiply,
    "truediv": ew.divide,
    "floordiv": ew.floor_divide,
    "mod": ew.remainder,
    "pow": ew.pow,
    "matmul": matmul,
    "and": ew.logical_and,
    "or": ew.logical_or,
    "xor": ew.logical_xor,
}


# Arithmetic operators bind their primitive directly, one call frame fewer
# than going through the public function: user code is full of them.
_DIRECT = {
    "add": ew.add_p,
    "sub": ew.subtract_p,
    "mul": ew.multiply_p,
    "truediv": ew.divide_p,
}


def _direct(prim: Any) -> tuple[Any, Any]:
    def forward(self: Any, other: Any) -> Any:
        return bind(prim, (self, other), ew._NO_PARAMS)

    def reflected(self: Any, other: Any) -> Any:
        return bind(prim, (other, self), ew._NO_PARAMS)

    return forward, reflected


def install() -> None:
    for name, op in _BINARY.items():
        if name in _DIRECT:
            forward, reflected = _direct(_DIRECT[name])
        else:
            forward, reflected = (lambda self, other, op=op: op(self, other)), _swap(op)
        setattr(Tracer, f"__{name}__", forward)
        setattr(Tracer, f"__r{name}__", reflected)
    Tracer.__neg__ = lambda self: ew.negative(self)  # type: ignore[attr-defined]
    Tracer.__pos__ = lambda self: self  # type: ignore[attr-defined]
    Tracer.__abs__ = lambda self: ew.abs(self)  # type: ignore[attr-defined]
    Tracer.__invert__ = lambda self: ew.logical_not(self)  # type: ignore[attr-defined]
    Tracer.__lt__ = lambda self, other: ew.less(self, other)  # type: ignore[assignment]
    Tracer.__le__ = lambda self, other: ew.less_equal(self, other)  # type: ignore[assignment]
    Tracer.__gt__ = lambda self, other: ew.greater(self, other)  # type: ignore[assignment]
    Tracer.__ge__ = lambda self, other: ew.greater_equal(self, other)  # type: ignore[assignment]
    Tracer.__eq__ = lambda self, other: ew.equal(self, other)  # type: ignore[assignment,method-assign]
    Tracer.__ne__ = lambda self, other: ew.not_equal(self, other)  # type: ignore[assignment,method-assign]
    Tracer.__getitem__ = lambda self, index: getitem(self, index)  # type: ignore[attr-defined]
    Tracer.at = property(lambda self: _IndexHelper(self))  # type: ignore[attr-defined]
    Tracer.astype = lambda self, dtype: _astype(self, dtype)  # type: ignore[attr-defined]
    Tracer.reshape = lambda self, *shape: _reshape(self, shape)  # type: ignore[attr-defined]
    Tracer.sum = lambda self, axis=None, keepdims=False: _sum(self, axis, keepdims)  # type: ignore[attr-defined]


def _astype(x: Any, dtype: Any) -> Any:
    from ._ops_dtype import astype

    return astype(x, dtype)


def _reshape(x: Any, shape: tuple[Any, ...]) -> Any:
    from ._ops_shape import reshape

    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        shape = tuple(shape[0])
    return reshape(x, shape)


def _sum(x: Any, axis: Any, keepdims: bool) -> Any:
    from ._ops_reduction import sum as reduce_sum

    return reduce_sum(x, axis=axis, keepdims=keepdims)
