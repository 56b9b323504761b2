"""``biject_to``: the bijection from unconstrained space onto each constraint.

Inference runs in unconstrained space: a latent site with support ``c`` is
represented by ``x`` in :math:`\\mathbb{R}^n` and mapped by ``biject_to(c)(x)``
into the support, and the log-density picks up the transform's
``log_abs_det_jacobian``. New constraint types register their bijection with
``@biject_to.register(ConstraintType)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import constraints
from . import transforms as T  # noqa: N812 (short alias for a table of constructors)

Factory = Callable[[Any], T.Transform]


class ConstraintRegistry:
    """A table from constraint types to functions building their bijection.

    Lookup walks the constraint's class hierarchy, so a subclass without its
    own entry uses its parent's.
    """

    def __init__(self) -> None:
        self._registry: dict[type, Factory] = {}

    def register(self, constraint_type: type | constraints.Constraint, factory: Factory | None = None) -> Any:
        """Register ``factory(constraint) -> Transform`` for ``constraint_type``, directly or as a decorator."""
        if isinstance(constraint_type, constraints.Constraint):
            constraint_type = type(constraint_type)
        if factory is None:
            return lambda f: self.register(constraint_type, f)
        self._registry[constraint_type] = factory
        return factory

    def __call__(self, constraint: constraints.Constraint) -> T.Transform:
        for kind in type(constraint).__mro__:
            factory = self._registry.get(kind)
            if factory is not None:
                return factory(constraint)
        raise NotImplementedError(
            f"biject_to has no bijection for the constraint {constraint!r} (type {type(constraint).__name__}). "
            "Discrete supports cannot be unconstrained, so enumerate or marginalise such sites instead. For a new "
            "continuous constraint, register one with @biject_to.register(YourConstraintType)."
        )


biject_to = ConstraintRegistry()


@biject_to.register(constraints._Real)
def _real(constraint: Any) -> T.Transform:
    return T.IdentityTransform()


@biject_to.register(constraints._Positive)
@biject_to.register(constraints._Nonnegative)
def _positive(constraint: Any) -> T.Transform:
    return T.ExpTransform()


@biject_to.register(constraints.greater_than)
def _greater_than(constraint: Any) -> T.Transform:
    shift = T.AffineTransform(
        constraint.lower_bound,
        1.0,
        domain=constraints.positive,
        codomain=constraints.greater_than(constraint.lower_bound),
    )
    return T.ComposeTransform([T.ExpTransform(), shift])


@biject_to.register(constraints.less_than)
def _less_than(constraint: Any) -> T.Transform:
    flip = T.AffineTransform(
        constraint.upper_bound,
        -1.0,
        domain=constraints.positive,
        codomain=constraints.less_than(constraint.upper_bound),
    )
    return T.ComposeTransform([T.ExpTransform(), flip])


@biject_to.register(constraints._UnitInterval)
def _unit_interval(constraint: Any) -> T.Transform:
    return T.SigmoidTransform()


@biject_to.register(constraints.interval)
def _interval(constraint: Any) -> T.Transform:
    low, high = constraint.lower_bound, constraint.upper_bound
    stretch = T.AffineTransform(
        low, high - low, domain=constraints.unit_interval, codomain=constraints.interval(low, high)
    )
    return T.ComposeTransform([T.SigmoidTransform(), stretch])


@biject_to.register(constraints.independent)
def _independent(constraint: Any) -> T.Transform:
    return T.IndependentTransform(biject_to(constraint.base_constraint), constraint.reinterpreted_batch_ndims)


@biject_to.register(constraints._Simplex)
def _simplex(constraint: Any) -> T.Transform:
    return T.StickBreakingTransform()


@biject_to.register(constraints._OrderedVector)
def _ordered(constraint: Any) -> T.Transform:
    return T.OrderedTransform()


@biject_to.register(constraints._LowerCholesky)
def _lower_cholesky(constraint: Any) -> T.Transform:
    return T.LowerCholeskyTransform()


@biject_to.register(constraints._CorrCholesky)
def _corr_cholesky(constraint: Any) -> T.Transform:
    return T.CorrCholeskyTransform()


@biject_to.register(constraints._PositiveDefinite)
def _positive_definite(constraint: Any) -> T.Transform:
    return T.ComposeTransform([T.LowerCholeskyTransform(), T.CholeskyTransform().inv])


@biject_to.register(constraints._CorrMatrix)
def _corr_matrix(constraint: Any) -> T.Transform:
    return T.ComposeTransform([T.CorrCholeskyTransform(), T.CorrMatrixCholeskyTransform().inv])
