"""The times at which ``solve`` saves the solution."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True, eq=False)
class SaveAt:
    """Choose the outputs of :func:`difflux.ode.solve`.

    ``Solution.ts`` and ``Solution.ys`` hold, in this order, ``t0`` (if
    ``t0``), the times ``ts``, every accepted step (if ``steps``) and ``t1``
    (if ``t1``). Values at ``ts`` come from the solver's interpolant, so the
    step size never has to hit them. Each step interpolates only at the
    times it passes, so the cost of a step does not grow with ``len(ts)``.

    Attributes:
        t0: save the initial value.
        t1: save the final value.
        ts: times in ``[t0, t1]``, ordered in the direction of integration.
        steps: save the state after every accepted step. The buffers have
            ``max_steps + 1`` rows; outside ``jit`` they are cut to the steps
            taken, inside they are padded with ``inf`` times and ``nan`` values.
        dense: keep every step's interpolant, for ``Solution.evaluate``.
    """

    t0: bool = False
    t1: bool = False
    ts: Any = None
    steps: bool = False
    dense: bool = False

    def __post_init__(self) -> None:
        if not (self.t0 or self.t1 or self.ts is not None or self.steps or self.dense):
            raise ValueError("SaveAt: nothing to save; set at least one of t0, t1, ts, steps or dense")
