"""The ``Layer`` base class and the helpers that every layer shares.

A layer is a ``dx.Module`` called as ``layer(x, *, key=None)``. The key is
the random key of one call: layers that draw random numbers in training mode
(``Dropout``, the attention dropout) use it, and containers split it among
their children. Every other layer accepts it and ignores it, so a container
can pass keys down without knowing which children need one.

``Layer.__init_subclass__`` wraps each ``__call__`` so that ``nn.summary`` can
see the output of every layer call. Outside a summary the wrapper costs one
global read per call.
"""

from __future__ import annotations

import functools
import inspect
import operator
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import difflux.core as dx

# Set by nn.summary while it runs a model: called as hook(layer, output).
_output_hook: Callable[[Any, Any], None] | None = None


def _repr_with_mask_fallback(own_repr: Callable[[Any], str]) -> Callable[[Any], str]:
    """Wrap a layer's ``__repr__``, which reads its arrays' shapes, to fall back on ``dx.Module``'s.

    The fallback serves layers that contain booleans in place of arrays: the
    masks that ``nn.trainable`` and ``nn.freeze`` return.
    """

    @functools.wraps(own_repr)
    def wrapper(self: Any) -> str:
        if any(isinstance(leaf, bool | np.bool_) for leaf in dx.tree_leaves(self)):
            return dx.Module.__repr__(self)
        return own_repr(self)

    wrapper._nn_checks_leaves = True  # type: ignore[attr-defined]
    return wrapper


def _record_output(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def call_and_record(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = call(self, *args, **kwargs)
        hook = _output_hook
        if hook is not None:
            hook(self, out)
        return out

    call_and_record._nn_records_output = True  # type: ignore[attr-defined]
    return call_and_record


class Layer(dx.Module):
    """Base class of the layers of ``difflux.nn``.

    A subclass is a ``dx.Module``: array fields are parameters, other fields
    are static. Its ``__call__`` takes the input and a keyword-only random
    ``key`` (``None`` when the caller has none). Subclass it for your own
    layers so that containers pass them keys and ``nn.summary`` lists their
    output shapes.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> class Scale(nn.Layer):
        ...     factor: object
        ...
        ...     def __call__(self, x, *, key=None):
        ...         return self.factor * x
        >>> Scale(dx.asarray([2.0]))(dx.asarray([3.0])).tolist()
        [6.0]
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        call = cls.__dict__.get("__call__")
        if call is not None and not getattr(call, "_nn_records_output", False):
            cls.__call__ = _record_output(call)  # type: ignore[method-assign]
        own_repr = cls.__dict__.get("__repr__")
        if own_repr is not None and not getattr(own_repr, "_nn_checks_leaves", False):
            cls.__repr__ = _repr_with_mask_fallback(own_repr)  # type: ignore[method-assign]

    def _label(self) -> str:
        """Return the one-line name of the layer in ``nn.summary``."""
        return repr(self)


def identity(x: Any) -> Any:
    """Return ``x`` unchanged: the default activation of every layer."""
    return x


# --------------------------------------------------------------------------
# Random keys
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _signature_takes_key(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get("key")
    return parameter is not None and parameter.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def accepts_key(function: Any) -> bool:
    """Return whether calling ``function`` with ``key=`` is allowed.

    Every ``nn.Layer`` accepts a key. Another module or function accepts one
    when its signature has a parameter named ``key``.
    """
    if isinstance(function, Layer):
        return True
    target = type(function).__call__ if isinstance(function, dx.Module) else function
    try:
        return _signature_takes_key(target)
    except TypeError:  # an unhashable callable
        return False


def call_with_key(function: Any, x: Any, key: Any) -> Any:
    """Call ``function(x)``, passing ``key`` when there is one and ``function`` accepts it."""
    if key is not None and accepts_key(function):
        return function(x, key=key)
    return function(x)


def split_key(key: Any, num: int) -> list[Any]:
    """Split ``key`` into ``num`` keys; ``None`` gives ``num`` times ``None``."""
    if key is None:
        return [None] * num
    if num == 1:
        return [key]
    return list(dx.random.split(key, num))


# --------------------------------------------------------------------------
# Arrays and shapes
# --------------------------------------------------------------------------


def backend_of(x: Any) -> str:
    """Return ``"jax"`` for a JAX array (traced or not, random keys included), else ``"numpy"``."""
    value = dx.stop_gradient(x)
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(value, jax.Array | jax.core.Tracer):
        return "jax"
    return "numpy"


def concrete_value(x: Any) -> Any:
    """Return the array under ``x``'s derivative tracers, or ``None`` where its values are not known now.

    NumPy arrays, eager JAX arrays and the values under ``dx.grad``'s
    tracers are known. JAX tracers (inside ``dx.jit`` or ``jax.jit``),
    ``dx.vmap`` batch tracers and arrays recorded by
    ``difflux.core._record`` are not, and reading their values raises.
    """
    value = dx.stop_gradient(x)
    if isinstance(value, dx.Tracer):
        return None
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(value, jax.core.Tracer):
        return None
    return value


def as_positive_int(value: Any, name: str, owner: str) -> int:
    """Return the size ``value`` as an int, raising unless it is a positive integer.

    Python ints, NumPy integers and 0-d integer arrays pass. Booleans and
    floats raise ``TypeError``, ``4.0`` included, so that no size is
    silently truncated. Zero and negative sizes raise ``ValueError``.
    """
    not_integer = f"{owner}: {name} must be a positive integer, got {value!r} of type {type(value).__name__}"
    if isinstance(value, bool | np.bool_):
        raise TypeError(not_integer)
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(not_integer) from None
    if size < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {size}")
    return size


def as_tuple(value: int | Sequence[int], length: int, name: str, owner: str, minimum: int = 1) -> tuple[int, ...]:
    """Return ``value`` as a tuple of ``length`` ints, each at least ``minimum``: an int is repeated.

    Raises:
        TypeError: for entries that are not integers (``1.5``, ``True``).
        ValueError: for the wrong number of entries, or an entry below ``minimum``.
    """
    if isinstance(value, Sequence) and not isinstance(value, str):
        result = tuple(_as_int(v, value, name, owner) for v in value)
        if len(result) != length:
            raise ValueError(
                f"{owner}: {name}={value!r} needs {length} entries, one per spatial axis, got {len(result)}"
            )
    else:
        result = (_as_int(value, value, name, owner),) * length
    if any(v < minimum for v in result):
        raise ValueError(f"{owner}: every entry of {name} must be at least {minimum}, got {name}={value!r}")
    return result


def positive_ints(value: int | Sequence[int], name: str, owner: str) -> int | tuple[int, ...]:
    """Return a positive int, or a non-empty sequence of them as a tuple, raising for anything else."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            raise ValueError(f"{owner}: {name} needs at least one entry, got {value!r}")
        return as_tuple(value, len(value), name, owner)
    return as_positive_int(value, name, owner)


def _as_int(entry: Any, value: Any, name: str, owner: str) -> int:
    if isinstance(entry, bool | np.bool_):
        raise TypeError(f"{owner}: {name} must contain integers, got {name}={value!r}")
    try:
        return operator.index(entry)
    except TypeError:
        raise TypeError(f"{owner}: {name} must contain integers, got {name}={value!r}") from None


def static_padding(padding: Any, owner: str) -> Any:
    """Check ``padding`` and return it hashable (tuples for lists), as a static field must be.

    Accepted: ``"SAME"`` or ``"VALID"`` in any case, an int, or per spatial
    axis an int or a ``(low, high)`` pair. Negative ints crop the input, as
    in ``jax.lax.conv_general_dilated``.
    """
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"{owner}: padding={padding!r} is not a padding mode. Use 'SAME', 'VALID' or integers")
        return padding
    if not isinstance(padding, Sequence):
        return _as_int(padding, padding, "padding", owner)
    entries = []
    for entry in padding:
        if isinstance(entry, Sequence) and not isinstance(entry, str):
            if len(entry) != 2:
                raise ValueError(
                    f"{owner}: padding={padding!r} has an entry {entry!r}; each entry is an int or a (low, high) pair"
                )
            entries.append((_as_int(entry[0], padding, "padding", owner), _as_int(entry[1], padding, "padding", owner)))
        else:
            entries.append(_as_int(entry, padding, "padding", owner))
    return tuple(entries)


def shape_error(layer: Any, expected: str, x: Any) -> ValueError:
    """Build the error for an input of the wrong shape: the layer, what it expects, what it got."""
    return ValueError(f"{layer!r} expects {expected}, got an input of shape {tuple(x.shape)}")


def name_of(function: Any) -> str:
    """Return a short printable name of an activation or other callable."""
    if isinstance(function, dx.Module):
        return repr(function)
    name = getattr(function, "__name__", None)
    if name is None and isinstance(function, functools.partial):
        return f"partial({name_of(function.func)})"
    return name or repr(function)


def format_call(name: str, positional: Sequence[str], keywords: dict[str, Any], defaults: dict[str, Any]) -> str:
    """Format ``Name(a, b, key=value)``, leaving out keywords equal to their defaults."""
    parts = list(positional)
    for keyword, value in keywords.items():
        if keyword in defaults and _equal(value, defaults[keyword]):
            continue
        parts.append(f"{keyword}={value!r}")
    return f"{name}({', '.join(parts)})"


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
