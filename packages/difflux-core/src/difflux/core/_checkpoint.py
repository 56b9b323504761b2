"""Checkpointing (rematerialisation): trade recomputation for tape memory.

In reverse mode a checkpointed function records one tape node instead of one
per operation of its body. Its forward pass runs the body on the arguments'
lower-level values, so the enclosing reverse trace keeps none of the
intermediate values. The node's pullback runs the body again under a fresh
trace and pulls the output cotangent back through that recording. The body's
intermediates thus occupy memory only while one checkpointed call is being
pulled back, at the price of evaluating the body twice.

Forward mode needs no tape, so there the body simply runs on the dual
numbers.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

from ._core import ReverseTrace, ReverseTracer
from ._custom import Outputs, apply_bind_hook, leaked_tracer, lower, pull_back_at, record_node, top_trace
from ._tree import tree_flatten, tree_unflatten


def checkpoint(fun: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``fun`` with rematerialisation in reverse mode (alias ``remat``).

    The result computes the same values and derivatives as ``fun``, but a
    reverse pass records a single tape node for the whole call and re-runs
    ``fun`` when pulling back. Wrap the repeated blocks of a deep model or the
    steps of a long loop to keep the tape's memory at one block's worth plus
    the blocks' inputs and outputs. Nested reverse passes checkpoint at every
    level.

    ``fun`` must be a pure function of its arguments: its second run has to
    compute exactly what the first did. Arguments and output may be
    structures. Values that a call must differentiate need to be arguments,
    not closed-over variables. A closure over a value being differentiated
    still gives correct derivatives, but that call is then recorded without
    checkpointing, with a warning.

    Examples:
        >>> import difflux.core as dx
        >>> block = dx.checkpoint(lambda x: dx.sin(dx.sin(x)))
        >>> round(float(dx.grad(block)(0.5)), 6)
        0.778644
    """

    @functools.wraps(fun)
    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        leaves, treedef = tree_flatten((args, kwargs))
        leaves = apply_bind_hook(leaves)
        trace = top_trace(leaves)
        if type(trace) is not ReverseTrace:
            return fun(*args, **kwargs)

        lowered = lower(leaves, trace)
        lower_args, lower_kwargs = tree_unflatten(treedef, lowered)
        # Calling the checkpointed function (not ``fun``) lets an enclosing
        # reverse trace checkpoint this call too.
        out = checkpointed(*lower_args, **lower_kwargs)
        if leaked_tracer(out, trace):
            warnings.warn(
                f"dx.checkpoint({getattr(fun, '__qualname__', fun)!r}) closes over a value that an enclosing "
                "transformation differentiates, so this call is recorded without checkpointing. Pass that "
                "value as an argument to checkpoint it.",
                stacklevel=2,
            )
            return fun(*args, **kwargs)

        parents = [leaf if type(leaf) is ReverseTracer and leaf._trace is trace else None for leaf in leaves]
        parent_positions = [i for i, parent in enumerate(parents) if parent is not None]
        outputs = Outputs(out)

        def replay(*parent_values: Any) -> tuple[Any, ...]:
            replay_leaves = list(lowered)
            for i, value in zip(parent_positions, parent_values):
                replay_leaves[i] = value
            replay_args, replay_kwargs = tree_unflatten(treedef, replay_leaves)
            replayed = Outputs(fun(*replay_args, **replay_kwargs))
            return tuple(replayed.leaves[i] for i in outputs.float_positions)

        def compute(g: tuple[Any, ...]) -> list[Any]:
            pulled = pull_back_at(replay, [lowered[i] for i in parent_positions], g)
            cotangents: list[Any] = [None] * len(leaves)
            for i, cotangent in zip(parent_positions, pulled):
                cotangents[i] = cotangent
            return cotangents

        return record_node(trace, f"checkpoint({getattr(fun, '__qualname__', 'fun')})", outputs, parents, compute)

    return checkpointed


remat = checkpoint
