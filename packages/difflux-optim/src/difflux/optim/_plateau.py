"""``reduce_on_plateau``: scale a rule's steps down when a reported loss stops improving."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import difflux.core as dx

from ._base import cast_like, check_decay, check_nonnegative, check_transform, scalar_like
from ._trees import flatten, unflatten, value_dtype
from ._wrappers import _Wrapper


class PlateauState(dx.Module):
    """State of :func:`reduce_on_plateau`.

    ``scale`` multiplies the wrapped transformation's updates; ``best`` is
    the lowest loss reported so far; ``bad_reports`` counts reports since
    it improved; ``cooldown_left`` counts reports before bad ones count
    again after a reduction.
    """

    inner: Any = dx.field(static=False)
    scale: Any = dx.field(static=False)
    best: Any = dx.field(static=False)
    bad_reports: Any = dx.field(static=False)
    cooldown_left: Any = dx.field(static=False)


@dataclasses.dataclass(frozen=True)
class ReduceOnPlateau(_Wrapper):
    """Scale updates down when reported losses plateau; build one with :func:`reduce_on_plateau`."""

    transform: Any
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_scale: float = 0.0

    @property
    def uses_loss(self) -> bool:  # type: ignore[override]
        return True

    def __post_init__(self) -> None:
        check_transform("reduce_on_plateau", self.transform)
        check_decay(self, factor=self.factor)
        check_nonnegative(self, threshold=self.threshold, min_scale=self.min_scale)
        for name in ("patience", "cooldown"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"reduce_on_plateau: {name} must be a non-negative integer, got {value!r}")
        if self.threshold_mode not in ("rel", "abs"):
            raise ValueError(f"reduce_on_plateau: threshold_mode must be 'rel' or 'abs', got {self.threshold_mode!r}")

    def init(self, params: Any) -> PlateauState:
        leaves = flatten(params)[0]
        return PlateauState(
            inner=self.transform.init(params),
            scale=scalar_like(leaves, 1.0),
            best=scalar_like(leaves, math.inf),
            bad_reports=scalar_like(leaves, 0, dx.int32),
            cooldown_left=scalar_like(leaves, 0, dx.int32),
        )

    def update(self, grads: Any, state: PlateauState, params: Any = None) -> tuple[Any, PlateauState]:
        updates, inner = self.transform.update(grads, state.inner, params)
        leaves, treedef = flatten(updates)
        scaled = [None if u is None else u * cast_like(u, state.scale)[0] for u in leaves]
        return unflatten(treedef, scaled), dx.replace(state, inner=inner)

    def report(self, state: PlateauState, loss: Any) -> PlateauState:
        inner = self.transform.report(state.inner, loss) if hasattr(self.transform, "report") else state.inner
        best = state.best
        loss = dx.astype(dx.asarray(loss), value_dtype(best)) if dx.is_array(loss) else loss

        if self.threshold_mode == "rel":
            improved = loss < best * (1 - self.threshold)
        else:
            improved = loss < best - self.threshold
        best = dx.where(improved, loss, best)
        bad = dx.where(improved, dx.zeros_like(state.bad_reports), state.bad_reports + 1)

        # Bad reports during the cooldown after a reduction do not count.
        cooling = state.cooldown_left > 0
        cooldown_left = dx.where(cooling, state.cooldown_left - 1, state.cooldown_left)
        bad = dx.where(cooling, dx.zeros_like(bad), bad)

        reduce = bad > self.patience
        scale = dx.where(reduce, dx.maximum(state.scale * self.factor, self.min_scale), state.scale)
        cooldown_left = dx.where(reduce, dx.full_like(cooldown_left, self.cooldown), cooldown_left)
        bad = dx.where(reduce, dx.zeros_like(bad), bad)
        return PlateauState(inner=inner, scale=scale, best=best, bad_reports=bad, cooldown_left=cooldown_left)


def reduce_on_plateau(
    transform: Any,
    *,
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_scale: float = 0.0,
) -> ReduceOnPlateau:
    """Return ``transform`` with its updates scaled down when a reported loss stops improving.

    Losses reach it through :func:`report` (``state = optim.report(state,
    loss)``), as often as suits the problem: once per epoch with a
    validation loss is typical. A report improves on the best loss so far
    when it is below ``best * (1 - threshold)`` (``threshold_mode="rel"``)
    or ``best - threshold`` (``"abs"``). After more than ``patience``
    reports in a row without improvement the scale is multiplied by
    ``factor`` (never below ``min_scale``), and the next ``cooldown``
    reports are not counted. Updates are multiplied by the current scale,
    which starts at 1. Wrapping a rule, the scale acts on its steps, which
    is where a learning rate acts. Defaults and rules follow PyTorch's
    ``ReduceLROnPlateau`` (mode ``"min"``).

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> rule = optim.reduce_on_plateau(optim.Descent(1.0), factor=0.5, patience=1)
        >>> state = optim.setup(rule, np.zeros(1))
        >>> for loss in [3.0, 2.0, 2.0, 2.0]:
        ...     state = optim.report(state, loss)
        >>> float(state.inner.scale)
        0.5
    """
    return ReduceOnPlateau(transform, factor, patience, threshold, threshold_mode, cooldown, min_scale)
