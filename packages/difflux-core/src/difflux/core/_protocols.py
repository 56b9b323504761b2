"""Protocols through which the difflux packages talk to each other.

The packages depend on core only, never on each other. Where one package
takes another's objects (``nn.fit`` and ``ppl.SVI`` take an optimiser), they
meet here: any object with these methods works, whichever package made it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ._core import value_of
from ._tree import tree_flatten, tree_unflatten


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
    update_leaves = tree_flatten(updates, is_leaf=_is_none)[0]
    if len(update_leaves) != len(param_leaves):
        raise ValueError(
            f"apply_updates got {len(update_leaves)} update leaves for {len(param_leaves)} parameter "
            "leaves; the updates must have the structure of the parameters"
        )
    new_leaves = []
    for param, update in zip(param_leaves, update_leaves):
        if update is None or not hasattr(value_of(param), "dtype"):
            new_leaves.append(param)
            continue
        new = param + update
        dtype = value_of(param).dtype
        if value_of(new).dtype != dtype:
            from ._ops_dtype import astype

            new = astype(new, dtype)
        new_leaves.append(new)
    return tree_unflatten(treedef, new_leaves)
