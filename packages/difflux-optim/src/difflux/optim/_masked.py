"""``masked``: apply a transformation to some parameters only."""

from __future__ import annotations

import dataclasses
from typing import Any

import difflux.core as dx

from ._base import Transform, check_transform, flag
from ._trees import flatten, leaf_paths, mask_for, unflatten


def _mask_key(mask: Any) -> Any:
    """Return a hashable stand-in for a mask: the function itself, or its flattened tree."""
    if callable(mask) and not isinstance(mask, dx.Module):
        return mask
    leaves, treedef = dx.tree_flatten(mask, is_leaf=lambda x: x is None)
    return treedef, tuple(leaves)


@dataclasses.dataclass(frozen=True, eq=False)
class Masked(Transform):
    """A transformation applied where a mask is true; build one with :func:`masked`."""

    transform: Any
    mask: Any

    def __post_init__(self) -> None:
        check_transform("masked", self.transform)
        _mask_key(self.mask)  # an unhashable leaf raises here, not under dx.jit

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Masked):
            return NotImplemented
        return self.transform == other.transform and _mask_key(self.mask) == _mask_key(other.mask)

    def __hash__(self) -> int:
        return hash((self.transform, _mask_key(self.mask)))

    @property
    def makes_steps(self) -> bool:  # type: ignore[override]
        return flag(self.transform, "makes_steps")

    @property
    def needs_steps(self) -> bool:  # type: ignore[override]
        return flag(self.transform, "needs_steps")

    @property
    def uses_loss(self) -> bool:  # type: ignore[override]
        return flag(self.transform, "uses_loss")

    def _selected(self, tree: Any, params: Any) -> tuple[list[Any], dx.TreeDef, list[bool]]:
        leaves, treedef = flatten(tree)
        chosen = mask_for(self.mask, params, [keys for keys, _ in leaf_paths(flatten(params)[1])], "masked")
        return leaves, treedef, chosen

    def init(self, params: Any) -> Any:
        leaves, treedef, chosen = self._selected(params, params)
        return self.transform.init(unflatten(treedef, [p if keep else None for p, keep in zip(leaves, chosen)]))

    def update(self, grads: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        reference = grads if params is None else params
        grad_leaves, treedef, chosen = self._selected(grads, reference)
        inner_grads = unflatten(treedef, [g if keep else None for g, keep in zip(grad_leaves, chosen)])
        inner_params = None
        if params is not None:
            param_leaves, param_def = flatten(params)
            inner_params = unflatten(param_def, [p if keep else None for p, keep in zip(param_leaves, chosen)])

        inner_updates, state = self.transform.update(inner_grads, state, inner_params)

        # Outside the mask a rule gives no step (those parameters stay as they
        # are); any other transformation passes its input through.
        passed = [None] * len(grad_leaves) if self.makes_steps else grad_leaves
        updates = [u if keep else p for u, p, keep in zip(flatten(inner_updates)[0], passed, chosen)]
        return unflatten(treedef, updates), state

    def report(self, state: Any, loss: Any) -> Any:
        return self.transform.report(state, loss) if hasattr(self.transform, "report") else state


def masked(transform: Any, mask: Any) -> Masked:
    """Return ``transform`` restricted to the parameters where ``mask`` is true.

    ``mask`` is a structure of booleans like the parameters, or a function
    from the parameters to one. A boolean may stand for a whole
    sub-structure (``{"encoder": False, "decoder": True}``), and ``None``
    counts as false. The transformation keeps state only for the parameters
    inside the mask.

    Outside the mask the result depends on what ``transform`` does:

    * a rule (it turns gradients into steps, like :class:`Adam`) gives no
      update there, so those parameters are frozen: ``masked(Adam(), mask)``
      trains only the masked parameters;
    * any other transformation passes its input through unchanged, so
      ``chain(Adam(), masked(WeightDecay(1e-2), mask))`` decays only the
      masked parameters and still trains all of them.

    (Optax's ``masked`` always passes the input through, which turns
    gradients into updates when it wraps a rule.)

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> from difflux import optim
        >>> params = {"w": np.ones((2, 2)), "b": np.ones(2)}
        >>> decay = optim.masked(optim.WeightDecay(0.5), lambda p: dx.tree_map(lambda x: x.ndim > 1, p))
        >>> state = optim.setup(optim.chain(optim.Descent(0.0), decay), params)
        >>> state, params = optim.update(state, params, dx.tree_map(np.zeros_like, params))
        >>> params["w"][0].tolist(), params["b"].tolist()
        ([0.5, 0.5], [1.0, 1.0])
    """
    return Masked(transform, mask)
