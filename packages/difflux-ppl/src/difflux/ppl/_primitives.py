"""The modelling primitives: ``sample``, ``param``, ``deterministic``, ``factor``, ``plate``, ``prng_key``.

A model is a Python function that calls these. Each call sends a message
through the effect-handler stack (see ``_messenger.py``), so what a call
returns depends on the handlers around the model: a fresh draw under
``seed``, the data under ``condition``, an inference algorithm's value under
``substitute``. Names, arguments and shapes follow NumPyro.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

import difflux.core as dx

from ._messenger import Message, Messenger, apply_stack, new_message


def _check_name(name: Any, primitive: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"ppl.{primitive} needs a site name (a str) as its first argument, got {name!r}")


def sample(
    name: str,
    fn: Any,
    obs: Any = None,
    *,
    rng_key: Any = None,
    sample_shape: tuple[int, ...] = (),
    infer: dict[str, Any] | None = None,
) -> Any:
    """Declare a random variable ``name`` with distribution ``fn``; return its value.

    With ``obs`` the site is observed: its value is ``obs`` and it adds
    ``fn.log_prob(obs)`` to the model's log density. Otherwise the value is
    a latent variable, drawn from ``fn`` with the key that ``seed`` supplies
    (or ``rng_key``) unless a handler such as ``substitute`` or
    ``condition`` sets it.

    Args:
        name: the site name, unique within one run of the model.
        fn: a distribution (``ppl.dist``).
        obs: observed data, or ``None`` for a latent variable.
        rng_key: a key for the draw, used when no ``seed`` handler is active.
        sample_shape: the shape of independent draws in front of the
            distribution's batch shape.
        infer: options for inference algorithms.

    Returns:
        The value, of shape ``sample_shape + batch_shape + event_shape``
        (the batch shape includes the dimensions of enclosing plates).
    """
    _check_name(name, "sample")
    if not hasattr(fn, "log_prob") or not hasattr(fn, "sample"):
        raise TypeError(
            f"ppl.sample({name!r}, ...) needs a distribution (an object with sample and log_prob, such as "
            f"ppl.dist.Normal(0.0, 1.0)), got {type(fn).__name__}"
        )
    msg = new_message(
        "sample",
        name,
        fn=fn,
        kwargs={"rng_key": rng_key, "sample_shape": tuple(sample_shape)},
        value=obs,
        is_observed=obs is not None,
        infer=dict(infer or {}),
    )
    return apply_stack(msg)["value"]


def param(
    name: str,
    init_value: Any = None,
    *,
    constraint: Any = None,
    event_dim: int | None = None,
) -> Any:
    """Declare an optimisable parameter ``name``; return its current value.

    Outside inference the value is ``init_value``. ``SVI`` finds the
    parameters of a guide (and of a model) by running it, optimises them in
    unconstrained space through ``ppl.dist.biject_to(constraint)``, and
    substitutes the constrained values.

    Args:
        name: the site name.
        init_value: the initial value, or a function of a random key that
            returns it (called with the key ``seed`` supplies).
        constraint: the parameter's support, from ``ppl.dist.constraints``;
            real-valued when omitted.
        event_dim: the number of rightmost dimensions that belong together
            (for example 1 for a simplex vector).
    """
    _check_name(name, "param")
    if init_value is None:
        raise ValueError(
            f"ppl.param({name!r}) needs an init_value (an array, or a function of a random key returning one)"
        )
    msg = new_message(
        "param",
        name,
        args=(init_value,),
        kwargs={"rng_key": None, "constraint": constraint, "event_dim": event_dim},
    )
    return apply_stack(msg)["value"]


def deterministic(name: str, value: Any) -> Any:
    """Record ``value``, computed from other sites, as site ``name``; return it.

    Deterministic sites add nothing to the log density; samplers and
    ``Predictive`` report them alongside the random variables.
    """
    _check_name(name, "deterministic")
    msg = new_message("deterministic", name, value=value, is_observed=True)
    return apply_stack(msg)["value"]


class _Factor:
    """A pseudo-distribution whose log density at its (empty) value is a given array."""

    event_shape: tuple[int, ...] = ()
    support = None

    def __init__(self, log_factor: Any) -> None:
        self.log_factor = log_factor
        self.batch_shape = tuple(np.shape(dx.stop_gradient(log_factor)))

    def expand(self, batch_shape: tuple[int, ...]) -> _Factor:
        return _Factor(dx.broadcast_to(self.log_factor, tuple(batch_shape)))

    def sample(self, key: Any, sample_shape: tuple[int, ...] = ()) -> Any:
        raise NotImplementedError("a factor site is always observed and has nothing to sample")

    def log_prob(self, value: Any) -> Any:
        return self.log_factor


def factor(name: str, log_factor: Any) -> None:
    """Add ``log_factor`` to the model's log density as site ``name``.

    Use it for terms that are not the log density of one random variable: a
    soft constraint, a Jacobian correction, a likelihood computed by hand.
    Enclosing plates, ``scale`` and ``mask`` apply to it as to a sample site.
    """
    _check_name(name, "factor")
    fn = _Factor(log_factor)
    msg = new_message(
        "sample",
        name,
        fn=fn,
        kwargs={"rng_key": None, "sample_shape": ()},
        value=dx.zeros_like(log_factor) if dx.is_array(log_factor) else np.zeros(np.shape(log_factor)),
        is_observed=True,
        infer={"is_auxiliary": True},
    )
    apply_stack(msg)


def prng_key() -> Any:
    """Return a fresh random key from the enclosing ``seed`` handler.

    Raises:
        RuntimeError: when no ``seed`` handler is active.
    """
    return apply_stack(new_message("prng_key", "_prng_key", kwargs={"rng_key": None}))["value"]


# --------------------------------------------------------------------------
# Plates
# --------------------------------------------------------------------------


class CondIndepStackFrame(NamedTuple):
    """A plate as recorded in a site's ``cond_indep_stack``.

    Attributes:
        name: the plate's name.
        dim: the (negative) batch dimension the plate occupies.
        size: the number of elements along the plate's dimension (the subsample size).
        full_size: the plate's full size; ``size < full_size`` when it
            subsamples.
    """

    name: str
    dim: int
    size: int
    full_size: int


def batch_shape_of(frames: list[CondIndepStackFrame]) -> tuple[int, ...]:
    """Return the batch shape that ``frames`` imply: each frame's size at its dim, 1 elsewhere."""
    if not frames:
        return ()
    shape = [1] * max(-frame.dim for frame in frames)
    for frame in frames:
        shape[frame.dim] = frame.size
    return tuple(shape)


class plate(Messenger):  # noqa: N801 (NumPyro's name for a context manager)
    """Mark conditionally independent dimensions: ``with ppl.plate("data", N): ...``.

    Every sample site inside gets the plate's dimension in its batch shape:
    a distribution whose batch shape lacks it is expanded (broadcast) to it.
    Plates nest; each takes the dimension ``dim`` (counted from the right,
    negative), by default the rightmost one that no enclosing plate holds.

    With ``subsample_size < size`` the plate draws a random subset of
    ``range(size)`` with the key of the enclosing ``seed``. Sites inside
    have ``subsample_size`` along the plate's dimension, and their log
    densities are scaled by ``size / subsample_size``, so the log density
    is an unbiased estimate of the full-data one. Index the data with
    the indices the ``with`` statement returns.

    Args:
        name: the plate's name (a site of type ``"plate"``; ``substitute``
            can fix its subsample indices).
        size: the number of conditionally independent elements.
        subsample_size: the size of the random subset; all of them when
            omitted.
        dim: the batch dimension, a negative int.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import ppl
        >>> def model():
        ...     with ppl.plate("data", 5):
        ...         return ppl.sample("x", ppl.dist.Normal(0.0, 1.0))
        >>> ppl.handlers.seed(model, dx.random.key(0, backend="numpy"))().shape
        (5,)
    """

    def __init__(self, name: str, size: int, subsample_size: int | None = None, dim: int | None = None) -> None:
        _check_name(name, "plate")
        size = _check_size(name, "size", size)
        subsample_size = size if subsample_size is None else _check_size(name, "subsample_size", subsample_size)
        if subsample_size > size:
            raise ValueError(f"plate {name!r}: subsample_size={subsample_size} exceeds size={size}")
        if dim is not None and (not isinstance(dim, int) or dim >= 0):
            raise ValueError(f"plate {name!r}: dim must be a negative int (counted from the right), got {dim!r}")
        self.name = name
        self.size = size
        self.subsample_size = subsample_size
        self.dim, self.indices = self._subsample(dim)
        super().__init__()

    def _subsample(self, dim: int | None) -> tuple[int, Any]:
        msg = new_message(
            "plate",
            self.name,
            args=(self.size, self.subsample_size),
            kwargs={"rng_key": None},
        )
        apply_stack(msg)
        indices = msg["value"]
        if tuple(np.shape(indices)) != (self.subsample_size,):
            raise ValueError(
                f"plate {self.name!r} got subsample indices of shape {tuple(np.shape(indices))}; "
                f"expected ({self.subsample_size},)"
            )
        occupied = {frame.dim for frame in msg["cond_indep_stack"]}
        if dim is None:
            dim = -1
            while dim in occupied:
                dim -= 1
        elif dim in occupied:
            raise ValueError(
                f"plate {self.name!r}: dim={dim} is already taken by an enclosing plate; choose another dim"
            )
        return dim, indices

    def __enter__(self) -> Any:
        super().__enter__()
        return self.indices

    @property
    def frame(self) -> CondIndepStackFrame:
        return CondIndepStackFrame(self.name, self.dim, self.subsample_size, self.size)

    def process_message(self, msg: Message) -> None:
        if msg["type"] not in ("sample", "plate", "deterministic", "param"):
            return
        msg["cond_indep_stack"].append(self.frame)
        if msg["type"] != "sample":
            return

        expected = batch_shape_of(msg["cond_indep_stack"])
        fn = msg["fn"]
        sample_shape = tuple(msg["kwargs"].get("sample_shape", ()))
        current = sample_shape + tuple(fn.batch_shape)
        # The plate dimensions go in front; dimensions to the right of every
        # plate stay the distribution's own.
        overlap = max(len(expected) - len(current), 0)
        try:
            trailing = dx.broadcast_shapes(expected[overlap:], current)
        except ValueError:
            raise ValueError(
                f"sample site {msg['name']!r} has batch shape {current} (sample_shape {sample_shape} + the "
                f"distribution's {tuple(fn.batch_shape)}), which does not broadcast to the shape "
                f"{expected} of its plates (plate {self.name!r} has size {self.subsample_size} at dim {self.dim})"
            ) from None
        batch_shape = expected[:overlap] + tuple(trailing)
        if batch_shape != tuple(fn.batch_shape):
            msg["fn"] = fn.expand(batch_shape)
        if msg["is_observed"]:
            self._check_observed(msg, batch_shape + tuple(fn.event_shape))
        if sample_shape:
            msg["kwargs"]["sample_shape"] = ()

        if self.subsample_size < self.size:
            factor = self.size / self.subsample_size
            msg["scale"] = factor if msg["scale"] is None else factor * msg["scale"]

    def _check_observed(self, msg: Message, shape: tuple[int, ...]) -> None:
        """Raise ValueError when the observed value does not broadcast to the site's batch and event shape."""
        observed = tuple(np.shape(msg["value"]))
        try:
            dx.broadcast_shapes(observed, shape)
        except ValueError:
            raise ValueError(
                f"sample site {msg['name']!r} observes a value of shape {observed}, which does not broadcast "
                f"to the shape {shape} that its plates and distribution give it (plate {self.name!r} has size "
                f"{self.subsample_size} at dim {self.dim}). Give the plate the size of the data, or index the "
                "data with the plate's subsample indices."
            ) from None


def _check_size(name: str, what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"plate {name!r}: {what} must be a positive int, got {value!r}")
    return int(value)
