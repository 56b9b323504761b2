r"""Multivariate distributions: MultivariateNormal, Dirichlet, LKJCholesky.

Their events are vectors (``event_shape == (n,)``) or, for LKJCholesky,
``n x n`` Cholesky factors (``event_shape == (n, n)``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx

from . import constraints
from ._util import Shape, as_params, backend_of_params, broadcast_shapes, shape_of
from .distribution import Distribution, broadcast_to_batch
from .transforms import corr_cholesky_from_partial_correlations

_LOG_2PI = math.log(2.0 * math.pi)


class MultivariateNormal(Distribution):
    r"""The multivariate normal distribution :math:`\mathcal{N}(\mu, \Sigma)` in :math:`n` dimensions.

    .. math::

        \log p(x) = -\tfrac12 \|L^{-1}(x - \mu)\|^2 - \sum_i \log L_{ii} - \tfrac{n}{2}\log 2\pi,
        \qquad \Sigma = L L^\top

    Give exactly one of ``covariance_matrix``, ``precision_matrix`` and
    ``scale_tril`` (:math:`L`). The others are computed on request. The
    Cholesky factor is computed once, at construction.

    Args:
        loc: the mean, shape ``batch_shape + (n,)`` (a scalar broadcasts).
        covariance_matrix: :math:`\Sigma`, shape ``batch_shape + (n, n)``.
        precision_matrix: :math:`\Sigma^{-1}`.
        scale_tril: the lower Cholesky factor :math:`L` of :math:`\Sigma`.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real_vector,
        "covariance_matrix": constraints.positive_definite,
        "precision_matrix": constraints.positive_definite,
        "scale_tril": constraints.lower_cholesky,
    }
    support = constraints.real_vector
    reparametrized_params = ("loc", "covariance_matrix", "precision_matrix", "scale_tril")

    def __init__(
        self,
        loc: Any = 0.0,
        covariance_matrix: Any = None,
        precision_matrix: Any = None,
        scale_tril: Any = None,
        *,
        validate_args: bool | None = None,
    ) -> None:
        given = [m for m in (covariance_matrix, precision_matrix, scale_tril) if m is not None]
        if len(given) != 1:
            raise ValueError(
                "MultivariateNormal takes exactly one of covariance_matrix, precision_matrix and scale_tril, "
                f"got {len(given)}"
            )
        loc, matrix = as_params(loc, given[0])
        if len(shape_of(matrix)) < 2 or shape_of(matrix)[-1] != shape_of(matrix)[-2]:
            raise ValueError(
                f"MultivariateNormal needs square matrices of shape (..., n, n), got shape {shape_of(matrix)}"
            )
        n = shape_of(matrix)[-1]
        if len(shape_of(loc)) == 0:
            loc = loc * dx.ones(n, dtype=matrix.dtype, backend=backend_of_params(matrix))
        if shape_of(loc)[-1] != n:
            raise ValueError(f"MultivariateNormal: loc has {shape_of(loc)[-1]} entries but the matrices are {n} x {n}")
        self.loc = loc
        self._covariance: Any = matrix if covariance_matrix is not None else None
        self._precision: Any = matrix if precision_matrix is not None else None
        self._scale_tril: Any = matrix if scale_tril is not None else None
        batch_shape = broadcast_shapes(shape_of(loc)[:-1], shape_of(matrix)[:-2])
        super().__init__(batch_shape, (n,), validate_args=validate_args)
        if self._scale_tril is None:
            if self._covariance is not None:
                self._scale_tril = dx.linalg.cholesky(self._covariance)
            else:
                self._scale_tril = dx.linalg.cholesky(dx.linalg.inv(self._precision))

    @property
    def scale_tril(self) -> Any:
        """The lower Cholesky factor :math:`L` of the covariance."""
        return self._scale_tril

    @property
    def covariance_matrix(self) -> Any:
        """The covariance :math:`\\Sigma = L L^\\top`."""
        if self._covariance is not None:
            return self._covariance
        return dx.matmul(self._scale_tril, dx.matrix_transpose(self._scale_tril))

    @property
    def precision_matrix(self) -> Any:
        """The precision :math:`\\Sigma^{-1}`."""
        if self._precision is not None:
            return self._precision
        return dx.linalg.inv(self.covariance_matrix)

    def _constraints_to_validate(self) -> dict[str, constraints.Constraint]:
        # Validation runs before the Cholesky factor exists: check the given matrix only.
        given = {"covariance_matrix": self._covariance, "precision_matrix": self._precision}
        given["scale_tril"] = self._scale_tril
        names = {"loc"} | {name for name, value in given.items() if value is not None}
        return {name: c for name, c in self.arg_constraints.items() if name in names}

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        eps = dx.random.normal(key, self.shape(sample_shape), dtype=self.loc.dtype)
        return self.loc + dx.matmul(self._scale_tril, eps[..., None])[..., 0]

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        diff = value - self.loc
        tril = self._scale_tril
        shape = broadcast_shapes(shape_of(diff)[:-1], shape_of(tril)[:-2])
        n = self.event_shape[0]
        tril = dx.broadcast_to(tril, shape + (n, n))
        diff = dx.broadcast_to(diff, shape + (n,))
        z = dx.linalg.solve_triangular(tril, diff[..., None], lower=True)[..., 0]
        half_log_det = dx.sum(dx.log(dx.linalg.diagonal(tril)), axis=-1)
        return -0.5 * dx.sum(z * z, axis=-1) - half_log_det - 0.5 * n * _LOG_2PI

    def entropy(self) -> Any:
        n = self.event_shape[0]
        half_log_det = dx.sum(dx.log(dx.linalg.diagonal(self._scale_tril)), axis=-1)
        return broadcast_to_batch(0.5 * n * (1.0 + _LOG_2PI) + half_log_det, self.batch_shape)

    @property
    def mean(self) -> Any:
        return broadcast_to_batch(self.loc, self.batch_shape + self.event_shape)

    @property
    def variance(self) -> Any:
        tril = self._scale_tril
        return broadcast_to_batch(dx.sum(tril * tril, axis=-1), self.batch_shape + self.event_shape)


class Dirichlet(Distribution):
    r"""The Dirichlet distribution on the :math:`K`-simplex.

    .. math:: p(x) = \frac{\Gamma(\sum_k \alpha_k)}{\prod_k \Gamma(\alpha_k)} \prod_k x_k^{\alpha_k - 1}

    Args:
        concentration: :math:`\alpha > 0`, shape ``batch_shape + (K,)``.

    Samples are normalised Gamma draws, reparameterised through
    ``dx.random.gamma``. NOTE: with very small concentrations Gamma draws
    underflow to 0. Samples are clipped to the smallest normal float to keep
    ``log_prob`` finite, which biases them slightly.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "concentration": constraints.independent(constraints.positive, 1)
    }
    support = constraints.simplex
    reparametrized_params = ("concentration",)

    def __init__(self, concentration: Any, *, validate_args: bool | None = None) -> None:
        (self.concentration,) = as_params(concentration)
        shape = shape_of(self.concentration)
        if len(shape) < 1:
            raise ValueError("Dirichlet needs a concentration with a last axis of categories, got a scalar")
        super().__init__(shape[:-1], shape[-1:], validate_args=validate_args)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        shape = self.shape(sample_shape)
        alpha = dx.broadcast_to(self.concentration, shape)
        x = dx.random.dirichlet(key, alpha, shape[:-1], dtype=getattr(alpha, "dtype", None))
        return dx.clip(x, float(dx.finfo(x.dtype).tiny), 1.0)

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        alpha = self.concentration
        normaliser = dx.lgamma(dx.sum(alpha, axis=-1)) - dx.sum(dx.lgamma(alpha), axis=-1)
        return dx.sum(dx.xlogy(alpha - 1.0, value), axis=-1) + normaliser

    @property
    def mean(self) -> Any:
        alpha = self.concentration
        return alpha / dx.sum(alpha, axis=-1, keepdims=True)

    @property
    def variance(self) -> Any:
        alpha = self.concentration
        total = dx.sum(alpha, axis=-1, keepdims=True)
        return alpha * (total - alpha) / (total * total * (total + 1.0))


class LKJCholesky(Distribution):
    r"""The LKJ distribution over Cholesky factors :math:`L` of :math:`n \times n` correlation matrices.

    The correlation matrix :math:`C = L L^\top` has density proportional to
    :math:`\det(C)^{\eta - 1}` (Lewandowski, Kurowicka and Joe, 2009). Over
    the free coordinates of :math:`L` (its strictly lower triangle):

    .. math::

        \log p(L) = \sum_{i=1}^{n-1} (n - i - 3 + 2\eta) \log L_{ii} - \log c_n(\eta),

    with :math:`i` 0-based and the normaliser
    :math:`\log c_n(\eta) = \sum_{k=1}^{n-1} (n - k) [(2\eta - 2 + n - k) \log 2
    + \log B(\eta + \tfrac{n-k-1}{2}, \eta + \tfrac{n-k-1}{2})]`.

    Samples use the C-vine construction: the partial correlation of column
    :math:`j` is :math:`2 B - 1` with :math:`B \sim \mathrm{Beta}(\beta_j, \beta_j)`,
    :math:`\beta_j = \eta + (n - 2 - j)/2`.

    Args:
        dimension: :math:`n \ge 2`.
        concentration: :math:`\eta > 0`, where 1 is uniform over correlation matrices.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {"concentration": constraints.positive}
    support = constraints.corr_cholesky
    reparametrized_params = ("concentration",)

    def __init__(
        self,
        dimension: int,
        concentration: Any = 1.0,
        sample_method: str = "cvine",
        *,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(dimension, int | np.integer) or dimension < 2:
            raise ValueError(f"LKJCholesky needs an integer dimension >= 2, got {dimension!r}")
        if sample_method != "cvine":
            raise NotImplementedError(
                f"LKJCholesky samples by the 'cvine' method only, got sample_method={sample_method!r}"
            )
        self.dimension = int(dimension)
        (self.concentration,) = as_params(concentration)
        super().__init__(shape_of(self.concentration), (self.dimension, self.dimension), validate_args=validate_args)

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        n = self.dimension
        _, cols = np.tril_indices(n, -1)
        offsets = dx.asarray(
            0.5 * (n - 2 - cols), dtype=self.concentration.dtype, backend=backend_of_params(self.concentration)
        )
        shape = tuple(sample_shape) + self.batch_shape + (len(cols),)
        beta = dx.broadcast_to(dx.expand_dims(self.concentration, axis=-1) + offsets, shape)
        z = 2.0 * dx.random.beta(key, beta, beta, shape) - 1.0
        return corr_cholesky_from_partial_correlations(z, n)

    def log_prob(self, value: Any) -> Any:
        if self._validate_args:
            self._validate_sample(value)
        n = self.dimension
        eta = self.concentration
        i = np.arange(1, n, dtype=np.float64)
        backend = backend_of_params(value, eta)
        exponents = dx.asarray(n - i - 3.0, backend=backend) + 2.0 * dx.expand_dims(eta, axis=-1)
        log_diagonal = dx.log(dx.linalg.diagonal(value)[..., 1:])
        unnormalised = dx.sum(exponents * log_diagonal, axis=-1)
        return unnormalised - self._log_normaliser()

    def _log_normaliser(self) -> Any:
        n = self.dimension
        eta = self.concentration
        total: Any = 0.0
        for k in range(1, n):
            b = eta + 0.5 * (n - k - 1)
            total = total + (n - k) * ((2.0 * eta - 2.0 + n - k) * math.log(2.0) + dx.betaln(b, b))
        return total
