"""Reductions and cumulative operations, with derivative rules.

``sum``, ``mean``, ``prod``, ``max``, ``min``, ``var``, ``std`` and
``logsumexp`` reduce over axes. ``cumulative_sum`` and ``cumulative_prod`` scan
along one axis, and ``diff`` takes finite differences. ``any``, ``all`` and
``count_nonzero`` have no derivative.

Products are differentiated without dividing by the input, so inputs that
contain zeros get exact gradients, to any order. The derivative of ``prod``
with respect to ``x[i]`` is the product of all the other entries, formed as
the exclusive cumulative product from the left times the one from the right.
The rules of ``cumulative_prod`` follow the log-depth (Hillis-Steele) scan
``y <- y * shift(y, k)`` for ``k = 1, 2, 4, ...``, whose steps only multiply.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._backend import backend_of, namespace
from ._core import Primitive, bind, value_of
from ._dispatch import make_impl, shape_of, sum_like, unbroadcast
from ._ops_creation import full, zeros_like
from ._ops_dtype import astype
from ._ops_elementwise import add, divide, equal, exp, multiply, sqrt, square, subtract, where
from ._ops_manipulation import concat, flip
from ._ops_shape import _normalize_axes, broadcast_to, getitem, permute_dims, reshape


def _keepdims_shape(shape: tuple[int, ...], axis: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axis else s for i, s in enumerate(shape))


def _expand_to_input(g: Any, x: Any, axis: tuple[int, ...]) -> Any:
    """Broadcast a reduced cotangent back to the shape of the reduced input."""
    shape = shape_of(x)
    return broadcast_to(reshape(g, _keepdims_shape(shape, axis)), shape)


# Up to this many elements, the NumPy pullbacks of reductions return a
# broadcast cotangent as a new array, because filling it costs less than
# np.broadcast_to's Python code (about 5 us measured on a 2-core EPYC).
# Larger ones stay views.
_COPY_BROADCAST_MAX_SIZE = 1 << 16


def _expand_to_input_numpy(g: Any, x: Any, axis: tuple[int, ...]) -> Any:
    """Broadcast a reduced plain NumPy cotangent back to the shape of ``x``."""
    shape = x.shape if type(x) is np.ndarray else np.shape(x)
    g_keepdims = g.reshape(_keepdims_shape(shape, axis))
    if math.prod(shape) > _COPY_BROADCAST_MAX_SIZE:
        return np.broadcast_to(g_keepdims, shape)
    expanded = np.empty(shape, g_keepdims.dtype)
    expanded[...] = g_keepdims
    return expanded


def _dtype_of(x: Any) -> Any:
    value = value_of(x)
    dtype = getattr(value, "dtype", None)
    return dtype if dtype is not None else np.result_type(value)


def _reduced_size(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return math.prod(shape[a] for a in axes)


# -- sum and mean -------------------------------------------------------------


def _numpy_sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # ndarray.sum, not np.sum, whose Python wrapper costs more than summing
    # a small array.
    if type(x) is np.ndarray:
        return x.sum(axis=axis, keepdims=keepdims)
    return np.sum(x, axis=axis, keepdims=keepdims)


sum_p = Primitive(
    "sum",
    make_impl("sum", _numpy_sum),
    pullbacks=(lambda g, out, x, axis, keepdims: _expand_to_input(g, x, axis),),
    numpy_pullbacks=(lambda g, out, x, axis, keepdims: _expand_to_input_numpy(g, x, axis),),
    jvps=(lambda t, out, x, axis, keepdims: sum(t, axis=axis, keepdims=keepdims),),
)


def sum(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum of ``x`` over ``axis`` (all axes when ``None``)."""
    axis = _normalize_axes(axis, len(shape_of(x)))
    return bind(sum_p, (x,), {"axis": axis, "keepdims": keepdims})


def mean(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
    """Arithmetic mean of ``x`` over ``axis``."""
    shape = shape_of(x)
    axes = _normalize_axes(axis, len(shape))
    count = _reduced_size(shape, axes)
    total = bind(sum_p, (x,), {"axis": axes, "keepdims": keepdims})
    return divide(total, float(count))


# -- var and std ----------------------------------------------------------------


def var(
    x: Any,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    correction: float = 0.0,
    keepdims: bool = False,
) -> Any:
    """Variance of ``x`` over ``axis``: ``sum((x - mean(x))**2) / (N - correction)``.

    ``correction=1`` gives the unbiased sample variance (NumPy's ``ddof``).
    Where ``N - correction <= 0`` the result is NaN, as the Array API
    specifies.
    """
    shape = shape_of(x)
    axes = _normalize_axes(axis, len(shape))
    degrees_of_freedom = _reduced_size(shape, axes) - correction
    centred = subtract(x, mean(x, axis=axes, keepdims=True))
    total = sum(square(centred), axis=axes, keepdims=keepdims)
    if degrees_of_freedom <= 0:
        return multiply(total, float("nan"))
    return divide(total, float(degrees_of_freedom))


def std(
    x: Any,
    /,
    *,
    axis: int | tuple[int, ...] | None = None,
    correction: float = 0.0,
    keepdims: bool = False,
) -> Any:
    """Standard deviation of ``x`` over ``axis``: ``sqrt(var(x, correction=...))``.

    The gradient of a constant slice is 0, not NaN, because ``sqrt`` has a
    finite derivative at 0 and every centred entry is 0.
    """
    return sqrt(var(x, axis=axis, correction=correction, keepdims=keepdims))


# -- max and min ----------------------------------------------------------------


def _extremum_weights(x: Any, out: Any, axis: tuple[int, ...]) -> Any:
    """Weights that share a cotangent equally among the entries equal to the extremum.

    The weights are constants (no derivative), computed on the values only.
    """
    x_value = value_of(x)
    hit = equal(x_value, _expand_to_input(value_of(out), x_value, axis))
    weights = astype(hit, _dtype_of(x))
    return divide(weights, sum(weights, axis=axis, keepdims=True))


def _extremum_pullback(g: Any, out: Any, x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    return multiply(_expand_to_input(g, x, axis), _extremum_weights(x, out, axis))


def _extremum_jvp(t: Any, out: Any, x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    return sum(multiply(t, _extremum_weights(x, out, axis)), axis=axis, keepdims=keepdims)


max_p = Primitive(
    "max",
    make_impl("max"),
    pullbacks=(_extremum_pullback,),
    jvps=(_extremum_jvp,),
)
min_p = Primitive(
    "min",
    make_impl("min"),
    pullbacks=(_extremum_pullback,),
    jvps=(_extremum_jvp,),
)


def _check_not_empty(name: str, x: Any, axes: tuple[int, ...]) -> None:
    shape = shape_of(x)
    if _reduced_size(shape, axes) == 0:
        raise ValueError(
            f"{name} of an array of shape {shape} over axes {axes} reduces over zero elements, "
            "which has no identity. Check the input's size, or use dx.where to supply a default."
        )


def max(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Maximum of ``x`` over ``axis``.

    Entries that tie for the maximum share the gradient equally, so
    ``max([a, a])`` has derivative ``(0.5, 0.5)``, as for ``dx.maximum``.
    """
    axes = _normalize_axes(axis, len(shape_of(x)))
    _check_not_empty("max", x, axes)
    return max_p(x, axis=axes, keepdims=keepdims)


def min(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Minimum of ``x`` over ``axis``; ties share the gradient equally."""
    axes = _normalize_axes(axis, len(shape_of(x)))
    _check_not_empty("min", x, axes)
    return min_p(x, axis=axes, keepdims=keepdims)


# -- shifts along an axis (for the product rules) -----------------------------------


def _slice_along(x: Any, start: int, stop: int, axis: int) -> Any:
    index = [slice(None)] * len(shape_of(x))
    index[axis] = slice(start, stop)
    return tuple(index)


def _constant_slice(x: Any, length: int, axis: int, fill: Any) -> Any:
    """Create a constant with ``x``'s shape, dtype and backend, but ``length`` long along ``axis``."""
    shape = list(shape_of(x))
    shape[axis] = length
    return full(tuple(shape), fill, dtype=_dtype_of(x), backend=backend_of((value_of(x),), "full"))


def _shift_forward(v: Any, k: int, axis: int, fill: float) -> Any:
    """Move ``v`` by ``k`` places towards higher indices along ``axis``; ``fill`` enters at the start."""
    n = shape_of(v)[axis]
    head = _constant_slice(v, k, axis, fill)
    return concat([head, getitem(v, _slice_along(v, 0, n - k, axis))], axis=axis)


def _shift_backward(v: Any, k: int, axis: int) -> Any:
    """Move ``v`` by ``k`` places towards lower indices along ``axis``; zeros enter at the end."""
    n = shape_of(v)[axis]
    tail = _constant_slice(v, k, axis, 0.0)
    return concat([getitem(v, _slice_along(v, k, n, axis)), tail], axis=axis)


# -- cumulative_sum and cumulative_prod ------------------------------------------------


def _reverse_cumsum(g: Any, axis: int) -> Any:
    return flip(cumsum_p(flip(g, axis=axis), axis=axis), axis=axis)


cumsum_p = Primitive(
    "cumulative_sum",
    make_impl("cumsum"),
    pullbacks=(lambda g, out, x, axis: _reverse_cumsum(g, axis),),
    jvps=(lambda t, out, x, axis: cumsum_p(t, axis=axis),),
)


def _scan_levels(x: Any, axis: int) -> list[tuple[Any, int]]:
    """Return the inputs ``(y, k)`` of each step ``y <- y * shift(y, k)`` of the product scan."""
    levels = []
    n = shape_of(x)[axis]
    y, k = x, 1
    while k < n:
        levels.append((y, k))
        y = multiply(y, _shift_forward(y, k, axis, 1.0))
        k *= 2
    return levels


def _cumprod_jvp(t: Any, out: Any, x: Any, axis: int) -> Any:
    # The product rule on each scan step: d(y * s(y)) = dy * s(y) + y * s(dy).
    for y, k in _scan_levels(x, axis):
        t = add(multiply(t, _shift_forward(y, k, axis, 1.0)), multiply(y, _shift_forward(t, k, axis, 0.0)))
    return t


def _cumprod_pullback(g: Any, out: Any, x: Any, axis: int) -> Any:
    # The transpose of each step of _cumprod_jvp, applied from the last step back.
    for y, k in reversed(_scan_levels(x, axis)):
        g = add(multiply(g, _shift_forward(y, k, axis, 1.0)), _shift_backward(multiply(g, y), k, axis))
    return g


cumprod_p = Primitive(
    "cumulative_prod",
    make_impl("cumprod"),
    pullbacks=(_cumprod_pullback,),
    jvps=(_cumprod_jvp,),
)


def _cumulative_axis(name: str, x: Any, axis: int | None) -> int:
    ndim = len(shape_of(x))
    if ndim == 0:
        raise ValueError(f"{name} needs an array with at least one dimension, got a 0-d array")
    if axis is None:
        if ndim > 1:
            raise ValueError(
                f"{name} of an array of shape {shape_of(x)} needs an axis; pass axis=..., or use "
                f"dx.{'cumsum' if name == 'cumulative_sum' else 'cumprod'} to scan the flattened array"
            )
        return 0
    return _normalize_axes(axis, ndim)[0]


def _cumulative(prim: Primitive, x: Any, axis: int, dtype: Any, include_initial: bool, initial: float) -> Any:
    if dtype is not None:
        x = astype(x, dtype)
    out = prim(x, axis=axis)
    if include_initial:
        head = _constant_slice(out, 1, axis, initial)
        out = concat([head, out], axis=axis)
    return out


def cumulative_sum(x: Any, /, *, axis: int | None = None, dtype: Any = None, include_initial: bool = False) -> Any:
    """Cumulative sum of ``x`` along ``axis``.

    ``axis`` may be omitted only for a 1-D array. With ``include_initial``
    the result starts with a 0 and is one longer along ``axis``.
    """
    axis = _cumulative_axis("cumulative_sum", x, axis)
    return _cumulative(cumsum_p, x, axis, dtype, include_initial, 0.0)


def cumulative_prod(x: Any, /, *, axis: int | None = None, dtype: Any = None, include_initial: bool = False) -> Any:
    """Cumulative product of ``x`` along ``axis``.

    The gradient is exact where ``x`` contains zeros: the rules multiply
    and never divide by ``x``. With ``include_initial`` the result starts
    with a 1.
    """
    axis = _cumulative_axis("cumulative_prod", x, axis)
    return _cumulative(cumprod_p, x, axis, dtype, include_initial, 1.0)


def cumsum(x: Any, /, axis: int | None = None, dtype: Any = None) -> Any:
    """Cumulative sum with NumPy's convention: ``axis=None`` scans the flattened array."""
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    return cumulative_sum(x, axis=axis, dtype=dtype)


def cumprod(x: Any, /, axis: int | None = None, dtype: Any = None) -> Any:
    """Cumulative product with NumPy's convention: ``axis=None`` scans the flattened array."""
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    return cumulative_prod(x, axis=axis, dtype=dtype)


# -- prod ----------------------------------------------------------------------------


def _product_of_others(x: Any, axes: tuple[int, ...]) -> Any:
    """Multiply, for each entry ``x[i]``, the other entries of its reduced slice."""
    shape = shape_of(x)
    kept_axes = [d for d in range(len(shape)) if d not in axes]
    order = kept_axes + list(axes)
    moved = permute_dims(x, order)
    moved_shape = shape_of(moved)
    n = _reduced_size(shape, axes)
    if n == 0:
        return zeros_like(x)
    flat = reshape(moved, moved_shape[: len(kept_axes)] + (n,))

    # Exclusive products: left[i] = x[0] ... x[i-1], right[i] = x[i+1] ... x[n-1].
    last = len(kept_axes)
    left = _shift_forward(cumprod_p(flat, axis=last), 1, last, 1.0)
    right = flip(_shift_forward(cumprod_p(flip(flat, axis=last), axis=last), 1, last, 1.0), axis=last)

    others = reshape(multiply(left, right), moved_shape)
    return permute_dims(others, tuple(int(i) for i in np.argsort(order)))


def _prod_pullback(g: Any, out: Any, x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    return multiply(_expand_to_input(g, x, axis), _product_of_others(x, axis))


def _prod_jvp(t: Any, out: Any, x: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    return sum(multiply(t, _product_of_others(x, axis)), axis=axis, keepdims=keepdims)


prod_p = Primitive("prod", make_impl("prod"), pullbacks=(_prod_pullback,), jvps=(_prod_jvp,))


def prod(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
    """Product of ``x`` over ``axis`` (1 over zero elements).

    The gradient with respect to ``x[i]`` is the product of the other
    entries, computed without division, so it is exact where ``x`` contains
    zeros. With one zero only that entry gets a non-zero gradient, and with
    two or more the gradient is 0.
    """
    axes = _normalize_axes(axis, len(shape_of(x)))
    return prod_p(x, axis=axes, keepdims=keepdims)


# -- logsumexp ---------------------------------------------------------------------


def _logsumexp_impl(x: Any, *weights: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    xp = namespace(backend_of((x, *weights), "logsumexp"))
    return _logsumexp_with(xp, x, *weights, axis=axis, keepdims=keepdims)


def _logsumexp_numpy(x: Any, *weights: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    if type(x) is np.ndarray and x.dtype.kind == "f" and not weights:
        # The common case, with array methods (cheaper than the functions
        # on small arrays). With a finite maximum the sum is at least 1, so
        # the logarithm cannot warn and needs no errstate.
        shift = x.max(axis=axis, keepdims=True, initial=-np.inf)
        if np.isfinite(shift).all():
            out = np.log(np.exp(x - shift).sum(axis=axis, keepdims=True)) + shift
            if not keepdims:
                out = out.reshape(tuple(s for i, s in enumerate(out.shape) if i not in axis))
            return out
    return _logsumexp_with(np, x, *weights, axis=axis, keepdims=keepdims)


def _logsumexp_with(xp: Any, x: Any, *weights: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    x = xp.asarray(x)
    if not xp.issubdtype(x.dtype, xp.inexact):
        x = x.astype(xp.result_type(float))

    # Shifting by a finite maximum keeps every exp(x - shift) <= 1. A slice
    # whose maximum is infinite (all -inf, or containing +inf) is not shifted.
    shift = xp.max(x, axis=axis, keepdims=True, initial=-np.inf)
    shift = xp.where(xp.isfinite(shift), shift, 0)
    terms = xp.exp(x - shift)
    if weights:
        terms = terms * weights[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = xp.log(xp.sum(terms, axis=axis, keepdims=True)) + shift
    if not keepdims:
        out = xp.reshape(out, tuple(s for i, s in enumerate(out.shape) if i not in axis))
    return out


# bind() calls this directly when every argument is a NumPy value.
_logsumexp_impl.numpy_impl = _logsumexp_numpy  # type: ignore[attr-defined]


def _softmax_weights(x: Any, out: Any, axis: tuple[int, ...]) -> Any:
    """``exp(x - out)``, and 0 (not NaN) in slices where ``out`` is ``-inf``.

    ``out`` enters through difflux operations, so the weights differentiate
    again (second-order rules).
    """
    out_full = _expand_to_input(out, x, axis)
    empty = equal(value_of(out_full), -np.inf)
    safe_out = where(empty, 0.0, out_full)
    return where(empty, 0.0, exp(subtract(x, safe_out)))


def _logsumexp_pullback_x(g: Any, out: Any, x: Any, *weights: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    w = _softmax_weights(x, out, axis)
    if weights:
        w = multiply(w, weights[0])
    return multiply(_expand_to_input(g, x, axis), w)


def _logsumexp_pullback_b(g: Any, out: Any, x: Any, b: Any, *, axis: tuple[int, ...], keepdims: bool) -> Any:
    w = _softmax_weights(x, out, axis)
    return unbroadcast(multiply(_expand_to_input(g, x, axis), w), shape_of(b))


def _logsumexp_jvp_x(t: Any, out: Any, x: Any, *weights: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    w = _softmax_weights(x, out, axis)
    if weights:
        w = multiply(w, weights[0])
    return sum(multiply(t, w), axis=axis, keepdims=keepdims)


def _logsumexp_jvp_b(t: Any, out: Any, x: Any, b: Any, *, axis: tuple[int, ...], keepdims: bool) -> Any:
    w = _softmax_weights(x, out, axis)
    return sum(multiply(broadcast_to(t, shape_of(x)), w), axis=axis, keepdims=keepdims)


def _softmax_weights_numpy(x: Any, out: Any, axis: tuple[int, ...]) -> Any | None:
    """Return the softmax weights of plain NumPy values, or ``None`` when a slice is empty."""
    out_kept = out.reshape(_keepdims_shape(np.shape(x), axis))
    if (out_kept == -np.inf).any():
        return None  # the rare case: the generic rule handles the empty slices
    return np.exp(x - out_kept)


def _logsumexp_numpy_pullback_x(g: Any, out: Any, x: Any, *weights: Any, axis: tuple[int, ...], keepdims: bool) -> Any:
    w = _softmax_weights_numpy(x, out, axis)
    if w is None:
        return _logsumexp_pullback_x(g, out, x, *weights, axis=axis, keepdims=keepdims)
    if weights:
        w = w * weights[0]
    # The reduced cotangent broadcasts against the weights, which have x's
    # shape, so it need not be expanded first.
    return np.reshape(g, _keepdims_shape(np.shape(x), axis)) * w


def _logsumexp_numpy_pullback_b(g: Any, out: Any, x: Any, b: Any, *, axis: tuple[int, ...], keepdims: bool) -> Any:
    w = _softmax_weights_numpy(x, out, axis)
    if w is None:
        return _logsumexp_pullback_b(g, out, x, b, axis=axis, keepdims=keepdims)
    return sum_like(_expand_to_input_numpy(g, x, axis) * w, b)


logsumexp_p = Primitive(
    "logsumexp",
    _logsumexp_impl,
    pullbacks=(_logsumexp_pullback_x, _logsumexp_pullback_b),
    numpy_pullbacks=(_logsumexp_numpy_pullback_x, _logsumexp_numpy_pullback_b),
    jvps=(_logsumexp_jvp_x, _logsumexp_jvp_b),
)


def logsumexp(
    x: Any,
    /,
    axis: int | tuple[int, ...] | None = None,
    keepdims: bool = False,
    *,
    b: Any = None,
) -> Any:
    """Return ``log(sum(b * exp(x)))`` over ``axis`` without overflow.

    .. math:: \\operatorname{logsumexp}(x) = m + \\log \\sum_i b_i e^{x_i - m},
              \\quad m = \\max_i x_i

    The gradient with respect to ``x`` is ``b * exp(x - out)`` (the softmax
    weights). Entries equal to ``-inf`` get gradient 0, and a slice whose
    entries are all ``-inf`` has value ``-inf`` and gradient 0, not NaN.

    Args:
        x: the exponents.
        axis: the axes to reduce (all when ``None``).
        keepdims: keep the reduced axes with length 1.
        b: optional non-negative scale factors, broadcastable to ``x``'s shape
            and differentiable. A negative weighted sum gives NaN, as in
            ``scipy.special.logsumexp`` without ``return_sign``.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.logsumexp(dx.asarray([1000.0, 1000.0])))  # 1000 + log(2)
        1000.6931471805599
    """
    shape = shape_of(x)
    axes = _normalize_axes(axis, len(shape))
    if b is None:
        return bind(logsumexp_p, (x,), {"axis": axes, "keepdims": keepdims})
    try:
        joint = np.broadcast_shapes(shape, shape_of(b))
    except ValueError:
        joint = None
    if joint != shape:
        raise ValueError(
            f"logsumexp's b has shape {shape_of(b)}, which does not broadcast to x's shape {shape}; "
            "pass b with x's shape or a shape that broadcasts to it"
        )
    return logsumexp_p(x, b, axis=axes, keepdims=keepdims)


# -- diff ------------------------------------------------------------------------


def diff(x: Any, /, *, axis: int = -1, n: int = 1, prepend: Any = None, append: Any = None) -> Any:
    """Take the ``n``-th forward difference ``x[i + 1] - x[i]`` along ``axis``.

    ``prepend`` and ``append`` are joined to ``x`` along ``axis`` first; a
    scalar is taken as a slice of length 1. Both are differentiable.
    """
    ndim = len(shape_of(x))
    if ndim == 0:
        raise ValueError("diff needs an array with at least one dimension, got a 0-d array")
    if n < 0:
        raise ValueError(f"diff's order n must be non-negative, got {n}")
    axis = _normalize_axes(axis, ndim)[0]
    pieces = [x]
    if prepend is not None:
        pieces.insert(0, _boundary(prepend, x, axis))
    if append is not None:
        pieces.append(_boundary(append, x, axis))
    x = concat(pieces, axis=axis)
    for _ in range(n):
        length = shape_of(x)[axis]
        if length == 0:
            break
        x = subtract(getitem(x, _slice_along(x, 1, length, axis)), getitem(x, _slice_along(x, 0, length - 1, axis)))
    return x


def _boundary(value: Any, x: Any, axis: int) -> Any:
    """Turn a scalar ``prepend``/``append`` into a slice of length 1 along ``axis``."""
    if shape_of(value) != ():
        return value
    if isinstance(value, int | float | np.generic):
        return _constant_slice(x, 1, axis, value)
    shape = list(shape_of(x))
    shape[axis] = 1
    return broadcast_to(value, shape)


# -- any, all, count_nonzero (no derivative) ----------------------------------------

any_p = Primitive("any", make_impl("any"), differentiable=False)
all_p = Primitive("all", make_impl("all"), differentiable=False)
count_nonzero_p = Primitive("count_nonzero", make_impl("count_nonzero"), differentiable=False)


def any(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Test whether any entry of ``x`` over ``axis`` is non-zero (``False`` over zero elements)."""
    return any_p(x, axis=_normalize_axes(axis, len(shape_of(x))), keepdims=keepdims)


def all(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Test whether every entry of ``x`` over ``axis`` is non-zero (``True`` over zero elements)."""
    return all_p(x, axis=_normalize_axes(axis, len(shape_of(x))), keepdims=keepdims)


def count_nonzero(x: Any, /, *, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
    """Count the non-zero entries of ``x`` over ``axis``; the result is an integer array."""
    return count_nonzero_p(x, axis=_normalize_axes(axis, len(shape_of(x))), keepdims=keepdims)
