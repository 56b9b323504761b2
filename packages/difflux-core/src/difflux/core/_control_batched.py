"""Control flow inside ``dx.vmap``'s batching rules: masked Python loops.

Inside a :class:`~._batching.BatchTrace` a predicate may differ between the
examples of the batch. The constructs then run as Python on the whole
batch, as ``jax.vmap`` runs them in XLA:

* ``cond`` with a batched predicate runs both branches on the whole batch
  and selects each example's result with ``where``;
* ``while_loop`` runs its body while the predicate holds for any example,
  and each example keeps its old carry once its own predicate is false;
* ``scan`` and ``fori_loop`` have a trip count shared by all examples and
  unroll into the batched operations of each step.

The operations go to the enclosing traces as they are, so reverse and
forward mode record the unrolled loop: gradients are exact, and reverse
mode stores every step (no checkpointing) on this route. The route needs
concrete predicates: NumPy, or JAX outside ``jax.jit``. A predicate traced
by JAX raises :class:`~._batching.UnbatchableError`, so ``dx.vmap`` falls
back to its loop over the examples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._batching import BatchTrace, BatchTracer, UnbatchableError
from ._control import is_jax_tracer
from ._core import Tracer, trace_stack
from ._tree import tree_flatten, tree_unflatten


def batch_trace_active() -> bool:
    """Return whether a ``dx.vmap`` batching trace is running."""
    return any(type(trace) is BatchTrace for trace in trace_stack)


def _peel(x: Any) -> tuple[Any, bool]:
    """Return the array under every tracer of ``x`` and whether a batch tracer was among them."""
    batched = False
    while isinstance(x, Tracer):
        if type(x) is BatchTracer:
            batched = True
            x = x.value
        else:
            x = x.primal
    return x, batched


def _concrete_predicate(pred: Any, construct: str) -> tuple[bool, bool]:
    """Return ``(any example true, batched)`` for a predicate; raise when JAX traces it."""
    value, batched = _peel(pred)
    if is_jax_tracer(value):
        raise UnbatchableError(f"dx.{construct} with a predicate traced by JAX inside a batching rule")
    return bool(np.any(np.asarray(value))), batched


def _select(pred: Any, new: Any, old: Any, construct: str) -> Any:
    """Select ``where(pred, new, old)`` leaf by leaf between two values of one structure."""
    from ._ops_elementwise import where

    new_leaves, new_def = tree_flatten(new)
    old_leaves, old_def = tree_flatten(old)
    if new_def != old_def:
        raise TypeError(f"dx.{construct}: the two values to select between have structures {new_def!r} and {old_def!r}")
    return tree_unflatten(old_def, [where(pred, n, o) for n, o in zip(new_leaves, old_leaves)])


def batched_cond(
    pred: Any, true_fun: Callable[..., Any], false_fun: Callable[..., Any], operands: tuple[Any, ...]
) -> Any:
    """Run ``cond`` inside a batching trace: one branch for an unbatched predicate, else both and a select."""
    truth, batched = _concrete_predicate(pred, "cond")
    if not batched:
        return true_fun(*operands) if truth else false_fun(*operands)
    return _select(pred, true_fun(*operands), false_fun(*operands), "cond")


def batched_while(
    cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any], init_val: Any, max_steps: int | None
) -> Any:
    """Run ``while_loop`` inside a batching trace while any example's predicate is true, masking the others."""
    val = init_val
    steps = 0
    while max_steps is None or steps < max_steps:
        pred = cond_fun(val)
        truth, batched = _concrete_predicate(pred, "while_loop")
        if not truth:
            break
        new = body_fun(val)
        val = _select(pred, new, val, "while_loop") if batched else new
        steps += 1
    return val


def batched_scan(
    f: Callable[[Any, Any], tuple[Any, Any]], init: Any, xs: Any, length: int, reverse: bool
) -> tuple[Any, Any]:
    """Run ``scan`` inside a batching trace as unrolled steps, stacking ``ys``."""
    from ._ops_manipulation import stack

    xs_leaves, xs_def = tree_flatten(xs)
    carry = init
    ys: list[Any] = []
    order = range(length - 1, -1, -1) if reverse else range(length)
    for i in order:
        x = tree_unflatten(xs_def, [leaf[i] for leaf in xs_leaves])
        carry, y = f(carry, x)
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys:
        raise UnbatchableError("dx.scan of length 0 inside a batching rule")
    y_leaves = [tree_flatten(y)[0] for y in ys]
    y_def = tree_flatten(ys[0])[1]
    stacked = [stack([leaves[k] for leaves in y_leaves]) for k in range(len(y_leaves[0]))]
    return carry, tree_unflatten(y_def, stacked)
