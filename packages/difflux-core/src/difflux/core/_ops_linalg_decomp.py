"""Matrix decompositions with derivative rules: Cholesky, symmetric
eigendecomposition, singular value decomposition and QR.

``cholesky``, ``eigh`` and ``eigvalsh`` read only the symmetric part of their
input: the public function passes ``(x + x^T) / 2`` to the primitive. The
rules can then assume symmetric tangents, and the symmetrisation's own
pullback makes every cotangent symmetric, on both backends alike (NumPy's
routines read one triangle, JAX's symmetrise).

Every rule calls difflux operations, so derivatives of any order are
available.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._core import Primitive
from ._dispatch import make_impl, shape_of
from ._ops_elementwise import add, divide, equal, multiply, square, subtract, where
from ._ops_linalg import (
    constant_like,
    diag_embed,
    eye_like,
    require_matrix,
    require_square,
    scale_columns,
    symmetrize,
)
from ._ops_linalg_solve import solve_triangular_p
from ._ops_manipulation import concat, tril
from ._ops_matmul import matmul
from ._ops_reduction import sum as reduce_sum
from ._ops_shape import expand_dims, getitem, matrix_transpose


def _tuple_results(numpy_fn: Any, jax_path: str, name: str, **fixed: Any) -> Any:
    """An implementation returning a plain tuple from a function returning a named tuple."""
    impl = make_impl(name, lambda x: numpy_fn(x, **fixed), _lazy(jax_path, fixed))

    def tuple_impl(x: Any) -> tuple[Any, ...]:
        return tuple(impl(x))

    return tuple_impl


def _lazy(path: str, fixed: dict[str, Any]) -> Any:
    def call(x: Any) -> Any:
        import importlib

        module_name, _, attribute = path.rpartition(".")
        return getattr(importlib.import_module(module_name), attribute)(x, **fixed)

    return call


def _diagonal_of_product(a: Any, b: Any) -> Any:
    """Return the diagonal of ``a^T @ b`` without forming the product."""
    return reduce_sum(multiply(a, b), axis=-2)


# -- Cholesky --------------------------------------------------------------------


def _phi_weights(like: Any) -> Any:
    """Return the mask of Murray's Phi: 1 below the diagonal, 1/2 on it, 0 above."""
    n = shape_of(like)[-1]
    return constant_like(np.tril(np.ones((n, n)), -1) + 0.5 * np.eye(n), like)


def _cholesky_cotangent(g: Any, out: Any, x: Any) -> Any:
    # Murray, "Differentiation of the Cholesky decomposition" (2016),
    # arXiv:1602.07527, section 3: x_bar = L^{-T} Phi(L^T L_bar) L^{-1}. Only
    # its symmetric part matters, and the symmetrisation in cholesky() takes it.
    phi = multiply(matmul(matrix_transpose(out), g), _phi_weights(out))
    left = solve_triangular_p(out, phi, lower=True, trans=True, unit_diagonal=False)
    right = solve_triangular_p(out, matrix_transpose(left), lower=True, trans=True, unit_diagonal=False)
    return matrix_transpose(right)


def _cholesky_tangent(t: Any, out: Any, x: Any) -> Any:
    # From dx = dL L^T + L dL^T with L^{-1} dL lower triangular:
    # dL = L Phi(L^{-1} dx L^{-T}).
    left = solve_triangular_p(out, t, lower=True, trans=False, unit_diagonal=False)
    inner = solve_triangular_p(out, matrix_transpose(left), lower=True, trans=False, unit_diagonal=False)
    return matmul(out, multiply(matrix_transpose(inner), _phi_weights(out)))


def _cholesky_numpy(x: Any) -> Any:
    try:
        return np.linalg.cholesky(x)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(
            f"cholesky failed on a matrix of shape {np.shape(x)}: it is not positive definite "
            "(a pivot was zero or negative). Check the input's eigenvalues, or add a small "
            "multiple of the identity (jitter)."
        ) from None


cholesky_p = Primitive(
    "cholesky",
    make_impl("cholesky", _cholesky_numpy, "jax.numpy.linalg.cholesky"),
    pullbacks=(_cholesky_cotangent,),
    jvps=(_cholesky_tangent,),
)


def cholesky(x: Any, /, *, upper: bool = False) -> Any:
    """Return the Cholesky factor of each symmetric positive-definite matrix in ``x``.

    ``x = L @ L^T`` with ``L`` lower triangular and a positive diagonal, or
    ``x = U^T @ U`` with ``U = L^T`` when ``upper``. Only the symmetric part
    ``(x + x^T) / 2`` is read, so the gradient is symmetric.

    A matrix that is not positive definite raises ``LinAlgError`` on NumPy
    and gives ``nan`` entries on JAX (which cannot raise inside ``jit``).

    Examples:
        >>> import difflux.core as dx
        >>> dx.linalg.cholesky(dx.asarray([[4.0, 2.0], [2.0, 2.0]])).tolist()
        [[2.0, 0.0], [1.0, 1.0]]
    """
    require_square(x, "cholesky")
    factor = cholesky_p(symmetrize(x))
    return matrix_transpose(factor) if upper else factor


# -- symmetric eigendecomposition ----------------------------------------------------


def _inverse_gaps(w: Any) -> Any:
    """Return ``F`` with ``F[..., i, j] = 1 / (w_j - w_i)`` off the diagonal and 0 on it.

    Equal eigenvalues give ``inf`` off the diagonal: the eigenvectors of a
    repeated eigenvalue are not unique, and neither is their derivative.
    """
    gaps = subtract(expand_dims(w, -2), expand_dims(w, -1))
    on_diagonal = equal(eye_like(shape_of(w)[-1], w), 1.0)
    return where(on_diagonal, 0.0, divide(1.0, where(on_diagonal, 1.0, gaps)))


def _eigh_cotangent(cts: tuple[Any, Any], outs: tuple[Any, Any], x: Any) -> Any:
    # Giles, "An extended collection of matrix derivative results for forward
    # and reverse mode algorithmic differentiation" (2008), eigenvalues of a
    # symmetric matrix: x_bar = V (diag(w_bar) + F * (V^T V_bar)) V^T.
    w_bar, v_bar = cts
    w, v = outs
    inner = add(diag_embed(w_bar), multiply(_inverse_gaps(w), matmul(matrix_transpose(v), v_bar)))
    return matmul(v, matmul(inner, matrix_transpose(v)))


def _eigh_tangent(t: Any, outs: tuple[Any, Any], x: Any) -> tuple[Any, Any]:
    # With M = V^T dx V: dw = diag(M) and dV = V (F * M).
    w, v = outs
    m = matmul(matrix_transpose(v), matmul(t, v))
    dw = _diagonal_of_product(v, matmul(t, v))
    return dw, matmul(v, multiply(_inverse_gaps(w), m))


eigh_p = Primitive(
    "eigh",
    _tuple_results(np.linalg.eigh, "jax.numpy.linalg.eigh", "eigh"),
    pullbacks=(_eigh_cotangent,),
    jvps=(_eigh_tangent,),
    multiple_results=True,
)


class EighResult(NamedTuple):
    """Eigenvalues in ascending order and the matching eigenvectors as columns."""

    eigenvalues: Any
    eigenvectors: Any


def eigh(x: Any, /) -> EighResult:
    """Return the eigenvalues and eigenvectors of each symmetric matrix in ``x``.

    ``x = V @ diag(w) @ V^T`` with ``w`` (shape ``(..., N)``) ascending and
    orthonormal columns ``V`` (shape ``(..., N, N)``). Only the symmetric part
    ``(x + x^T) / 2`` is read.

    Each eigenvector's sign is arbitrary, so only functions that do not
    depend on the signs (``V @ diag(f(w)) @ V^T``, ``V**2``, projections)
    have a well-defined derivative with respect to ``V``.

    NOTE: the derivative of ``V`` divides by the gaps ``w_j - w_i`` and is
    ``inf`` or ``nan`` when two eigenvalues are equal, where the eigenvectors
    are not unique. The derivative of the eigenvalues alone stays finite
    there: use :func:`eigvalsh` when only they are needed.
    """
    require_square(x, "eigh")
    w, v = eigh_p(symmetrize(x))
    return EighResult(w, v)


def _eigvalsh_cotangent(g: Any, out: Any, x: Any) -> Any:
    _, v = eigh_p(x)
    return matmul(scale_columns(v, g), matrix_transpose(v))


def _eigvalsh_tangent(t: Any, out: Any, x: Any) -> Any:
    _, v = eigh_p(x)
    return _diagonal_of_product(v, matmul(t, v))


eigvalsh_p = Primitive(
    "eigvalsh",
    make_impl("eigvalsh", np.linalg.eigvalsh, "jax.numpy.linalg.eigvalsh"),
    pullbacks=(_eigvalsh_cotangent,),
    jvps=(_eigvalsh_tangent,),
)


def eigvalsh(x: Any, /) -> Any:
    """Return the eigenvalues of each symmetric matrix in ``x``, ascending, shape ``(..., N)``.

    The derivative ``V diag(w_bar) V^T`` needs the eigenvectors, which the
    rule computes when a derivative is requested. It stays finite at
    repeated eigenvalues, where the individual eigenvalues are not
    differentiable. There it depends on the eigenvectors that LAPACK returns,
    except for functions symmetric in the repeated eigenvalues (such as their
    sum), whose gradient it gives exactly.
    """
    require_square(x, "eigvalsh")
    return eigvalsh_p(symmetrize(x))


# -- singular value decomposition ---------------------------------------------------


def _svd_pieces(outs: tuple[Any, Any, Any]) -> tuple[Any, Any, Any, Any, Any]:
    u, s, vh = outs
    v = matrix_transpose(vh)
    s_row = expand_dims(s, -2)  # s_j along columns
    s_col = expand_dims(s, -1)  # s_i along rows
    return u, v, s_row, s_col, _inverse_gaps(square(s))


def _svd_tangent(t: Any, outs: tuple[Any, Any, Any], x: Any) -> tuple[Any, Any, Any]:
    # Differentiating x = U S V^T, with U^T dU and V^T dV antisymmetric on the
    # singular subspaces, gives, with P = U^T dx V and F_ij = 1 / (s_j^2 - s_i^2):
    #   dS = diag(P)
    #   dU = U (F * (P S + S P^T)) + (I - U U^T) dx V S^{-1}
    #   dV = V (F * (S P + P^T S)) + (I - V V^T) dx^T U S^{-1}
    u, v, s_row, s_col, f = _svd_pieces(outs)
    t_v = matmul(t, v)
    p = matmul(matrix_transpose(u), t_v)
    p_t = matrix_transpose(p)
    ds = _diagonal_of_product(u, t_v)

    du_inside = matmul(u, multiply(f, add(multiply(p, s_row), multiply(s_col, p_t))))
    du_outside = subtract(t_v, matmul(u, p))
    du = add(du_inside, divide(du_outside, s_row))

    t_u = matmul(matrix_transpose(t), u)
    dv_inside = matmul(v, multiply(f, add(multiply(s_col, p), multiply(p_t, s_row))))
    dv_outside = subtract(t_u, matmul(v, p_t))
    dv = add(dv_inside, divide(dv_outside, s_row))
    return du, ds, matrix_transpose(dv)


def _svd_cotangent(cts: tuple[Any, Any, Any], outs: tuple[Any, Any, Any], x: Any) -> Any:
    # The transpose of _svd_tangent: with J = F * (U^T U_bar) and
    # K = F * (V^T V_bar), the cotangent of P is
    #   (J + J^T) S + S (K + K^T) + diag(S_bar),
    # and the terms outside the singular subspaces add
    #   (I - U U^T) U_bar S^{-1} V^T + U S^{-1} V_bar^T (I - V V^T).
    u_bar, s_bar, vh_bar = cts
    u, v, s_row, s_col, f = _svd_pieces(outs)
    _, _, vh = outs
    j = multiply(f, matmul(matrix_transpose(u), u_bar))
    k = multiply(f, matmul(vh, matrix_transpose(vh_bar)))
    p_bar = add(
        add(multiply(add(j, matrix_transpose(j)), s_row), multiply(s_col, add(k, matrix_transpose(k)))),
        diag_embed(s_bar),
    )
    inside = matmul(u, matmul(p_bar, vh))

    u_scaled = divide(u_bar, s_row)
    u_outside = matmul(subtract(u_scaled, matmul(u, matmul(matrix_transpose(u), u_scaled))), vh)
    v_outside = matmul(divide(u, s_row), subtract(vh_bar, matmul(matmul(vh_bar, v), vh)))
    return add(inside, add(u_outside, v_outside))


svd_p = Primitive(
    "svd",
    _tuple_results(np.linalg.svd, "jax.numpy.linalg.svd", "svd", full_matrices=False),
    pullbacks=(_svd_cotangent,),
    jvps=(_svd_tangent,),
    multiple_results=True,
)


class SVDResult(NamedTuple):
    """The factors of ``x = U @ diag(S) @ Vh``."""

    U: Any
    S: Any
    Vh: Any


def svd(x: Any, /, *, full_matrices: bool = False) -> SVDResult:
    """Return the reduced singular value decomposition ``x = U @ diag(S) @ Vh``.

    For ``x`` of shape ``(..., M, N)`` and ``K = min(M, N)``: ``U`` has shape
    ``(..., M, K)``, ``S`` (descending) ``(..., K)`` and ``Vh`` ``(..., K, N)``.

    Each pair of singular vectors is determined only up to a common sign, so
    only functions that do not depend on the signs (``U @ diag(f(S)) @ Vh``,
    say) have a well-defined derivative with respect to ``U`` and ``Vh``.

    NOTE: the derivative divides by ``s_j^2 - s_i^2`` and by ``s_i``, so it is
    ``inf`` or ``nan`` for repeated or zero singular values. Use
    :func:`svdvals` when only the singular values are needed.
    """
    require_matrix(x, "svd")
    if full_matrices:
        raise NotImplementedError(
            "svd(full_matrices=True) is not supported: the extra singular vectors are not unique and "
            "have no derivative. Use full_matrices=False."
        )
    u, s, vh = svd_p(x)
    return SVDResult(u, s, vh)


def _svdvals_cotangent(g: Any, out: Any, x: Any) -> Any:
    u, _, vh = svd_p(x)
    return matmul(scale_columns(u, g), vh)


def _svdvals_tangent(t: Any, out: Any, x: Any) -> Any:
    u, _, vh = svd_p(x)
    return _diagonal_of_product(u, matmul(t, matrix_transpose(vh)))


def _svdvals_numpy(x: Any) -> Any:
    return np.linalg.svd(x, compute_uv=False)


svdvals_p = Primitive(
    "svdvals",
    make_impl("svdvals", _svdvals_numpy, "jax.numpy.linalg.svdvals"),
    pullbacks=(_svdvals_cotangent,),
    jvps=(_svdvals_tangent,),
)


def svdvals(x: Any, /) -> Any:
    """Return the singular values of each matrix in ``x``, descending, shape ``(..., K)``.

    The derivative ``U diag(s_bar) Vh`` needs the singular vectors, which the
    rule computes when a derivative is requested.
    """
    require_matrix(x, "svdvals")
    return svdvals_p(x)


# -- QR ----------------------------------------------------------------------------


def _strictly_lower(x: Any) -> Any:
    return tril(x, k=-1)


def _right_solve_upper(b: Any, r: Any) -> Any:
    """Return ``b @ r^{-1}`` for upper triangular ``r``."""
    transposed = solve_triangular_p(r, matrix_transpose(b), lower=False, trans=True, unit_diagonal=False)
    return matrix_transpose(transposed)


def _square_qr_tangent(t: Any, q: Any, r: Any) -> tuple[Any, Any]:
    # For M >= N, with B = dx R^{-1} and C = Q^T B: Q^T dQ is antisymmetric and
    # dR R^{-1} is upper triangular, which fixes
    #   Omega = low(C) - low(C)^T,  dR = (C - Omega) R,  dQ = Q Omega + B - Q C,
    # where low() keeps the part strictly below the diagonal.
    b = _right_solve_upper(t, r)
    c = matmul(matrix_transpose(q), b)
    low = _strictly_lower(c)
    omega = subtract(low, matrix_transpose(low))
    dr = matmul(subtract(c, omega), r)
    dq = add(matmul(q, omega), subtract(b, matmul(q, c)))
    return dq, dr


def _square_qr_cotangent(q_bar: Any, r_bar: Any, q: Any, r: Any) -> Any:
    # The transpose of _square_qr_tangent. With D = R_bar R^T - Q^T Q_bar, the
    # cotangent of C is D with its strictly-upper part mirrored below the
    # diagonal, and x_bar = (Q_bar + Q C_bar) R^{-T}.
    d = subtract(matmul(r_bar, matrix_transpose(r)), matmul(matrix_transpose(q), q_bar))
    upper_strict = subtract(d, tril(d))
    c_bar = add(subtract(d, _strictly_lower(d)), matrix_transpose(upper_strict))
    b_bar = add(q_bar, matmul(q, c_bar))
    return matrix_transpose(
        solve_triangular_p(r, matrix_transpose(b_bar), lower=False, trans=False, unit_diagonal=False)
    )


def _qr_tangent(t: Any, outs: tuple[Any, Any], x: Any) -> tuple[Any, Any]:
    q, r = outs
    m, n = shape_of(x)[-2:]
    if m >= n:
        return _square_qr_tangent(t, q, r)
    # Wide x = [X | Y] with X square: Q R_1 = X is a square QR and R_2 = Q^T Y.
    square = (Ellipsis, slice(None), slice(0, m))
    rest = (Ellipsis, slice(None), slice(m, None))
    dq, dr1 = _square_qr_tangent(getitem(t, square), q, getitem(r, square))
    y, dy = getitem(x, rest), getitem(t, rest)
    dr2 = add(matmul(matrix_transpose(dq), y), matmul(matrix_transpose(q), dy))
    return dq, concat([dr1, dr2], axis=-1)


def _qr_cotangent(cts: tuple[Any, Any], outs: tuple[Any, Any], x: Any) -> Any:
    q_bar, r_bar = cts
    q, r = outs
    m, n = shape_of(x)[-2:]
    if m >= n:
        return _square_qr_cotangent(q_bar, r_bar, q, r)
    r1_bar = getitem(r_bar, (Ellipsis, slice(None), slice(0, m)))
    r2_bar = getitem(r_bar, (Ellipsis, slice(None), slice(m, None)))
    y = getitem(x, (Ellipsis, slice(None), slice(m, None)))
    # R_2 = Q^T Y sends Y R_2_bar^T into Q's cotangent and Q R_2_bar into Y's.
    q_bar_total = add(q_bar, matmul(y, matrix_transpose(r2_bar)))
    x_bar = _square_qr_cotangent(q_bar_total, r1_bar, q, getitem(r, (Ellipsis, slice(None), slice(0, m))))
    return concat([x_bar, matmul(q, r2_bar)], axis=-1)


qr_p = Primitive(
    "qr",
    _tuple_results(np.linalg.qr, "jax.numpy.linalg.qr", "qr", mode="reduced"),
    pullbacks=(_qr_cotangent,),
    jvps=(_qr_tangent,),
    multiple_results=True,
)


class QRResult(NamedTuple):
    """The factors of ``x = Q @ R``."""

    Q: Any
    R: Any


def qr(x: Any, /, *, mode: str = "reduced") -> QRResult:
    """Return the reduced QR decomposition ``x = Q @ R`` of each matrix in ``x``.

    For ``x`` of shape ``(..., M, N)`` and ``K = min(M, N)``: ``Q`` has
    orthonormal columns, shape ``(..., M, K)``, and ``R`` is upper
    triangular, shape ``(..., K, N)``. The signs of ``R``'s diagonal follow
    LAPACK and may be negative.

    The derivative needs the leading ``K`` by ``K`` block of ``R`` to be
    invertible, so ``x`` must have full rank.
    """
    require_matrix(x, "qr")
    if mode != "reduced":
        raise NotImplementedError(
            f"qr(mode={mode!r}) is not supported: only mode='reduced' has unique factors with a derivative. "
            "Use mode='reduced'."
        )
    q, r = qr_p(x)
    return QRResult(q, r)
