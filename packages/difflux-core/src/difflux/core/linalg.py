"""Linear algebra, ``dx.linalg``: the Array API's ``linalg`` extension plus
the triangular and Cholesky solves that scientific code needs.

Every function acts on the last two axes (the last one for vectors) and is
batched over the leading axes. Every function except ``matrix_rank`` has
forward and reverse derivative rules written in difflux operations, so
derivatives of any order are available. NumPy and SciPy compute the values
on the NumPy backend, ``jax.numpy.linalg`` and ``jax.scipy.linalg`` on JAX.

Example:
    >>> import difflux.core as dx
    >>> a = dx.asarray([[4.0, 2.0], [2.0, 3.0]])
    >>> L = dx.linalg.cholesky(a)
    >>> dx.linalg.cholesky_solve(L, dx.asarray([2.0, 1.0])).tolist()
    [0.5, 0.0]
"""

from ._ops_linalg import cross, diagonal, matrix_rank, trace
from ._ops_linalg_decomp import (
    EighResult,
    QRResult,
    SVDResult,
    cholesky,
    eigh,
    eigvalsh,
    qr,
    svd,
    svdvals,
)
from ._ops_linalg_norm import matrix_norm, norm, vector_norm
from ._ops_linalg_solve import (
    SlogdetResult,
    cho_solve,
    cholesky_solve,
    det,
    inv,
    matrix_power,
    pinv,
    slogdet,
    solve,
    solve_triangular,
)
from ._ops_matmul import matmul, outer, tensordot, vecdot
from ._ops_shape import matrix_transpose

__all__ = [
    "EighResult",
    "QRResult",
    "SVDResult",
    "SlogdetResult",
    "cho_solve",
    "cholesky",
    "cholesky_solve",
    "cross",
    "det",
    "diagonal",
    "eigh",
    "eigvalsh",
    "inv",
    "matmul",
    "matrix_norm",
    "matrix_power",
    "matrix_rank",
    "matrix_transpose",
    "norm",
    "outer",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "solve_triangular",
    "svd",
    "svdvals",
    "tensordot",
    "trace",
    "vecdot",
    "vector_norm",
]
