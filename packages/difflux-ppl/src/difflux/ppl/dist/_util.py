"""Shared helpers of the distributions: parameter conversion, shapes and validation flags."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core._backend import backend_of_value
from difflux.core._core import value_of

Shape = tuple[int, ...]

# Validation switches read by every distribution made afterwards
# (``enable_validation``). Observations outside the support "warn" or "error".
_VALIDATION = {"enabled": False, "invalid_sample": "warn"}


def shape_of(x: Any) -> Shape:
    """Return the shape of an array, tracer or Python number."""
    return tuple(np.shape(value_of(x))) if not hasattr(x, "shape") else tuple(x.shape)


def backend_of_params(*params: Any) -> str:
    """Return the backend of the first array among ``params`` (JAX wins), else the default backend."""
    found = None
    for p in params:
        if p is None:
            continue
        name = dx.backend_of(p)  # not value_of: the array of a dx.vmap batch must not be read
        if name == "jax":
            return "jax"
        if name is not None:
            found = name
    return found if found is not None else dx.default_backend()


def as_param(x: Any, backend: str, dtype: Any = None) -> Any:
    """Convert a parameter to an array of ``backend``, passing tracers unchanged.

    Python numbers and 0-d NumPy arrays become NumPy float scalars
    (``np.float64``), which combine with arrays of either backend, so that
    ``Normal(0.0, 1.0)`` works with NumPy and JAX values alike (inside
    ``dx.jit`` too). Other arrays move to ``backend`` when they are not on it.
    """
    if isinstance(x, dx.Tracer):
        return x
    value = value_of(x)
    if isinstance(value, str | bytes) or (isinstance(value, np.ndarray) and value.dtype.kind in "USOV"):
        raise TypeError(f"distribution parameters must be numbers or numeric arrays, got {value!r}")
    if isinstance(value, bool | int | float | np.integer | np.floating) or (
        isinstance(value, np.ndarray) and value.ndim == 0
    ):
        return np.dtype(dtype or np.float64).type(value)
    if backend_of_value(value) == backend and dtype is None:
        if np.asarray(value).dtype.kind in "iub" if backend == "numpy" else value.dtype.kind in "iub":
            return dx.astype(value, dx.float64 if backend == "numpy" or _jax_x64() else dx.float32)
        return x
    if dtype is None and np.asarray(value).dtype.kind in "iub":
        dtype = dx.float64 if backend == "numpy" or _jax_x64() else dx.float32
    return dx.asarray(value, dtype=dtype, backend=backend)


def _jax_x64() -> bool:
    jax = sys.modules.get("jax")
    return bool(jax is not None and jax.config.read("jax_enable_x64"))


def as_params(*params: Any) -> tuple[Any, ...]:
    """Convert all ``params`` to arrays of one backend (see :func:`as_param`), keeping ``None`` as ``None``."""
    backend = backend_of_params(*params)
    return tuple(None if p is None else as_param(p, backend) for p in params)


def broadcast_shapes(*shapes: Sequence[int]) -> Shape:
    """Return the broadcast of ``shapes``, raising a ValueError that names them."""
    try:
        return tuple(np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        raise ValueError(f"parameter shapes {[tuple(s) for s in shapes]} do not broadcast against each other") from None


def is_traced(x: Any) -> bool:
    """Return whether ``x`` holds a JAX tracer, whose values are unknown until run time (inside ``jit``)."""
    value = value_of(x)
    jax = sys.modules.get("jax")
    return bool(jax is not None and isinstance(value, jax.core.Tracer))


def sum_rightmost(x: Any, n: int) -> Any:
    """Sum the last ``n`` axes of ``x`` (no-op for ``n == 0``)."""
    if n <= 0:
        return x
    return dx.sum(x, axis=tuple(range(-n, 0)))


def size_of(shape: Sequence[int]) -> int:
    return math.prod(shape)


def tiny(x: Any) -> float:
    """Return the smallest positive normal number of ``x``'s float dtype."""
    return float(dx.finfo(dx.asarray(value_of(x)).dtype if not hasattr(x, "dtype") else x.dtype).tiny)


def eps(x: Any) -> float:
    """Return the machine epsilon of ``x``'s float dtype."""
    return float(dx.finfo(x.dtype).eps)


def clamp_probs(p: Any) -> Any:
    """Clip probabilities into ``[eps, 1 - eps]`` so their logs stay finite."""
    e = eps(p)
    return dx.clip(p, e, 1.0 - e)


def full_like_backend(shape: Shape, value: float, like: Any) -> Any:
    """Return an array of ``shape`` filled with ``value``, on ``like``'s backend and dtype."""
    return dx.broadcast_to(dx.full_like(like, value), shape) if shape_of(like) != shape else dx.full_like(like, value)


def probs_to_logits(probs: Any, is_binary: bool = False) -> Any:
    """Return the logits of ``probs`` (``logit(p)`` when ``is_binary``, ``log(p)`` otherwise)."""
    p = clamp_probs(probs)
    return dx.log(p) - dx.log1p(-p) if is_binary else dx.log(p)


def logits_to_probs(logits: Any, is_binary: bool = False) -> Any:
    """Return the probabilities of ``logits`` (sigmoid when ``is_binary``, softmax along the last axis otherwise)."""
    return dx.sigmoid(logits) if is_binary else dx.softmax(logits, axis=-1)


def to_numpy(x: Any) -> np.ndarray:
    """Return the concrete value of ``x`` as a NumPy array (for validation and messages)."""
    return np.asarray(value_of(x))


def match_backend(param: Any, like: Any) -> Any:
    """Move a NumPy array parameter to JAX when ``like`` is a JAX value, and pass anything else unchanged.

    Transforms and constraints built from NumPy bounds are then usable on
    JAX values, as Python-number bounds are.
    """
    if isinstance(param, np.ndarray) and param.ndim > 0 and backend_of_value(value_of(like)) == "jax":
        return dx.asarray(param, backend="jax")
    return param
