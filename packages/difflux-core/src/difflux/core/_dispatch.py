"""Helpers for defining primitives: backend dispatch and un-broadcasting.

A primitive's implementation receives plain NumPy or JAX values. ``make_impl``
builds one that looks at the arguments' backend and calls the NumPy function
or its ``jax.numpy`` (or ``jax.scipy``) counterpart.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ._backend import backend_of


def _resolve(path: str) -> Callable[..., Any]:
    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def make_impl(
    name: str,
    numpy_fn: Callable[..., Any] | None = None,
    jax_fn: Callable[..., Any] | str | None = None,
) -> Callable[..., Any]:
    """Build an implementation dispatching on the arguments' backend.

    Args:
        name: the operation's name; by default the NumPy function ``np.<name>``
            and the JAX function ``jax.numpy.<name>``.
        numpy_fn: the NumPy-side function, when it is not ``np.<name>``.
        jax_fn: the JAX-side function, or a dotted import path resolved on first
            use (so JAX is imported only when a JAX value is seen).
    """
    numpy_impl: Callable[..., Any] = numpy_fn if numpy_fn is not None else getattr(np, name)
    jax_target: Any = jax_fn if jax_fn is not None else f"jax.numpy.{name}"
    resolved: list[Callable[..., Any]] = []

    def impl(*args: Any, **params: Any) -> Any:
        if backend_of(args, name) == "numpy":
            return numpy_impl(*args, **params)
        if not resolved:
            resolved.append(_resolve(jax_target) if isinstance(jax_target, str) else jax_target)
        return resolved[0](*args, **params)

    impl.__name__ = f"{name}_impl"
    # bind() calls the NumPy function directly when it has already seen that
    # the arguments are NumPy arrays, skipping the backend check above.
    impl.numpy_impl = numpy_impl  # type: ignore[attr-defined]
    return impl


def shape_of(x: Any) -> tuple[int, ...]:
    """Return the shape of an array, tracer or Python scalar."""
    shape = getattr(x, "shape", None)
    return tuple(shape) if shape is not None else ()


def _broadcast_axes(g_shape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """Return the axes of ``g_shape`` along which ``shape`` was broadcast to it."""
    extra = len(g_shape) - len(shape)
    return tuple(range(extra)) + tuple(
        i + extra for i, size in enumerate(shape) if size == 1 and g_shape[i + extra] != 1
    )


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum a cotangent over the axes along which its input was broadcast."""
    g_shape = shape_of(g)
    if g_shape == shape:
        return g
    if type(g) is np.ndarray:
        # A plain NumPy cotangent is not being recorded: reduce it directly.
        return sum_to_shape(g, shape)
    from . import _ops_reduction, _ops_shape

    axes = _broadcast_axes(g_shape, shape)
    if axes:
        g = _ops_reduction.sum(g, axis=axes)
    return _ops_shape.reshape(g, shape)


def sum_to_shape(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum a plain NumPy cotangent (an array or a NumPy scalar) to ``shape``, as ``unbroadcast`` does."""
    g_shape = g.shape if type(g) is np.ndarray else np.shape(g)
    if g_shape == shape:
        return g
    axes = _broadcast_axes(g_shape, shape)
    # The methods, not np.sum and np.reshape: on small arrays the Python
    # wrappers of the functions cost more than the arithmetic.
    return g.sum(axis=axes).reshape(shape) if axes else g.reshape(shape)


def sum_like(g: Any, x: Any) -> Any:
    """Reduce a plain NumPy cotangent ``g`` (an array or a NumPy scalar) to the shape of ``x``."""
    shape = x.shape if type(x) is np.ndarray else np.shape(x)
    if g.shape == shape:
        return g
    return sum_to_shape(g, shape)


def broadcast_tangent(t: Any, out: Any) -> Any:
    """Broadcast an input's tangent to the shape of the output."""
    out_shape = shape_of(out)
    if shape_of(t) == out_shape:
        return t
    from . import _ops_shape

    return _ops_shape.broadcast_to(t, out_shape)
