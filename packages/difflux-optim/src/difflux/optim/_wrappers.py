"""Wrappers that decide when the wrapped transformation runs.

``accumulate`` averages gradients over several calls before one update, and
``skip_nonfinite`` drops updates whose gradients hold NaN or infinity. Both
choose with ``dx.cond``: a Python ``if`` on NumPy, ``jax.lax.cond`` under
``dx.jit``, so a step compiles once. Under ``dx.jit`` both branches must
return updates of the same structure, so leaves that the wrapped
transformation leaves untouched get zero updates in place of ``None``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import difflux.core as dx

from ._base import Transform, check_transform, flag, scalar_like
from ._trees import check_gradients, flatten, flatten_state, is_trainable, raise_state_shape, unflatten


def _receives_update(grad_leaves: list[Any], reference: list[Any]) -> list[bool]:
    """Return, per leaf, whether it gets an array update: a gradient and a trainable parameter."""
    return [g is not None and is_trainable(r) for g, r in zip(grad_leaves, reference)]


def _fill(update_leaves: list[Any], like: list[Any], receives: list[bool]) -> list[Any]:
    """Return updates with zeros where a leaf receives an update but got ``None``."""
    out = []
    for update, template, flag_ in zip(update_leaves, like, receives):
        if not flag_:
            out.append(None)
        elif update is None:
            out.append(dx.zeros_like(template))
        else:
            out.append(update)
    return out


def _reference(grads: Any, params: Any, owner: str) -> tuple[list[Any], list[Any], dx.TreeDef]:
    """Return the gradient leaves, the leaves that decide which get updates, and the structure.

    With parameters, the gradients are checked against them and the
    parameters decide. Without, the gradients decide.
    """
    grad_leaves, treedef = flatten(grads)
    if params is None:
        return grad_leaves, grad_leaves, treedef
    param_leaves, param_def = flatten(params)
    check_gradients(grad_leaves, treedef, param_leaves, param_def, owner)
    return grad_leaves, param_leaves, treedef


class _Wrapper(Transform):
    """Forward the flags and loss reports of the wrapped transformation."""

    transform: Any

    @property
    def makes_steps(self) -> bool:  # type: ignore[override]
        return flag(self.transform, "makes_steps")

    @property
    def needs_steps(self) -> bool:  # type: ignore[override]
        return flag(self.transform, "needs_steps")

    @property
    def uses_loss(self) -> bool:  # type: ignore[override]
        return flag(self.transform, "uses_loss")

    def report(self, state: Any, loss: Any) -> Any:
        if not hasattr(self.transform, "report"):
            return state
        return dx.replace(state, inner=self.transform.report(state.inner, loss))


# --------------------------------------------------------------------------
# Gradient accumulation
# --------------------------------------------------------------------------


class AccumulateState(dx.Module):
    """State of :func:`accumulate`: the wrapped state, the calls since the last update, the gradient sums."""

    inner: Any = dx.field(static=False)
    calls: Any = dx.field(static=False)
    grad_sum: Any = dx.field(static=False)


@dataclasses.dataclass(frozen=True)
class Accumulate(_Wrapper):
    """Average gradients over ``every`` calls, then update once; build one with :func:`accumulate`."""

    transform: Any
    every: int

    def __post_init__(self) -> None:
        check_transform("accumulate", self.transform)
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"accumulate: every must be a positive integer, got {self.every!r}")

    def init(self, params: Any) -> AccumulateState:
        leaves, treedef = flatten(params)
        sums = [dx.zeros_like(p) if is_trainable(p) else None for p in leaves]
        return AccumulateState(
            inner=self.transform.init(params), calls=scalar_like(leaves, 0, dx.int32), grad_sum=unflatten(treedef, sums)
        )

    def update(self, grads: Any, state: AccumulateState, params: Any = None) -> tuple[Any, AccumulateState]:
        grad_leaves, reference, treedef = _reference(grads, params, "accumulate")
        receives = _receives_update(grad_leaves, reference)
        old_sums = flatten_state(state.grad_sum, treedef, "accumulate")
        for index, (old, like, keep) in enumerate(zip(old_sums, reference, receives)):
            if keep and (old is None or old.shape != like.shape):
                raise_state_shape(old, like, index, treedef, "accumulate", "gradient sum")
        sums = [s + dx.astype(g, s.dtype) if keep else s for s, g, keep in zip(old_sums, grad_leaves, receives)]
        calls = state.calls + 1

        def apply() -> tuple[Any, ...]:
            means = unflatten(treedef, [s / self.every if keep else None for s, keep in zip(sums, receives)])
            updates, inner = self.transform.update(means, state.inner, params)
            zeros = [None if s is None else dx.zeros_like(s) for s in sums]
            return _fill(flatten(updates)[0], reference, receives), inner, zeros, dx.zeros_like(calls)

        def wait() -> tuple[Any, ...]:
            return _fill([None] * len(sums), reference, receives), state.inner, sums, calls

        update_leaves, inner, sums, calls = dx.cond(calls >= self.every, apply, wait)
        new_state = AccumulateState(inner=inner, calls=calls, grad_sum=unflatten(treedef, sums))
        return unflatten(treedef, update_leaves), new_state


def accumulate(transform: Any, every: int) -> Accumulate:
    """Return ``transform`` updated once per ``every`` calls with the mean of their gradients.

    The calls in between return zero updates, so the parameters stay where
    they are while gradients accumulate; the state carries the sums
    (``grad_sum``) and the number of calls since the last update
    (``calls``). The wrapped transformation's step count advances once per
    ``every`` calls, so schedules count real updates. This emulates a batch
    ``every`` times larger with the memory of one, as Optax's
    ``MultiSteps``.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> state = optim.setup(optim.accumulate(optim.Descent(1.0), every=2), np.zeros(1))
        >>> state, params = optim.update(state, np.zeros(1), np.array([1.0]))
        >>> params.tolist()
        [0.0]
        >>> state, params = optim.update(state, params, np.array([3.0]))
        >>> params.tolist()
        [-2.0]
    """
    return Accumulate(transform, every)


# --------------------------------------------------------------------------
# Skipping non-finite gradients
# --------------------------------------------------------------------------


class SkipState(dx.Module):
    """State of :func:`skip_nonfinite`: the wrapped state and counts of skipped updates."""

    inner: Any = dx.field(static=False)
    skipped: Any = dx.field(static=False)
    consecutive: Any = dx.field(static=False)


@dataclasses.dataclass(frozen=True)
class SkipNonFinite(_Wrapper):
    """Drop updates whose gradients are not all finite; build one with :func:`skip_nonfinite`."""

    transform: Any

    def __post_init__(self) -> None:
        check_transform("skip_nonfinite", self.transform)

    def init(self, params: Any) -> SkipState:
        leaves = flatten(params)[0]
        zero = scalar_like(leaves, 0, dx.int32)
        return SkipState(inner=self.transform.init(params), skipped=zero, consecutive=zero)

    def update(self, grads: Any, state: SkipState, params: Any = None) -> tuple[Any, SkipState]:
        grad_leaves, reference, treedef = _reference(grads, params, "skip_nonfinite")
        receives = _receives_update(grad_leaves, reference)
        checks = [dx.all(dx.isfinite(g)) for g, keep in zip(grad_leaves, receives) if keep]
        finite = dx.all(dx.stack(checks)) if checks else True

        def apply() -> tuple[Any, ...]:
            updates, inner = self.transform.update(grads, state.inner, params)
            return _fill(flatten(updates)[0], reference, receives), inner

        def skip() -> tuple[Any, ...]:
            return _fill([None] * len(grad_leaves), reference, receives), state.inner

        update_leaves, inner = dx.cond(finite, apply, skip)
        skipped = dx.where(finite, state.skipped, state.skipped + 1)
        consecutive = dx.where(finite, dx.zeros_like(state.consecutive), state.consecutive + 1)
        new_state = SkipState(inner=inner, skipped=skipped, consecutive=consecutive)
        return unflatten(treedef, update_leaves), new_state


def skip_nonfinite(transform: Any) -> SkipNonFinite:
    """Return ``transform`` made to skip any update whose gradients hold NaN or infinity.

    A skipped call returns zero updates and keeps the wrapped state as it
    was, so one bad batch neither moves the parameters nor poisons the
    moment estimates. The state counts skipped calls in total (``skipped``)
    and in a row (``consecutive``); a growing ``consecutive`` count means
    training has diverged rather than met a bad batch. This is Optax's
    ``apply_if_finite`` without its limit on consecutive skips.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> state = optim.setup(optim.skip_nonfinite(optim.Adam()), np.ones(2))
        >>> state, params = optim.update(state, np.ones(2), np.array([1.0, np.nan]))
        >>> params.tolist(), int(state.inner.skipped)
        ([1.0, 1.0], 1)
    """
    return SkipNonFinite(transform)
