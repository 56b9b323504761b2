"""The ``Transform`` base class, element-wise transforms and their composition.

Public through :mod:`difflux.ppl.dist.transforms`, which documents the conventions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import difflux.core as dx

from . import constraints
from ._util import Shape, as_params, broadcast_shapes, is_traced, match_backend, shape_of, sum_rightmost


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
        value = np.asarray(dx.stop_gradient(self.scale)) if not is_traced(self.scale) else None
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
        value = np.asarray(dx.stop_gradient(self.exponent)) if not is_traced(self.exponent) else None
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
