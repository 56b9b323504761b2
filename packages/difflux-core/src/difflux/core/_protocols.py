"""Protocols through which the difflux packages talk to each other.

The packages depend on core only, never on each other. Where one package
takes another's objects (``nn.fit`` and ``ppl.SVI`` take an optimiser), they
meet here: any object with these methods works, whichever package made it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ._core import value_of
from ._dispatch import shape_of
from ._tree import tree_flatten, tree_unflatten
from ._tree_paths import format_path, leaf_paths, structure_mismatch


@runtime_checkable
class Optimiser(Protocol):
    """An optimisation rule: state initialisation plus one update step.

    ``init(params)`` returns the rule's state for a parameter structure.
    ``update(grads, state, params)`` returns ``(updates, new_state)``, where
    ``updates`` has the structure of ``params`` (``None`` at leaves that are
    not updated) and the next parameters are ``apply_updates(params,
    updates)``. Neither method mutates its arguments.
    """

    def init(self, params: Any) -> Any: ...

    def update(self, grads: Any, state: Any, params: Any) -> tuple[Any, Any]: ...


def _is_none(x: Any) -> bool:
    return x is None


def apply_updates(params: Any, updates: Any) -> Any:
    """Return ``params + updates`` leaf by leaf; a ``None`` update leaves the leaf as it is.

    Each result keeps its parameter's dtype, so a float32 model stays float32
    even when an update was computed in float64.
    """
    # None counts as a leaf on both sides, so a None parameter (an absent
    # bias, say) lines up with its None update.
    param_leaves, treedef = tree_flatten(params, is_leaf=_is_none)
    update_leaves, update_def = tree_flatten(updates, is_leaf=_is_none)
    if update_def != treedef:
        raise ValueError(
            f"apply_updates: {structure_mismatch('updates', update_def, treedef, 'parameters')}. "
            "The updates must have the structure of the parameters, as an optimiser's update returns them."
        )
    new_leaves = []
    for index, (param, update) in enumerate(zip(param_leaves, update_leaves)):
        if update is None or not hasattr(value_of(param), "dtype"):
            new_leaves.append(param)
            continue
        if shape_of(update) != shape_of(param):
            raise ValueError(
                f"apply_updates: the update at {format_path(leaf_paths(treedef)[index][1])} has shape "
                f"{shape_of(update)} but the parameter has shape {shape_of(param)}; each update must have "
                "the shape of its parameter."
            )
        new = param + update
        dtype = value_of(param).dtype
        if value_of(new).dtype != dtype:
            from ._ops_dtype import astype

            new = astype(new, dtype)
        new_leaves.append(new)
    return tree_unflatten(treedef, new_leaves)
