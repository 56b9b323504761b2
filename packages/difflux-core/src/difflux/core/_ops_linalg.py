"""Helpers shared by the linear-algebra operations, and the simple ones:
``diagonal``, ``trace``, ``cross`` and ``matrix_rank``.

The decompositions live in ``_ops_linalg_decomp.py``, the solves and
inverses in ``_ops_linalg_solve.py`` and the norms in ``_ops_linalg_norm.py``.
Every operation acts on the last two axes and is batched over the leading
ones, as the Array API's ``linalg`` extension specifies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import backend_of_value
from ._core import Primitive, value_of
from ._dispatch import make_impl, shape_of
from ._ops_elementwise import add, multiply, subtract
from ._ops_manipulation import stack, unstack
from ._ops_reduction import sum as reduce_sum
from ._ops_shape import _normalize_axes, broadcast_to, getitem, matrix_transpose

# -- helpers -------------------------------------------------------------------


def constant_like(value: np.ndarray, like: Any) -> Any:
    """Return ``value`` on ``like``'s backend with ``like``'s float dtype (never a tracer)."""
    raw = value_of(like)
    dtype = getattr(raw, "dtype", np.float64)
    if not np.issubdtype(dtype, np.inexact):
        dtype = np.float64
    value = np.asarray(value, dtype=dtype)
    if backend_of_value(raw) == "jax":
        import jax.numpy as jnp

        return jnp.asarray(value)
    return value


def eye_like(n: int, like: Any) -> Any:
    """Return the ``n`` by ``n`` identity on ``like``'s backend and dtype."""
    return constant_like(np.eye(n), like)


def require_matrix(x: Any, op_name: str, argument: str = "x") -> tuple[int, ...]:
    """Return the shape of ``x`` after checking that it is a (stack of) matrices."""
    shape = shape_of(x)
    if len(shape) < 2:
        raise ValueError(
            f"{op_name} expects {argument} to be a matrix or a stack of matrices with shape (..., M, N), "
            f"got shape {shape}"
        )
    return shape


def require_square(x: Any, op_name: str, argument: str = "x") -> int:
    """Return ``n`` after checking that ``x`` has shape ``(..., n, n)``."""
    shape = require_matrix(x, op_name, argument)
    if shape[-1] != shape[-2]:
        raise ValueError(
            f"{op_name} expects {argument} to be a square matrix or a stack of square matrices with shape "
            f"(..., N, N), got shape {shape}"
        )
    return shape[-1]


def symmetrize(x: Any) -> Any:
    """Return ``(x + x^T) / 2`` over the last two axes."""
    return multiply(add(x, matrix_transpose(x)), 0.5)


def scale_columns(x: Any, v: Any) -> Any:
    """Return ``x @ diag(v)``: column ``j`` of ``x`` times ``v[..., j]``."""
    from ._ops_shape import expand_dims

    return multiply(x, expand_dims(v, -2))


def diag_embed(v: Any) -> Any:
    """Return the (stack of) diagonal matrices with ``v`` on the diagonal."""
    from ._ops_shape import expand_dims

    n = shape_of(v)[-1]
    return multiply(expand_dims(v, -1), eye_like(n, v))


# -- diagonal and trace ----------------------------------------------------------


def diagonal(x: Any, /, *, offset: int = 0) -> Any:
    """Return the ``offset``-th diagonal of each matrix in ``x``, shape ``(..., K)``.

    ``offset > 0`` selects a diagonal above the main one, ``offset < 0`` one
    below it. The result is a new array (never a view).
    """
    shape = require_matrix(x, "diagonal")
    rows, cols = shape[-2:]
    offset = int(offset)
    first_row, first_col = max(-offset, 0), max(offset, 0)
    length = max(min(rows - first_row, cols - first_col), 0)
    row_index = np.arange(first_row, first_row + length)
    col_index = np.arange(first_col, first_col + length)
    return getitem(x, (Ellipsis, row_index, col_index))


def trace(x: Any, /, *, offset: int = 0, dtype: Any = None) -> Any:
    """Return the sum along the ``offset``-th diagonal of each matrix, shape ``(...)``."""
    result = reduce_sum(diagonal(x, offset=offset), axis=-1)
    if dtype is not None:
        from ._ops_dtype import astype

        result = astype(result, dtype)
    return result


# -- cross product ---------------------------------------------------------------


def cross(x1: Any, x2: Any, /, *, axis: int = -1) -> Any:
    """Return the cross product of 3-element vectors along ``axis``, broadcasting the rest."""
    s1, s2 = shape_of(x1), shape_of(x2)
    try:
        shape = np.broadcast_shapes(s1, s2)
    except ValueError:
        raise ValueError(f"cross: shapes {s1} and {s2} cannot be broadcast together") from None
    if not -min(len(s1), len(s2)) <= axis < 0:
        raise ValueError(
            f"cross: axis must be negative and count from the end of both operands; got axis {axis} "
            f"for shapes {s1} and {s2}"
        )
    if s1[axis] != 3 or s2[axis] != 3:
        raise ValueError(f"cross needs vectors of length 3 along axis {axis}, got shapes {s1} and {s2}")
    a = unstack(broadcast_to(x1, shape), axis=axis)
    b = unstack(broadcast_to(x2, shape), axis=axis)
    components = [
        subtract(multiply(a[1], b[2]), multiply(a[2], b[1])),
        subtract(multiply(a[2], b[0]), multiply(a[0], b[2])),
        subtract(multiply(a[0], b[1]), multiply(a[1], b[0])),
    ]
    return stack(components, axis=_normalize_axes(axis, len(shape))[0])


# -- rank (no derivative) ------------------------------------------------------------

matrix_rank_p = Primitive(
    "matrix_rank",
    make_impl("matrix_rank", np.linalg.matrix_rank, "jax.numpy.linalg.matrix_rank"),
    differentiable=False,
)


def matrix_rank(x: Any, /, *, rtol: float | None = None) -> Any:
    """Return the number of singular values larger than ``rtol`` times the largest one.

    ``rtol`` defaults to ``max(M, N)`` times the machine epsilon of ``x``'s
    dtype, as in the Array API. The rank is an integer and has no derivative.
    """
    require_matrix(x, "matrix_rank")
    return matrix_rank_p(x, rtol=rtol)
