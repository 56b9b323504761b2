r"""The ``Distribution`` base class, validation switches, and the shape wrappers.

Shapes follow NumPyro's convention. A distribution has a ``batch_shape``
(independent, not necessarily identical, distributions side by side) and an
``event_shape`` (the shape of one draw of a multivariate distribution).
``sample(key, sample_shape)`` returns ``sample_shape + batch_shape +
event_shape``, and ``log_prob(value)`` returns the log-density of each event,
of shape ``value.shape[:value.ndim - len(event_shape)]`` (broadcast against the
batch shape).

Adding a distribution means declaring ``arg_constraints`` (parameter name to
constraint) and ``support`` as class attributes and implementing ``sample``
and ``log_prob``; ``mean``, ``variance``, ``cdf`` and ``icdf`` where they have
closed forms. Setting ``reparametrized_params`` lists the parameters that
samples are differentiable in (``has_rsample``).

Validation. With ``validate_args=True`` (or after ``enable_validation()``)
the constructor checks each parameter against its constraint and raises a
``ValueError`` naming the distribution, the parameter and the value, and
``log_prob`` checks observations against the support (a warning by
default, an error with ``enable_validation(invalid_sample="error")``).
Checks need concrete values: inside ``dx.jit`` parameters and observations
are JAX tracers whose values are unknown while tracing, so validation is
skipped for them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx

from . import constraints
from ._util import _VALIDATION, Shape, is_traced, shape_of, to_numpy

__all__ = [
    "Distribution",
    "ExpandedDistribution",
    "Independent",
    "MaskedDistribution",
    "enable_validation",
    "validation_enabled",
]


def enable_validation(is_validate: bool = True, *, invalid_sample: str = "warn") -> None:
    """Turn argument validation on or off for distributions created afterwards.

    Args:
        is_validate: whether to check parameters and observations.
        invalid_sample: what ``log_prob`` does with an observation outside the
            support: ``"warn"`` (a ``UserWarning`` pointing at the caller) or
            ``"error"`` (a ``ValueError``).
    """
    if invalid_sample not in ("warn", "error"):
        raise ValueError(f"invalid_sample must be 'warn' or 'error', got {invalid_sample!r}")
    _VALIDATION["enabled"] = bool(is_validate)
    _VALIDATION["invalid_sample"] = invalid_sample


@contextlib.contextmanager
def validation_enabled(is_validate: bool = True, *, invalid_sample: str = "warn") -> Iterator[None]:
    """Enable (or disable) validation inside a ``with`` block, restoring the previous setting after it."""
    previous = dict(_VALIDATION)
    enable_validation(is_validate, invalid_sample=invalid_sample)
    try:
        yield
    finally:
        _VALIDATION.update(previous)


def _shape_tuple(shape: int | Sequence[int]) -> Shape:
    if isinstance(shape, int | np.integer):
        return (int(shape),)
    return tuple(int(s) for s in shape)


class Distribution:
    """Base class of probability distributions.

    Args:
        batch_shape: the shape of the batch of independent distributions.
        event_shape: the shape of one draw.
        validate_args: whether to check parameters and observations, where
            ``None`` follows `enable_validation`.

    Subclasses declare three class attributes: ``arg_constraints`` (the
    constraint of each parameter, by name), ``support`` (the constraint that
    samples satisfy) and ``reparametrized_params`` (the parameters that
    samples are differentiable in).
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}
    support: constraints.Constraint = constraints.real
    reparametrized_params: tuple[str, ...] = ()
    has_enumerate_support = False
    pytree_data_fields: tuple[str, ...] = ()

    def __init__(self, batch_shape: Shape = (), event_shape: Shape = (), *, validate_args: bool | None = None) -> None:
        self._batch_shape = tuple(batch_shape)
        self._event_shape = tuple(event_shape)
        self._validate_args = _VALIDATION["enabled"] if validate_args is None else bool(validate_args)
        if self._validate_args:
            self._validate_parameters()

    # -- shapes ---------------------------------------------------------------------

    @property
    def batch_shape(self) -> Shape:
        """The shape of the batch of independent distributions."""
        return self._batch_shape

    @property
    def event_shape(self) -> Shape:
        """The shape of one draw."""
        return self._event_shape

    @property
    def event_dim(self) -> int:
        """The number of axes of one draw."""
        return len(self._event_shape)

    @property
    def has_rsample(self) -> bool:
        """Whether samples are reparameterised: gradients flow from a sample back to the parameters."""
        return bool(self.reparametrized_params)

    @property
    def is_discrete(self) -> bool:
        """Whether the support is discrete."""
        return self.support.is_discrete

    def shape(self, sample_shape: Shape = ()) -> Shape:
        """Return the shape of ``sample(key, sample_shape)``: ``sample_shape + batch_shape + event_shape``."""
        return _shape_tuple(sample_shape) + self.batch_shape + self.event_shape

    # -- validation -----------------------------------------------------------------

    def _constraints_to_validate(self) -> dict[str, constraints.Constraint]:
        """Return the parameters that validation checks (all of ``arg_constraints`` by default)."""
        return self.arg_constraints

    def _validate_parameters(self) -> None:
        for name, constraint in self._constraints_to_validate().items():
            value = getattr(self, name, None)
            if value is None or is_traced(value):
                continue
            if isinstance(constraint, constraints._Dependent):
                continue
            valid = to_numpy(constraint.check(dx.stop_gradient(value)))
            if not np.all(valid):
                shown = _format_value(value)
                raise ValueError(
                    f"{type(self).__name__} got an invalid parameter {name} = {shown}: it must satisfy the "
                    f"constraint {constraint!r}. Check the value passed as {name}, or map an unconstrained "
                    f"value into the constraint with dist.biject_to({constraint!r})."
                )

    def _validate_sample(self, value: Any) -> None:
        """Warn or raise (see :func:`enable_validation`) when ``value`` lies outside the support."""
        if is_traced(value):
            return
        try:
            valid = to_numpy(self.support.check(dx.stop_gradient(value)))
        except ValueError:
            return
        if np.all(valid):
            return
        shown = _format_value(value)
        message = (
            f"{type(self).__name__}.log_prob got a value outside its support {self.support!r}: {shown}. "
            "The log-density there is not meaningful."
        )
        if _VALIDATION["invalid_sample"] == "error":
            raise ValueError(message)
        warnings.warn(message, UserWarning, stacklevel=3)

    # -- the interface subclasses implement ------------------------------------------

    def sample(self, key: Any, sample_shape: Shape = ()) -> Any:
        """Draw samples of shape ``sample_shape + batch_shape + event_shape``.

        Args:
            key: a random key from ``dx.random.key``. Samples follow its backend.
            sample_shape: the leading shape of independent draws.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement sample")

    def sample_with_intermediates(self, key: Any, sample_shape: Shape = ()) -> tuple[Any, list[Any]]:
        """Return ``(sample, intermediates)``, where only transformed distributions have intermediates."""
        return self.sample(key, sample_shape), []

    def rsample(self, key: Any, sample_shape: Shape = ()) -> Any:
        """Draw reparameterised samples, raising for distributions without ``has_rsample``."""
        if not self.has_rsample:
            raise NotImplementedError(
                f"{type(self).__name__} has no reparameterised sampler, so gradients cannot flow through "
                "its samples. Use a score-function estimator, or a continuous relaxation."
            )
        return self.sample(key, sample_shape)

    def log_prob(self, value: Any) -> Any:
        """Return the log-density (or log-mass) of ``value``, shape ``value.shape[:ndim - event_dim]``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement log_prob")

    @property
    def mean(self) -> Any:
        """The mean, shape ``batch_shape + event_shape``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form mean")

    @property
    def variance(self) -> Any:
        """The variance, shape ``batch_shape + event_shape``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form variance")

    def cdf(self, value: Any) -> Any:
        """Return the cumulative distribution function at ``value``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form cdf")

    def icdf(self, q: Any) -> Any:
        """Return the inverse cumulative distribution function (quantile function) at ``q``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form icdf")

    def entropy(self) -> Any:
        """Return the differential entropy, shape ``batch_shape``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form entropy")

    def enumerate_support(self, expand: bool = True) -> Any:
        """Return every value of a finite discrete support, stacked on a new leading axis."""
        raise NotImplementedError(f"{type(self).__name__} has no finite support to enumerate")

    # -- shape wrappers -------------------------------------------------------------

    def expand(self, batch_shape: Shape) -> Distribution:
        """Return this distribution broadcast to ``batch_shape`` (which the current batch shape must broadcast to)."""
        batch_shape = _shape_tuple(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        return ExpandedDistribution(self, batch_shape)

    def expand_by(self, sample_shape: Shape) -> Distribution:
        """Return this distribution with ``sample_shape`` prepended to its batch shape."""
        return self.expand(_shape_tuple(sample_shape) + self.batch_shape)

    def to_event(self, reinterpreted_batch_ndims: int | None = None) -> Distribution:
        """Reinterpret the rightmost ``reinterpreted_batch_ndims`` batch axes as event axes (all when ``None``)."""
        n = len(self.batch_shape) if reinterpreted_batch_ndims is None else reinterpreted_batch_ndims
        if n == 0:
            return self
        return Independent(self, n)

    def mask(self, mask: Any) -> Distribution:
        """Return a distribution whose ``log_prob`` is 0 where ``mask`` (broadcast with the batch) is ``False``."""
        if isinstance(mask, bool) and mask:
            return self
        return MaskedDistribution(self, mask)

    def __repr__(self) -> str:
        parameters = ", ".join(f"{name}={_short(getattr(self, name, None))}" for name in self.arg_constraints)
        return f"{type(self).__name__}({parameters}, batch_shape={self.batch_shape}, event_shape={self.event_shape})"


def _format_value(value: Any) -> str:
    """Format a concrete value for a message: a scalar as a Python float, an array summarised."""
    array = to_numpy(dx.stop_gradient(value))
    if array.size == 1:
        return repr(array.reshape(()).item())
    return np.array2string(array, threshold=20, precision=6, separator=", ")


def _short(value: Any) -> str:
    if value is None:
        return "None"
    shape = shape_of(value)
    if shape:
        return f"<array {shape}>"
    try:
        return f"{float(to_numpy(dx.stop_gradient(value))):.4g}"
    except (TypeError, ValueError):
        return "<traced>"


def broadcast_to_batch(x: Any, shape: Shape) -> Any:
    """Broadcast ``x`` to ``shape`` when it differs (a cheap no-op otherwise)."""
    return x if shape_of(x) == tuple(shape) else dx.broadcast_to(x, tuple(shape))


# The wrappers subclass Distribution, which the methods expand, to_event and
# mask return, so they are imported once Distribution exists.
from ._wrappers import ExpandedDistribution, Independent, MaskedDistribution  # noqa: E402
