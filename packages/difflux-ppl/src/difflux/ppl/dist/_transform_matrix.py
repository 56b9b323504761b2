"""Transforms whose events are vectors or matrices: simplex, ordered and Cholesky maps.

Public through :mod:`difflux.ppl.dist.transforms`, which documents the conventions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import difflux.core as dx

from . import constraints
from ._transform_base import Transform
from ._util import Shape

# -- vector and matrix transforms ------------------------------------------------------


class StickBreakingTransform(Transform):
    r"""The stick-breaking map from :math:`\mathbb{R}^{K-1}` onto the :math:`K`-simplex.

    .. math::

        z_i = \sigma(x_i - \log(K - 1 - i)),\quad
        y_i = z_i \prod_{j<i} (1 - z_j),\quad
        y_{K-1} = \prod_{j<K-1} (1 - z_j),

    for :math:`i = 0, \dots, K-2`. The offset makes ``x = 0`` the simplex's
    centre. The Jacobian of the first ``K - 1`` outputs is triangular, so
    :math:`\log|J| = \sum_i [\log z_i + \log(1 - z_i) + \sum_{j<i} \log(1 - z_j)]`.
    """

    domain = constraints.real_vector
    codomain = constraints.simplex

    @staticmethod
    def _offset(x: Any, k_minus_1: int) -> Any:
        return dx.asarray(np.log(np.arange(k_minus_1, 0, -1, dtype=np.float64)), dtype=x.dtype, backend=_backend(x))

    def __call__(self, x: Any) -> Any:
        shifted = x - self._offset(x, x.shape[-1])
        log_z = dx.log_sigmoid(shifted)
        log_one_minus_z = dx.log_sigmoid(-shifted)
        # log of the stick left before each break, and after the last one.
        log_left = dx.cumsum(log_one_minus_z, axis=-1)
        log_left_before = dx.concat([dx.zeros_like(log_left[..., :1]), log_left[..., :-1]], axis=-1)
        y_head = dx.exp(log_z + log_left_before)
        return dx.concat([y_head, dx.exp(log_left[..., -1:])], axis=-1)

    def _inverse(self, y: Any) -> Any:
        head = y[..., :-1]
        left_before = 1.0 - dx.concat([dx.zeros_like(head[..., :1]), dx.cumsum(head, axis=-1)[..., :-1]], axis=-1)
        # z = y_i / left, so logit(z) = log(y_i) - log(left - y_i).
        left_after = dx.concat([left_before[..., 1:], y[..., -1:]], axis=-1)
        return dx.log(head) - dx.log(left_after) + self._offset(y, head.shape[-1])

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        shifted = x - self._offset(x, x.shape[-1])
        log_one_minus_z = dx.log_sigmoid(-shifted)
        log_left_before = dx.cumsum(log_one_minus_z, axis=-1) - log_one_minus_z
        return dx.sum(dx.log_sigmoid(shifted) + log_one_minus_z + log_left_before, axis=-1)

    def forward_shape(self, shape: Shape) -> Shape:
        return tuple(shape[:-1]) + (shape[-1] + 1,)

    def inverse_shape(self, shape: Shape) -> Shape:
        return tuple(shape[:-1]) + (shape[-1] - 1,)


def _backend(x: Any) -> str:
    from ._util import backend_of_params

    return backend_of_params(x)


def _triangular_size_to_dim(size: int, *, with_diagonal: bool) -> int:
    """Return ``n`` such that an ``n x n`` triangle has ``size`` entries."""
    # size = n(n+1)/2 with the diagonal, n(n-1)/2 without.
    root = (math.isqrt(8 * size + 1) - 1) // 2
    n = root if with_diagonal else root + 1
    expected = n * (n + 1) // 2 if with_diagonal else n * (n - 1) // 2
    if expected != size:
        kind = "n(n+1)/2" if with_diagonal else "n(n-1)/2"
        raise ValueError(f"a vector of length {size} does not fill a triangle: its length must be {kind} for some n")
    return n


def _strict_lower_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the (row, column) indices of the strictly lower triangle, row by row."""
    return np.tril_indices(n, -1)


def _vector_to_matrix(v: Any, n: int, rows: np.ndarray, cols: np.ndarray) -> Any:
    """Scatter the last axis of ``v`` into the positions ``(rows, cols)`` of ``n x n`` matrices (zeros elsewhere)."""
    # A gather from [v, 0] with a constant index table stands in for a
    # scatter: each matrix position reads its vector entry or the zero slot.
    m = v.shape[-1]
    table = np.full(n * n, m, dtype=np.int64)
    table[rows * n + cols] = np.arange(m)
    padded = dx.concat([v, dx.zeros_like(v[..., :1])], axis=-1)
    flat = dx.take(padded, table, axis=-1)
    return dx.reshape(flat, tuple(v.shape[:-1]) + (n, n))


def _matrix_to_vector(matrix: Any, rows: np.ndarray, cols: np.ndarray) -> Any:
    n = matrix.shape[-1]
    flat = dx.reshape(matrix, tuple(matrix.shape[:-2]) + (n * n,))
    return dx.take(flat, rows * n + cols, axis=-1)


class LowerCholeskyTransform(Transform):
    r"""The map from :math:`\mathbb{R}^{n(n+1)/2}` onto lower-triangular matrices with a positive diagonal.

    The first :math:`n(n-1)/2` entries of ``x`` fill the strictly lower
    triangle row by row, and the last :math:`n` are the logarithms of the
    diagonal. :math:`\log|J| = \sum_i \log L_{ii}`.
    """

    domain = constraints.real_vector
    codomain = constraints.lower_cholesky

    def __call__(self, x: Any) -> Any:
        n = _triangular_size_to_dim(x.shape[-1], with_diagonal=True)
        m = n * (n - 1) // 2
        rows, cols = _strict_lower_indices(n)
        off_diagonal = _vector_to_matrix(x[..., :m], n, rows, cols)
        diagonal = _vector_to_matrix(dx.exp(x[..., m:]), n, np.arange(n), np.arange(n))
        return off_diagonal + diagonal

    def _inverse(self, y: Any) -> Any:
        n = y.shape[-1]
        rows, cols = _strict_lower_indices(n)
        off_diagonal = _matrix_to_vector(y, rows, cols)
        return dx.concat([off_diagonal, dx.log(dx.linalg.diagonal(y))], axis=-1)

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        n = _triangular_size_to_dim(x.shape[-1], with_diagonal=True)
        return dx.sum(x[..., n * (n - 1) // 2 :], axis=-1)

    def forward_shape(self, shape: Shape) -> Shape:
        n = _triangular_size_to_dim(shape[-1], with_diagonal=True)
        return tuple(shape[:-1]) + (n, n)

    def inverse_shape(self, shape: Shape) -> Shape:
        n = shape[-1]
        return tuple(shape[:-2]) + (n * (n + 1) // 2,)


def corr_cholesky_from_partial_correlations(z: Any, n: int) -> Any:
    r"""Build the Cholesky factor of a correlation matrix from partial correlations.

    ``z`` holds, along its last axis, the :math:`n(n-1)/2` canonical partial
    correlations in ``(-1, 1)`` of the strictly lower triangle, row by row.
    Row :math:`i` is :math:`L_{ij} = z_{ij} \prod_{k<j} \sqrt{1 - z_{ik}^2}`
    for :math:`j < i` and :math:`L_{ii} = \prod_{k<i} \sqrt{1 - z_{ik}^2}`,
    so every row has unit norm (Lewandowski, Kurowicka and Joe, 2009).
    """
    rows, cols = _strict_lower_indices(n)
    z_matrix = _vector_to_matrix(z, n, rows, cols)
    # Entries above the diagonal are 0, so their factor is 1 and the
    # exclusive cumulative product stops at the diagonal.
    remaining = dx.sqrt(1.0 - z_matrix * z_matrix)
    before = dx.cumprod(remaining, axis=-1)
    before = dx.concat([dx.ones_like(before[..., :1]), before[..., :-1]], axis=-1)
    eye = dx.asarray(np.eye(n), dtype=z.dtype, backend=_backend(z))
    return dx.tril((z_matrix + eye) * before)


class CorrCholeskyTransform(Transform):
    r"""The map from :math:`\mathbb{R}^{n(n-1)/2}` onto Cholesky factors of correlation matrices.

    ``x`` becomes partial correlations :math:`z = \tanh x` in the strictly lower
    triangle, row by row, and :func:`corr_cholesky_from_partial_correlations`
    builds the factor. The free coordinates of :math:`L` are its strictly
    lower entries, and :math:`\partial L_{ij} / \partial x_{ij} =
    (1 - z_{ij}^2) \prod_{k<j} \sqrt{1 - z_{ik}^2}` is the diagonal of a
    triangular Jacobian, so
    :math:`\log|J| = \sum_{i>j} [\log(1 - z_{ij}^2) + \tfrac12 \sum_{k<j} \log(1 - z_{ik}^2)]`.
    """

    domain = constraints.real_vector
    codomain = constraints.corr_cholesky

    def __call__(self, x: Any) -> Any:
        n = _triangular_size_to_dim(x.shape[-1], with_diagonal=False)
        return corr_cholesky_from_partial_correlations(dx.tanh(x), n)

    def _inverse(self, y: Any) -> Any:
        n = y.shape[-1]
        rows, cols = _strict_lower_indices(n)
        squares = y * y
        used = dx.cumsum(squares, axis=-1) - squares
        # The part of each row's unit norm not yet used before column j.
        z_matrix = y / dx.sqrt(dx.clip(1.0 - used, 1e-300, None))
        z = _matrix_to_vector(z_matrix, rows, cols)
        return dx.atanh(z)

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        n = _triangular_size_to_dim(x.shape[-1], with_diagonal=False)
        rows, cols = _strict_lower_indices(n)
        # log(1 - tanh(x)^2) = 2 (log 2 - x - softplus(-2x)), finite for large |x|.
        log_one_minus_z2 = 2.0 * (math.log(2.0) - x - dx.softplus(-2.0 * x))
        matrix = _vector_to_matrix(log_one_minus_z2, n, rows, cols)
        before = dx.cumsum(matrix, axis=-1) - matrix
        half_before = _matrix_to_vector(before, rows, cols) * 0.5
        return dx.sum(log_one_minus_z2 + half_before, axis=-1)

    def forward_shape(self, shape: Shape) -> Shape:
        n = _triangular_size_to_dim(shape[-1], with_diagonal=False)
        return tuple(shape[:-1]) + (n, n)

    def inverse_shape(self, shape: Shape) -> Shape:
        n = shape[-1]
        return tuple(shape[:-2]) + (n * (n - 1) // 2,)


class CholeskyTransform(Transform):
    r"""The map :math:`L = \operatorname{cholesky}(M)` from positive-definite matrices onto lower Cholesky factors.

    Its inverse :math:`M = L L^\top` has, over the lower-triangular free
    coordinates, :math:`\log|J| = n \log 2 + \sum_i (n - i) \log L_{ii}`
    (:math:`i = 0, \dots, n-1`), so this transform's log-determinant is the
    negative of that.
    """

    domain = constraints.positive_definite
    codomain = constraints.lower_cholesky

    def __call__(self, x: Any) -> Any:
        return dx.linalg.cholesky(x)

    def _inverse(self, y: Any) -> Any:
        return dx.matmul(y, dx.matrix_transpose(y))

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        n = y.shape[-1]
        powers = dx.asarray(np.arange(n, 0, -1, dtype=np.float64), dtype=y.dtype, backend=_backend(y))
        return -(n * math.log(2.0) + dx.sum(powers * dx.log(dx.linalg.diagonal(y)), axis=-1))


class OrderedTransform(Transform):
    r"""The map onto increasing vectors: :math:`y_0 = x_0`, :math:`y_i = y_{i-1} + e^{x_i}`, with :math:`\log|J| = \sum_{i>0} x_i`."""

    domain = constraints.real_vector
    codomain = constraints.ordered_vector

    def __call__(self, x: Any) -> Any:
        increments = dx.concat([x[..., :1], dx.exp(x[..., 1:])], axis=-1)
        return dx.cumsum(increments, axis=-1)

    def _inverse(self, y: Any) -> Any:
        return dx.concat([y[..., :1], dx.log(y[..., 1:] - y[..., :-1])], axis=-1)

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        return dx.sum(x[..., 1:], axis=-1)


class CorrMatrixCholeskyTransform(CholeskyTransform):
    r"""The map :math:`L = \operatorname{cholesky}(C)` from correlation matrices onto their Cholesky factors.

    Over the free coordinates (the strictly lower triangles of :math:`C` and
    :math:`L`) the inverse :math:`C = L L^\top` has
    :math:`\log|J| = \sum_j (n - 1 - j) \log L_{jj}`, so this transform's
    log-determinant is the negative of that.
    """

    domain = constraints.corr_matrix
    codomain = constraints.corr_cholesky

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        n = y.shape[-1]
        powers = dx.asarray(np.arange(n - 1, -1, -1, dtype=np.float64), dtype=y.dtype, backend=_backend(y))
        return -dx.sum(powers * dx.log(dx.linalg.diagonal(y)), axis=-1)
