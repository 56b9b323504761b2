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

from ._transform_base import (
    AffineTransform,
    ComposeTransform,
    ExpTransform,
    IdentityTransform,
    IndependentTransform,
    PowerTransform,
    SigmoidTransform,
    SoftplusTransform,
    Transform,
)
from ._transform_matrix import (
    CholeskyTransform,
    CorrCholeskyTransform,
    CorrMatrixCholeskyTransform,
    LowerCholeskyTransform,
    OrderedTransform,
    StickBreakingTransform,
    corr_cholesky_from_partial_correlations,
)

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
    "corr_cholesky_from_partial_correlations",
]
