"""Freezing: choosing which leaves of a model train.

Models are immutable values, and a layer has no field for a frozen flag.
So freezing is a mask beside the model, as in Optax and Equinox: a tree of
the model's structure with ``True`` at the leaves that train.

* :func:`nn.trainable <difflux.nn.trainable>` gives the default mask, which
  leaves out state such as BatchNorm's running statistics.
* :func:`freeze` returns that mask with more leaves set to ``False``,
  selected by dotted path (``"layers.0"``), key tuple, a list of those, or a
  function of the key tuple.
* ``nn.fit(..., trainable=mask)`` differentiates and updates only the
  leaves where the mask is true. A custom loop does the same with
  :func:`partition_trainable` and ``dx.combine``, and ``optim.masked(rule,
  mask)`` takes the same mask.

Only real floating-point arrays ever train, whatever the mask says.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import difflux.core as dx

from ._paths import KeyPath, Selector, leaf_paths, path_string, select
from ._state import trainable as default_trainable


def _is_mask_leaf(x: Any) -> bool:
    return x is None or isinstance(x, bool | np.bool_)


def _is_float_array(x: Any) -> bool:
    return dx.is_array(x) and bool(dx.isdtype(x.dtype, "real floating"))


def _mask_values(mask: Any, paths: list[KeyPath], owner: str) -> list[bool]:
    """Return one boolean per path from a mask tree, a mask leaf covering every path below it."""
    mask_leaves, mask_def = dx.tree_flatten(mask, is_leaf=_is_mask_leaf)
    entries = []
    for keys, leaf in zip(leaf_paths(mask_def), mask_leaves):
        if not _is_mask_leaf(leaf):
            raise TypeError(
                f"{owner}: the trainable mask has {type(leaf).__name__} at {path_string(keys)!r}; its leaves "
                "must be booleans (True where the model trains) or None, as nn.trainable and nn.freeze return"
            )
        entries.append((keys, bool(leaf)))
    values = []
    for keys in paths:
        matches = [(len(prefix), value) for prefix, value in entries if keys[: len(prefix)] == prefix]
        if not matches:
            raise ValueError(
                f"{owner}: the trainable mask has no entry for the model's leaf {path_string(keys)!r}. Build the "
                "mask from this model with nn.trainable(model) or nn.freeze(model, ...)."
            )
        values.append(max(matches, key=lambda match: match[0])[1])
    return values


def trainable_flags(model: Any, trainable: Any = None, owner: str = "nn.fit") -> list[bool]:
    """Return, per leaf of ``model``, whether it trains: a floating array where the mask is true."""
    leaves, treedef = dx.tree_flatten(model)
    mask = default_trainable(model) if trainable is None else trainable
    values = _mask_values(mask, leaf_paths(treedef), owner)
    return [value and _is_float_array(leaf) for leaf, value in zip(leaves, values)]


def freeze(model: Any, where: Selector, *, trainable: Any = None) -> Any:
    """Return the trainable mask of ``model`` with the leaves selected by ``where`` frozen.

    The mask is a tree of the model's structure with ``True`` where a leaf
    trains. It starts from ``trainable`` (by default ``nn.trainable(model)``,
    which already excludes running statistics), so calls chain:
    ``nn.freeze(model, "decoder", trainable=nn.freeze(model, "encoder"))``.
    Pass the mask to ``nn.fit(..., trainable=mask)``, to
    :func:`partition_trainable` in a custom loop, or to
    ``optim.masked(rule, mask)``.

    Args:
        model: the model.
        where: a dotted path (``"layers.0"`` freezes the first layer of a
            ``Chain``, ``"layers.0.bias"`` one array), a tuple of keys, a list
            of those, or a function of a leaf's key tuple returning ``True``
            for the leaves to freeze (``lambda path: path[-1] == "bias"``).
        trainable: the mask to start from.

    Raises:
        ValueError: when a path selects no leaf, listing the paths there are.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> k1, k2 = dx.random.split(dx.random.key(0, backend="numpy"))
        >>> model = nn.Chain(nn.Dense(2, 3, key=k1), nn.Dense(3, 1, key=k2))
        >>> mask = nn.freeze(model, "layers.0")
        >>> mask.layers[0].weight, mask.layers[1].weight
        (False, True)
    """
    treedef = dx.tree_structure(model)
    paths = leaf_paths(treedef)
    start = default_trainable(model) if trainable is None else trainable
    values = _mask_values(start, paths, "nn.freeze")
    chosen = select(paths, where, "nn.freeze")
    return dx.tree_unflatten(treedef, [value and not frozen for value, frozen in zip(values, chosen)])


def partition_trainable(model: Any, trainable: Any = None) -> tuple[Any, Any]:
    """Split ``model`` into the leaves that train and the rest; ``dx.combine`` joins them again.

    Both trees have the model's structure. The first contains the floating
    arrays where ``trainable`` is true (``nn.trainable(model)`` by default)
    and ``None`` elsewhere. The second contains every other leaf: frozen
    parameters, running statistics, integer arrays. Differentiate with
    respect to the first and give the optimiser only the first, so that
    nothing else gets a gradient or an update:

    ``params, rest = nn.partition_trainable(model, mask)`` then
    ``dx.grad(lambda p: loss(dx.combine(p, rest), x, y))(params)``.
    """
    leaves, treedef = dx.tree_flatten(model)
    flags = trainable_flags(model, trainable, "nn.partition_trainable")
    params = dx.tree_unflatten(treedef, [leaf if flag else None for leaf, flag in zip(leaves, flags)])
    rest = dx.tree_unflatten(treedef, [None if flag else leaf for leaf, flag in zip(leaves, flags)])
    return params, rest
