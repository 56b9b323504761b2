"""The Optimisers.jl-style interface: ``setup``, ``update``, ``adjust``, ``freeze``, ``report``.

``setup(rule, model)`` bundles a transformation with its state and with
per-parameter bookkeeping (which leaves are frozen, their paths) in one
``OptimiserState``. Every function here returns new values and mutates
nothing, so a training step is a pure function that ``dx.jit`` compiles:
the rule and the frozen flags are static, the state's arrays are traced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import difflux.core as dx

from ._base import Leafwise, check_transform, flag
from ._trees import check_gradients, flatten, leaf_paths, mask_for, unflatten, value_dtype


class OptimiserState(dx.Module):
    """A transformation with its state for one model; build one with :func:`setup`.

    ``rule`` is the transformation, ``inner`` its state, ``frozen`` one flag
    per parameter leaf (see :func:`freeze`) and ``paths`` the key path of
    each leaf.
    """

    rule: Any = dx.field(static=True)
    inner: Any = dx.field(static=False)
    frozen: tuple[bool, ...] = dx.field(static=True)
    paths: tuple[tuple[Any, ...], ...] = dx.field(static=True, repr=False)


def setup(rule: Any, model: Any) -> OptimiserState:
    """Return the optimiser state of ``rule`` for the parameters of ``model``.

    ``model`` is any structure of arrays: a ``dx.Module``, a dict, a list.
    Floating-point arrays get state; other leaves (integers, ``None``,
    strings) get none and are never updated.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> state = optim.setup(optim.Momentum(), {"w": np.zeros(3)})
        >>> state.inner.slots["velocity"]["w"].tolist()
        [0.0, 0.0, 0.0]
    """
    check_transform("setup", rule)
    leaves, treedef = flatten(model)
    paths = tuple(keys for keys, _ in leaf_paths(treedef))
    return OptimiserState(rule=rule, inner=rule.init(model), frozen=(False,) * len(leaves), paths=paths)


def _check_state(function: str, state: Any) -> None:
    if not isinstance(state, OptimiserState):
        raise TypeError(
            f"optim.{function} expects the state that optim.setup returns, got {type(state).__name__}. "
            "With a bare rule call rule.update(grads, state, params) instead."
        )


def update(state: OptimiserState, model: Any, grads: Any) -> tuple[OptimiserState, Any]:
    """Return the new state and the updated model after one step with ``grads``.

    ``grads`` has the structure of ``model`` (as ``dx.grad`` returns it),
    with ``None`` where there is no gradient. Frozen parameters and those
    with a ``None`` gradient keep their value and their state.

    Raises:
        ValueError: when ``grads`` does not match ``model``, naming the path
            and both shapes; or when ``model`` no longer matches the state.
    """
    _check_state("update", state)
    grad_leaves, grad_def = flatten(grads)
    param_leaves, param_def = flatten(model)
    check_gradients(grad_leaves, grad_def, param_leaves, param_def, "optim.update")
    if len(param_leaves) != len(state.frozen):
        raise ValueError(
            f"optim.update: the model has {len(param_leaves)} leaves but the state was set up for "
            f"{len(state.frozen)}; call optim.setup again for this model"
        )
    if any(state.frozen):
        grad_leaves = [None if cold else g for g, cold in zip(grad_leaves, state.frozen)]

    if isinstance(state.rule, Leafwise):
        # A single rule works on the leaves flattened above, so the step
        # flattens the model and the gradients once and applies the updates
        # without building the tree of updates.
        update_leaves, inner = state.rule.update_flat(grad_leaves, param_leaves, param_def, state.inner, True)
        return dx.replace(state, inner=inner), unflatten(param_def, _add_updates(param_leaves, update_leaves))

    updates, inner = state.rule.update(unflatten(grad_def, grad_leaves), state.inner, model)
    return dx.replace(state, inner=inner), dx.apply_updates(model, updates)


def _add_updates(param_leaves: list[Any], update_leaves: list[Any]) -> list[Any]:
    """Return ``param + update`` per leaf in the parameter's dtype, as ``dx.apply_updates`` does."""
    new_leaves = []
    for param, update in zip(param_leaves, update_leaves):
        if update is None:
            new_leaves.append(param)
            continue
        new = param + update
        dtype = value_dtype(param)
        if value_dtype(new) != dtype:
            new = dx.astype(new, dtype)
        new_leaves.append(new)
    return new_leaves


def report(state: Any, loss: Any, rule: Any = None) -> Any:
    """Return the state after reporting ``loss`` to the transformations that use it.

    Only :func:`reduce_on_plateau` uses losses. ``state`` is what
    :func:`setup` returns, or a bare state together with its ``rule``.

    Raises:
        ValueError: when no transformation in the rule uses losses, so that
            a forgotten ``reduce_on_plateau`` does not go unnoticed.
    """
    if isinstance(state, OptimiserState):
        rule, inner = state.rule, state.inner
    elif rule is None:
        raise TypeError("optim.report: pass the state from optim.setup, or a bare state with rule=...")
    else:
        inner = state
    if not flag(rule, "uses_loss"):
        raise ValueError(
            f"optim.report: no transformation in {rule!r} uses losses. Wrap the rule in "
            "optim.reduce_on_plateau(...) to scale steps by the reported loss."
        )
    inner = rule.report(inner, loss)
    return dx.replace(state, inner=inner) if isinstance(state, OptimiserState) else inner


# --------------------------------------------------------------------------
# Changing hyperparameters
# --------------------------------------------------------------------------

_ALIASES = {"lr": "learning_rate"}


def _adjusted(rule: Any, changes: dict[str, Any], used: set[str]) -> Any:
    """Return ``rule`` with ``changes`` applied to it and to every transformation inside it."""
    if not dataclasses.is_dataclass(rule) or isinstance(rule, type):
        return rule
    replaced = {}
    for field in dataclasses.fields(rule):
        value = getattr(rule, field.name)
        if field.name in changes:
            replaced[field.name] = changes[field.name]
            used.add(field.name)
        elif isinstance(value, tuple) and any(dataclasses.is_dataclass(v) for v in value):
            replaced[field.name] = tuple(_adjusted(v, changes, used) for v in value)
        elif dataclasses.is_dataclass(value) and hasattr(value, "update"):
            replaced[field.name] = _adjusted(value, changes, used)
    return dataclasses.replace(rule, **replaced) if replaced else rule


def adjust(state: Any, learning_rate: Any = None, /, **hyperparameters: Any) -> Any:
    """Return the state (or rule) with hyperparameters changed in every transformation that has them.

    ``adjust(state, 1e-4)`` sets the learning rate; keywords set any field
    by name (``b1=0.95``, ``weight_decay=0``), and ``lr`` is accepted for
    ``learning_rate``. The moments and the step count are kept. New values
    are checked as in the constructors. ``state`` may also be a bare rule,
    which comes back adjusted.

    The rule is static under ``dx.jit``, so a changed hyperparameter
    compiles the step again. For a learning rate that changes every step,
    use a schedule instead.

    Raises:
        ValueError: when no transformation has a field of that name, or a
            new value is invalid.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> state = optim.setup(optim.chain(optim.ClipNorm(), optim.Adam(1e-3)), np.zeros(2))
        >>> optim.adjust(state, 1e-4).rule.transforms[1].learning_rate
        0.0001
    """
    changes = {_ALIASES.get(name, name): value for name, value in hyperparameters.items()}
    if learning_rate is not None:
        changes["learning_rate"] = learning_rate
    if not changes:
        raise TypeError("optim.adjust: give a learning rate or hyperparameters by name, e.g. adjust(state, b1=0.95)")
    rule = state.rule if isinstance(state, OptimiserState) else state
    used: set[str] = set()
    new_rule = _adjusted(rule, changes, used)
    unused = sorted(set(changes) - used)
    if unused:
        raise ValueError(f"optim.adjust: no transformation in {rule!r} has a hyperparameter named {unused[0]!r}")
    return dx.replace(state, rule=new_rule) if isinstance(state, OptimiserState) else new_rule


# --------------------------------------------------------------------------
# Freezing
# --------------------------------------------------------------------------


def _parse_path(path: str | tuple[Any, ...]) -> tuple[Any, ...]:
    if isinstance(path, tuple):
        return path
    return tuple(part for part in path.split(".") if part)


def _key_matches(key: Any, part: Any) -> bool:
    return key == part or (isinstance(part, str) and str(key) == part)


def _selection(state: OptimiserState, where: Any, function: str) -> list[bool]:
    """Return, per parameter leaf, whether ``where`` selects it."""
    if isinstance(where, str | tuple):
        prefix = _parse_path(where)
        chosen = [
            len(keys) >= len(prefix) and all(_key_matches(k, p) for k, p in zip(keys, prefix)) for keys in state.paths
        ]
        if not any(chosen):
            known = ", ".join(".".join(str(k) for k in keys) for keys in state.paths[:8])
            raise ValueError(
                f"optim.{function}: no parameter has the path {where!r}. Paths are dot-separated keys, "
                f"attribute names and indices; the model's leaves include: {known}"
            )
        return chosen
    # A model used as a mask is callable too, but it is a structure.
    if callable(where) and not isinstance(where, dx.Module):
        return [bool(where(keys)) for keys in state.paths]
    if where is None or isinstance(where, bool):
        raise TypeError(
            f"optim.{function}: where must be a path (a string like 'encoder.weight' or a tuple of keys), "
            f"a function of a leaf's key tuple, or a structure of booleans like the model; got {where!r}"
        )
    # A mask: a structure of booleans like the model.
    return mask_for(where, None, list(state.paths), f"optim.{function}")


def freeze(
    state: OptimiserState, where: str | tuple[Any, ...] | Callable[[tuple[Any, ...]], bool] | Any
) -> OptimiserState:
    """Return the state with the selected parameters frozen.

    A frozen parameter gets no update and its state (moments and the like)
    is kept unchanged until :func:`thaw`. ``where`` selects parameters in
    one of three ways:

    * by path, as a dot-separated string (``"layers.0.weight"``, or
      ``"encoder"`` for everything below it) or a tuple of keys;
    * by a function of each leaf's key tuple
      (``lambda path: path[-1] == "bias"``);
    * by a structure of booleans like the model, where a boolean may cover
      a whole sub-structure. A tuple reads as a path, so use a list or a
      dict for such a mask.
    The step count is shared, so bias corrections after a thaw use the
    total number of steps.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> params = {"encoder": np.ones(2), "head": np.ones(2)}
        >>> state = optim.freeze(optim.setup(optim.Descent(0.5), params), "encoder")
        >>> state, params = optim.update(state, params, {"encoder": np.ones(2), "head": np.ones(2)})
        >>> params["encoder"].tolist(), params["head"].tolist()
        ([1.0, 1.0], [0.5, 0.5])
    """
    _check_state("freeze", state)
    chosen = _selection(state, where, "freeze")
    return dx.replace(state, frozen=tuple(old or new for old, new in zip(state.frozen, chosen)))


def thaw(state: OptimiserState, where: Any = None) -> OptimiserState:
    """Return the state with the selected parameters (all, without ``where``) no longer frozen."""
    _check_state("thaw", state)
    if where is None:
        return dx.replace(state, frozen=(False,) * len(state.frozen))
    chosen = _selection(state, where, "thaw")
    return dx.replace(state, frozen=tuple(old and not new for old, new in zip(state.frozen, chosen)))
