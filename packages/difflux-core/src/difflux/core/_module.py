"""``dx.Module``: immutable, dataclass-style structures whose arrays are parameters.

A subclass declares its fields as annotations and becomes a dataclass when it
is defined. It may instead write its own ``__init__`` and assign the declared
fields there (Equinox style). Once construction finishes the instance is
frozen: an optimiser step or any other change returns a new module
(``dx.replace(module, field=value)``).

Fields are split into two kinds when the instance is frozen, by the values
they hold:

* parameters (pytree children): arrays (NumPy, JAX, difflux tracers), modules,
  ``None``, and lists, tuples and dicts that contain an array or a module;
* static fields (part of the structure): everything else, such as ints,
  floats, strings and activation functions.

``dx.field(static=True)`` or ``static=False`` overrides the split. The split is
stored on the instance, so flattening a module and unflattening it with other
leaves (gradients, ``None`` placeholders, JAX tracers) keeps every field in
its kind. Static values are compared by value (lists, dicts and NumPy arrays
too), which is what lets ``dx.jit`` reuse a compiled function for an equal
model.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, dataclass_transform

import numpy as np

from ._backend import backend_of_value
from ._core import Tracer, value_of
from ._tree import _node_type, register_pytree_node, tree_flatten, tree_unflatten

# Instance attribute holding the structure (a _ModuleAux); its presence marks
# a frozen instance.
_AUX = "_difflux_aux"
_INITIALISING = "_difflux_initialising"


class FrozenModuleError(dataclasses.FrozenInstanceError):
    """Raised when code assigns to a field of a constructed ``dx.Module``."""


def is_array(x: Any) -> bool:
    """Return whether ``x`` is an array: NumPy, JAX (tracers included) or a difflux tracer.

    NumPy scalars such as ``np.float64(1.0)`` count as arrays, Python numbers
    do not.
    """
    if isinstance(x, np.ndarray | np.number | np.bool_ | Tracer):
        return True
    return backend_of_value(x) == "jax"


def field(
    *,
    static: bool | None = None,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    init: bool = True,
    repr: bool = True,  # noqa: A002 (the dataclasses.field name)
    kw_only: Any = dataclasses.MISSING,
    metadata: Any = None,
) -> Any:
    """Declare a ``dx.Module`` field, as ``dataclasses.field`` with one more option.

    Args:
        static: ``True`` keeps the field in the structure whatever it contains,
            such as an array used as a constant lookup table. ``False`` makes it
            a parameter whatever it contains. ``None`` (default) decides by value.
        default: the default value.
        default_factory: a function of no arguments making the default value.
        init: whether the generated ``__init__`` takes the field.
        repr: whether the module's ``repr`` shows the field.
        kw_only: whether the generated ``__init__`` takes the field by keyword only.
        metadata: extra metadata, as for ``dataclasses.field``.
    """
    metadata = dict(metadata or {})
    if static is not None:
        metadata["static"] = static
    return dataclasses.field(
        default=default,
        default_factory=default_factory,
        init=init,
        repr=repr,
        kw_only=kw_only,
        metadata=metadata,
    )


# --------------------------------------------------------------------------
# Static values: hashed and compared by value
# --------------------------------------------------------------------------


def _static_key(value: Any) -> Any:
    """Return a hashable stand-in for ``value`` that compares by value."""
    try:
        hash(value)
    except TypeError:
        pass
    else:
        return value
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_static_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted(((repr(k), _static_key(v)) for k, v in value.items()), key=lambda kv: kv[0])))
    if isinstance(value, set):
        return ("set", frozenset(_static_key(v) for v in value))
    if isinstance(value, np.ndarray):
        return ("ndarray", value.shape, value.dtype.str, value.tobytes())
    # NOTE: other unhashable values compare by identity, so an equal copy of
    # such a value makes dx.jit compile again.
    return ("id", id(value))


def _static_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    key_a, key_b = _static_key(a), _static_key(b)
    if type(key_a) is not type(key_b):
        return False
    try:
        return bool(key_a == key_b)
    except (TypeError, ValueError):
        return False


class _ModuleAux:
    """The structure of a module: its class, parameter names and static fields."""

    __slots__ = ("kind", "children", "static", "_hash")

    def __init__(self, kind: type, children: tuple[str, ...], static: tuple[tuple[str, Any], ...]) -> None:
        self.kind = kind
        self.children = children
        self.static = static
        # Computed on first use and kept, as TreeDef keeps its hash, because
        # dx.jit hashes the structure of every call's arguments.
        self._hash: int | None = None

    def __eq__(self, other: object) -> bool:
        if self is other:
            # The common case in a training loop, where each step's model and
            # state are rebuilt with the structure of the step before.
            return True
        if not isinstance(other, _ModuleAux):
            return False
        if self.kind is not other.kind or self.children != other.children:
            return False
        if len(self.static) != len(other.static):
            return False
        return all(
            name_a == name_b and _static_equal(a, b) for (name_a, a), (name_b, b) in zip(self.static, other.static)
        )

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash((self.kind, self.children, tuple((name, _static_key(v)) for name, v in self.static)))
        return self._hash

    def __repr__(self) -> str:
        static = ", ".join(f"{name}={value!r}" for name, value in self.static)
        return f"parameters=({', '.join(self.children)}), static=({static})"


def _holds_parameters(value: Any) -> bool:
    if is_array(value) or isinstance(value, Module):
        return True
    node = _node_type(value)
    if node is None or value is None:
        return False
    children, _ = node.flatten(value)
    return any(_holds_parameters(child) for child in children)


def _is_parameter_field(cls: type, name: str, value: Any) -> bool:
    forced = cls._difflux_forced.get(name)  # type: ignore[attr-defined]
    if forced is not None:
        return forced
    # A None field (an absent bias, say) has no leaves either way. Keeping it
    # a parameter means that an array put in its place later keeps the kind.
    return value is None or _holds_parameters(value)


def _make_aux(module: Module, children: set[str]) -> _ModuleAux:
    cls = type(module)
    names = cls._difflux_field_names  # type: ignore[attr-defined]
    return _ModuleAux(
        cls,
        tuple(name for name in names if name in children),
        tuple((name, getattr(module, name)) for name in names if name not in children),
    )


def _fields(module: Module) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(module)  # type: ignore[arg-type]  # every subclass is a dataclass


def _freeze(module: Module) -> None:
    cls = type(module)
    instance_dict = module.__dict__
    children = set()
    for f in _fields(module):
        if f.name not in instance_dict and not hasattr(cls, f.name):
            raise TypeError(
                f"{cls.__name__}.__init__ did not set the field {f.name!r}. Assign "
                f"self.{f.name} = ... in __init__ or give the field a default."
            )
        if _is_parameter_field(cls, f.name, getattr(module, f.name)):
            children.add(f.name)
    instance_dict[_AUX] = _make_aux(module, children)


def _flatten_module(module: Module) -> tuple[list[Any], _ModuleAux]:
    aux = module.__dict__[_AUX]
    return [getattr(module, name) for name in aux.children], aux


def _flatten_module_with_keys(module: Module) -> tuple[list[Any], _ModuleAux]:
    import jax

    aux = module.__dict__[_AUX]
    return [(jax.tree_util.GetAttrKey(name), getattr(module, name)) for name in aux.children], aux


def _unflatten_module(aux: _ModuleAux, children: Any) -> Module:
    module = object.__new__(aux.kind)
    instance_dict = module.__dict__
    instance_dict.update(zip(aux.children, children))
    instance_dict.update(aux.static)
    instance_dict[_AUX] = aux
    return module


# --------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------


def _wrap_init(init: Callable[..., None], user_written: bool) -> Callable[..., None]:
    """Freeze the instance when the outermost ``__init__`` call returns."""

    @functools.wraps(init)
    def init_and_freeze(self: Module, *args: Any, **kwargs: Any) -> None:
        instance_dict = self.__dict__
        if _AUX in instance_dict:
            raise FrozenModuleError(
                f"{type(self).__name__}.__init__ was called on a module that is already "
                "constructed. Modules are immutable; create a new one instead."
            )
        outermost = not instance_dict.get(_INITIALISING, False)
        if outermost:
            instance_dict[_INITIALISING] = True
        try:
            init(self, *args, **kwargs)
        finally:
            if outermost:
                del instance_dict[_INITIALISING]
        if outermost:
            _freeze(self)

    init_and_freeze._difflux_user_init = user_written  # type: ignore[attr-defined]
    return init_and_freeze


@dataclass_transform(eq_default=False, field_specifiers=(dataclasses.field, field))
class Module:
    """Base class of immutable structures whose array fields are parameters.

    Subclasses are dataclasses: declare fields as annotations, optionally with
    defaults or ``dx.field(...)``. A subclass may write its own ``__init__``
    and assign the declared fields there instead. Methods (``__call__`` for a
    layer) work as on any class. Modules are pytrees of difflux and of JAX, so
    ``dx.grad`` returns a module of the same type holding gradients (``None``
    at integer arrays), and ``dx.jit``, ``jax.jit`` and ``jax.tree_util`` see
    the parameters as leaves.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> class Dense(dx.Module):
        ...     weight: np.ndarray
        ...     bias: np.ndarray
        ...     activation: object = dx.tanh
        ...
        ...     def __call__(self, x):
        ...         return self.activation(x @ self.weight + self.bias)
        >>> layer = Dense(np.ones((3, 4)), np.zeros(4))
        >>> layer
        Dense(weight=f64[3,4], bias=f64[4], activation=tanh)
        >>> dx.grad(lambda m: dx.sum(m(np.ones(3))))(layer).bias.shape
        (4,)
        >>> dx.replace(layer, bias=np.ones(4)).bias.tolist()
        [1.0, 1.0, 1.0, 1.0]
    """

    def __init_subclass__(cls, *, kw_only: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        writes_init = "__init__" in cls.__dict__
        inherits_user_init = not writes_init and getattr(cls.__init__, "_difflux_user_init", False)
        dataclasses.dataclass(cls, init=not (writes_init or inherits_user_init), repr=False, eq=False, kw_only=kw_only)
        if "__init__" in cls.__dict__:
            cls.__init__ = _wrap_init(cls.__dict__["__init__"], user_written=writes_init)  # type: ignore[method-assign]
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        cls._difflux_field_names = tuple(f.name for f in fields)  # type: ignore[attr-defined]
        cls._difflux_forced = {f.name: f.metadata["static"] is False for f in fields if "static" in f.metadata}  # type: ignore[attr-defined]
        cls._tree_flatten_with_keys = staticmethod(_flatten_module_with_keys)  # type: ignore[attr-defined]
        register_pytree_node(cls, _flatten_module, _unflatten_module)  # type: ignore[arg-type]

    def __setattr__(self, name: str, value: Any) -> None:
        if _AUX in self.__dict__:
            raise FrozenModuleError(
                f"cannot set {type(self).__name__}.{name}: modules are immutable, so that "
                "jit, grad and optimisers can treat them as values. Build a modified copy "
                f"with dx.replace(module, {name}=value) or module.replace({name}=value)."
            )
        if name not in type(self)._difflux_field_names:  # type: ignore[attr-defined]
            raise AttributeError(
                f"{type(self).__name__}.__init__ assigned {name!r}, which is not a declared "
                f"field. Declare it in the class body, e.g. `{name}: Any`, so that it is "
                "part of the module's structure."
            )
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise FrozenModuleError(f"cannot delete {type(self).__name__}.{name}: modules are immutable.")

    def replace(self, **changes: Any) -> Any:
        """Return a copy with some fields changed (see :func:`replace`)."""
        return replace(self, **changes)

    def __repr__(self) -> str:
        return _format(self, 0)


Module._difflux_field_names = ()  # type: ignore[attr-defined]
Module._difflux_forced = {}  # type: ignore[attr-defined]


def replace(module: Module, **changes: Any) -> Any:
    """Return a copy of ``module`` with the given fields changed.

    ``__init__`` and ``__post_init__`` are not run again, so a user-written
    ``__init__`` with a different signature is no obstacle. A changed field is
    classified as parameter or static by its new value, except that ``None``
    keeps the field's kind.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> class Scale(dx.Module):
        ...     factor: np.ndarray
        >>> dx.replace(Scale(np.ones(2)), factor=np.zeros(2)).factor.tolist()
        [0.0, 0.0]
    """
    if not isinstance(module, Module):
        raise TypeError(f"dx.replace expects a dx.Module, got {type(module).__name__}")
    cls = type(module)
    names = cls._difflux_field_names  # type: ignore[attr-defined]
    unknown = [name for name in changes if name not in names]
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {unknown[0]!r}. Its fields are {', '.join(names)}.")
    aux = module.__dict__[_AUX]
    children = set(aux.children)
    new = object.__new__(cls)
    instance_dict = new.__dict__
    instance_dict.update((key, value) for key, value in module.__dict__.items() if key != _AUX)
    for name, value in changes.items():
        instance_dict[name] = value
        if value is None:
            continue
        if _is_parameter_field(cls, name, value):
            children.add(name)
        else:
            children.discard(name)
    instance_dict[_AUX] = _make_aux(new, children)
    return new


# --------------------------------------------------------------------------
# Partition and combine (filtering a structure)
# --------------------------------------------------------------------------


def partition(tree: Any, predicate: Callable[[Any], bool] = is_array) -> tuple[Any, Any]:
    """Split ``tree`` into two trees of the same structure.

    The first keeps the leaves for which ``predicate`` is true, the second
    the others; each has ``None`` where the other has a leaf. :func:`combine`
    puts them back together. A typical use separates a model's arrays from
    everything else.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> arrays, rest = dx.partition({"w": np.ones(2), "name": "layer"})
        >>> arrays["name"] is None, rest["w"] is None
        (True, True)
        >>> dx.combine(arrays, rest)["name"]
        'layer'
    """
    leaves, treedef = tree_flatten(tree)
    chosen = [predicate(leaf) for leaf in leaves]
    matching = tree_unflatten(treedef, [leaf if keep else None for leaf, keep in zip(leaves, chosen)])
    rest = tree_unflatten(treedef, [None if keep else leaf for leaf, keep in zip(leaves, chosen)])
    return matching, rest


def _is_none(x: Any) -> bool:
    return x is None


def combine(*trees: Any) -> Any:
    """Merge trees from :func:`partition`: each leaf is the first one that is not ``None``."""
    if not trees:
        raise TypeError("combine needs at least one tree")
    flat = [tree_flatten(tree, is_leaf=_is_none) for tree in trees]
    treedef = flat[0][1]
    for index, (_, other) in enumerate(flat[1:], start=1):
        if other != treedef:
            raise ValueError(
                f"combine needs trees of one structure; tree 0 is {treedef!r} but tree {index} is {other!r}"
            )
    merged = []
    for leaves in zip(*(leaves for leaves, _ in flat)):
        merged.append(next((leaf for leaf in leaves if leaf is not None), None))
    return tree_unflatten(treedef, merged)


# --------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------

_LINE_WIDTH = 88
_DTYPE_NAMES = {"bool": "bool", "bfloat16": "bf16"}


def _dtype_name(dtype: Any) -> str:
    name = str(dtype)
    if name in _DTYPE_NAMES:
        return _DTYPE_NAMES[name]
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return name  # a JAX extended dtype, such as a PRNG key
    prefix = {"f": "f", "i": "i", "u": "u", "c": "c", "b": "bool"}.get(dt.kind)
    if prefix is None:
        return name
    return prefix if prefix == "bool" else f"{prefix}{dt.itemsize * 8}"


def _format_array(x: Any) -> str:
    value = value_of(x)
    shape = ",".join(str(s) for s in np.shape(value))
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        dtype = np.result_type(value)
    return f"{_dtype_name(dtype)}[{shape}]"


def _contains_module(value: Any) -> bool:
    if isinstance(value, Module):
        return True
    if isinstance(value, list | tuple):
        return any(_contains_module(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_module(v) for v in value.values())
    return False


def _block(opening: str, parts: list[str], closing: str, indent: int, force_lines: bool) -> str:
    one_line = opening + ", ".join(parts) + closing
    if not force_lines and "\n" not in one_line and 2 * indent + len(one_line) <= _LINE_WIDTH:
        return one_line
    pad = "  " * (indent + 1)
    body = ",\n".join(pad + part for part in parts)
    return f"{opening}\n{body}\n{'  ' * indent}{closing}"


def _format(value: Any, indent: int) -> str:
    if isinstance(value, Module):
        parts = [f"{f.name}={_format(getattr(value, f.name), indent + 1)}" for f in _fields(value) if f.repr]
        force = any(_contains_module(getattr(value, f.name)) for f in _fields(value))
        return _block(f"{type(value).__name__}(", parts, ")", indent, force)
    if is_array(value):
        return _format_array(value)
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        parts = [_format(v, indent + 1) for v in value]
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        if isinstance(value, tuple) and len(value) == 1:
            closing = ",)"
        return _block(opening, parts, closing, indent, _contains_module(value))
    if isinstance(value, dict):
        parts = [f"{k!r}: {_format(v, indent + 1)}" for k, v in value.items()]
        return _block("{", parts, "}", indent, _contains_module(value))
    if callable(value) and hasattr(value, "__name__") and not isinstance(value, type):
        return value.__name__
    return repr(value)
