"""Key paths of the leaves of a model: how saving, loading and freezing name a leaf.

A leaf's path is the tuple of keys that reaches it from the root: field names
of modules and named tuples, dict keys, and indices of lists, tuples and
other containers (``("layers", 0, "weight")``). As a string the keys are
joined with dots (``"layers.0.weight"``), the syntax that ``optim.freeze``
accepts too. ``None`` (an absent bias) is an empty container, as everywhere
in difflux, so it has no path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import difflux.core as dx

KeyPath = tuple[Any, ...]


def _child_keys(treedef: dx.TreeDef) -> list[Any]:
    """Return the key of each child of a structure node."""
    kind, aux, count = treedef.kind, treedef.aux, len(treedef.children)
    if kind is dict:
        return list(aux)  # type: ignore[arg-type]
    if isinstance(kind, type) and issubclass(kind, dx.Module):
        # A module's structure stores the names of its parameter fields.
        names = getattr(aux, "children", None)
        if names is not None and len(names) == count:
            return list(names)
    fields = getattr(kind, "_fields", None)
    if fields is not None and len(fields) == count:
        return list(fields)
    return list(range(count))


def leaf_paths(treedef: dx.TreeDef) -> list[KeyPath]:
    """Return the key path of every leaf of ``treedef``, in leaf order."""
    paths: list[KeyPath] = []

    def collect(node: dx.TreeDef, keys: KeyPath) -> None:
        if node.kind is None:
            paths.append(keys)
            return
        for key, child in zip(_child_keys(node), node.children):
            collect(child, keys + (key,))

    collect(treedef, ())
    return paths


def flatten_with_paths(tree: Any) -> tuple[list[tuple[KeyPath, Any]], dx.TreeDef]:
    """Return ``(path, leaf)`` pairs of ``tree`` and its structure."""
    leaves, treedef = dx.tree_flatten(tree)
    return list(zip(leaf_paths(treedef), leaves)), treedef


def path_string(keys: KeyPath) -> str:
    """Return the dotted form of a key path, ``"layers.0.weight"``; the root is ``""``."""
    return ".".join(str(key) for key in keys)


def _parse(path: str | KeyPath) -> KeyPath:
    if isinstance(path, tuple):
        return path
    return tuple(part for part in path.split(".") if part)


def _key_matches(key: Any, part: Any) -> bool:
    return key == part or (isinstance(part, str) and str(key) == part)


def _has_prefix(keys: KeyPath, prefix: KeyPath) -> bool:
    return len(keys) >= len(prefix) and all(_key_matches(k, p) for k, p in zip(keys, prefix))


Selector = str | KeyPath | Iterable[str | KeyPath] | Callable[[KeyPath], bool]


def select(paths: list[KeyPath], where: Selector, owner: str) -> list[bool]:
    """Return, per path, whether ``where`` selects it.

    ``where`` is a dotted path or a key tuple (selecting the leaf or the
    sub-tree below it), a list of those, or a function of a leaf's key
    tuple returning a bool.

    Raises:
        ValueError: when a path selects no leaf, listing some of the paths
            that exist.
        TypeError: when ``where`` is none of the above.
    """
    if callable(where):
        return [bool(where(keys)) for keys in paths]
    if isinstance(where, str | tuple):
        patterns = [where]
    elif isinstance(where, Iterable):
        patterns = list(where)
    else:
        raise TypeError(
            f"{owner}: expected a dotted path such as 'layers.0.weight', a tuple of keys, a list of those, "
            f"or a function of a leaf's key tuple; got {type(where).__name__} {where!r}"
        )
    chosen = [False] * len(paths)
    for pattern in patterns:
        if not isinstance(pattern, str | tuple):
            raise TypeError(f"{owner}: each path must be a dotted string or a tuple of keys, got {pattern!r}")
        prefix = _parse(pattern)
        matched = [_has_prefix(keys, prefix) for keys in paths]
        if not any(matched):
            known = ", ".join(repr(path_string(keys)) for keys in paths[:8])
            more = ", ..." if len(paths) > 8 else ""
            raise ValueError(
                f"{owner}: no leaf of the model has the path {pattern!r}. Paths join field names, dict keys "
                f"and indices with dots; the model's leaves are {known}{more}"
            )
        chosen = [old or new for old, new in zip(chosen, matched)]
    return chosen
