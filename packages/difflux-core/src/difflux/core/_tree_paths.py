"""Paths to the leaves of a structure, and where two structures first differ, for error messages.

A path names a leaf the way Python reaches it (``.layers[0].weight``,
``['w']``) and, as a tuple of keys (``("layers", 0, "weight")``), the way
masks and freezing select parameters.
"""

from __future__ import annotations

from typing import Any, cast

from ._module import Module
from ._tree import TreeDef


def _child_keys(treedef: TreeDef) -> list[tuple[Any, str]]:
    """Return ``(key, formatted)`` for each child of a structure node."""
    kind, aux, count = treedef.kind, treedef.aux, len(treedef.children)
    if kind is dict:
        return [(key, f"[{key!r}]") for key in cast(tuple, aux)]
    if isinstance(kind, type) and issubclass(kind, Module):
        # A module's structure stores the names of its parameter fields.
        names = getattr(aux, "children", None)
        if names is not None and len(names) == count:
            return [(name, f".{name}") for name in names]
    fields = getattr(kind, "_fields", None)
    if fields is not None and len(fields) == count:
        return [(name, f".{name}") for name in fields]
    return [(index, f"[{index}]") for index in range(count)]


def leaf_paths(treedef: TreeDef) -> list[tuple[tuple[Any, ...], str]]:
    """Return ``(keys, formatted path)`` of every leaf of ``treedef``, in leaf order."""
    paths: list[tuple[tuple[Any, ...], str]] = []
    _collect_paths(treedef, (), "", paths)
    return paths


def _collect_paths(treedef: TreeDef, keys: tuple[Any, ...], text: str, out: list[Any]) -> None:
    if treedef.kind is None:
        out.append((keys, text))
        return
    for (key, formatted), child in zip(_child_keys(treedef), treedef.children):
        _collect_paths(child, keys + (key,), text + formatted, out)


def format_keys(keys: tuple[Any, ...]) -> str:
    return format_path("".join(f"[{key!r}]" for key in keys))


def format_path(text: str) -> str:
    return text if text else "the root"


def _describe(treedef: TreeDef) -> str:
    kind = treedef.kind
    if kind is None:
        return "a leaf"
    if kind is dict:
        return f"a dict with keys {list(cast(tuple, treedef.aux))}"
    if kind in (list, tuple):
        return f"a {kind.__name__} of {len(treedef.children)} items"
    return f"a {kind.__name__} with children {[text for _, text in _child_keys(treedef)]}"


def _first_difference(a: TreeDef, b: TreeDef, text: str) -> tuple[str, str, str] | None:
    same_node = a.kind == b.kind and len(a.children) == len(b.children)
    if same_node and a.kind is not None:
        same_node = a.aux == b.aux
    if not same_node:
        return text, _describe(a), _describe(b)
    for (_, formatted), child_a, child_b in zip(_child_keys(a), a.children, b.children):
        found = _first_difference(child_a, child_b, text + formatted)
        if found is not None:
            return found
    return None


def structure_mismatch(name: str, treedef: TreeDef, reference: TreeDef, reference_name: str) -> str:
    """Describe where ``treedef`` first differs from ``reference``, for an error message."""
    found = _first_difference(treedef, reference, "")
    if found is None:  # equal nodes with different static module fields
        return f"the {name} do not have the structure of the {reference_name}: {treedef!r} against {reference!r}"
    text, described, expected = found
    return f"the {name} have {described} at {format_path(text)} where the {reference_name} have {expected}"
