"""Matrix products: ``matmul``, ``tensordot``, ``vecdot``, ``outer``."""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from ._core import Primitive, bind
from ._dispatch import broadcast_tangent, make_impl, shape_of, sum_like, sum_to_shape, unbroadcast
from ._ops_shape import expand_dims, matrix_transpose, reshape

# The parameters of a matmul call: none. bind() only reads them.
_NO_PARAMS: dict[str, Any] = {}


def _as_matrices(g: Any, x: Any, y: Any) -> tuple[Any, Any, Any]:
    """Promote 1-D operands of matmul to matrices, as matmul itself does."""
    # y first: for two vectors the cotangent is 0-d and gains its last axis
    # before the second-to-last one.
    if len(shape_of(y)) == 1:
        y = reshape(y, shape_of(y) + (1,))
        g = expand_dims(g, -1)
    if len(shape_of(x)) == 1:
        x = reshape(x, (1,) + shape_of(x))
        g = expand_dims(g, -2)
    return g, x, y


def _contract_on_jax(g: Any, x: Any, y: Any) -> bool:
    """Whether to express a matmul pullback as one einsum contraction.

    On JAX ``einsum`` lowers to a ``dot_general`` that contracts the right
    axes directly, while ``matmul(g, y.T)`` materialises a transpose that
    XLA's CPU backend does not always fold away (about 10% of an MLP's
    gradient step). On NumPy a transpose is a free view, and ``matmul``
    calls BLAS without ``einsum``'s path search, so NumPy keeps ``matmul``.
    """
    from ._backend import backend_of_value
    from ._core import value_of

    if backend_of_value(value_of(g)) != "jax":
        return False
    batch = shape_of(g)[:-2]
    return shape_of(x)[:-2] == batch and shape_of(y)[:-2] == batch


def _matmul_pullback_x(g: Any, out: Any, x: Any, y: Any) -> Any:
    g2, x2, y2 = _as_matrices(g, x, y)
    if _contract_on_jax(g2, x2, y2):
        from ._ops_einsum import einsum

        gx = einsum("...ij,...kj->...ik", g2, y2)
    else:
        gx = matmul(g2, matrix_transpose(y2))
    return reshape(unbroadcast(gx, shape_of(x2)), shape_of(x))


def _matmul_pullback_y(g: Any, out: Any, x: Any, y: Any) -> Any:
    g2, x2, y2 = _as_matrices(g, x, y)
    if _contract_on_jax(g2, x2, y2):
        from ._ops_einsum import einsum

        gy = einsum("...ki,...kj->...ij", x2, g2)
    else:
        gy = matmul(matrix_transpose(x2), g2)
    return reshape(unbroadcast(gy, shape_of(y2)), shape_of(y))


def _matmul_numpy_pullback_x(g: Any, out: Any, x: Any, y: Any) -> Any:
    if x.ndim < 2 or y.ndim < 2:
        return _matmul_pullback_x(g, out, x, y)
    return sum_to_shape(g @ y.mT, x.shape)


def _matmul_numpy_pullback_y(g: Any, out: Any, x: Any, y: Any) -> Any:
    if x.ndim < 2 or y.ndim < 2:
        return _matmul_pullback_y(g, out, x, y)
    if y.ndim == 2 and x.ndim == 2 and y.flags.f_contiguous and not y.flags.c_contiguous:
        # y is a transposed view, as in the ``x @ w.T`` of a dense layer.
        # The same product computed as (g.T @ x).T has y's layout, so the
        # cotangent of w arrives C-contiguous like w itself. The two orders
        # are the same sums, but BLAS may block them differently, so the
        # last bits can differ from x.T @ g.
        return (g.T @ x).T
    return sum_to_shape(x.mT @ g, y.shape)


matmul_p = Primitive(
    "matmul",
    make_impl("matmul"),
    pullbacks=(_matmul_pullback_x, _matmul_pullback_y),
    numpy_pullbacks=(_matmul_numpy_pullback_x, _matmul_numpy_pullback_y),
    jvps=(lambda t, out, x, y: matmul(t, y), lambda t, out, x, y: matmul(x, t)),
)


def matmul(x1: Any, x2: Any, /) -> Any:
    """Matrix product with NumPy's rules for 1-D operands and batch broadcasting."""
    s1: tuple[int, ...] = shape_of(x1)
    s2: tuple[int, ...] = shape_of(x2)
    if not s1 or not s2:
        raise ValueError(f"matmul does not accept 0-d operands; got shapes {s1} and {s2}")
    k1 = s1[-1]
    k2 = s2[-2:][0]  # the second-to-last axis, or the only one of a vector
    if k1 != k2:
        raise ValueError(
            f"matmul shape mismatch: {s1} @ {s2}; the last axis of the first operand ({k1}) "
            f"must equal the {'second-to-last' if len(s2) > 1 else 'only'} axis of the second ({k2})"
        )
    return bind(matmul_p, (x1, x2), _NO_PARAMS)


# -- linear: x @ weight.T + bias --------------------------------------------------


def _linear_numpy(x: Any, weight: Any, bias: Any) -> Any:
    y = x @ weight.T
    if type(bias) is np.ndarray and bias.dtype == y.dtype:
        # The product is a new array of the result's shape and dtype, so the
        # bias is added in place, which saves an allocation.
        y += bias
        return y
    return y + bias


def _linear_jax(x: Any, weight: Any, bias: Any) -> Any:
    import jax.numpy as jnp

    return jnp.matmul(x, jnp.swapaxes(weight, -1, -2)) + bias


def _as_rows(a: Any, width: int) -> Any:
    """Return ``a`` reshaped to ``(rows, width)``, with its leading axes flattened into one."""
    return reshape(a, (-1, width))


def _linear_pullback_x(g: Any, out: Any, x: Any, weight: Any, bias: Any) -> Any:
    return matmul(g, weight)


def _linear_pullback_weight(g: Any, out: Any, x: Any, weight: Any, bias: Any) -> Any:
    from ._backend import backend_of_value
    from ._core import value_of

    out_features, in_features = shape_of(weight)
    g2, x2 = _as_rows(g, out_features), _as_rows(x, in_features)
    if backend_of_value(value_of(g2)) == "jax":
        # See _contract_on_jax: a dot_general without a materialised transpose.
        from ._ops_einsum import einsum

        return einsum("ko,ki->oi", g2, x2)
    return matmul(matrix_transpose(g2), x2)


def _linear_pullback_bias(g: Any, out: Any, x: Any, weight: Any, bias: Any) -> Any:
    return unbroadcast(g, shape_of(bias))


def _linear_numpy_pullback_weight(g: Any, out: Any, x: Any, weight: Any, bias: Any) -> Any:
    # The product of the generic rule, g2.T @ x2, which comes out with the
    # weight's own C layout.
    out_features, in_features = weight.shape
    return g.reshape(-1, out_features).T @ x.reshape(-1, in_features)


linear_p = Primitive(
    "linear",
    make_impl("linear", _linear_numpy, _linear_jax),
    pullbacks=(_linear_pullback_x, _linear_pullback_weight, _linear_pullback_bias),
    numpy_pullbacks=(
        lambda g, out, x, weight, bias: g @ weight,
        _linear_numpy_pullback_weight,
        lambda g, out, x, weight, bias: sum_like(g, bias),
    ),
    jvps=(
        lambda t, out, x, weight, bias: matmul(t, matrix_transpose(weight)),
        lambda t, out, x, weight, bias: matmul(x, matrix_transpose(t)),
        lambda t, out, x, weight, bias: broadcast_tangent(t, out),
    ),
)


def linear(x: Any, weight: Any, bias: Any = None, /) -> Any:
    """Return ``x @ weight.T + bias``, the affine map of a dense layer.

    ``x`` has shape ``(..., in_features)``, ``weight`` ``(out_features,
    in_features)`` (the layout of PyTorch's ``torch.nn.functional.linear``)
    and ``bias`` ``(out_features,)`` or ``None``. The result has shape
    ``(..., out_features)``. It is one operation for the derivatives, so an
    eager NumPy gradient records one node where the composed form records a
    transpose, a product and a sum, and the weight's gradient comes out in
    the weight's layout.

    Raises:
        ValueError: when ``weight`` is not a matrix, or the shapes of ``x``
            or ``bias`` do not fit it.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> dx.linear(np.ones((2, 3)), np.ones((4, 3)), np.arange(4.0)).tolist()
        [[3.0, 4.0, 5.0, 6.0], [3.0, 4.0, 5.0, 6.0]]
    """
    x_shape, weight_shape = shape_of(x), shape_of(weight)
    if len(weight_shape) != 2:
        raise ValueError(f"linear expects a weight matrix of shape (out_features, in_features), got {weight_shape}")
    if not x_shape or x_shape[-1] != weight_shape[1]:
        raise ValueError(
            f"linear: x of shape {x_shape} does not fit a weight of shape {weight_shape}. "
            f"x needs {weight_shape[1]} features on its last axis."
        )
    if bias is None:
        return matmul(x, matrix_transpose(weight))
    if shape_of(bias) != weight_shape[:1]:
        raise ValueError(f"linear: the bias must have shape ({weight_shape[0]},), got {shape_of(bias)}")
    return bind(linear_p, (x, weight, bias), _NO_PARAMS)


def tensordot(x1: Any, x2: Any, /, *, axes: int | tuple[Any, Any] = 2) -> Any:
    """Contract the given axes of ``x1`` with those of ``x2``.

    ``axes=N`` contracts the last ``N`` axes of ``x1`` with the first ``N``
    axes of ``x2``; ``axes=(a1, a2)`` contracts axis ``a1[i]`` of ``x1`` with
    axis ``a2[i]`` of ``x2``. The result has the remaining axes of ``x1``
    followed by those of ``x2``. It is evaluated, and differentiated, as an
    einsum.
    """
    from ._ops_einsum import einsum
    from ._ops_shape import _normalize_axes

    s1, s2 = shape_of(x1), shape_of(x2)
    if isinstance(axes, tuple | list):
        first, second = axes
        axes1 = _normalize_axes(first, len(s1))
        axes2 = _normalize_axes(second, len(s2))
        if len(axes1) != len(axes2):
            raise ValueError(f"tensordot: axes {axes} name {len(axes1)} axes of x1 but {len(axes2)} of x2")
    else:
        count = int(axes)
        if not 0 <= count <= min(len(s1), len(s2)):
            raise ValueError(f"tensordot: axes={count} is out of range for shapes {s1} and {s2}")
        axes1, axes2 = tuple(range(len(s1) - count, len(s1))), tuple(range(count))
    for a, b in zip(axes1, axes2):
        if s1[a] != s2[b]:
            raise ValueError(
                f"tensordot: axis {a} of x1 (shape {s1}) has length {s1[a]} but axis {b} of x2 "
                f"(shape {s2}) has length {s2[b]}"
            )
    letters = string.ascii_letters
    if len(s1) + len(s2) > len(letters):
        raise ValueError(f"tensordot supports at most 52 axes in total, got shapes {s1} and {s2}")
    term1 = letters[: len(s1)]
    term2 = list(letters[len(s1) : len(s1) + len(s2)])
    for a, b in zip(axes1, axes2):
        term2[b] = term1[a]
    free1 = "".join(c for i, c in enumerate(term1) if i not in axes1)
    free2 = "".join(c for i, c in enumerate(term2) if i not in axes2)
    return einsum(f"{term1},{''.join(term2)}->{free1}{free2}", x1, x2)


def vecdot(x1: Any, x2: Any, /, *, axis: int = -1) -> Any:
    """Return the dot product of the vectors along ``axis``, broadcasting the other axes.

    ``axis`` counts from the end (``-1`` is the last axis), as the Array API
    requires; both operands must have the same length along it.
    """
    from ._ops_elementwise import multiply
    from ._ops_reduction import sum as reduce_sum

    s1, s2 = shape_of(x1), shape_of(x2)
    if not -min(len(s1), len(s2)) <= axis < 0:
        raise ValueError(
            f"vecdot: axis must be negative and count from the end of both operands; got axis {axis} "
            f"for shapes {s1} and {s2}"
        )
    if s1[axis] != s2[axis]:
        raise ValueError(
            f"vecdot: x1 (shape {s1}) has length {s1[axis]} along axis {axis} but x2 (shape {s2}) has length {s2[axis]}"
        )
    return reduce_sum(multiply(x1, x2), axis=axis)


def outer(x1: Any, x2: Any, /) -> Any:
    """Return the outer product of two vectors: ``out[i, j] = x1[i] * x2[j]``."""
    from ._ops_elementwise import multiply

    s1, s2 = shape_of(x1), shape_of(x2)
    if len(s1) != 1 or len(s2) != 1:
        raise ValueError(f"outer takes two 1-D arrays, got shapes {s1} and {s2}")
    return multiply(reshape(x1, (s1[0], 1)), reshape(x2, (1, s2[0])))
