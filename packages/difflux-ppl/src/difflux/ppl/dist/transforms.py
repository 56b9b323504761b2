r"""Bijective transforms with log-determinants of their Jacobians.

A transform ``t`` maps its ``domain`` onto its ``codomain`` (both
:mod:`~difflux.ppl.dist.constraints`): ``y = t(x)``, ``x = t.inv(y)``, and
``t.log_abs_det_jacobian(x, y)`` is :math:`\log|\det \partial y / \partial x|`
over one event, of shape ``x.shape[:x.ndim - t.domain.event_dim]``. For
transforms whose event is a vector or matrix the Jacobian is that of the
map between the free coordinates: the ``K - 1`` leading entries of a simplex,
the lower triangle of a Cholesky factor. ``forward_shape`` and
``inverse_shape`` map shapes across the transform.

Every transform is written in difflux operations, so gradients flow through
``t(x)``, ``t.inv(y)`` and the log-determinant on both backends and inside
``dx.jit``. The names follow NumPyro's ``numpyro.distributions.transforms``.

Example:
    >>> import numpy as np
    >>> from difflux.ppl.dist import transforms
    >>> t = transforms.ExpTransform()
    >>> float(t(np.asarray(0.0))), float(t.inv(np.asarray(1.0)))
    (1.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

import difflux.core as dx

from . import constraints
from ._util import Shape, as_params, broadcast_shapes, match_backend, shape_of, sum_rightmost

__all__ = [
    "AffineTransform",
    "CholeskyTransform",
    "ComposeTransform",
    "CorrCholeskyTransform",
    "CorrMatrixCholeskyTransform",
    "ExpTransform",
    "IdentityTransform",
    "IndependentTransform",
    "LowerCholeskyTransform",
    "OrderedTransform",
    "PowerTransform",
    "SigmoidTransform",
    "SoftplusTransform",
    "StickBreakingTransform",
    "Transform",
]


class Transform:
    """A bijection from ``domain`` onto ``codomain``.

    Subclasses implement ``__call__`` (forward), ``_inverse`` and
    ``log_abs_det_jacobian(x, y)``, and for event-changing transforms
    ``forward_shape``/``inverse_shape``. ``sign`` is +1 or -1 for scalar
    transforms that increase or decrease (used for CDFs of transformed
    distributions).
    """

    domain: constraints.Constraint = constraints.real
    codomain: constraints.Constraint = constraints.real
    sign: int | None = None

    @property
    def inv(self) -> Transform:
        """The inverse transform: ``t.inv(y)`` maps ``codomain`` back to ``domain``."""
        return _InverseTransform(self)

    def __call__(self, x: Any) -> Any:
        raise NotImplementedError

    def _inverse(self, y: Any) -> Any:
        raise NotImplementedError

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        """Return :math:`\\log|\\det \\partial y / \\partial x|`, shape ``x.shape[:ndim - domain.event_dim]``."""
        raise NotImplementedError

    def call_with_intermediates(self, x: Any) -> tuple[Any, Any]:
        return self(x), None

    def forward_shape(self, shape: Shape) -> Shape:
        """Return the shape of ``t(x)`` for ``x`` of ``shape``."""
        return tuple(shape)

    def inverse_shape(self, shape: Shape) -> Shape:
        """Return the shape of ``t.inv(y)`` for ``y`` of ``shape``."""
        return tuple(shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _InverseTransform(Transform):
    def __init__(self, transform: Transform) -> None:
        self._inv = transform

    @property
    def domain(self) -> constraints.Constraint:  # type: ignore[override]
        return self._inv.codomain

    @property
    def codomain(self) -> constraints.Constraint:  # type: ignore[override]
        return self._inv.domain

    @property
    def sign(self) -> int | None:  # type: ignore[override]
        return self._inv.sign

    @property
    def inv(self) -> Transform:
        return self._inv

    def __call__(self, x: Any) -> Any:
        return self._inv._inverse(x)

    def _inverse(self, y: Any) -> Any:
        return self._inv(y)

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        # The inverse's Jacobian is the inverse matrix: the log-determinant
        # changes sign and is evaluated at the forward pair (y, x).
        return -self._inv.log_abs_det_jacobian(y, x)

    def forward_shape(self, shape: Shape) -> Shape:
        return self._inv.inverse_shape(shape)

    def inverse_shape(self, shape: Shape) -> Shape:
        return self._inv.forward_shape(shape)

    def __repr__(self) -> str:
        return f"{self._inv!r}.inv"


# -- element-wise transforms ---------------------------------------------------------


class IdentityTransform(Transform):
    """The identity map :math:`y = x`."""

    sign = 1

    def __call__(self, x: Any) -> Any:
        return x

    def _inverse(self, y: Any) -> Any:
        return y

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        return dx.zeros_like(x)


class ExpTransform(Transform):
    r"""The map :math:`y = e^x` from the reals onto the positive reals, with :math:`\log|J| = x`."""

    domain = constraints.real
    codomain = constraints.positive
    sign = 1

    def __call__(self, x: Any) -> Any:
        return dx.exp(x)

    def _inverse(self, y: Any) -> Any:
        return dx.log(y)

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        return x


class SoftplusTransform(Transform):
    r"""The map :math:`y = \log(1 + e^x)` onto the positive reals, with :math:`\log|J| = -\operatorname{softplus}(-x)`."""

    domain = constraints.real
    codomain = constraints.positive
    sign = 1

    def __call__(self, x: Any) -> Any:
        return dx.softplus(x)

    def _inverse(self, y: Any) -> Any:
        # softplus^{-1}(y) = log(e^y - 1) = y + log(-expm1(-y)), stable for large y.
        return y + dx.log(-dx.expm1(-y))

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        return -dx.softplus(-x)


class SigmoidTransform(Transform):
    r"""The map :math:`y = 1 / (1 + e^{-x})` onto ``(0, 1)``, with :math:`\log|J| = \log y + \log(1 - y)`."""

    domain = constraints.real
    codomain = constraints.unit_interval
    sign = 1

    def __call__(self, x: Any) -> Any:
        return dx.sigmoid(x)

    def _inverse(self, y: Any) -> Any:
        return dx.log(y) - dx.log1p(-y)

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        # log sigmoid(x) + log sigmoid(-x), computed from x so it stays finite in the tails.
        return -dx.softplus(-x) - dx.softplus(x)


class AffineTransform(Transform):
    r"""The map :math:`y = \mathrm{loc} + \mathrm{scale}\, x`, with :math:`\log|J| = \sum \log|\mathrm{scale}|`.

    Args:
        loc: the shift, broadcast against ``x``.
        scale: the nonzero factor, broadcast against ``x``.
        domain: the set ``x`` lives in (``real`` by default). ``biject_to``
            passes ``unit_interval`` or ``positive`` here.
        codomain: the image set, by default the same as ``domain`` for
            ``real`` domains.
        event_dim: the number of rightmost axes summed in the log-determinant.
    """

    def __init__(
        self,
        loc: Any,
        scale: Any,
        *,
        domain: constraints.Constraint | None = None,
        codomain: constraints.Constraint | None = None,
        event_dim: int = 0,
    ) -> None:
        self.loc, self.scale = as_params(loc, scale)
        base = constraints.real if event_dim == 0 else constraints.independent(constraints.real, event_dim)
        self.domain = domain if domain is not None else base
        self.codomain = codomain if codomain is not None else base
        self.event_dim = event_dim

    @property
    def sign(self) -> int | None:  # type: ignore[override]
        value = np.asarray(dx.stop_gradient(self.scale)) if not _traced(self.scale) else None
        if value is None or value.size != 1:
            return None
        return 1 if float(value) > 0 else -1

    def __call__(self, x: Any) -> Any:
        return match_backend(self.loc, x) + match_backend(self.scale, x) * x

    def _inverse(self, y: Any) -> Any:
        return (y - match_backend(self.loc, y)) / match_backend(self.scale, y)

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        scale = match_backend(self.scale, x)
        shape = broadcast_shapes(shape_of(x), shape_of(scale))
        log_scale = dx.broadcast_to(dx.log(dx.abs(scale)) + dx.zeros_like(x), shape)
        return sum_rightmost(log_scale, self.event_dim)

    def forward_shape(self, shape: Shape) -> Shape:
        return broadcast_shapes(shape, shape_of(self.loc), shape_of(self.scale))

    def inverse_shape(self, shape: Shape) -> Shape:
        return broadcast_shapes(shape, shape_of(self.loc), shape_of(self.scale))

    def __repr__(self) -> str:
        return f"AffineTransform(loc={self.loc}, scale={self.scale})"


def _traced(x: Any) -> bool:
    from ._util import is_traced

    return is_traced(x)


class PowerTransform(Transform):
    r"""The map :math:`y = x^p` on the positive reals, with :math:`\log|J| = \log|p\, y / x|`."""

    domain = constraints.positive
    codomain = constraints.positive

    def __init__(self, exponent: Any) -> None:
        (self.exponent,) = as_params(exponent)

    def __call__(self, x: Any) -> Any:
        return dx.pow(x, match_backend(self.exponent, x))

    def _inverse(self, y: Any) -> Any:
        return dx.pow(y, 1.0 / match_backend(self.exponent, y))

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        return dx.log(dx.abs(match_backend(self.exponent, x) * y / x))

    @property
    def sign(self) -> int | None:  # type: ignore[override]
        value = np.asarray(dx.stop_gradient(self.exponent)) if not _traced(self.exponent) else None
        if value is None or value.size != 1:
            return None
        return 1 if float(value) > 0 else -1


# -- composition ----------------------------------------------------------------------


class ComposeTransform(Transform):
    """Apply ``parts`` in order: ``ComposeTransform([f, g])(x) == g(f(x))``."""

    def __init__(self, parts: Sequence[Transform]) -> None:
        self.parts = list(parts)
        if not self.parts:
            raise ValueError("ComposeTransform needs at least one transform")

    @property
    def domain(self) -> constraints.Constraint:  # type: ignore[override]
        # The composed map consumes as many axes as the parts need once the
        # event dims of later parts are carried back through earlier ones.
        event_dim = self.parts[-1].codomain.event_dim
        for part in reversed(self.parts):
            event_dim = part.domain.event_dim + max(event_dim - part.codomain.event_dim, 0)
        base = self.parts[0].domain
        return _with_event_dim(base, event_dim)

    @property
    def codomain(self) -> constraints.Constraint:  # type: ignore[override]
        event_dim = self.parts[0].domain.event_dim
        for part in self.parts:
            event_dim = part.codomain.event_dim + max(event_dim - part.domain.event_dim, 0)
        return _with_event_dim(self.parts[-1].codomain, event_dim)

    @property
    def sign(self) -> int | None:  # type: ignore[override]
        sign = 1
        for part in self.parts:
            if part.sign is None:
                return None
            sign *= part.sign
        return sign

    def __call__(self, x: Any) -> Any:
        for part in self.parts:
            x = part(x)
        return x

    def _inverse(self, y: Any) -> Any:
        for part in reversed(self.parts):
            y = part.inv(y)
        return y

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        total: Any = 0.0
        event_dim = self.domain.event_dim
        for part in self.parts:
            y_part = part(x)
            term = part.log_abs_det_jacobian(x, y_part)
            total = total + sum_rightmost(term, event_dim - part.domain.event_dim)
            event_dim = part.codomain.event_dim + event_dim - part.domain.event_dim
            x = y_part
        return total

    def forward_shape(self, shape: Shape) -> Shape:
        for part in self.parts:
            shape = part.forward_shape(shape)
        return tuple(shape)

    def inverse_shape(self, shape: Shape) -> Shape:
        for part in reversed(self.parts):
            shape = part.inverse_shape(shape)
        return tuple(shape)

    def __repr__(self) -> str:
        return f"ComposeTransform({self.parts!r})"


def _with_event_dim(constraint: constraints.Constraint, event_dim: int) -> constraints.Constraint:
    if constraint.event_dim >= event_dim:
        return constraint
    return constraints.independent(constraint, event_dim - constraint.event_dim)


class IndependentTransform(Transform):
    """Treat the rightmost ``reinterpreted_batch_ndims`` axes of ``base_transform`` as one event.

    The log-determinant is summed over those axes.
    """

    def __init__(self, base_transform: Transform, reinterpreted_batch_ndims: int) -> None:
        self.base_transform = base_transform
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims

    @property
    def domain(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(self.base_transform.domain, self.reinterpreted_batch_ndims)

    @property
    def codomain(self) -> constraints.Constraint:  # type: ignore[override]
        return constraints.independent(self.base_transform.codomain, self.reinterpreted_batch_ndims)

    def __call__(self, x: Any) -> Any:
        return self.base_transform(x)

    def _inverse(self, y: Any) -> Any:
        return self.base_transform.inv(y)

    def log_abs_det_jacobian(self, x: Any, y: Any) -> Any:
        return sum_rightmost(self.base_transform.log_abs_det_jacobian(x, y), self.reinterpreted_batch_ndims)

    def forward_shape(self, shape: Shape) -> Shape:
        return self.base_transform.forward_shape(shape)

    def inverse_shape(self, shape: Shape) -> Shape:
        return self.base_transform.inverse_shape(shape)


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
