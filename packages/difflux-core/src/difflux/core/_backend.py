"""Backend detection and selection.

An operation's backend follows its array arguments: NumPy arrays and Python
or NumPy scalars run on NumPy, ``jax.Array`` values (JAX tracers included) run
on JAX. Creation functions, which have no array argument, use the default
backend: the ``DIFFLUX_BACKEND`` environment variable (``numpy`` when unset),
overridden inside ``with dx.backend("jax"):``.

JAX is imported only when a JAX value is seen or the JAX backend is requested,
so ``import difflux.core`` never imports it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

BACKENDS = ("numpy", "jax")

_NUMPY_TYPES: set[type] = {
    np.ndarray,
    float,
    int,
    bool,
    complex,
    np.float64,
    np.float32,
    np.float16,
    np.int64,
    np.int32,
    np.int8,
    np.uint8,
    np.bool_,
    np.complex128,
    np.complex64,
}
# Types that are NumPy scalars or Python numbers: they combine with either
# backend without counting as a NumPy array.
_SCALAR_TYPES: set[type] = _NUMPY_TYPES - {np.ndarray}
_JAX_TYPES: set[type] = set()
_OTHER_TYPES: set[type] = set()


def check_backend_name(name: str, source: str = "") -> str:
    """Return ``name`` when it names a backend; raise ``ValueError`` naming ``source`` otherwise."""
    if name not in BACKENDS:
        where = f" (from {source})" if source else ""
        raise ValueError(f"Unknown difflux backend {name!r}{where}. Valid backends are 'numpy' and 'jax'.")
    return name


_default_stack: list[str] = [
    check_backend_name(os.environ.get("DIFFLUX_BACKEND", "numpy"), "the DIFFLUX_BACKEND environment variable")
]


def default_backend() -> str:
    """Return the name of the backend used by creation functions."""
    return _default_stack[-1]


@contextlib.contextmanager
def backend(name: str) -> Iterator[str]:
    """Make ``name`` the default backend for creation functions in this block.

    Operations on existing arrays keep following their arguments, so this only
    affects functions such as ``dx.zeros`` or ``dx.random.normal`` that create
    arrays from Python values.

    Examples:
        >>> import difflux.core as dx
        >>> with dx.backend("numpy"):
        ...     x = dx.zeros(3)
        >>> type(x).__name__
        'ndarray'
    """
    check_backend_name(name)
    if name == "jax":
        jax_module()
    _default_stack.append(name)
    try:
        yield name
    finally:
        _default_stack.pop()


def jax_module() -> ModuleType:
    """Import and return ``jax``, with a clear error when it is missing."""
    try:
        import jax
    except ImportError as error:
        raise ImportError(
            "The JAX backend needs JAX, which is not installed. Install it with `pip install 'difflux-core[jax]'`."
        ) from error
    return jax


def _is_jax_value(value: Any) -> bool:
    kind = type(value)
    if kind in _JAX_TYPES:
        return True
    if kind in _OTHER_TYPES or kind in _NUMPY_TYPES:
        return False
    jax = sys.modules.get("jax")
    # JAX tracers are instances of jax.Array through __instancecheck__ but not
    # subclasses of it, so the check has to look at a value.
    if jax is not None and isinstance(value, jax.Array | jax.core.Tracer):
        _JAX_TYPES.add(kind)
        return True
    # jax may be imported later, so only remember negative answers once it is.
    if jax is not None:
        _OTHER_TYPES.add(kind)
    return False


def backend_of_value(value: Any) -> str | None:
    """Return ``"numpy"``, ``"jax"`` or ``None`` (a Python or NumPy scalar)."""
    kind = type(value)
    if kind is np.ndarray:
        return "numpy"
    if kind in _SCALAR_TYPES:
        return None
    if _is_jax_value(value):
        return "jax"
    if isinstance(value, np.ndarray):
        return "numpy"
    if isinstance(value, np.generic):
        return None
    return None


def backend_of(args: tuple[Any, ...] | list[Any], op_name: str = "operation") -> str:
    """Return the backend of an operation's (already unwrapped) arguments.

    Raises:
        TypeError: when NumPy arrays and JAX arrays are mixed in one call.
    """
    found = None
    for value in args:
        kind = type(value)
        if kind in _SCALAR_TYPES:
            continue
        name = backend_of_value(value)
        if name is None:
            continue
        if found is None:
            found = name
        elif name != found:
            raise TypeError(
                f"{op_name} received both a NumPy array and a JAX array. difflux "
                "does not move data between backends implicitly; convert one of "
                "them first, for example with dx.asarray(x, backend='jax')."
            )
    return found if found is not None else default_backend()


def namespace(name: str) -> ModuleType:
    """Return the array namespace (``numpy`` or ``jax.numpy``) of a backend."""
    if name == "numpy":
        return np
    if name != "jax":
        check_backend_name(name)
    jax_module()
    import jax.numpy as jnp

    return jnp
