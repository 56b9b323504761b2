"""The two kinds of transformation and what they share.

Every object here follows core's optimiser protocol (``dx.Optimiser``):
``init(params) -> state`` and ``update(grads, state, params) -> (updates,
state)``, with ``dx.apply_updates(params, updates)`` giving the next
parameters. Updates are *added*, so a rule returns ``-learning_rate * ...``.

A transformation works in one of two spaces. A *rule* (Adam, Descent, ...)
turns gradients into steps. Clipping works in either space, and
``WeightDecay`` adds to steps, so it belongs after a rule. ``chain`` checks
this order through the flags ``makes_steps`` and ``needs_steps``.

Most transformations act on each parameter on its own; they subclass
:class:`Leafwise` and write ``init_leaf`` and ``update_leaf`` for one array,
which is the whole of a new rule. The base class does the rest: it flattens
the structures, checks gradients against parameters, casts gradients to the
parameter's dtype, skips leaves that are not floating-point arrays or have a
``None`` gradient, evaluates the learning-rate schedule and counts steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx

from ._trees import (
    check_gradients,
    flatten,
    flatten_state,
    is_trainable,
    raise_state_shape,
    trainable_dtype,
    unflatten,
    value_dtype,
)


class Transform:
    """Base of the transformations: ``init``, ``update`` and ``report``.

    Subclasses are frozen dataclasses, so they compare and hash by value and
    ``dx.jit`` treats them as static configuration.
    """

    #: True for a rule, which turns gradients into steps.
    makes_steps: ClassVar[bool] = False
    #: True for a transformation that acts on steps, so it must follow a rule.
    needs_steps: ClassVar[bool] = False
    #: True for a transformation that uses losses passed to ``report``.
    uses_loss: ClassVar[bool] = False

    def init(self, params: Any) -> Any:
        raise NotImplementedError

    def update(self, grads: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        raise NotImplementedError

    def report(self, state: Any, loss: Any) -> Any:
        """Return the state after a loss report; the default ignores the loss."""
        del loss
        return state


class RuleState(dx.Module):
    """State of a :class:`Leafwise` transformation.

    ``count`` is the number of updates made so far (an int32 array, so a step
    under ``dx.jit`` does not compile again). ``slots`` maps each slot name of
    the rule (``"mu"``, ``"nu"``, ...) to a structure like the parameters with
    that slot's array at each parameter and ``None`` elsewhere.
    """

    count: Any = dx.field(static=False)
    slots: dict[str, Any] = dx.field(static=False)


class Leafwise(Transform):
    """A transformation that acts on each parameter on its own.

    Subclasses set ``slot_names`` and write :meth:`init_leaf` and
    :meth:`update_leaf`. A subclass with a ``learning_rate`` field gets it
    evaluated once per step (a float, or a schedule called with the step
    count).
    """

    slot_names: ClassVar[tuple[str, ...]] = ()
    #: True when the subclass writes :meth:`update_leaf_numpy`.
    has_numpy_path: ClassVar[bool] = False

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        """Return the initial slot arrays of one parameter, in ``slot_names`` order."""
        del param
        return ()

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        """Return the update of one parameter and its new slots.

        ``grad`` already has the parameter's dtype. ``t`` is the number of
        this update, starting at 1, as a 0-d array of the parameter's dtype.
        ``lr`` is the learning rate of this step (``None`` without a
        ``learning_rate`` field), a Python number or a 0-d array of the
        parameter's dtype. ``param`` is ``None`` when ``update`` got no
        parameters.
        """
        raise NotImplementedError

    def update_leaf_numpy(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        """Return what :meth:`update_leaf` returns, computed with NumPy; optional.

        A subclass that sets ``has_numpy_path = True`` writes it. It is called
        instead of :meth:`update_leaf` when the gradient and the slots are
        plain NumPy arrays (see ``numpy_leaf``). It must give the same
        results without writing into ``slots``, which belong to the
        caller's old state.
        """
        raise NotImplementedError

    # The rest is shared machinery.

    def _uses_params(self) -> bool:
        return False

    def init(self, params: Any) -> RuleState:
        leaves, treedef = flatten(params)
        per_leaf = [self.init_leaf(p) if is_trainable(p) else None for p in leaves]
        slots = {}
        for index, name in enumerate(self.slot_names):
            slots[name] = unflatten(treedef, [None if s is None else s[index] for s in per_leaf])
        return RuleState(count=zero_count(leaves), slots=slots)

    def update(self, grads: Any, state: RuleState, params: Any = None) -> tuple[Any, RuleState]:
        owner = type(self).__name__
        grad_leaves, grad_def = flatten(grads)
        if params is None:
            if self._uses_params():
                raise ValueError(f"{owner} needs the parameters: call update(grads, state, params).")
            param_leaves, param_def = [None] * len(grad_leaves), grad_def
        else:
            param_leaves, param_def = flatten(params)
            check_gradients(grad_leaves, grad_def, param_leaves, param_def, owner)
        updates, state = self.update_flat(grad_leaves, param_leaves, param_def, state, params is not None)
        return unflatten(param_def, updates), state

    def update_flat(
        self, grad_leaves: list[Any], param_leaves: list[Any], param_def: dx.TreeDef, state: RuleState, has_params: bool
    ) -> tuple[list[Any], RuleState]:
        """Return the update leaves and the new state for gradients already flattened and checked.

        ``optim.update`` calls this directly, so that a step flattens the
        model and the gradients once. Without parameters (``has_params``
        false) ``param_leaves`` contains ``None`` and the gradients decide
        which leaves train.
        """
        owner = type(self).__name__
        reference = param_leaves if has_params else grad_leaves
        columns = [flatten_state(state.slots[name], param_def, owner) for name in self.slot_names]
        # The slots of each leaf as one tuple, in slot_names order.
        old_slots = list(zip(*columns)) if columns else [()] * len(grad_leaves)

        count = state.count
        t = count + 1
        learning_rate = self.learning_rate_at(count)
        # The step number and the learning rate are cast once per dtype, not
        # once per parameter.
        scalars: dict[Any, tuple[Any, Any]] = {}
        has_numpy_path = self.has_numpy_path
        updates = []
        new_slots = []
        for index, (grad, param, like, old) in enumerate(zip(grad_leaves, param_leaves, reference, old_slots)):
            dtype = trainable_dtype(like)
            if grad is None or dtype is None:
                updates.append(None)
                new_slots.append(old)
                continue
            if old and (old[0] is None or old[0].shape != like.shape):
                # Every rule's slots have their parameter's shape. A state
                # built for other shapes would broadcast silently on JAX.
                raise_state_shape(old[0], like, index, param_def, owner)
            if value_dtype(grad) != dtype:
                grad = dx.astype(grad, dtype)
            cast = scalars.get(dtype)
            if cast is None:
                cast = scalars[dtype] = cast_like(like, t, learning_rate)
            if has_numpy_path and numpy_leaf(grad, old):
                update, new = self.update_leaf_numpy(grad, old, param, cast[0], cast[1])
            else:
                update, new = self.update_leaf(grad, old, param, cast[0], cast[1])
            updates.append(update)
            new_slots.append(new)

        new_columns = zip(*new_slots) if new_slots else ([] for _ in self.slot_names)
        slots = {name: unflatten(param_def, list(column)) for name, column in zip(self.slot_names, new_columns)}
        return updates, RuleState(count=t, slots=slots)

    def learning_rate_at(self, count: Any) -> Any:
        """Return the learning rate of the step after ``count`` updates (``None`` without one)."""
        learning_rate = getattr(self, "learning_rate", None)
        if callable(learning_rate):
            return learning_rate(count)
        return learning_rate


class Rule(Leafwise):
    """A leafwise transformation that turns gradients into steps (Adam, Descent, ...)."""

    makes_steps = True


# --------------------------------------------------------------------------
# Helpers for rule bodies
# --------------------------------------------------------------------------


def cast_like(x: Any, *values: Any) -> tuple[Any, ...]:
    """Cast arrays among ``values`` to the dtype of ``x``; Python numbers stay as they are.

    Python numbers combine with an array without changing its dtype on both
    backends, so only arrays (the step count, a schedule's value) need a cast.
    """
    dtype = value_dtype(x)
    out = []
    for value in values:
        if isinstance(value, np.ndarray | np.generic):
            # What dx.astype does to a NumPy array or scalar (the step count
            # after count + 1), without its dispatch.
            if value.dtype != dtype:
                value = value.astype(dtype)
        elif value is not None and dx.is_array(value) and value_dtype(value) != dtype:
            value = dx.astype(value, dtype)
        out.append(value)
    return tuple(out)


def numpy_leaf(grad: Any, slots: tuple[Any, ...]) -> bool:
    """Return whether a rule may take its NumPy path: the gradient and every slot are plain NumPy arrays of rank 1 or more.

    The exact type is checked, so difflux tracers (a gradient through the
    optimiser step) and JAX arrays take the path written in difflux
    operations.
    """
    if type(grad) is not np.ndarray or grad.ndim == 0:
        # NumPy operations on 0-d arrays return scalars, which cannot take out=.
        return False
    return all(type(slot) is np.ndarray for slot in slots)


def zero_count(leaves: list[Any]) -> Any:
    """Return a 0-d int32 zero on the backend of the parameters among ``leaves``."""
    return scalar_like(leaves, 0, dx.int32)


def scalar_like(leaves: list[Any], value: float, dtype: Any = None) -> Any:
    """Return a 0-d array holding ``value`` on the backend of the parameters among ``leaves``.

    The backend is that of the first floating-point leaf (of the first
    array without one). ``dtype=None`` takes that leaf's dtype, or float32
    when there is none (and so nothing to update).
    """
    arrays = [leaf for leaf in leaves if dx.is_array(leaf)]
    floats = [leaf for leaf in arrays if dx.isdtype(value_dtype(leaf), "real floating")]
    if dtype is None:
        dtype = value_dtype(floats[0]) if floats else dx.float32
    if floats:
        first = floats[0]
    elif arrays:
        first = arrays[0]
    else:
        return dx.asarray(value, dtype=dtype)
    # Core has no public query for a value's backend, so a reduction of
    # zeros_like, which follows the backend of its argument, makes the scalar.
    # The sum promotes small integer types on NumPy, hence the cast.
    zero = dx.astype(dx.sum(dx.zeros_like(first, dtype=dtype)), dtype)
    return zero + value if value else zero


# --------------------------------------------------------------------------
# Hyperparameter checks
# --------------------------------------------------------------------------


def _number(owner: object, name: str, value: Any) -> float:
    """Return ``value`` as a float when it is a real Python or NumPy number, raising TypeError otherwise."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{type(owner).__name__}: {name} must be a Python number, got {value!r}")
    return float(value)


def check_learning_rate(owner: object, value: Any, name: str = "learning_rate", schedule: bool = True) -> None:
    """Raise unless ``value`` is a non-negative finite number or (where allowed) a schedule."""
    if schedule and callable(value):
        return
    number = _number(owner, name, value)
    if not (number >= 0 and math.isfinite(number)):
        reason = "A negative learning rate would step uphill." if number < 0 else "It must be a finite number."
        raise ValueError(
            f"{type(owner).__name__}: {name} must be a non-negative finite number, got {value!r}. {reason}"
        )


def check_decay(owner: object, **values: Any) -> None:
    """Raise unless each value is in [0, 1), the range of moment decay rates (betas)."""
    for name, value in values.items():
        number = _number(owner, name, value)
        if not 0 <= number < 1:
            raise ValueError(f"{type(owner).__name__}: {name} must be in [0, 1), got {value!r}")


def check_positive(owner: object, **values: Any) -> None:
    for name, value in values.items():
        number = _number(owner, name, value)
        if not (number > 0 and math.isfinite(number)):
            raise ValueError(f"{type(owner).__name__}: {name} must be a positive finite number, got {value!r}")


def check_nonnegative(owner: object, **values: Any) -> None:
    for name, value in values.items():
        number = _number(owner, name, value)
        if not (number >= 0 and math.isfinite(number)):
            raise ValueError(f"{type(owner).__name__}: {name} must be a non-negative finite number, got {value!r}")


def is_transform(x: Any) -> bool:
    """Return whether ``x`` follows the optimiser protocol (``init`` and ``update``)."""
    return isinstance(x, dx.Optimiser)


def check_transform(owner: str, x: Any) -> None:
    if not is_transform(x):
        raise TypeError(
            f"{owner} expects an optimiser (an object with init and update methods, such as "
            f"optim.Adam()), got {type(x).__name__}"
        )


def flag(x: Any, name: str) -> bool:
    """Return the transformation flag ``name`` of ``x``; objects from elsewhere count as rules."""
    value = getattr(x, name, None)
    if value is None:
        return name == "makes_steps"
    return bool(value)


# A learning rate may be a schedule: any function of the step count.
ScheduleLike = Callable[[Any], Any]
