"""Structures ("pytrees"): flatten nested containers to leaves and back.

Tuples, lists, dicts, named tuples and ``None`` are containers out of the box,
as in ``jax.tree_util``; ``dx.Module`` subclasses register themselves, and
``register_pytree_node`` adds any other type. ``None`` is an empty container,
so it never appears among the leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, NamedTuple


class _NodeType(NamedTuple):
    flatten: Callable[[Any], tuple[Iterable[Any], Hashable]]
    unflatten: Callable[[Hashable, list[Any]], Any]


_registry: dict[type, _NodeType] = {}


def register_pytree_node(
    kind: type,
    flatten: Callable[[Any], tuple[Iterable[Any], Hashable]],
    unflatten: Callable[[Hashable, list[Any]], Any],
) -> None:
    """Register a container type: ``flatten(x) -> (children, aux)`` and its inverse."""
    _registry[kind] = _NodeType(flatten, unflatten)


def _dict_flatten(d: dict[Any, Any]) -> tuple[list[Any], tuple[Any, ...]]:
    keys = sorted(d, key=repr) if not all(isinstance(k, str) for k in d) else sorted(d)
    return [d[k] for k in keys], tuple(keys)


register_pytree_node(tuple, lambda t: (t, None), lambda aux, children: tuple(children))
register_pytree_node(list, lambda t: (t, None), lambda aux, children: list(children))
register_pytree_node(dict, _dict_flatten, lambda keys, children: dict(zip(keys, children)))  # type: ignore[arg-type]
register_pytree_node(type(None), lambda t: ((), None), lambda aux, children: None)


class TreeDef:
    """The shape of a structure without its leaves; compares and hashes by value."""

    __slots__ = ("kind", "aux", "children", "num_leaves")

    def __init__(self, kind: type | None, aux: Hashable, children: tuple[TreeDef, ...]) -> None:
        self.kind = kind
        self.aux = aux
        self.children = children
        self.num_leaves = 1 if kind is None else sum(c.num_leaves for c in children)

    def _key(self) -> tuple[Any, ...]:
        return (self.kind, self.aux, self.children)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TreeDef) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

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
    node = None if is_leaf is not None and is_leaf(tree) else _node_type(tree)
    if node is None:
        leaves.append(tree)
        return _LEAF
    children, aux = node.flatten(tree)
    kind = type(tree)
    return TreeDef(kind, aux, tuple(_flatten(c, leaves, is_leaf) for c in children))


def tree_unflatten(treedef: TreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild a structure from its ``treedef`` and leaves."""
    iterator = iter(leaves)
    tree = _unflatten(treedef, iterator)
    if next(iterator, _SENTINEL) is not _SENTINEL:
        raise ValueError(f"too many leaves for structure {treedef!r}")
    return tree


_SENTINEL = object()


def _unflatten(treedef: TreeDef, leaves: Any) -> Any:
    if treedef.kind is None:
        leaf = next(leaves, _SENTINEL)
        if leaf is _SENTINEL:
            raise ValueError("too few leaves for the structure")
        return leaf
    children = [_unflatten(c, leaves) for c in treedef.children]
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
            raise ValueError(
                f"tree_map needs trees of the same structure, got {treedef!r} and {other_def!r}"
            )
        others.append(other_leaves)
    return tree_unflatten(treedef, [f(*args) for args in zip(leaves, *others)])
