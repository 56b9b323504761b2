"""Data types, type promotion and constants of the Array API.

The dtype objects are NumPy's (``dx.float64 == np.dtype("float64")``), which
both backends accept wherever a dtype is expected and which compare equal to
``x.dtype`` of NumPy and JAX arrays alike. Type promotion follows the
arguments' backend: ``result_type`` applies NumPy's rules to NumPy
arrays and JAX's (which keep float32 unless float64 is enabled) to JAX
arrays.
"""

from __future__ import annotations

import builtins
import math
import sys
from typing import Any

import numpy as np

from ._backend import backend_of_value
from ._batching import underlying
from ._core import Tracer, value_of

# -- dtypes ---------------------------------------------------------------------

# ``bool`` shadows the built-in in this module, so code here calls builtins.bool.
bool = np.dtype("bool")  # noqa: A001 (Array API name)
int8 = np.dtype("int8")
int16 = np.dtype("int16")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
uint16 = np.dtype("uint16")
uint32 = np.dtype("uint32")
uint64 = np.dtype("uint64")
float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
complex64 = np.dtype("complex64")
complex128 = np.dtype("complex128")

# -- constants ------------------------------------------------------------------

e = math.e
pi = math.pi
inf = math.inf
nan = math.nan
newaxis = None


def _jax_numpy() -> Any:
    """Return ``jax.numpy`` if JAX is already imported, else ``None``."""
    if "jax" not in sys.modules:
        return None
    import jax.numpy as jnp

    return jnp


def _as_dtype(value: Any, function: str) -> np.dtype:
    """Return the dtype named by ``value``: a dtype, a scalar type, a string or an array."""
    if isinstance(value, np.dtype):
        return value
    if isinstance(value, type | str):
        try:
            return np.dtype(value)
        except TypeError:
            raise TypeError(f"{function} got {value!r}, which is not a data type") from None
    dtype = getattr(value_of(value), "dtype", None)
    if dtype is None:
        raise TypeError(
            f"{function} takes a dtype (such as dx.float32) or an array, got {type(value).__name__} {value!r}"
        )
    return np.dtype(dtype)


# -- finfo and iinfo ----------------------------------------------------------------


def finfo(type: Any, /) -> np.finfo:  # noqa: A002 (Array API name)
    """Return the machine limits of a floating-point dtype (or of an array's dtype).

    The result has the Array API's attributes ``bits``, ``eps``, ``max``,
    ``min``, ``smallest_normal`` and ``dtype``.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.finfo(dx.float32).eps)
        1.1920928955078125e-07
    """
    dtype = _as_dtype(type, "finfo")
    if dtype.kind not in "fcV":
        raise ValueError(f"finfo needs a floating-point dtype, got {dtype}; use dx.iinfo for integer dtypes")
    return np.finfo(dtype)


def iinfo(type: Any, /) -> np.iinfo:  # noqa: A002 (Array API name)
    """Return the limits of an integer dtype (or of an array's dtype): ``bits``, ``max``, ``min``, ``dtype``."""
    dtype = _as_dtype(type, "iinfo")
    if dtype.kind not in "iu":
        raise ValueError(f"iinfo needs an integer dtype, got {dtype}; use dx.finfo for floating-point dtypes")
    return np.iinfo(dtype)


# -- promotion and casting ----------------------------------------------------------


def result_type(*arrays_and_dtypes: Any) -> np.dtype:
    """Return the dtype that results from combining the given arrays and dtypes.

    With any JAX array among the arguments JAX's promotion rules apply,
    otherwise NumPy's. Python scalars are weakly typed in both, so
    ``result_type(float32_array, 1.0)`` is float32.
    """
    if not arrays_and_dtypes:
        raise ValueError("result_type needs at least one array or dtype")
    values = [underlying(a) if isinstance(a, Tracer) else a for a in arrays_and_dtypes]
    if any(backend_of_value(v) == "jax" for v in values):
        jnp = _jax_numpy()
        return np.dtype(jnp.result_type(*values))
    return np.result_type(*values)


def can_cast(from_: Any, to: Any, /) -> builtins.bool:
    """Return whether ``from_`` (a dtype or an array) converts to dtype ``to`` without losing information."""
    return builtins.bool(np.can_cast(_as_dtype(from_, "can_cast"), _as_dtype(to, "can_cast"), casting="safe"))


_KINDS = (
    "bool",
    "signed integer",
    "unsigned integer",
    "integral",
    "real floating",
    "complex floating",
    "numeric",
)


def _as_kind(kind: Any) -> Any:
    if isinstance(kind, tuple):
        return tuple(_as_kind(k) for k in kind)
    if isinstance(kind, str):
        if kind not in _KINDS:
            raise ValueError(f"isdtype's kind {kind!r} is not one of the Array API kinds {', '.join(_KINDS)}")
        return kind
    return _as_dtype(kind, "isdtype")


def isdtype(dtype: Any, kind: Any, /) -> builtins.bool:
    """Return whether ``dtype`` is of ``kind``: a dtype, a kind name such as ``"real floating"``, or a tuple of them.

    Examples:
        >>> import difflux.core as dx
        >>> dx.isdtype(dx.float32, ("integral", "real floating"))
        True
    """
    dtype = _as_dtype(dtype, "isdtype")
    kind = _as_kind(kind)
    try:
        return builtins.bool(np.isdtype(dtype, kind))
    except TypeError:
        # Dtypes that JAX adds (bfloat16, float8 types) are unknown to NumPy.
        jnp = _jax_numpy()
        if jnp is None:
            raise
        return builtins.bool(jnp.isdtype(dtype, kind))
