"""Broadcasting several arrays together: ``broadcast_shapes``,
``broadcast_arrays`` and ``meshgrid``.

All three are built on ``broadcast_to`` and ``reshape``, so the results are
differentiable and each gradient is summed back over the broadcast axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._dispatch import shape_of
from ._ops_shape import broadcast_to, reshape


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """Return the shape that arrays of the given shapes broadcast to.

    Examples:
        >>> import difflux.core as dx
        >>> dx.broadcast_shapes((3, 1), (4,))
        (3, 4)
    """
    try:
        return tuple(int(s) for s in np.broadcast_shapes(*[tuple(shape) for shape in shapes]))
    except ValueError:
        listed = ", ".join(str(tuple(shape)) for shape in shapes)
        raise ValueError(
            f"shapes {listed} do not broadcast together: along each axis, counted from the end, "
            "the lengths must be equal or 1"
        ) from None


def broadcast_arrays(*arrays: Any) -> list[Any]:
    """Broadcast ``arrays`` against each other and return them, all of one shape."""
    shape = broadcast_shapes(*[shape_of(a) for a in arrays])
    return [broadcast_to(a, shape) for a in arrays]


def meshgrid(*arrays: Any, indexing: str = "xy") -> list[Any]:
    """Return coordinate grids built from 1-D ``arrays``.

    With ``indexing="ij"`` output ``k`` has shape ``(n0, n1, ...)`` and varies
    along axis ``k``. With ``indexing="xy"`` (Cartesian, the default) the
    first two axes are swapped, so two inputs of lengths ``n0`` and ``n1``
    give grids of shape ``(n1, n0)``.
    """
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid's indexing must be 'xy' or 'ij', got {indexing!r}")
    for position, a in enumerate(arrays):
        if len(shape_of(a)) != 1:
            raise ValueError(f"meshgrid takes 1-D arrays, but argument {position} has shape {shape_of(a)}")

    lengths = [shape_of(a)[0] for a in arrays]
    axes = list(range(len(arrays)))
    if indexing == "xy" and len(arrays) > 1:
        axes[0], axes[1] = 1, 0
    shape = [1] * len(arrays)
    for axis, length in zip(axes, lengths):
        shape[axis] = length

    grids = []
    for a, axis in zip(arrays, axes):
        column_shape = [1] * len(arrays)
        column_shape[axis] = shape[axis]
        grids.append(broadcast_to(reshape(a, column_shape), shape))
    return grids
