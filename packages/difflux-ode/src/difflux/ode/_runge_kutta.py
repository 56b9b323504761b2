"""The explicit Runge-Kutta step, written once for every tableau.

A solver is a tableau plus a few class attributes (see ``_solver_*.py``).
The state is a flat vector ``y`` of shape ``(d,)``; ``solve`` flattens the
user's structure before the first step. Stage values ``k_i = f(t + c_i h,
y + h sum_j a_ij k_j)`` are stacked into ``ks`` of shape ``(stages, d)``
for the interpolant.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx
from difflux.core._control import is_jax_tracer

from ._tableau import ButcherTableau

VectorField = Callable[[Any, Any], Any]  # (t, y) -> dy/dt on flat vectors


@dataclasses.dataclass(frozen=True)
class AbstractRungeKutta:
    """Base class of the explicit Runge-Kutta solvers.

    A subclass sets ``tableau``, ``order`` and, for an embedded pair,
    ``embedded_order``; it may override :meth:`interpolate` with the
    method's own continuous extension. The default interpolant is the cubic
    Hermite polynomial through both ends of the step and their derivatives,
    accurate to third order.
    """

    tableau: ClassVar[ButcherTableau]
    order: ClassVar[int]
    embedded_order: ClassVar[int | None] = None

    @property
    def adaptive(self) -> bool:
        """Whether the tableau carries an error estimate, so the step size can adapt."""
        return self.tableau.b_error is not None

    def step(self, f: VectorField, t: Any, y: Any, f0: Any, h: Any) -> tuple[Any, Any, Any, Any]:
        """Take one step of size ``h`` from ``(t, y)``, given ``f0 = f(t, y)``.

        Returns ``(y1, y_error, ks, f1)``: the new state, the local error
        estimate (``None`` for a fixed-step method), the stacked stages and
        ``f(t + h, y1)``. A method that is not FSAL evaluates ``f1`` with one
        extra call, which the next step then uses as its first stage, so no
        evaluation is wasted.
        """
        tableau = self.tableau
        if _rolled.get() and all(is_jax_tracer(value) for value in (t, y, f0, h)):
            return _rolled_step(tableau, f, t, y, f0, h)
        ks = [f0]
        for i in range(1, tableau.stages):
            y_stage = _combine(y, h, tableau.a[i], ks)
            ks.append(f(t + float(tableau.c[i]) * h, y_stage))

        y1 = _combine(y, h, tableau.b, ks)
        f1 = ks[-1] if tableau.fsal else f(t + h, y1)

        y_error = None
        if tableau.b_error is not None:
            y_error = _combine(None, h, tableau.b_error, ks)
        return y1, y_error, dx.stack(ks), f1

    # The hooks below let a solver carry arrays from step to step (the
    # Jacobian and factorisation of an implicit solver, the mode of the
    # stiffness switch). An explicit solver carries nothing.

    @property
    def dense_stages(self) -> int:
        """Rows of ``ks`` that a step stores for the interpolant."""
        return self.tableau.stages

    def init_state(self, f: VectorField, t0: Any, y0: Any, f0: Any, rtol: float, atol: float) -> dict[str, Any]:
        """Return the arrays this solver carries between steps (none for an explicit method)."""
        return {}

    def step_with_state(
        self, f: VectorField, t: Any, y: Any, f0: Any, h: Any, state: dict[str, Any]
    ) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Take one step as :meth:`step` does, reading and returning the carried state."""
        y1, y_error, ks, f1 = self.step(f, t, y, f0, h)
        return y1, y_error, ks, f1, state

    def update_state(self, state: dict[str, Any], accepted: Any) -> dict[str, Any]:
        """Update the carried state once the step has been accepted or rejected."""
        return state

    def step_size_factor(self, state: dict[str, Any], ratio: Any, accepted: Any) -> Any:
        """Return the solver's own ratio of the next step size to this one, or ``None`` to let the controller choose.

        ``state`` is the state that :meth:`step_with_state` returned for the
        step just tried, and ``ratio`` the step's error norm that the
        controller would receive: the RMS of ``y_error / (atol + rtol
        max(|y0|, |y1|))``, or 1e10 when a value is not finite. A multistep
        method with its own order selection (:class:`BDF`) chooses its
        steps here.
        """
        return None

    def failed(self, state: dict[str, Any]) -> Any:
        """Return whether the solver cannot continue (a boolean array), or ``None`` if it always can."""
        return None

    def statistics(self, state: dict[str, Any], num_steps: Any) -> dict[str, Any]:
        """Return the solver's counters for ``Solution.stats``, ``num_fevals`` without the initial calls."""
        return {"num_fevals": num_steps * self.function_evaluations_per_step}

    @property
    def function_evaluations_per_step(self) -> int:
        """Calls of the vector field per step after the first (FSAL or reused ``f1``)."""
        return self.tableau.stages if not self.tableau.fsal else self.tableau.stages - 1

    def interpolate(self, y0: Any, y1: Any, f0: Any, f1: Any, h: Any, ks: Any, theta: Any) -> Any:
        """Evaluate the continuous extension at ``t0 + theta * h``.

        Arguments broadcast: ``y0``, ``y1``, ``f0``, ``f1`` have shape
        ``(..., d)``, ``h`` and ``theta`` shape ``(..., 1)`` and ``ks`` shape
        ``(..., stages, d)``.
        """
        return hermite_cubic(y0, y1, f0, f1, h, theta)


def hermite_cubic(y0: Any, y1: Any, f0: Any, f1: Any, h: Any, theta: Any) -> Any:
    """Evaluate the cubic Hermite interpolant that matches ``y`` and ``dy/dt`` at both ends of a step."""
    theta_minus = theta - 1.0
    return (
        y0
        + theta * (y1 - y0)
        + theta * theta_minus * ((1.0 - 2.0 * theta) * (y1 - y0) + h * (theta_minus * f0 + theta * f1))
    )


# Whether traced steps run their stages in a loop (see rolled_stages).
_rolled: contextvars.ContextVar[bool] = contextvars.ContextVar("rolled_stages", default=False)


@contextlib.contextmanager
def rolled_stages() -> Iterator[None]:
    """Trace the explicit Runge-Kutta steps taken inside this block with their stages in a loop.

    Applies to steps on values traced by JAX only. XLA on CPU emits machine
    code for every matrix product of the vector field separately, so a step
    whose stages are written out contains the field once per stage, and its
    compile time grows with that. A loop over the stages contains it once,
    and each step then runs slower by the loop's overhead per stage. With
    finite stage values the results differ from the unrolled step by
    rounding only.
    """
    token = _rolled.set(True)
    try:
        yield
    finally:
        _rolled.reset(token)


def _rolled_step(tableau: ButcherTableau, f: VectorField, t: Any, y: Any, f0: Any, h: Any) -> tuple[Any, Any, Any, Any]:
    """Take the step of :meth:`AbstractRungeKutta.step` with one ``jax.lax.fori_loop`` over the stages.

    Stage ``i`` reads row ``i`` of the stage matrix, whose entries for the
    stages not yet computed are zero, and the rows of ``ks`` for those
    stages are still zero too.
    """
    import jax
    import jax.numpy as jnp

    stages, dtype = tableau.stages, y.dtype
    matrix = np.zeros((stages, stages))
    for i, row in enumerate(tableau.a):
        matrix[i, : len(row)] = [float(w) for w in row]
    a = jnp.asarray(matrix, dtype=dtype)
    c = jnp.asarray([float(node) for node in tableau.c], dtype=dtype)

    def stage(i: Any, ks: Any) -> Any:
        y_stage = y + h * (a[i] @ ks)
        return ks.at[i].set(f(t + c[i] * h, y_stage))

    ks = jnp.zeros((stages, y.shape[0]), dtype=dtype).at[0].set(f0)
    ks = jax.lax.fori_loop(1, stages, stage, ks)
    y1 = y + h * (jnp.asarray([float(w) for w in tableau.b], dtype=dtype) @ ks)
    f1 = ks[-1] if tableau.fsal else f(t + h, y1)
    y_error = None
    if tableau.b_error is not None:
        y_error = h * (jnp.asarray([float(w) for w in tableau.b_error], dtype=dtype) @ ks)
    return y1, y_error, ks, f1


def _combine(y: Any, h: Any, weights: Any, ks: list[Any]) -> Any:
    """Return ``y + h * sum_j weights[j] * ks[j]``, skipping zero weights (``y = None`` means 0)."""
    total = None
    for w, k in zip(weights, ks):
        if w != 0:
            term = float(w) * k
            total = term if total is None else total + term
    if total is None:
        return y if y is not None else dx.zeros_like(ks[0])
    return total * h if y is None else y + h * total
