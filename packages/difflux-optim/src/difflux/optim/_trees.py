"""Parameter structures as the optimisers see them: leaves, paths and checks.

Every transformation flattens parameters, gradients and its state with
``None`` counted as a leaf, so an absent parameter (a ``None`` bias) and an
absent gradient line up with the leaves around them. Paths name a leaf the
way Python reaches it (``.layers[0].weight``, ``['w']``) in error messages,
and as tuples of keys (``("layers", 0, "weight")``) for freezing and masks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core._tree_paths import format_keys, format_path, leaf_paths, structure_mismatch


def is_none(x: Any) -> bool:
    return x is None


def flatten(tree: Any) -> tuple[list[Any], dx.TreeDef]:
    """Return the leaves of ``tree`` and its structure, ``None`` counting as a leaf."""
    return dx.tree_flatten(tree, is_leaf=is_none)


def unflatten(treedef: dx.TreeDef, leaves: list[Any]) -> Any:
    return dx.tree_unflatten(treedef, leaves)


def value_dtype(x: Any) -> Any:
    """Return the dtype of an array or difflux tracer, ``None`` for other values."""
    return getattr(x, "dtype", None)


def shape_of(x: Any) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    return tuple(shape) if shape is not None else np.shape(x)


def is_trainable(x: Any) -> bool:
    """Return whether ``x`` is a parameter that gets updates: a real floating-point array.

    Raises:
        NotImplementedError: for complex arrays, which no rule here supports.
    """
    return trainable_dtype(x) is not None


# Whether each dtype seen so far is a real floating-point dtype. A step checks
# once per parameter, and dx.isdtype costs more than the dictionary lookup.
_REAL_FLOATING: dict[Any, bool] = {}


def trainable_dtype(x: Any) -> Any:
    """Return the dtype of ``x`` when it is a parameter that gets updates (see :func:`is_trainable`), else ``None``."""
    if type(x) is np.ndarray:
        dtype = x.dtype  # the common case, without dx.is_array's checks
    elif x is None or not dx.is_array(x):
        return None
    else:
        dtype = value_dtype(x)
    real = _REAL_FLOATING.get(dtype)
    if real is None:
        if dx.isdtype(dtype, "complex floating"):
            raise NotImplementedError(
                f"a parameter has the complex dtype {dtype}; difflux.optim rules support real "
                "floating-point parameters only. Optimise the real and imaginary parts as two arrays."
            )
        real = _REAL_FLOATING[dtype] = bool(dx.isdtype(dtype, "real floating"))
    return dtype if real else None


def check_gradients(
    grad_leaves: list[Any], grad_def: dx.TreeDef, param_leaves: list[Any], param_def: dx.TreeDef, owner: str
) -> None:
    """Raise ValueError unless the gradients have the parameters' structure and shapes."""
    if grad_def != param_def:
        raise ValueError(
            f"{owner}: {structure_mismatch('gradients', grad_def, param_def, 'parameters')}. "
            "Pass gradients of the same structure as the parameters, as dx.grad returns them."
        )
    for index, (grad, param) in enumerate(zip(grad_leaves, param_leaves)):
        if grad is None:
            continue
        # The path of a leaf is built only for an error message, so a step
        # whose gradients pass the checks does not pay for it.
        if param is None:
            text = leaf_paths(param_def)[index][1]
            raise ValueError(
                f"{owner}: the gradient at {format_path(text)} is an array but the parameter there is None. "
                "Pass None as the gradient of an absent parameter."
            )
        if not dx.is_array(param):
            if isinstance(param, float | complex):
                # dx.grad differentiates a Python float in a dict or a list,
                # but the rules update arrays only, so it would stay unchanged.
                text = leaf_paths(param_def)[index][1]
                raise TypeError(
                    f"{owner}: the parameter at {format_path(text)} is the Python {type(param).__name__} "
                    f"{param!r}, which optimisers do not update, but it has a gradient. Store it as an array "
                    f"(np.asarray({param!r})) to train it, or pass None as its gradient to keep it fixed."
                )
            continue
        if shape_of(grad) != shape_of(param):
            text = leaf_paths(param_def)[index][1]
            raise ValueError(
                f"{owner}: the gradient at {format_path(text)} has shape {shape_of(grad)} but the parameter "
                f"has shape {shape_of(param)}; each gradient must have the shape of its parameter."
            )


def flatten_state(tree: Any, param_def: dx.TreeDef, owner: str) -> list[Any]:
    """Return the leaves of a per-parameter state tree built by ``init`` for ``param_def``."""
    leaves, treedef = flatten(tree)
    if treedef != param_def:
        raise ValueError(
            f"{owner}: {structure_mismatch('state arrays', treedef, param_def, 'parameters')}, so the state was "
            "built for other parameters. Build the state again with init (or optim.setup) for these parameters."
        )
    return leaves


def raise_state_shape(
    state_leaf: Any, reference: Any, index: int, param_def: dx.TreeDef, owner: str, what: str = "state"
) -> None:
    """Raise ValueError naming the path where a state array's shape differs from its parameter's."""
    text = leaf_paths(param_def)[index][1]
    found = "nothing" if state_leaf is None else f"shape {shape_of(state_leaf)}"
    raise ValueError(
        f"{owner}: the {what} at {format_path(text)} has {found} but the parameter has "
        f"shape {shape_of(reference)}, so the state was built for other parameters. Build the state again "
        "with init (or optim.setup) for these parameters."
    )


# --------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------


def _is_mask_leaf(x: Any) -> bool:
    return x is None or isinstance(x, bool | np.bool_)


def mask_for(mask: Any, params: Any, param_keys: list[tuple[Any, ...]], owner: str) -> list[bool]:
    """Return one boolean per parameter leaf from a mask tree or a function of the parameters.

    ``param_keys`` contains the key path of each parameter leaf. A mask leaf
    applies to every parameter below its path, so ``{"encoder":
    False, "decoder": True}`` masks whole sub-structures. ``None`` counts as
    ``False``.
    """
    # A model used as a mask is callable too, but it is a structure.
    if callable(mask) and not isinstance(mask, dx.Module):
        mask = mask(params)
    mask_leaves, mask_def = dx.tree_flatten(mask, is_leaf=_is_mask_leaf)
    entries = []
    for (keys, text), leaf in zip(leaf_paths(mask_def), mask_leaves):
        if not _is_mask_leaf(leaf):
            raise TypeError(
                f"{owner}: the mask has {type(leaf).__name__} at {format_path(text)}; mask entries must be "
                "Python booleans (True where the transformation applies) or None."
            )
        entries.append((keys, bool(leaf)))
    values = []
    for keys in param_keys:
        matches = [(len(prefix), value) for prefix, value in entries if keys[: len(prefix)] == prefix]
        if not matches:
            raise ValueError(
                f"{owner}: the mask has no entry for the parameter at {format_keys(keys)}. Give the mask the "
                "structure of the parameters, for example dx.tree_map(lambda p: p.ndim > 1, params)."
            )
        values.append(max(matches, key=lambda match: match[0])[1])
    return values
