"""Sweep cases for linear algebra and einsum.

Inputs are drawn so that every operation is smooth around them. Solves get
diagonally dominant matrices. Decompositions of symmetric positive-definite
(SPD) matrices take an unconstrained ``a`` and form ``a @ a^T + n I`` inside
the function, so that finite differences stay on the SPD matrices.
Functions of eigenvectors or singular vectors do not depend on their signs.
Variants that exercise only shape handling run on NumPy alone, to keep the
JAX sweep short.
"""

from __future__ import annotations

import math

import numpy as np

import difflux.core as dx
from difflux.core._backend import backend_of_value
from sweep_case import Case, uniform

NUMPY_ONLY = ("numpy",)


def _identity_like(a):
    value = dx.stop_gradient(a)
    return dx.asarray(np.eye(a.shape[-1]), backend=backend_of_value(value))


def _spd(a):
    """Return ``a @ a^T + n I``, symmetric positive definite for any ``a``."""
    return dx.matmul(a, dx.matrix_transpose(a)) + a.shape[-1] * _identity_like(a)


def _dominant(*shape):
    """Draw matrices of ``shape`` whose diagonal dominates, so solves are well conditioned."""

    def draw(rng):
        n = shape[-1]
        return [rng.uniform(-1.0, 1.0, size=shape) + (n + 1.0) * np.eye(n)]

    return draw


def _dominant_and_rhs(a_shape, b_shape):
    def draw(rng):
        return _dominant(*a_shape)(rng) + [rng.uniform(-2.0, 2.0, size=b_shape)]

    return draw


def _triangular_and_rhs(a_shape, b_shape, lower):
    def draw(rng):
        a, b = _dominant_and_rhs(a_shape, b_shape)(rng)
        return [np.tril(a) if lower else np.triu(a), b]

    return draw


def _eigh_spectral_function(a):
    # V diag(sin(w)) V^T does not depend on the eigenvectors' signs.
    w, v = dx.linalg.eigh(_spd(a))
    return dx.matmul(v * dx.sin(w)[..., None, :], dx.matrix_transpose(v))


def _svd_spectral_function(x):
    u, s, vh = dx.linalg.svd(x)
    return dx.matmul(u * dx.tanh(s)[..., None, :], vh)


CASES = [
    # -- einsum -----------------------------------------------------------------
    Case("einsum_matmul", lambda x, y: dx.einsum("ij,jk->ik", x, y), uniform((2, 3), (3, 4))),
    Case("einsum_trace", lambda x: dx.einsum("ii", x), uniform((3, 3)), backends=NUMPY_ONLY),
    Case("einsum_diagonal", lambda x: dx.einsum("ii->i", x), uniform((3, 3))),
    Case(
        "einsum_ellipsis_broadcast",
        lambda x, y: dx.einsum("...ij,...jk->...ik", x, y),
        uniform((2, 1, 2, 3), (4, 3, 2)),
    ),
    Case(
        "einsum_implicit_three_operands",
        lambda x, y, z: dx.einsum("ij,jk,kl", x, y, z),
        uniform((2, 3), (3, 2), (2, 2)),
        backends=NUMPY_ONLY,
    ),
    Case(
        "einsum_repeated_and_summed",
        lambda x, y: dx.einsum("iij,kj->k", x, y),
        uniform((2, 2, 3), (4, 3)),
        backends=NUMPY_ONLY,
    ),
    Case(
        "einsum_length_one_broadcast",
        lambda x, y: dx.einsum("ij,ij->i", x, y),
        uniform((1, 4), (3, 4)),
        backends=NUMPY_ONLY,
    ),
    # -- products ----------------------------------------------------------------
    Case("tensordot", lambda x, y: dx.tensordot(x, y, axes=([0, 2], [1, 0])), uniform((2, 3, 4), (4, 2, 3))),
    Case("vecdot", lambda x, y: dx.vecdot(x, y, axis=-2), uniform((2, 3, 4), (3, 1))),
    Case("outer", dx.linalg.outer, uniform((3,), (4,))),
    Case("cross", dx.linalg.cross, uniform((2, 3), (3,))),
    Case("trace", lambda x: dx.linalg.trace(x, offset=1), uniform((2, 3, 4))),
    Case("diagonal", lambda x: dx.linalg.diagonal(x, offset=-1), uniform((2, 4, 3))),
    # -- solves, inverses, determinants ----------------------------------------------
    Case("solve_batched_matrix", dx.linalg.solve, _dominant_and_rhs((2, 1, 3, 3), (4, 3, 2))),
    Case("solve_vector", dx.linalg.solve, _dominant_and_rhs((2, 3, 3), (3,)), backends=NUMPY_ONLY),
    Case(
        "solve_triangular_lower",
        lambda a, b: dx.linalg.solve_triangular(a, b, lower=True),
        _triangular_and_rhs((2, 3, 3), (3, 2), lower=True),
    ),
    Case(
        "solve_triangular_upper_transposed",
        lambda a, b: dx.linalg.solve_triangular(a, b, lower=False, trans="T"),
        _triangular_and_rhs((3, 3), (2, 3, 1), lower=False),
    ),
    Case(
        "solve_triangular_unit_diagonal",
        lambda a, b: dx.linalg.solve_triangular(a, b, lower=True, unit_diagonal=True),
        _triangular_and_rhs((3, 3), (3,), lower=True),
        backends=NUMPY_ONLY,
    ),
    Case(
        "cholesky_solve",
        lambda a, b: dx.linalg.cholesky_solve(dx.linalg.cholesky(_spd(a)), b),
        uniform((3, 3), (3, 2)),
    ),
    Case(
        "cho_solve_upper",
        lambda a, b: dx.linalg.cho_solve((dx.linalg.cholesky(_spd(a), upper=True), False), b),
        uniform((3, 3), (3,)),
        backends=NUMPY_ONLY,
    ),
    Case("inv", dx.linalg.inv, _dominant(2, 3, 3)),
    Case("det", dx.linalg.det, _dominant(2, 3, 3)),
    Case("slogdet", lambda x: dx.linalg.slogdet(x).logabsdet, _dominant(2, 3, 3)),
    Case("pinv_tall", dx.linalg.pinv, uniform((4, 2))),
    Case("pinv_wide", dx.linalg.pinv, uniform((2, 2, 3)), backends=NUMPY_ONLY),
    Case("matrix_power", lambda x: dx.linalg.matrix_power(x, 3), uniform((2, 2, 2), low=-1.0, high=1.0)),
    Case("matrix_power_negative", lambda x: dx.linalg.matrix_power(x, -2), _dominant(2, 2), backends=NUMPY_ONLY),
    # -- decompositions ----------------------------------------------------------------
    Case("cholesky", lambda a: dx.linalg.cholesky(_spd(a)), uniform((2, 3, 3))),
    Case("cholesky_upper", lambda a: dx.linalg.cholesky(_spd(a), upper=True), uniform((3, 3)), backends=NUMPY_ONLY),
    Case("eigh_eigenvalues", lambda a: dx.linalg.eigh(_spd(a)).eigenvalues, uniform((2, 3, 3))),
    Case("eigh_spectral_function", _eigh_spectral_function, uniform((3, 3))),
    Case(
        "eigh_eigenvectors_squared",
        lambda a: dx.linalg.eigh(_spd(a)).eigenvectors ** 2,
        uniform((3, 3)),
        backends=NUMPY_ONLY,
    ),
    Case("eigvalsh", lambda a: dx.linalg.eigvalsh(_spd(a)), uniform((2, 3, 3))),
    Case("svd_spectral_function_tall", _svd_spectral_function, uniform((4, 3))),
    Case("svd_spectral_function_wide", _svd_spectral_function, uniform((2, 2, 3)), backends=NUMPY_ONLY),
    Case(
        "svd_vectors_squared",
        lambda x: dx.linalg.svd(x).U ** 2 + dx.sum(dx.linalg.svd(x).Vh ** 2),
        uniform((3, 2)),
        backends=NUMPY_ONLY,
    ),
    Case("svdvals", dx.linalg.svdvals, uniform((2, 3, 4))),
    Case("qr_tall", lambda x: dx.linalg.qr(x).Q + dx.sum(dx.linalg.qr(x).R), uniform((4, 3))),
    Case("qr_wide", lambda x: dx.linalg.qr(x).Q + dx.sum(dx.linalg.qr(x).R), uniform((2, 2, 3)), backends=NUMPY_ONLY),
    # -- norms -------------------------------------------------------------------------
    Case("vector_norm", lambda x: dx.linalg.vector_norm(x, axis=-1), uniform((2, 3))),
    Case("vector_norm_ord_1", lambda x: dx.linalg.vector_norm(x, ord=1), uniform((2, 3)), backends=NUMPY_ONLY),
    Case("vector_norm_ord_3", lambda x: dx.linalg.vector_norm(x, axis=0, ord=3), uniform((2, 3)), backends=NUMPY_ONLY),
    Case(
        "vector_norm_ord_inf",
        lambda x: dx.linalg.vector_norm(x, axis=(0, 2), keepdims=True, ord=math.inf),
        uniform((2, 2, 3)),
        backends=NUMPY_ONLY,
    ),
    Case("matrix_norm_fro", dx.linalg.matrix_norm, uniform((2, 3, 2)), backends=NUMPY_ONLY),
    Case("matrix_norm_nuc", lambda x: dx.linalg.matrix_norm(x, ord="nuc"), uniform((3, 2))),
    Case("matrix_norm_2", lambda x: dx.linalg.matrix_norm(x, ord=2), uniform((2, 3)), backends=NUMPY_ONLY),
    Case("matrix_norm_inf", lambda x: dx.linalg.matrix_norm(x, ord=math.inf), uniform((2, 3)), backends=NUMPY_ONLY),
    Case(
        "norm_matrix_axes",
        lambda x: dx.linalg.norm(x, ord=-1, axis=(2, 0)),
        uniform((3, 2, 4)),
        backends=NUMPY_ONLY,
    ),
]

CASES += [
    Case("matmul_vector_vector", lambda x, y: dx.matmul(x, y), uniform((3,), (3,))),
    Case("matmul_vector_matrix", lambda x, y: dx.matmul(x, y), uniform((3,), (3, 2))),
    Case("matmul_matrix_vector", lambda x, y: dx.matmul(x, y), uniform((2, 3), (3,))),
    Case("matmul_batched", lambda x, y: dx.matmul(x, y), uniform((2, 1, 3, 2), (4, 2, 2))),
    Case("linear", lambda x, w, b: dx.linear(x, w, b), uniform((4, 3), (2, 3), (2,))),
    Case("linear_vector", lambda x, w, b: dx.tanh(dx.linear(x, w, b)), uniform((3,), (2, 3), (2,))),
    Case("linear_leading_axes", lambda x, w, b: dx.linear(x, w, b) ** 2, uniform((2, 3, 4), (5, 4), (5,))),
]
