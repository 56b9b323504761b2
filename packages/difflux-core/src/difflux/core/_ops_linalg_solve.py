"""Linear solves, inverses and determinants, with derivative rules.

The rules follow Giles, "An extended collection of matrix derivative results
for forward and reverse mode algorithmic differentiation" (2008).
For ``X = A^{-1} B``: ``dX = A^{-1} (dB - dA X)``, ``B_bar = A^{-T} X_bar``
and ``A_bar = -B_bar X^T``. Every rule calls difflux operations, so
derivatives of any order are available.

Right-hand sides follow the Array API: ``b`` of shape ``(M,)`` is one
vector, any other ``b`` is a (stack of) ``(M, K)`` matrices whose leading
axes broadcast against those of ``a``. The primitives always receive
matrices; the public functions add and remove the vector's axis.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._core import Primitive
from ._dispatch import make_impl, shape_of, unbroadcast
from ._ops_elementwise import add, multiply, negative, subtract
from ._ops_linalg import eye_like, require_matrix, require_square, trace
from ._ops_manipulation import tril, triu
from ._ops_matmul import matmul
from ._ops_shape import broadcast_to, expand_dims, matrix_transpose, reshape, squeeze

# -- right-hand sides ------------------------------------------------------------


def _as_matrix_rhs(a: Any, b: Any, op_name: str) -> tuple[Any, bool]:
    """Return ``b`` as a (stack of) matrices and whether it was one vector."""
    a_shape, b_shape = shape_of(a), shape_of(b)
    n = a_shape[-1]
    if len(b_shape) == 1:
        if b_shape[0] != n:
            raise ValueError(
                f"{op_name}: a has shape {a_shape} but b has shape {b_shape}; a vector right-hand side needs length {n}"
            )
        return reshape(b, (n, 1)), True
    if len(b_shape) == 0 or b_shape[-2] != n:
        raise ValueError(
            f"{op_name}: a has shape {a_shape} but b has shape {b_shape}; b must have shape ({n},) or (..., {n}, K)"
        )
    try:
        np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ValueError(
            f"{op_name}: the batch axes of a (shape {a_shape}) and b (shape {b_shape}) cannot be broadcast together"
        ) from None
    return b, False


def _restore_rhs(x: Any, was_vector: bool) -> Any:
    return squeeze(x, -1) if was_vector else x


# -- solve -----------------------------------------------------------------------


def _solve_cotangent_b(g: Any, out: Any, a: Any, b: Any) -> Any:
    return unbroadcast(solve_p(matrix_transpose(a), g), shape_of(b))


def _solve_cotangent_a(g: Any, out: Any, a: Any, b: Any) -> Any:
    # NOTE: this solves with A^T again when b's cotangent is also needed; the
    # engine calls each argument's rule separately.
    b_bar = solve_p(matrix_transpose(a), g)
    return unbroadcast(negative(matmul(b_bar, matrix_transpose(out))), shape_of(a))


solve_p = Primitive(
    "solve",
    make_impl("solve", np.linalg.solve, "jax.numpy.linalg.solve"),
    pullbacks=(_solve_cotangent_a, _solve_cotangent_b),
    jvps=(
        lambda t, out, a, b: negative(solve_p(a, matmul(t, out))),
        lambda t, out, a, b: broadcast_to(solve_p(a, t), shape_of(out)),
    ),
)


def solve(x1: Any, x2: Any, /) -> Any:
    """Return the solution ``x`` of ``x1 @ x = x2`` for square, invertible ``x1``.

    Args:
        x1: the coefficient matrices, shape ``(..., M, M)``.
        x2: one vector of shape ``(M,)``, or matrices of shape ``(..., M, K)``
            whose leading axes broadcast against those of ``x1``.

    A singular ``x1`` raises ``LinAlgError`` on NumPy and gives ``inf``/``nan``
    on JAX.
    """
    require_square(x1, "solve", "x1")
    b, was_vector = _as_matrix_rhs(x1, x2, "solve")
    return _restore_rhs(solve_p(x1, b), was_vector)


# -- triangular solve -----------------------------------------------------------


def _solve_triangular_numpy(a: Any, b: Any, *, lower: bool, trans: bool, unit_diagonal: bool) -> Any:
    import scipy.linalg

    return scipy.linalg.solve_triangular(
        a, b, trans=int(trans), lower=lower, unit_diagonal=unit_diagonal, check_finite=False
    )


def _triangle(x: Any, lower: bool, unit_diagonal: bool) -> Any:
    """Return the part of ``x`` that a triangular solve reads."""
    if lower:
        return tril(x, k=-1 if unit_diagonal else 0)
    return triu(x, k=1 if unit_diagonal else 0)


def _solve_triangular_cotangent_b(g: Any, out: Any, a: Any, b: Any, **params: Any) -> Any:
    b_bar = solve_triangular_p(a, g, **{**params, "trans": not params["trans"]})
    return unbroadcast(b_bar, shape_of(b))


def _solve_triangular_cotangent_a(
    g: Any, out: Any, a: Any, b: Any, *, lower: bool, trans: bool, unit_diagonal: bool
) -> Any:
    b_bar = solve_triangular_p(a, g, lower=lower, trans=not trans, unit_diagonal=unit_diagonal)
    # The cotangent of op(a) is -b_bar x^T; with op(a) = a^T it is transposed.
    if trans:
        a_bar = negative(matmul(out, matrix_transpose(b_bar)))
    else:
        a_bar = negative(matmul(b_bar, matrix_transpose(out)))
    return unbroadcast(_triangle(a_bar, lower, unit_diagonal), shape_of(a))


def _solve_triangular_tangent_a(
    t: Any, out: Any, a: Any, b: Any, *, lower: bool, trans: bool, unit_diagonal: bool
) -> Any:
    t = _triangle(t, lower, unit_diagonal)
    if trans:
        t = matrix_transpose(t)
    return negative(solve_triangular_p(a, matmul(t, out), lower=lower, trans=trans, unit_diagonal=unit_diagonal))


solve_triangular_p = Primitive(
    "solve_triangular",
    make_impl("solve_triangular", _solve_triangular_numpy, "jax.scipy.linalg.solve_triangular"),
    pullbacks=(_solve_triangular_cotangent_a, _solve_triangular_cotangent_b),
    jvps=(
        _solve_triangular_tangent_a,
        lambda t, out, a, b, **params: broadcast_to(solve_triangular_p(a, t, **params), shape_of(out)),
    ),
)

_TRANS_CODES = {0: False, 1: True, 2: True, "N": False, "T": True, "C": True}


def solve_triangular(a: Any, b: Any, /, *, lower: bool, trans: int | str = 0, unit_diagonal: bool = False) -> Any:
    """Return the solution ``x`` of ``a @ x = b`` (or ``a^T @ x = b``) for triangular ``a``.

    Only the triangle of ``a`` named by ``lower`` is read (without its
    diagonal when ``unit_diagonal``, which takes the diagonal as ones), and
    the cotangent of ``a`` is zero outside that triangle.

    Args:
        a: triangular matrices, shape ``(..., M, M)``.
        b: one vector of shape ``(M,)``, or matrices of shape ``(..., M, K)``
            whose leading axes broadcast against those of ``a``.
        lower: whether ``a`` is lower triangular. It has no default, unlike
            SciPy's ``lower=False``, because a wrong guess silently solves a
            different system.
        trans: ``0`` or ``"N"`` solves ``a x = b``; ``1``, ``"T"``, ``2`` or
            ``"C"`` solve ``a^T x = b`` (real matrices only).
        unit_diagonal: whether to take the diagonal of ``a`` as ones.

    Examples:
        >>> import difflux.core as dx
        >>> L = dx.asarray([[2.0, 0.0], [1.0, 1.0]])
        >>> dx.linalg.solve_triangular(L, dx.asarray([2.0, 3.0]), lower=True).tolist()
        [1.0, 2.0]
    """
    if trans not in _TRANS_CODES:
        raise ValueError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', got {trans!r}")
    require_square(a, "solve_triangular", "a")
    rhs, was_vector = _as_matrix_rhs(a, b, "solve_triangular")
    x = solve_triangular_p(a, rhs, lower=bool(lower), trans=_TRANS_CODES[trans], unit_diagonal=bool(unit_diagonal))
    return _restore_rhs(x, was_vector)


def cholesky_solve(chol: Any, b: Any, /, *, upper: bool = False) -> Any:
    """Return the solution ``x`` of ``A @ x = b`` given the Cholesky factor of ``A``.

    Args:
        chol: ``L`` with ``A = L L^T`` (lower triangular), or ``U`` with
            ``A = U^T U`` when ``upper``; shape ``(..., M, M)``, as returned
            by ``dx.linalg.cholesky``.
        b: one vector of shape ``(M,)``, or matrices of shape ``(..., M, K)``.

    Two triangular solves, each differentiable, so gradients flow to both
    ``chol`` and ``b``.
    """
    lower = not upper
    y = solve_triangular(chol, b, lower=lower, trans=0 if lower else 1)
    return solve_triangular(chol, y, lower=lower, trans=1 if lower else 0)


def cho_solve(c_and_lower: tuple[Any, bool], b: Any, /) -> Any:
    """Return the solution of ``A @ x = b`` from ``(c, lower)``, as ``scipy.linalg.cho_solve``.

    ``c`` is the Cholesky factor of ``A``, and ``lower`` is whether it is
    lower triangular; see :func:`cholesky_solve`.
    """
    c, lower = c_and_lower
    return cholesky_solve(c, b, upper=not lower)


# -- inverse ---------------------------------------------------------------------

inv_p = Primitive(
    "inv",
    make_impl("inv", np.linalg.inv, "jax.numpy.linalg.inv"),
    pullbacks=(lambda g, out, x: negative(matmul(matrix_transpose(out), matmul(g, matrix_transpose(out)))),),
    jvps=(lambda t, out, x: negative(matmul(out, matmul(t, out))),),
)


def inv(x: Any, /) -> Any:
    """Return the inverse of each square matrix in ``x``, shape ``(..., M, M)``.

    Prefer :func:`solve` to ``inv(a) @ b``: it is cheaper and more accurate.
    """
    require_square(x, "inv")
    return inv_p(x)


# -- determinants ---------------------------------------------------------------


def _logdet_tangent(t: Any, x: Any) -> Any:
    """``d log|det x| = trace(x^{-1} dx)``."""
    return trace(solve_p(x, t))


def _scale_inverse_transpose(scale: Any, x: Any) -> Any:
    """Return ``scale[..., None, None] * x^{-T}``."""
    return multiply(expand_dims(expand_dims(scale, -1), -1), matrix_transpose(inv_p(x)))


det_p = Primitive(
    "det",
    make_impl("det", np.linalg.det, "jax.numpy.linalg.det"),
    pullbacks=(lambda g, out, x: _scale_inverse_transpose(multiply(g, out), x),),
    jvps=(lambda t, out, x: multiply(out, _logdet_tangent(t, x)),),
)


def det(x: Any, /) -> Any:
    """Return the determinant of each square matrix in ``x``, shape ``(...)``.

    The derivative is ``det(x) * x^{-T}`` (Jacobi's formula).

    NOTE: the derivative is computed through ``x^{-1}`` and is therefore
    ``nan`` or ``inf`` at singular ``x``, where the true derivative (the
    adjugate's transpose) is finite.
    """
    require_square(x, "det")
    return det_p(x)


class SlogdetResult(NamedTuple):
    """The sign and the natural logarithm of the absolute value of a determinant."""

    sign: Any
    logabsdet: Any


def _slogdet_impl(x: Any) -> tuple[Any, Any]:
    return tuple(_slogdet_dispatch(x))


_slogdet_dispatch = make_impl("slogdet", np.linalg.slogdet, "jax.numpy.linalg.slogdet")

slogdet_p = Primitive(
    "slogdet",
    _slogdet_impl,
    pullbacks=(lambda cts, outs, x: _scale_inverse_transpose(cts[1], x),),
    jvps=(lambda t, outs, x: (None, _logdet_tangent(t, x)),),
    multiple_results=True,
)


def slogdet(x: Any, /) -> SlogdetResult:
    """Return ``(sign, logabsdet)`` of each square matrix, so that ``det = sign * exp(logabsdet)``.

    ``logabsdet`` has derivative ``x^{-T}``. ``sign`` is piecewise constant
    and carries no derivative. At a singular matrix ``sign`` is 0 and
    ``logabsdet`` is ``-inf``.
    """
    require_square(x, "slogdet")
    sign, logabsdet = slogdet_p(x)
    return SlogdetResult(sign, logabsdet)


# -- pseudo-inverse --------------------------------------------------------------


def _pinv_cotangent(g: Any, out: Any, x: Any, rtol: Any) -> Any:
    # The transpose of the tangent rule below, term by term:
    # x_bar = -P^T g P^T + (I - x P) g^T P P^T + P^T P g^T (I - P x).
    p, p_t, g_t = out, matrix_transpose(out), matrix_transpose(g)
    first = negative(matmul(p_t, matmul(g, p_t)))
    left = matmul(g_t, matmul(p, p_t))
    second = subtract(left, matmul(x, matmul(p, left)))
    right = matmul(matmul(p_t, p), g_t)
    third = subtract(right, matmul(matmul(right, p), x))
    return add(add(first, second), third)


def _pinv_tangent(t: Any, out: Any, x: Any, rtol: Any) -> Any:
    # The derivative of P = pinv(x) where the rank of x is locally constant:
    # dP = -P dx P + P P^T dx^T (I - x P) + (I - P x) dx^T P^T P.
    p, p_t, t_t = out, matrix_transpose(out), matrix_transpose(t)
    first = negative(matmul(p, matmul(t, p)))
    left = matmul(p, matmul(p_t, t_t))
    second = subtract(left, matmul(matmul(left, x), p))
    right = matmul(t_t, matmul(p_t, p))
    third = subtract(right, matmul(p, matmul(x, right)))
    return add(add(first, second), third)


pinv_p = Primitive(
    "pinv",
    make_impl("pinv", np.linalg.pinv, "jax.numpy.linalg.pinv"),
    pullbacks=(_pinv_cotangent,),
    jvps=(_pinv_tangent,),
)


def pinv(x: Any, /, *, rtol: float | None = None) -> Any:
    """Return the Moore-Penrose pseudo-inverse of each matrix, shape ``(..., N, M)``.

    Singular values up to ``rtol`` times the largest are treated as zero;
    ``rtol`` defaults to ``max(M, N)`` times the dtype's machine epsilon.

    The derivative is valid where the rank is locally constant. The
    pseudo-inverse is discontinuous where the rank changes, and there the
    derivative describes only the branch of the current rank.
    """
    require_matrix(x, "pinv")
    return pinv_p(x, rtol=rtol)


# -- integer powers -------------------------------------------------------------


def matrix_power(x: Any, n: int, /) -> Any:
    """Return ``x`` multiplied by itself ``n`` times; ``n < 0`` uses ``inv(x)``.

    Uses repeated squaring, so it costs about ``2 log2(|n|)`` products.
    ``n == 0`` gives identity matrices, which do not depend on ``x``.
    """
    size = require_square(x, "matrix_power")
    if not isinstance(n, int | np.integer) or isinstance(n, bool):
        raise TypeError(f"matrix_power needs an integer exponent, got {n!r}")
    n = int(n)
    if n == 0:
        return broadcast_to(eye_like(size, x), shape_of(x))
    if n < 0:
        x, n = inv(x), -n
    result = None
    square = x
    while n:
        if n & 1:
            result = square if result is None else matmul(result, square)
        n >>= 1
        if n:
            square = matmul(square, square)
    return result
