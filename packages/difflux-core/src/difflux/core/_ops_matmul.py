"""Matrix products: ``matmul``, ``tensordot``, ``vecdot``, ``outer``."""

from __future__ import annotations

from typing import Any

from ._core import Primitive
from ._dispatch import make_impl, shape_of, unbroadcast
from ._ops_shape import expand_dims, matrix_transpose, reshape


def _as_matrices(g: Any, x: Any, y: Any) -> tuple[Any, Any, Any]:
    """Promote 1-D operands of matmul to matrices, as matmul itself does."""
    if len(shape_of(x)) == 1:
        x = reshape(x, (1,) + shape_of(x))
        g = expand_dims(g, -2)
    if len(shape_of(y)) == 1:
        y = reshape(y, shape_of(y) + (1,))
        g = expand_dims(g, -1)
    return g, x, y


def _matmul_pullback_x(g: Any, out: Any, x: Any, y: Any) -> Any:
    g2, x2, y2 = _as_matrices(g, x, y)
    gx = matmul(g2, matrix_transpose(y2))
    return reshape(unbroadcast(gx, shape_of(x2)), shape_of(x))


def _matmul_pullback_y(g: Any, out: Any, x: Any, y: Any) -> Any:
    g2, x2, y2 = _as_matrices(g, x, y)
    gy = matmul(matrix_transpose(x2), g2)
    return reshape(unbroadcast(gy, shape_of(y2)), shape_of(y))


matmul_p = Primitive(
    "matmul",
    make_impl("matmul"),
    pullbacks=(_matmul_pullback_x, _matmul_pullback_y),
    jvps=(lambda t, out, x, y: matmul(t, y), lambda t, out, x, y: matmul(x, t)),
)


def matmul(x1: Any, x2: Any, /) -> Any:
    """Matrix product with NumPy's rules for 1-D operands and batch broadcasting."""
    s1, s2 = shape_of(x1), shape_of(x2)
    if not s1 or not s2:
        raise ValueError(f"matmul does not accept 0-d operands; got shapes {s1} and {s2}")
    k1 = s1[-1]
    k2 = s2[-2] if len(s2) > 1 else s2[0]
    if k1 != k2:
        raise ValueError(
            f"matmul shape mismatch: {s1} @ {s2}; the last axis of the first operand ({k1}) "
            f"must equal the {'second-to-last' if len(s2) > 1 else 'only'} axis of the second ({k2})"
        )
    return matmul_p(x1, x2)
