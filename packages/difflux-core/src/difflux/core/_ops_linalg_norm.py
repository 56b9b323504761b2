"""Vector and matrix norms: ``vector_norm``, ``matrix_norm`` and NumPy's ``norm``.

``vector_norm`` is a primitive, so that its derivative can be defined at the
zero vector: there the 2-norm has no derivative, and the rule returns 0, the
minimum-norm subgradient, instead of the ``nan`` that differentiating
``sqrt(sum(x**2))`` would give. Matrix norms are built from vector norms
and singular values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._core import Primitive
from ._dispatch import make_impl, shape_of
from ._ops_elementwise import abs as elementwise_abs
from ._ops_elementwise import divide, equal, multiply, sign, where
from ._ops_elementwise import pow as elementwise_pow
from ._ops_linalg import require_matrix
from ._ops_linalg_decomp import svdvals
from ._ops_reduction import _expand_to_input, _keepdims_shape
from ._ops_reduction import sum as reduce_sum
from ._ops_shape import _normalize_axes, getitem, permute_dims, reshape

# -- vector norms ------------------------------------------------------------------


def _safe_divide(x: Any, y: Any) -> Any:
    """Return ``x / y``, taken as 0 where ``y == 0``."""
    zero = equal(y, 0.0)
    return where(zero, 0.0, divide(x, where(zero, 1.0, y)))


def _norm_derivative(x: Any, norm: Any, axis: tuple[int, ...], order: float) -> Any:
    """Return the derivative of the ``order``-norm with respect to ``x``.

    ``norm`` is the norm with the reduced axes kept as length one.
    """
    if order == 2:
        return _safe_divide(x, norm)
    if order == 1:
        return sign(x)
    if math.isinf(order):
        # Only the entries of largest (or smallest) magnitude matter; ties
        # share the derivative equally, as dx.maximum does.
        chosen = where(equal(elementwise_abs(x), norm), 1.0, 0.0)
        return divide(multiply(sign(x), chosen), reduce_sum(chosen, axis=axis, keepdims=True))
    if order == 0:
        return multiply(x, 0.0)
    # d/dx_i (sum |x|^p)^(1/p) = sign(x_i) (|x_i| / norm)^(p - 1)
    ratio = _safe_divide(elementwise_abs(x), norm)
    safe_ratio = where(equal(ratio, 0.0), 1.0, ratio)
    return where(equal(ratio, 0.0), 0.0, multiply(sign(x), elementwise_pow(safe_ratio, order - 1.0)))


def _vector_norm_cotangent(g: Any, out: Any, x: Any, *, axis: tuple[int, ...], keepdims: bool, order: float) -> Any:
    norm = reshape(out, _keepdims_shape(shape_of(x), axis))
    return multiply(_expand_to_input(g, x, axis), _norm_derivative(x, norm, axis, order))


def _vector_norm_tangent(t: Any, out: Any, x: Any, *, axis: tuple[int, ...], keepdims: bool, order: float) -> Any:
    norm = reshape(out, _keepdims_shape(shape_of(x), axis))
    return reduce_sum(multiply(t, _norm_derivative(x, norm, axis, order)), axis=axis, keepdims=keepdims)


def _vector_norm_numpy(x: Any, *, axis: tuple[int, ...], keepdims: bool, order: float) -> Any:
    return np.linalg.vector_norm(x, axis=axis, keepdims=keepdims, ord=order)


def _vector_norm_jax(x: Any, *, axis: tuple[int, ...], keepdims: bool, order: float) -> Any:
    import jax.numpy as jnp

    # JAX 0.10 annotates ord as int | str, but it accepts any float order.
    return jnp.linalg.vector_norm(x, axis=axis, keepdims=keepdims, ord=order)  # pyright: ignore[reportArgumentType]


vector_norm_p = Primitive(
    "vector_norm",
    make_impl("vector_norm", _vector_norm_numpy, _vector_norm_jax),
    pullbacks=(_vector_norm_cotangent,),
    jvps=(_vector_norm_tangent,),
)


def vector_norm(
    x: Any,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    keepdims: bool = False,
    ord: float = 2,  # noqa: A002 (Array API name)
) -> Any:
    """Return the ``ord``-norm of the vectors along ``axis`` (all axes when ``None``).

    ``ord`` is any real number or ``inf``/``-inf``: ``(sum |x|^ord)^(1/ord)``,
    ``max |x|`` or ``min |x|``; ``ord=0`` counts the non-zero entries.

    The derivative is finite everywhere: 0 at the zero vector (the
    minimum-norm subgradient), and split equally between tied entries for
    ``ord=inf`` and ``ord=-inf``. ``ord=0`` has zero derivative.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.linalg.vector_norm(dx.asarray([3.0, 4.0])))
        5.0
    """
    if isinstance(ord, bool) or not isinstance(ord, int | float):
        raise TypeError(f"vector_norm: ord must be a real number or inf, got {ord!r}")
    axes = _normalize_axes(axis, len(shape_of(x)))
    return vector_norm_p(x, axis=axes, keepdims=bool(keepdims), order=float(ord))


# -- matrix norms -------------------------------------------------------------------

_MATRIX_ORDS = ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf)


def matrix_norm(x: Any, /, *, keepdims: bool = False, ord: str | float = "fro") -> Any:  # noqa: A002 (Array API name)
    """Return the ``ord``-norm of each matrix in ``x`` (the last two axes).

    ``ord`` is ``"fro"`` (Frobenius), ``"nuc"`` (sum of singular values),
    ``2``/``-2`` (largest/smallest singular value), ``1``/``-1``
    (largest/smallest column sum of ``|x|``) or ``inf``/``-inf``
    (largest/smallest row sum of ``|x|``).

    The Frobenius norm has derivative 0 at the zero matrix. The norms built
    on singular values differentiate through :func:`svdvals` and are not
    differentiable where the singular values involved repeat or vanish.
    """
    require_matrix(x, "matrix_norm")
    if ord not in _MATRIX_ORDS or isinstance(ord, bool):
        raise ValueError(f"matrix_norm: ord must be one of 'fro', 'nuc', 1, -1, 2, -2, inf or -inf, got {ord!r}")
    if ord == "fro":
        result = vector_norm(x, axis=(-2, -1), ord=2)
    elif ord == "nuc":
        result = reduce_sum(svdvals(x), axis=-1)
    elif ord in (2, -2):
        result = getitem(svdvals(x), (Ellipsis, 0 if ord == 2 else -1))
    else:
        # The largest column (or row) sum of non-negative sums is their
        # inf-norm, which has the finite tie-splitting derivative above.
        summed_axis = -2 if ord in (1, -1) else -1
        sums = reduce_sum(elementwise_abs(x), axis=summed_axis)
        result = vector_norm(sums, axis=-1, ord=math.inf if ord > 0 else -math.inf)
    if keepdims:
        result = reshape(result, shape_of(result) + (1, 1))
    return result


def _vector_order(order: str | float) -> float:
    if isinstance(order, str):
        raise ValueError(
            f"norm: ord={order!r} is a matrix norm, but the norm is taken over a single axis; "
            "pass a pair of axes for a matrix norm"
        )
    return order


def norm(
    x: Any,
    /,
    ord: str | float | None = None,  # noqa: A002 (NumPy's name)
    axis: int | tuple[int, int] | None = None,
    keepdims: bool = False,
) -> Any:
    """Return a vector or matrix norm, following ``numpy.linalg.norm``.

    With ``axis=None`` and ``ord=None`` this is the 2-norm of the flattened
    ``x``. With ``axis=None`` and an ``ord``, ``x`` must be 1-D (a vector
    norm) or 2-D (a matrix norm). An integer ``axis`` gives vector norms
    along it, and a pair of axes gives matrix norms over them.
    """
    ndim = len(shape_of(x))
    if axis is None:
        if ord is None:
            return vector_norm(x, keepdims=keepdims)
        if ndim == 1:
            return vector_norm(x, keepdims=keepdims, ord=_vector_order(ord))
        if ndim == 2:
            return matrix_norm(x, keepdims=keepdims, ord=ord)
        raise ValueError(
            f"norm with ord={ord!r} and axis=None needs a 1-D or 2-D array, got shape {shape_of(x)}; "
            "pass axis to choose the vector or matrix axes"
        )
    if isinstance(axis, int):
        return vector_norm(x, axis=axis, keepdims=keepdims, ord=2 if ord is None else _vector_order(ord))
    if len(axis) != 2:
        raise ValueError(f"norm: axis must be an integer or a pair of axes, got axis={axis}")
    rows, cols = _normalize_axes(axis, ndim)
    if rows == cols:
        raise ValueError(f"norm: the two matrix axes must differ, got axis={axis}")
    batch_axes = [i for i in range(ndim) if i not in (rows, cols)]
    moved = permute_dims(x, (*batch_axes, rows, cols))
    result = matrix_norm(moved, ord="fro" if ord is None else ord)
    if keepdims:
        result = reshape(result, tuple(1 if i in (rows, cols) else n for i, n in enumerate(shape_of(x))))
    return result
