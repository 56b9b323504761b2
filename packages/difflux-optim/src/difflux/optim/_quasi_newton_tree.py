"""One flat vector for a structure of parameters, as the quasi-Newton methods see it.

BFGS and its relatives work on a vector ``x`` in ``R^n``: inner products,
rank-one updates, a box per coordinate. :class:`FlatView` turns any structure
of floating-point arrays (one array, a dict, a ``dx.Module``) into one such
vector with difflux operations and back, so the methods run on both backends
and inside ``dx.jit``. The vector has the dtype the leaves promote to; each
leaf gets its own dtype back when unflattened.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import difflux.core as dx

from ._trees import leaf_paths


def backend_name(x: Any) -> str:
    """Return the backend of an array or difflux tracer: ``"numpy"`` or ``"jax"``."""
    if isinstance(x, dx.Tracer):
        x = dx.zeros_like(x)  # a plain array of the tracer's backend
    return "numpy" if isinstance(x, np.ndarray | np.generic) else "jax"


def _scalar_like(value: float, reference: Any) -> Any:
    if reference is None:
        return dx.asarray(value)
    return dx.sum(dx.zeros_like(reference)) + value


class FlatView:
    """The layout of one structure: leaf shapes, dtypes and positions in the vector."""

    def __init__(self, tree: Any, owner: str) -> None:
        leaves, treedef = dx.tree_flatten(tree)
        if not leaves:
            raise ValueError(
                f"{owner}: x0 contains no arrays (got {tree!r}), so there is nothing to optimise. "
                "Pass an array or a structure (dict, list, dx.Module) of floating-point arrays."
            )

        # Where each leaf sits, as Python would reach it: x0, x0['w'], x0.layers[0].
        self.names = ["x0" + path for _, path in leaf_paths(treedef)]
        for name, leaf in zip(self.names, leaves):
            if isinstance(leaf, bool) or (not isinstance(leaf, int | float) and not dx.is_array(leaf)):
                raise TypeError(
                    f"{owner}: {name} is a {type(leaf).__name__}, but every leaf of x0 "
                    "must be a floating-point array or a Python float."
                )
            dtype = getattr(leaf, "dtype", None)  # None for Python numbers
            if dtype is not None and not dx.isdtype(dtype, "real floating"):
                raise TypeError(
                    f"{owner}: {name} has dtype {dtype}, but the quasi-Newton "
                    "methods need real floating-point parameters. Convert it, for example with "
                    "dx.astype(x, dx.float64)."
                )

        # Python numbers among the leaves become 0-d arrays of the arrays' backend.
        reference = next((leaf for leaf in leaves if dx.is_array(leaf)), None)
        arrays = [leaf if dx.is_array(leaf) else _scalar_like(float(leaf), reference) for leaf in leaves]
        self.treedef = treedef
        self.shapes = [tuple(a.shape) for a in arrays]
        self.dtypes = [a.dtype for a in arrays]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.size = sum(self.sizes)
        self.dtype = dx.result_type(*self.dtypes)
        if self.size == 0:
            raise ValueError(f"{owner}: x0 has no elements (its arrays have shapes {self.shapes}).")
        self.leaves = arrays

    def initial_vector(self) -> Any:
        """Return the reference structure itself as one vector."""
        return self.ravel_leaves(self.leaves)

    def ravel(self, tree: Any) -> Any:
        """Return the leaves of ``tree`` (laid out as the reference) as one vector."""
        return self.ravel_leaves(dx.tree_leaves(tree))

    def ravel_leaves(self, leaves: list[Any]) -> Any:
        parts = [dx.reshape(dx.astype(dx.asarray(leaf), self.dtype), (-1,)) for leaf in leaves]
        return parts[0] if len(parts) == 1 else dx.concat(parts)

    def unravel(self, vector: Any) -> Any:
        """Return the structure whose leaves are the consecutive pieces of ``vector``."""
        leaves = []
        start = 0
        for shape, size, dtype in zip(self.shapes, self.sizes, self.dtypes):
            piece = vector[start : start + size] if len(self.sizes) > 1 else vector
            leaves.append(dx.astype(dx.reshape(piece, shape), dtype))
            start += size
        return dx.tree_unflatten(self.treedef, leaves)

    def locate(self, index: int) -> str:
        """Describe where element ``index`` of the vector sits in the structure, for messages."""
        start = 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            if index < start + size:
                if not shape:
                    return name
                position = np.unravel_index(index - start, shape)
                return f"{name}[{', '.join(str(int(i)) for i in position)}]"
            start += size
        raise IndexError(index)

    def value_and_grad(self, fun: Callable[..., Any], args: tuple[Any, ...]) -> Callable[[Any], tuple[Any, Any]]:
        """Return ``x -> (fun(unravel(x), *args), its gradient as a vector)``."""
        objective = dx.value_and_grad(lambda tree: fun(tree, *args))

        def evaluate(vector: Any) -> tuple[Any, Any]:
            value, grads = objective(self.unravel(vector))
            return dx.astype(dx.asarray(value), self.dtype), self.ravel(grads)

        return evaluate
