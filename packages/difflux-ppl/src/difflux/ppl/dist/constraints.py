"""Constraints: the sets that parameters and samples of distributions live in.

A constraint has an ``event_dim`` (how many rightmost axes form one element of
the set, 0 for element-wise sets, 1 for vectors such as ``simplex``, 2 for
matrices such as ``lower_cholesky``) and a ``check(value)`` returning a boolean
array of shape ``value.shape[:value.ndim - event_dim]``. ``feasible_like(x)``
returns a point of the set with ``x``'s shape, which inference uses to
initialise latent values. :func:`difflux.ppl.dist.biject_to` maps each
constraint to a bijection from unconstrained space.

The names follow NumPyro's ``numpyro.distributions.constraints``: instances
(``real``, ``positive``, ``simplex``, ...) for fixed sets and lower-case
classes (``interval(low, high)``, ``greater_than(lower_bound)``, ...) for sets
with parameters.

Example:
    >>> import numpy as np
    >>> from difflux.ppl.dist import constraints
    >>> constraints.positive.check(np.array([1.0, -1.0])).tolist()
    [True, False]
    >>> constraints.simplex.check(np.array([0.25, 0.75])).tolist()
    True
"""

from __future__ import annotations

from typing import Any

import difflux.core as dx

__all__ = [
    "Constraint",
    "boolean",
    "circular",
    "corr_cholesky",
    "corr_matrix",
    "dependent",
    "greater_than",
    "greater_than_eq",
    "independent",
    "integer_greater_than",
    "integer_interval",
    "interval",
    "less_than",
    "lower_cholesky",
    "nonnegative",
    "nonnegative_integer",
    "open_interval",
    "ordered_vector",
    "positive",
    "positive_definite",
    "positive_integer",
    "real",
    "real_matrix",
    "real_vector",
    "simplex",
    "unit_interval",
]


def _tolerance(x: Any) -> float:
    """Return a tolerance for equality checks that scales with ``x``'s precision."""
    dtype = getattr(x, "dtype", None)
    try:
        return 1e3 * float(dx.finfo(dtype).eps) if dtype is not None else 1e-6
    except (TypeError, ValueError):
        return 1e-6


def _all_last(x: Any, n: int) -> Any:
    """Reduce a boolean array with ``all`` over its last ``n`` axes."""
    return dx.all(x, axis=tuple(range(-n, 0))) if n > 0 else x


class Constraint:
    """A set that values must lie in, defined by its ``check`` method.

    Attributes:
        event_dim: the number of rightmost axes that form one element.
        is_discrete: whether the set holds integers or booleans.
    """

    event_dim = 0
    is_discrete = False

    def __call__(self, value: Any) -> Any:
        return self.check(value)

    def check(self, value: Any) -> Any:
        """Return a boolean array, shape ``value.shape[:ndim - event_dim]``: whether each element lies in the set."""
        raise NotImplementedError

    def feasible_like(self, prototype: Any) -> Any:
        """Return a value in the set with the shape, dtype and backend of ``prototype``."""
        raise NotImplementedError(f"{self!r} has no feasible_like")

    def __repr__(self) -> str:
        name = type(self).__name__.lstrip("_")
        return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


class _Dependent(Constraint):
    """A placeholder for a support that depends on other parameters (such as Uniform's ``low``)."""

    def __init__(self, is_discrete: bool = False, event_dim: int = 0) -> None:
        self.is_discrete = is_discrete
        self.event_dim = event_dim

    def check(self, value: Any) -> Any:
        raise ValueError("A dependent constraint cannot be checked: it depends on the distribution's parameters.")

    def __call__(self, *, is_discrete: bool = False, event_dim: int = 0) -> _Dependent:  # type: ignore[override]
        return _Dependent(is_discrete, event_dim)


class _Real(Constraint):
    def check(self, value: Any) -> Any:
        return (value == value) & (value != float("inf")) & (value != float("-inf"))

    def feasible_like(self, prototype: Any) -> Any:
        return dx.zeros_like(prototype)


class _Boolean(Constraint):
    is_discrete = True

    def check(self, value: Any) -> Any:
        return (value == 0) | (value == 1)

    def feasible_like(self, prototype: Any) -> Any:
        return dx.zeros_like(prototype)


class independent(Constraint):  # noqa: N801 (NumPyro's name)
    """Reinterpret the rightmost ``reinterpreted_batch_ndims`` batch axes of ``base_constraint`` as event axes.

    ``independent(real, 1)`` is ``real_vector``: a vector is valid when all its
    entries are.
    """

    def __init__(self, base_constraint: Constraint, reinterpreted_batch_ndims: int) -> None:
        if not isinstance(reinterpreted_batch_ndims, int) or reinterpreted_batch_ndims < 0:
            raise ValueError(f"reinterpreted_batch_ndims must be an int >= 0, got {reinterpreted_batch_ndims!r}")
        self.base_constraint = base_constraint
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims
        self.event_dim = base_constraint.event_dim + reinterpreted_batch_ndims
        self.is_discrete = base_constraint.is_discrete

    def check(self, value: Any) -> Any:
        return _all_last(self.base_constraint.check(value), self.reinterpreted_batch_ndims)

    def feasible_like(self, prototype: Any) -> Any:
        return self.base_constraint.feasible_like(prototype)

    def __repr__(self) -> str:
        return f"independent({self.base_constraint!r}, {self.reinterpreted_batch_ndims})"


class greater_than(Constraint):  # noqa: N801 (NumPyro's name)
    """The open set ``x > lower_bound``."""

    def __init__(self, lower_bound: Any) -> None:
        self.lower_bound = lower_bound

    def check(self, value: Any) -> Any:
        return value > self.lower_bound

    def feasible_like(self, prototype: Any) -> Any:
        return dx.zeros_like(prototype) + (self.lower_bound + 1)

    def __repr__(self) -> str:
        return f"greater_than(lower_bound={self.lower_bound})"


class greater_than_eq(greater_than):  # noqa: N801 (NumPyro's name)
    """The closed set ``x >= lower_bound``."""

    def check(self, value: Any) -> Any:
        return value >= self.lower_bound

    def __repr__(self) -> str:
        return f"greater_than_eq(lower_bound={self.lower_bound})"


class less_than(Constraint):  # noqa: N801 (NumPyro's name)
    """The open set ``x < upper_bound``."""

    def __init__(self, upper_bound: Any) -> None:
        self.upper_bound = upper_bound

    def check(self, value: Any) -> Any:
        return value < self.upper_bound

    def feasible_like(self, prototype: Any) -> Any:
        return dx.zeros_like(prototype) + (self.upper_bound - 1)

    def __repr__(self) -> str:
        return f"less_than(upper_bound={self.upper_bound})"


class interval(Constraint):  # noqa: N801 (NumPyro's name)
    """The closed interval ``lower_bound <= x <= upper_bound``."""

    def __init__(self, lower_bound: Any, upper_bound: Any) -> None:
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound

    def check(self, value: Any) -> Any:
        return (value >= self.lower_bound) & (value <= self.upper_bound)

    def feasible_like(self, prototype: Any) -> Any:
        return dx.zeros_like(prototype) + (self.lower_bound + self.upper_bound) / 2

    def __repr__(self) -> str:
        return f"interval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class open_interval(interval):  # noqa: N801 (NumPyro's name)
    """The open interval ``lower_bound < x < upper_bound``."""

    def check(self, value: Any) -> Any:
        return (value > self.lower_bound) & (value < self.upper_bound)

    def __repr__(self) -> str:
        return f"open_interval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class integer_interval(Constraint):  # noqa: N801 (NumPyro's name)
    """The integers ``lower_bound <= k <= upper_bound``."""

    is_discrete = True

    def __init__(self, lower_bound: Any, upper_bound: Any) -> None:
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound

    def check(self, value: Any) -> Any:
        return (value >= self.lower_bound) & (value <= self.upper_bound) & (value == dx.round(value))

    def feasible_like(self, prototype: Any) -> Any:
        return dx.zeros_like(prototype) + self.lower_bound

    def __repr__(self) -> str:
        return f"integer_interval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class integer_greater_than(Constraint):  # noqa: N801 (NumPyro's name)
    """The integers ``k >= lower_bound``."""

    is_discrete = True

    def __init__(self, lower_bound: Any) -> None:
        self.lower_bound = lower_bound

    def check(self, value: Any) -> Any:
        return (value >= self.lower_bound) & (value == dx.round(value))

    def feasible_like(self, prototype: Any) -> Any:
        return dx.zeros_like(prototype) + self.lower_bound

    def __repr__(self) -> str:
        return f"integer_greater_than(lower_bound={self.lower_bound})"


class _Circular(interval):
    def __init__(self) -> None:
        super().__init__(-dx.pi, dx.pi)

    def __repr__(self) -> str:
        return "circular"


class _Positive(greater_than):
    def __init__(self) -> None:
        super().__init__(0.0)

    def __repr__(self) -> str:
        return "positive"


class _Nonnegative(greater_than_eq):
    def __init__(self) -> None:
        super().__init__(0.0)

    def __repr__(self) -> str:
        return "nonnegative"


class _UnitInterval(interval):
    def __init__(self) -> None:
        super().__init__(0.0, 1.0)

    def __repr__(self) -> str:
        return "unit_interval"


class _Simplex(Constraint):
    event_dim = 1

    def check(self, value: Any) -> Any:
        total = dx.sum(value, axis=-1)
        return dx.all(value >= 0, axis=-1) & (dx.abs(total - 1) < _tolerance(value))

    def feasible_like(self, prototype: Any) -> Any:
        return dx.ones_like(prototype) / prototype.shape[-1]


class _OrderedVector(Constraint):
    event_dim = 1

    def check(self, value: Any) -> Any:
        finite = dx.all(_Real().check(value), axis=-1)
        return finite & dx.all(value[..., 1:] > value[..., :-1], axis=-1)

    def feasible_like(self, prototype: Any) -> Any:
        n = prototype.shape[-1]
        return dx.zeros_like(prototype) + dx.asarray(dx.arange(n) - (n - 1) / 2, backend=_backend(prototype))


def _backend(x: Any) -> str:
    from ._util import backend_of_params

    return backend_of_params(x)


def _eye_like(prototype: Any) -> Any:
    n = prototype.shape[-1]
    return dx.zeros_like(prototype) + dx.eye(n, dtype=prototype.dtype, backend=_backend(prototype))


class _LowerCholesky(Constraint):
    """Lower-triangular matrices with a positive diagonal."""

    event_dim = 2

    def check(self, value: Any) -> Any:
        lower = dx.all(dx.all(dx.tril(value) == value, axis=-1), axis=-1)
        return lower & dx.all(dx.linalg.diagonal(value) > 0, axis=-1)

    def feasible_like(self, prototype: Any) -> Any:
        return _eye_like(prototype)


class _CorrCholesky(Constraint):
    """Lower Cholesky factors of correlation matrices: lower cholesky with rows of unit norm."""

    event_dim = 2

    def check(self, value: Any) -> Any:
        norms = dx.sqrt(dx.sum(value * value, axis=-1))
        unit_rows = dx.all(dx.abs(norms - 1) < _tolerance(value), axis=-1)
        return _LowerCholesky().check(value) & unit_rows

    def feasible_like(self, prototype: Any) -> Any:
        return _eye_like(prototype)


class _PositiveDefinite(Constraint):
    """Symmetric positive-definite matrices."""

    event_dim = 2

    def check(self, value: Any) -> Any:
        symmetric = dx.all(dx.all(dx.abs(value - dx.matrix_transpose(value)) < _tolerance(value), axis=-1), axis=-1)
        eigenvalues = dx.linalg.eigvalsh((value + dx.matrix_transpose(value)) / 2)
        return symmetric & dx.all(eigenvalues > 0, axis=-1)

    def feasible_like(self, prototype: Any) -> Any:
        return _eye_like(prototype)


class _CorrMatrix(_PositiveDefinite):
    """Correlation matrices: positive definite with a unit diagonal."""

    def check(self, value: Any) -> Any:
        unit_diagonal = dx.all(dx.abs(dx.linalg.diagonal(value) - 1) < _tolerance(value), axis=-1)
        return super().check(value) & unit_diagonal


# Instances for the sets without parameters, named as in NumPyro.
dependent = _Dependent()
real = _Real()
real_vector = independent(real, 1)
real_matrix = independent(real, 2)
boolean = _Boolean()
positive = _Positive()
nonnegative = _Nonnegative()
unit_interval = _UnitInterval()
circular = _Circular()
nonnegative_integer = integer_greater_than(0)
positive_integer = integer_greater_than(1)
simplex = _Simplex()
ordered_vector = _OrderedVector()
lower_cholesky = _LowerCholesky()
corr_cholesky = _CorrCholesky()
positive_definite = _PositiveDefinite()
corr_matrix = _CorrMatrix()
