"""Operations the Array API lacks but models need: relu, softplus, sigmoid,
logit, softmax and segment sums, with derivative rules that stay finite for
large inputs."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ._backend import backend_of
from ._core import Primitive, value_of
from ._dispatch import make_impl, shape_of
from ._ops_creation import full
from ._ops_dtype import astype
from ._ops_elementwise import (
    abs,  # noqa: A004 (Array API name)
    add,
    divide,
    exp,
    greater,
    greater_equal,
    multiply,
    negative,
    reciprocal,
    subtract,
    where,
)
from ._ops_index import index_add
from ._ops_reduction import logsumexp

# -- relu -----------------------------------------------------------------------


def _relu_jax(x: Any) -> Any:
    import jax.numpy as jnp

    return jnp.maximum(x, 0)


def _relu_mask(g: Any, x: Any) -> Any:
    # 1 where x > 0 and 0 elsewhere (at 0 and at NaN) in g's dtype. As in
    # maximum's rule, multiplying by a mask is several times faster on NumPy
    # than where() with a mask that follows the data.
    dtype = getattr(g, "dtype", None) or np.result_type(g)
    return astype(greater(x, 0), dtype)


def _relu_numpy_pullback(g: Any, out: Any, x: Any) -> Any:
    return g * (x > 0)


relu_p = Primitive(
    "relu",
    make_impl("relu", lambda x: np.maximum(x, 0), _relu_jax),
    pullbacks=(lambda g, out, x: multiply(g, _relu_mask(g, x)),),
    numpy_pullbacks=(_relu_numpy_pullback,),
    jvps=(lambda t, out, x: multiply(t, _relu_mask(t, x)),),
)


def relu(x: Any, /) -> Any:
    """Return ``max(x, 0)`` element-wise; NaN stays NaN.

    The derivative is 1 where ``x > 0`` and 0 elsewhere, including at
    ``x == 0``, as in PyTorch and ``jax.nn.relu``. The cotangent is
    multiplied by that mask, so an infinite or NaN cotangent gives NaN where
    ``x <= 0`` (as with :func:`maximum`).
    """
    return relu_p(x)


# -- sigmoid, logit, softplus ---------------------------------------------------


def _expit_numpy(x: Any) -> Any:
    from scipy.special import expit

    return expit(x)


def _logit_numpy(x: Any) -> Any:
    from scipy.special import logit

    return logit(x)


def _softplus_numpy(x: Any) -> Any:
    # np.logaddexp evaluates log(exp(0) + exp(x)) without overflowing exp at
    # large x (a test checks x = 1000).
    return np.logaddexp(0.0, x)


def _sigmoid_derivative(out: Any) -> Any:
    return multiply(out, subtract(1.0, out))


sigmoid_p = Primitive(
    "sigmoid",
    make_impl("sigmoid", _expit_numpy, "jax.nn.sigmoid"),
    pullbacks=(lambda g, out, x: multiply(g, _sigmoid_derivative(out)),),
    jvps=(lambda t, out, x: multiply(t, _sigmoid_derivative(out)),),
)


def _logit_derivative(p: Any) -> Any:
    return reciprocal(multiply(p, subtract(1.0, p)))


logit_p = Primitive(
    "logit",
    make_impl("logit", _logit_numpy, "jax.scipy.special.logit"),
    pullbacks=(lambda g, out, p: multiply(g, _logit_derivative(p)),),
    jvps=(lambda t, out, p: multiply(t, _logit_derivative(p)),),
)


def _softplus_slope(x: Any) -> Any:
    # sigmoid(x) from exp(-|x|), the term that the value of softplus computes too. A compiled
    # program that needs both (a log density and its gradient) then computes one exponential.
    e = exp(negative(abs(x)))
    return divide(where(greater_equal(x, 0.0), 1.0, e), add(1.0, e))


softplus_p = Primitive(
    "softplus",
    make_impl("softplus", _softplus_numpy, "jax.nn.softplus"),
    pullbacks=(lambda g, out, x: multiply(g, _softplus_slope(x)),),
    jvps=(lambda t, out, x: multiply(t, _softplus_slope(x)),),
)


def sigmoid(x: Any, /) -> Any:
    """Return the logistic function ``1 / (1 + exp(-x))`` element-wise.

    Its derivative is ``sigmoid(x) * (1 - sigmoid(x))``, which is 0 (not
    NaN) where the value saturates at 0 or 1.
    """
    return sigmoid_p(x)


expit = sigmoid
"""SciPy's name for :func:`sigmoid`."""


def logit(p: Any, /) -> Any:
    """Return ``log(p / (1 - p))`` element-wise, the inverse of :func:`sigmoid`.

    Its derivative is ``1 / (p * (1 - p))``, infinite at ``p = 0`` and ``p = 1``.
    """
    return logit_p(p)


def softplus(x: Any, /) -> Any:
    """Return ``log(1 + exp(x))`` element-wise without overflow.

    The derivative is ``sigmoid(x)``. For large positive ``x`` the value is
    ``x`` and the derivative 1, and for large negative ``x`` both approach
    ``exp(x)``, with no overflow or NaN at any finite ``x``.

    Use ``dx.softplus(x)`` rather than ``dx.log1p(dx.exp(x))``. The composed
    form overflows ``exp`` for ``x > 709`` in float64 (``x > 88`` in float32):
    its value becomes ``inf`` and its gradient NaN.

    Examples:
        >>> import difflux.core as dx
        >>> value, slope = dx.value_and_grad(dx.softplus)(1000.0)
        >>> float(value), float(slope)
        (1000.0, 1.0)
    """
    return softplus_p(x)


def log_sigmoid(x: Any, /) -> Any:
    """Return ``log(sigmoid(x)) = -softplus(-x)`` element-wise, stable for large ``|x|``."""
    return negative(softplus(negative(x)))


# -- softmax ------------------------------------------------------------------------


def log_softmax(x: Any, /, axis: int | tuple[int, ...] = -1) -> Any:
    """Return ``x - logsumexp(x)`` over ``axis``, the logarithm of :func:`softmax`.

    Entries equal to ``-inf`` give ``-inf`` with gradient 0. A slice whose
    entries are all ``-inf`` has no normalisation and gives NaN, as in
    ``jax.nn.log_softmax``.
    """
    return subtract(x, logsumexp(x, axis=axis, keepdims=True))


def softmax(x: Any, /, axis: int | tuple[int, ...] = -1) -> Any:
    """Return ``exp(x) / sum(exp(x))`` over ``axis``, computed without overflow.

    .. math:: \\operatorname{softmax}(x)_i = \\exp(x_i - \\operatorname{logsumexp}(x))
    """
    return exp(log_softmax(x, axis=axis))


# -- segment_sum ---------------------------------------------------------------------


def _is_traced(value: Any) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(value, jax.core.Tracer)


def segment_sum(data: Any, segment_ids: Any, num_segments: int | None = None) -> Any:
    """Sum the rows of ``data`` that share a segment id; differentiable in ``data``.

    ``out[s] = sum(data[i] for i where segment_ids[i] == s)``, and a segment
    with no rows is 0.

    Args:
        data: an array of shape ``(n, *rest)``.
        segment_ids: ``n`` integers in ``[0, num_segments)``, in any order.
        num_segments: the number of segments (rows of the result). When
            ``None`` it is ``max(segment_ids) + 1``, which needs concrete ids,
            so pass it inside ``jax.jit``.

    Returns:
        An array of shape ``(num_segments, *rest)``.

    NOTE: ids inside ``jax.jit`` cannot be checked. There a negative id counts
    from the end and an id ``>= num_segments`` is dropped, following JAX's
    indexed updates.

    Examples:
        >>> import difflux.core as dx
        >>> dx.segment_sum(dx.asarray([1.0, 2.0, 3.0]), [0, 2, 0], 3).tolist()
        [4.0, 0.0, 2.0]
    """
    ids = value_of(segment_ids)
    if isinstance(ids, list | tuple):
        ids = np.asarray(ids, dtype=np.int64)
    ids_dtype = getattr(ids, "dtype", None)
    if ids_dtype is None or np.dtype(ids_dtype).kind not in "iu":
        raise TypeError(f"segment_ids must be an integer array, got {type(ids).__name__} of dtype {ids_dtype}")
    shape = shape_of(data)
    if len(shape) == 0 or shape_of(ids) != shape[:1]:
        raise ValueError(
            f"segment_ids must be a 1-D array with one id per row of data: data has shape {shape}, "
            f"segment_ids have shape {shape_of(ids)}"
        )

    traced = _is_traced(ids)
    if num_segments is None:
        if traced:
            raise ValueError("segment_sum needs num_segments inside jax.jit, where the ids' maximum is not known")
        num_segments = int(ids.max()) + 1 if shape[0] else 0
    if not traced and shape[0]:
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= num_segments:
            raise ValueError(
                f"segment_ids must lie in [0, {num_segments}), but they range from {low} to {high}. "
                "Pass a larger num_segments or fix the ids."
            )

    data_value = value_of(data)
    dtype = getattr(data_value, "dtype", None)
    if dtype is None:
        dtype = np.result_type(data_value)
    zeros = full((int(num_segments), *shape[1:]), 0, dtype=dtype, backend=backend_of((data_value,), "segment_sum"))
    return index_add(zeros, ids, data)
