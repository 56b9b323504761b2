"""Generated straight-line code that flattens ``dx.jit`` arguments and rebuilds results.

``jax.tree_util`` flattens a ``dx.Module`` through a Python callback per
module, and unflattens it through another. For a model of a dozen modules
these callbacks cost more per call than the rest of ``dx.jit``'s dispatch.
So for a structure seen before, ``dx.jit`` runs code generated for exactly
that structure. Its flattener checks each container's type and length and
each module's class and static structure on the way. Its builder fills new
modules' ``__dict__`` directly, as ``_unflatten_module`` does.

Both generators walk a sample value in step with the leaves that
``jax.tree_util`` returned for it. They give up (return ``None``) on anything
they do not mirror exactly: other registered node types, dicts with keys that
are not all strings, and leaves that are not the expected objects. Callers
then use ``jax.tree_util``, so giving up costs speed, never correctness.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _tree
from ._module import _AUX, Module, _flatten_module, _unflatten_module


class _UnsupportedStructureError(Exception):
    """Raised while generating code for a structure that the generator does not mirror."""


class _Source:
    """Lines of a generated function, with fresh local names and global constants."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        # The generated function's globals: the constants it reads by name,
        # which is faster than indexing a table.
        self.namespace: dict[str, Any] = {}
        self.rebound: list[str] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def constant(self, value: Any, rebound: bool = False) -> str:
        """Return the global name of ``value``. The generated code may assign a new value to a ``rebound`` name."""
        name = self.name("_c")
        self.namespace[name] = value
        if rebound:
            self.rebound.append(name)
        return name

    def emit(self, line: str) -> None:
        self.lines.append("    " + line)

    def compile(self, signature: str) -> Callable[..., Any]:
        header = [f"def generated({signature}):"]
        if self.rebound:
            header.append(f"    global {', '.join(self.rebound)}")
        source = "\n".join(header + self.lines) + "\n"
        exec(compile(source, "<dx.jit generated>", "exec"), self.namespace)
        return self.namespace["generated"]


def _is_named_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def _string_keys(value: dict[Any, Any]) -> list[str]:
    if not all(isinstance(key, str) for key in value):
        raise _UnsupportedStructureError
    return sorted(value)


def _module_aux(value: Any) -> Any:
    node = _tree._registry.get(type(value))
    if node is None or node.flatten is not _flatten_module or node.unflatten is not _unflatten_module:
        raise _UnsupportedStructureError  # a module type registered again with other functions
    return value.__dict__[_AUX]


# --------------------------------------------------------------------------
# Flattener: (args, kwargs) -> the leaves, or None for another structure
# --------------------------------------------------------------------------


class _FlattenerSource(_Source):
    def __init__(self, leaves: list[Any]) -> None:
        super().__init__()
        self.expected = leaves
        self.leaf_names: list[str] = []

    def walk(self, value: Any, var: str) -> None:
        kind = type(value)
        if kind is tuple or kind is list or _is_named_tuple(value):
            self.emit(f"if type({var}) is not {self.constant(kind)} or len({var}) != {len(value)}: return None")
            children = [self.name("v") for _ in value]
            if children:
                self.emit(f"{''.join(f'{child}, ' for child in children)}= {var}")
            for item, child in zip(value, children):
                self.walk(item, child)
        elif kind is dict:
            keys = _string_keys(value)
            self.emit(f"if type({var}) is not dict or len({var}) != {len(value)}: return None")
            for key in keys:
                child = self.name("v")
                self.emit(f"{child} = {var}[{key!r}]")
                self.walk(value[key], child)
        elif value is None:
            self.emit(f"if {var} is not None: return None")
        elif isinstance(value, Module):
            aux = _module_aux(value)
            expected, found = self.constant(aux, rebound=True), self.name("x")
            # The structure names the module's class and compares it, so no
            # type check is needed. An equal structure replaces the stored
            # one, so the next call that passes the same module, or a result
            # of this function, passes the check by identity.
            self.emit(f"{found} = {var}.{_AUX}")
            self.emit(f"if {found} is not {expected}:")
            self.emit(f"    if {found} != {expected}: return None")
            self.emit(f"    {expected} = {found}")
            for name in aux.children:
                child = self.name("v")
                self.emit(f"{child} = {var}.{name}")
                self.walk(getattr(value, name), child)
        else:
            position = len(self.leaf_names)
            if position >= len(self.expected) or value is not self.expected[position]:
                raise _UnsupportedStructureError  # another registered node type, which JAX flattens further
            self.leaf_names.append(var)


# Exceptions that a generated flattener raises for a call of another
# structure, besides returning None: KeyError for a dict with other keys of
# the same number, and AttributeError for a module still being constructed.
FLATTEN_ERRORS = (KeyError, AttributeError)


def make_flattener(args: tuple[Any, ...], kwargs: dict[str, Any], leaves: list[Any]) -> Callable[..., Any] | None:
    """Generate a flattener of calls structured as ``args`` and ``kwargs``, or return ``None``.

    ``leaves`` are ``jax.tree_util``'s leaves of ``(args, kwargs)``, all JAX
    arrays. The flattener returns the leaves of a call of the same structure
    and leaf types. For any other call it returns ``None`` or raises one of
    ``FLATTEN_ERRORS``.
    """
    source = _FlattenerSource(leaves)
    try:
        source.walk(args, "args")
        source.walk(kwargs, "kwargs")
    except _UnsupportedStructureError:
        return None
    if len(source.leaf_names) != len(leaves):
        return None
    names = ", ".join(source.leaf_names)
    array_types = source.constant(frozenset(type(leaf) for leaf in leaves))
    source.emit(f"leaves = [{names}]")
    source.emit(f"if not {array_types}.issuperset(map(type, leaves)): return None")
    source.emit("return leaves")
    flatten = source.compile("args, kwargs")
    try:
        found = flatten(args, kwargs)
    except FLATTEN_ERRORS:
        return None
    if found is None or len(found) != len(leaves) or any(a is not b for a, b in zip(found, leaves)):
        return None
    return flatten


# --------------------------------------------------------------------------
# Builder: the output arrays of the compiled function -> the result
# --------------------------------------------------------------------------


class _BuilderSource(_Source):
    def __init__(self, leaves: list[Any], mask: list[bool]) -> None:
        super().__init__()
        self.expected = leaves
        self.mask = mask
        self.position = 0
        self.array_index = 0

    def shared_constant(self, value: Any) -> str | None:
        """Return a constant for a module or tuple with no arrays in it, which every result can share.

        An optimiser's rule inside its state is such a module. It is immutable,
        so one object serves every result.
        """
        if not (isinstance(value, Module) or type(value) is tuple or _is_named_tuple(value)):
            return None
        import jax

        count = len(jax.tree_util.tree_leaves(value))
        end = self.position + count
        if end > len(self.expected) or any(self.mask[self.position : end]):
            return None
        if not _immutable(value):
            return None
        self.position = end
        return self.constant(value)

    def walk(self, value: Any) -> str:
        """Emit the statements that build ``value`` and return an expression for it."""
        shared = self.shared_constant(value)
        if shared is not None:
            return shared
        kind = type(value)
        if kind is tuple:
            items = [self.walk(item) for item in value]
            return "(" + "".join(f"{item}, " for item in items) + ")"
        if kind is list:
            return "[" + ", ".join(self.walk(item) for item in value) + "]"
        if _is_named_tuple(value):
            items = [self.walk(item) for item in value]
            return f"{self.constant(kind)}({', '.join(items)})"
        if kind is dict:
            keys = _string_keys(value)
            items = [f"{key!r}: {self.walk(value[key])}" for key in keys]
            return "{" + ", ".join(items) + "}"
        if value is None:
            return "None"

        if isinstance(value, Module):
            aux = _module_aux(value)
            children = [(name, self.walk(getattr(value, name))) for name in aux.children]
            # One store per entry, in _unflatten_module's order, is faster
            # than dict.update with a template.
            module, instance_dict = self.name("m"), self.name("d")
            self.emit(f"{module} = _new({self.constant(kind)})")
            self.emit(f"{instance_dict} = {module}.__dict__")
            for name, expression in children:
                self.emit(f"{instance_dict}[{name!r}] = {expression}")
            for name, static in aux.static:
                self.emit(f"{instance_dict}[{name!r}] = {self.constant(static)}")
            self.emit(f"{instance_dict}[{_AUX!r}] = {self.constant(aux)}")
            return module

        position = self.position
        if position >= len(self.expected) or value is not self.expected[position]:
            raise _UnsupportedStructureError  # another registered node type, which JAX flattens further
        self.position += 1
        if not self.mask[position]:
            return self.constant(value)
        self.array_index += 1
        return f"arrays[{self.array_index - 1}]"


def _immutable(value: Any) -> bool:
    """Return whether ``value`` is a tuple or module all the way down to its leaves."""
    if type(value) is tuple or _is_named_tuple(value):
        return all(_immutable(item) for item in value)
    if isinstance(value, Module):
        return all(_immutable(getattr(value, name)) for name in _module_aux(value).children)
    return type(value) is not list and type(value) is not dict


def make_builder(out: Any, leaves: list[Any], mask: list[bool]) -> Callable[[list[Any]], Any] | None:
    """Generate a function that rebuilds a result structured as ``out``, or return ``None``.

    ``leaves`` are ``jax.tree_util``'s leaves of ``out`` and ``mask`` marks
    the arrays among them. The function takes the arrays alone, in order, and
    puts the other leaves back as constants.
    """
    source = _BuilderSource(leaves, mask)
    try:
        result = source.walk(out)
    except _UnsupportedStructureError:
        return None
    if source.position != len(leaves):
        return None
    source.emit(f"return {result}")
    source.namespace["_new"] = object.__new__
    return source.compile("arrays")
