"""Clipping: bound each coordinate, each array's norm, or the norm of all arrays together.

Clipping acts on whatever it is given: placed before a rule it clips
gradients (the usual place), placed after one it clips steps.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import difflux.core as dx

from ._base import Leafwise, Transform, cast_like, check_positive
from ._trees import check_gradients, flatten, is_trainable, shape_of, unflatten, value_dtype


def _scale_to(norm: Any, max_norm: float) -> Any:
    """Return the factor ``min(1, max_norm / norm)``, which is 1 at a zero norm."""
    # The inner where keeps a zero norm out of the division, so that the
    # branch not taken stays finite.
    too_large = norm > max_norm
    return dx.where(too_large, max_norm / dx.where(too_large, norm, 1.0), 1.0)


@dataclasses.dataclass(frozen=True)
class ClipValue(Transform):
    """Clip each coordinate to ``[-delta, delta]``.

    .. math:: u \\mapsto \\operatorname{clip}(u, -\\delta, \\delta)

    where :math:`\\delta` is ``delta``. The default follows Flux's ``ClipGrad``.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> clip = optim.ClipValue(1.0)
        >>> clip.update({"w": np.array([-3.0, 0.5])}, clip.init(None))[0]["w"].tolist()
        [-1.0, 0.5]
    """

    delta: float = 10.0

    def __post_init__(self) -> None:
        check_positive(self, delta=self.delta)

    def init(self, params: Any) -> None:
        del params
        return None

    def update(self, grads: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        leaves, treedef = _checked_leaves(type(self).__name__, grads, params)
        clipped = [None if g is None else dx.clip(g, -self.delta, self.delta) for g in leaves]
        return unflatten(treedef, clipped), state


@dataclasses.dataclass(frozen=True)
class ClipNorm(Leafwise):
    """Rescale each array whose norm exceeds ``max_norm`` to that norm.

    .. math:: u \\mapsto u \\, \\min\\!\\left(1, \\frac{c}{\\lVert u \\rVert_p}\\right)

    where :math:`c` is ``max_norm`` and :math:`p` is ``ord`` (1, 2 or
    ``math.inf``), with the norm taken over each parameter array separately.
    Defaults follow Flux.
    """

    max_norm: float = 10.0
    ord: float = 2

    def __post_init__(self) -> None:
        check_positive(self, max_norm=self.max_norm)
        if self.ord not in (1, 2, math.inf):
            raise ValueError(f"ClipNorm: ord must be 1, 2 or math.inf, got {self.ord!r}")

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        if math.prod(shape_of(grad)) == 0:
            return grad, ()
        if self.ord == 1:
            norm = dx.sum(dx.abs(grad))
        elif self.ord == 2:
            norm = dx.sqrt(dx.sum(grad**2))
        else:
            norm = dx.max(dx.abs(grad))
        return grad * _scale_to(norm, self.max_norm), ()


@dataclasses.dataclass(frozen=True)
class ClipGlobalNorm(Transform):
    """Rescale all arrays together when their joint Euclidean norm exceeds ``max_norm``.

    .. math:: u_i \\mapsto u_i \\, \\min\\!\\left(1, \\frac{c}{\\sqrt{\\sum_i \\lVert u_i \\rVert_2^2}}\\right)

    where :math:`c` is ``max_norm`` and the sum runs over every array with
    an update (``None`` leaves are left out). The direction of the whole
    update is kept. The default follows Flux's ``ClipNorm``.

    References:
        Pascanu, Mikolov and Bengio, "On the difficulty of training recurrent
        neural networks", ICML 2013.
    """

    max_norm: float = 10.0

    def __post_init__(self) -> None:
        check_positive(self, max_norm=self.max_norm)

    def init(self, params: Any) -> None:
        del params
        return None

    def update(self, grads: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        leaves, treedef = _checked_leaves(type(self).__name__, grads, params)
        present = [g for g in leaves if g is not None]
        if not present:
            return grads, state
        squares = [dx.sum(g**2) for g in present]
        # Sum in the widest dtype among the arrays, then cast the factor back
        # to each array's own dtype.
        dtype = dx.result_type(*[value_dtype(s) for s in squares])
        total = squares[0] if len(squares) == 1 else dx.sum(dx.stack([dx.astype(s, dtype) for s in squares]))
        scale = _scale_to(dx.sqrt(total), self.max_norm)
        clipped = [None if g is None else g * cast_like(g, scale)[0] for g in leaves]
        return unflatten(treedef, clipped), state


def _checked_leaves(owner: str, grads: Any, params: Any) -> tuple[list[Any], dx.TreeDef]:
    leaves, treedef = flatten(grads)
    if params is not None:
        param_leaves, param_def = flatten(params)
        check_gradients(leaves, treedef, param_leaves, param_def, owner)
        leaves = [g if is_trainable(p) else None for g, p in zip(leaves, param_leaves)]
    return leaves, treedef
