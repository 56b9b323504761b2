"""Structures ("pytrees"): flatten nested containers to leaves and back.

Tuples, lists, dicts, named tuples and ``None`` are containers out of the box,
as in ``jax.tree_util``; ``dx.Module`` subclasses register themselves, and
``register_pytree_node`` adds any other type. ``None`` is an empty container,
so it never appears among the leaves.

Every type registered here is registered with ``jax.tree_util`` too, so the
same structures pass through ``jax.jit``, ``jax.vmap`` and ``jax.tree_util``
functions. JAX is never imported for this: when it is already imported the
registration happens at once, otherwise an import hook registers the pending
types right after the first ``import jax``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Hashable, Iterable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np


class _NodeType(NamedTuple):
    flatten: Callable[[Any], tuple[Iterable[Any], Hashable]]
    unflatten: Callable[[Hashable, list[Any]], Any]


_registry: dict[type, _NodeType] = {}


def register_pytree_node(
    kind: type,
    flatten: Callable[[Any], tuple[Iterable[Any], Hashable]],
    unflatten: Callable[[Hashable, list[Any]], Any],
) -> None:
    """Register a container type: ``flatten(x) -> (children, aux)`` and its inverse.

    ``aux`` must be hashable and compare by value, because it becomes part of
    the structure that ``dx.jit`` uses as a cache key. The type is registered
    with ``jax.tree_util`` as well (now or when JAX is first imported).
    """
    _registry[kind] = _NodeType(flatten, unflatten)
    if kind not in _BUILTIN_NODES:
        _register_with_jax(kind)


def _dict_flatten(d: dict[Any, Any]) -> tuple[list[Any], tuple[Any, ...]]:
    keys = sorted(d, key=repr) if not all(isinstance(k, str) for k in d) else sorted(d)
    return [d[k] for k in keys], tuple(keys)


# --------------------------------------------------------------------------
# Registration with jax.tree_util
# --------------------------------------------------------------------------

_BUILTIN_NODES = frozenset({tuple, list, dict, type(None)})  # JAX registers these itself
_registered_with_jax: set[type] = set()
_pending_for_jax: list[type] = []


def _jax_if_imported() -> ModuleType | None:
    """Return ``jax`` when it is fully imported, else ``None`` (never imports it)."""
    jax = sys.modules.get("jax")
    if jax is None or not hasattr(jax, "tree_util"):
        return None
    return jax


def _register_with_jax(kind: type) -> None:
    jax = _jax_if_imported()
    if jax is None:
        _pending_for_jax.append(kind)
        _install_import_hook()
        return
    _register_now(jax, kind)


def _register_now(jax: ModuleType, kind: type) -> None:
    if kind in _registered_with_jax:
        return
    node = _registry[kind]
    flatten_with_keys = getattr(kind, "_tree_flatten_with_keys", None)
    if flatten_with_keys is not None:
        # Keys name the fields in JAX's error messages and tree paths.
        jax.tree_util.register_pytree_with_keys(kind, flatten_with_keys, node.unflatten, node.flatten)
    else:
        jax.tree_util.register_pytree_node(kind, node.flatten, node.unflatten)
    _registered_with_jax.add(kind)


def register_pending_with_jax() -> None:
    """Register every type still waiting for JAX (a no-op before ``import jax``)."""
    jax = _jax_if_imported()
    if jax is None:
        return
    while _pending_for_jax:
        _register_now(jax, _pending_for_jax.pop(0))


class _JaxLoader(importlib.abc.Loader):
    """Wraps the loader of the ``jax`` package to run a step after it executes."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _remove_import_hook()
        register_pending_with_jax()

    def __getattr__(self, name: str) -> Any:
        # Resource readers and the like come from the real loader.
        return getattr(self._loader, name)


class _JaxImportHook(importlib.abc.MetaPathFinder):
    """Finds ``jax`` through the other finders and wraps its loader.

    NOTE: Python has no post-import callback, so this finder is the only way
    to register structures with JAX when ``import jax`` comes after their
    definition without importing JAX eagerly. It stays in ``sys.meta_path``
    until JAX has been imported, because ``importlib.util.find_spec("jax")``
    (an availability check) also calls it without importing anything.
    """

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "jax":
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _JaxLoader(spec.loader)
                return spec
        return None


_import_hook = _JaxImportHook()


def _install_import_hook() -> None:
    if _import_hook not in sys.meta_path:
        sys.meta_path.insert(0, _import_hook)


def _remove_import_hook() -> None:
    if _import_hook in sys.meta_path:
        sys.meta_path.remove(_import_hook)


register_pytree_node(tuple, lambda t: (t, None), lambda aux, children: tuple(children))
register_pytree_node(list, lambda t: (t, None), lambda aux, children: list(children))
register_pytree_node(dict, _dict_flatten, lambda keys, children: dict(zip(keys, children)))  # type: ignore[arg-type]
register_pytree_node(type(None), lambda t: ((), None), lambda aux, children: None)


class TreeDef:
    """The shape of a structure without its leaves; compares and hashes by value."""

    __slots__ = ("kind", "aux", "children", "num_leaves", "_hash")

    def __init__(
        self, kind: type | None, aux: Hashable, children: tuple[TreeDef, ...], num_leaves: int | None = None
    ) -> None:
        self.kind = kind
        self.aux = aux
        self.children = children
        # _flatten passes the leaf count it has already counted, which saves a
        # sum per node.
        if num_leaves is None:
            num_leaves = 1 if kind is None else sum(c.num_leaves for c in children)
        self.num_leaves = num_leaves
        # Computed on first use and kept: dx.jit hashes the structure of every
        # call's arguments, and a deep structure would be rehashed each time.
        self._hash: int | None = None

    def _key(self) -> tuple[Any, ...]:
        return (self.kind, self.aux, self.children)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, TreeDef):
            return False
        # Hashes reject quickly once both are known, but computing them walks
        # both structures, and the comparison below walks them only once.
        # Structures flattened from the same model share their nodes' aux
        # data, so that comparison mostly checks identities.
        if self._hash is not None and other._hash is not None and self._hash != other._hash:
            return False
        return (
            self.kind is other.kind
            and (self.aux is other.aux or self.aux == other.aux)
            and self.children == other.children
        )

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self._key())
        return self._hash

    def __repr__(self) -> str:
        if self.kind is None:
            return "*"
        inner = ", ".join(repr(c) for c in self.children)
        return f"{self.kind.__name__}({inner})"


_LEAF = TreeDef(None, None, ())


def _node_type(x: Any) -> _NodeType | None:
    kind = type(x)
    node = _registry.get(kind)
    if node is not None:
        return node
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a named tuple
        return _NodeType(lambda t: (tuple(t), None), lambda aux, ch, k=kind: k(*ch))
    return None


def tree_flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list[Any], TreeDef]:
    """Return the leaves of ``tree`` (depth first) and its structure."""
    leaves: list[Any] = []
    treedef = _flatten(tree, leaves, is_leaf)
    return leaves, treedef


def _flatten(tree: Any, leaves: list[Any], is_leaf: Callable[[Any], bool] | None) -> TreeDef:
    kind = type(tree)
    # A NumPy array is the most common leaf, and a leaf whatever is_leaf
    # returns (it has no registered children), so it skips is_leaf and the
    # registry lookup.
    if kind is np.ndarray:
        leaves.append(tree)
        return _LEAF
    if is_leaf is not None and is_leaf(tree):
        node = None
    else:
        # The registry lookup of _node_type, inlined for registered types.
        node = _registry.get(kind) or _node_type(tree)
    if node is None:
        leaves.append(tree)
        return _LEAF
    children, aux = node.flatten(tree)
    start = len(leaves)
    defs = []
    for child in children:
        if type(child) is np.ndarray:
            leaves.append(child)
            defs.append(_LEAF)
        else:
            defs.append(_flatten(child, leaves, is_leaf))
    return TreeDef(kind, aux, tuple(defs), len(leaves) - start)


def tree_unflatten(treedef: TreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild a structure from its ``treedef`` and leaves."""
    iterator = iter(leaves)
    try:
        tree = _unflatten(treedef, iterator)
    except StopIteration:
        raise ValueError("too few leaves for the structure") from None
    if next(iterator, _SENTINEL) is not _SENTINEL:
        raise ValueError(f"too many leaves for structure {treedef!r}")
    return tree


_SENTINEL = object()


def _unflatten(treedef: TreeDef, leaves: Any) -> Any:
    # Raises StopIteration when the leaves run out; tree_unflatten reports it.
    if treedef.kind is None:
        return next(leaves)
    children = [next(leaves) if c.kind is None else _unflatten(c, leaves) for c in treedef.children]
    if treedef.kind is tuple:  # the most common container, without the registry lookup
        return tuple(children)
    node = _registry.get(treedef.kind)
    if node is None:  # a named tuple
        return treedef.kind(*children)
    return node.unflatten(treedef.aux, children)


def tree_leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list[Any]:
    """Return the leaves of ``tree``."""
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> TreeDef:
    """Return the structure of ``tree``."""
    return tree_flatten(tree, is_leaf)[1]


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """Apply ``f`` to matching leaves of ``tree`` and ``rest`` (same structure)."""
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = []
    for other in rest:
        other_leaves, other_def = tree_flatten(other, is_leaf)
        if other_def != treedef:
            raise ValueError(f"tree_map needs trees of the same structure, got {treedef!r} and {other_def!r}")
        others.append(other_leaves)
    return tree_unflatten(treedef, [f(*args) for args in zip(leaves, *others)])
