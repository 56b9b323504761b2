"""Array creation. Functions with an array argument follow its backend; the
others use the default backend (``DIFFLUX_BACKEND`` or ``dx.backend``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import backend_of_value, check_backend_name, default_backend, namespace
from ._batching import UnbatchableError, underlying
from ._core import Tracer, value_of


def _namespace_for(backend: str | None) -> Any:
    return namespace(backend if backend is not None else default_backend())


def asarray(obj: Any, /, *, dtype: Any = None, backend: str | None = None, copy: bool | None = None) -> Any:
    """Convert ``obj`` to an array of the given (or default) backend.

    A difflux tracer is returned unchanged (with a dtype conversion if asked),
    so ``asarray`` can be used freely inside differentiated code. Python
    floats become float64 on NumPy; on JAX they follow JAX's precision setting
    (see ``dx.config.enable_float64``).
    """
    if isinstance(obj, Tracer):
        if dtype is not None and obj.dtype != dtype:
            return astype(obj, dtype)
        return obj
    source = backend_of_value(obj)
    if backend is not None:
        check_backend_name(backend)
    target = backend or source or default_backend()
    if target == "numpy":
        if source == "jax":
            return np.asarray(obj, dtype=dtype)
        return np.array(obj, dtype=dtype, copy=True) if copy else np.asarray(obj, dtype=dtype)
    jnp = namespace("jax")
    return jnp.asarray(obj, dtype=dtype)


def astype(x: Any, dtype: Any, /) -> Any:
    """Cast ``x`` to ``dtype``; casting to a non-float type stops the gradient."""
    from ._ops_dtype import astype as _astype

    return _astype(x, dtype)


def zeros(shape: Any, *, dtype: Any = None, backend: str | None = None) -> Any:
    """Return an array of zeros (float64 on NumPy unless ``dtype`` is given)."""
    return _namespace_for(backend).zeros(shape, dtype=dtype)


def ones(shape: Any, *, dtype: Any = None, backend: str | None = None) -> Any:
    """Return an array of ones."""
    return _namespace_for(backend).ones(shape, dtype=dtype)


def full(shape: Any, fill_value: Any, *, dtype: Any = None, backend: str | None = None) -> Any:
    """Return an array filled with ``fill_value``."""
    return _namespace_for(backend).full(shape, fill_value, dtype=dtype)


def empty(shape: Any, *, dtype: Any = None, backend: str | None = None) -> Any:
    """Return an uninitialised array (zeros on JAX, which has no uninitialised memory)."""
    return _namespace_for(backend).empty(shape, dtype=dtype)


def arange(start: Any, /, stop: Any = None, step: Any = 1, *, dtype: Any = None, backend: str | None = None) -> Any:
    """Evenly spaced values in ``[start, stop)``."""
    return _namespace_for(backend).arange(start, stop, step, dtype=dtype)


def linspace(
    start: Any, stop: Any, /, num: int, *, dtype: Any = None, endpoint: bool = True, backend: str | None = None
) -> Any:
    """``num`` evenly spaced values from ``start`` to ``stop``."""
    return _namespace_for(backend).linspace(start, stop, num, dtype=dtype, endpoint=endpoint)


def eye(n_rows: int, n_cols: int | None = None, /, *, k: int = 0, dtype: Any = None, backend: str | None = None) -> Any:
    """Return a 2-D array with ones on the ``k``-th diagonal."""
    return _namespace_for(backend).eye(n_rows, n_cols, k=k, dtype=dtype)


def _like_namespace(x: Any) -> Any:
    # A NumPy scalar (np.float64, the result of a NumPy reduction) is a NumPy
    # value here, so reverse mode on NumPy inputs stays on NumPy even when the
    # default backend is JAX. Python numbers follow the default backend.
    if isinstance(x, np.generic):
        return np
    return _namespace_for(backend_of_value(value_of(x)))


def backend_of(x: Any) -> str | None:
    """Return the backend of an array or traced value: ``"numpy"``, ``"jax"``, or ``None`` for a Python number.

    Unlike reading a traced value's array, this works on every value inside
    ``dx.grad``, ``dx.jvp``, ``dx.vmap`` and ``dx.jit``.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> dx.backend_of(np.ones(2)), dx.backend_of(2.0)
        ('numpy', None)
    """
    if isinstance(x, np.generic):
        return "numpy"
    return backend_of_value(underlying(x))


def _like_value(x: Any) -> Any:
    """Return a plain array with the shape, dtype and backend of ``x``.

    That is ``x``'s value, except inside ``dx.vmap``, where the value under a
    batch tracer has an extra batch axis: there it is a zero array of one
    example's shape (a constant, the same for every example).
    """
    try:
        return value_of(x)
    except UnbatchableError:
        reference = underlying(x)
        return _like_namespace(reference).zeros(tuple(x.shape), dtype=x.dtype)


def zeros_like(x: Any, /, *, dtype: Any = None) -> Any:
    """Zeros with the shape, dtype and backend of ``x`` (never a tracer)."""
    value = _like_value(x)
    return _like_namespace(value).zeros_like(value, dtype=dtype)


def ones_like(x: Any, /, *, dtype: Any = None) -> Any:
    """Ones with the shape, dtype and backend of ``x`` (never a tracer)."""
    value = _like_value(x)
    return _like_namespace(value).ones_like(value, dtype=dtype)


def full_like(x: Any, /, fill_value: Any, *, dtype: Any = None) -> Any:
    """Return an array like ``x`` filled with ``fill_value`` (never a tracer)."""
    value = _like_value(x)
    return _like_namespace(value).full_like(value, fill_value, dtype=dtype)


def empty_like(x: Any, /, *, dtype: Any = None) -> Any:
    """Like ``zeros_like``; kept for the Array API."""
    return zeros_like(x, dtype=dtype)


def finfo_tiny(x: Any) -> float:
    """Return the smallest positive normal number of ``x``'s float dtype (float64 otherwise)."""
    dtype = getattr(value_of(x), "dtype", np.float64)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.float64
    return float(np.finfo(dtype).tiny)
