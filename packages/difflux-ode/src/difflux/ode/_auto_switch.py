"""The default solver: Tsit5 until the problem turns out stiff, then Kvaerno5."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

import difflux.core as dx

from ._implicit_rk import AbstractESDIRK
from ._runge_kutta import AbstractRungeKutta, VectorField, hermite_cubic
from ._solver_kvaerno5 import Kvaerno5
from ._solver_tsit5 import Tsit5

# Tsit5's stability region meets the negative real axis near -3.5.
TSIT5_STABILITY_BOUNDARY = 3.5

# Weights of y1 - Y6 = h sum_j (b_j - a_6j) k_j for Tsit5, whose sixth and
# seventh stages both sit at c = 1 (the seventh is f(t + h, y1), FSAL).
_TABLEAU = Tsit5.tableau
_LAST_GAP = np.array([float(b) for b in _TABLEAU.b]) - np.array([*(float(a) for a in _TABLEAU.a[5]), 0.0, 0.0])


def tsit5_stiffness(h: Any, ks: Any) -> Any:
    """Estimate ``h |lambda|`` from a Tsit5 step's stages.

    The sixth and seventh stages evaluate ``f`` at two states at ``t + h``,
    so ``|k7 - k6| / |y1 - Y6|`` estimates the dominant eigenvalue's modulus
    (a difference quotient of ``f`` along ``y1 - Y6``). On ``y' = lambda y``
    it is exact.
    """
    state_gap = None
    for j, weight in enumerate(_LAST_GAP):
        if weight != 0:
            term = float(weight) * ks[j]
            state_gap = term if state_gap is None else state_gap + term
    assert state_gap is not None
    state_gap = h * state_gap
    slope_gap = ks[6] - ks[5]
    tiny = float(dx.finfo(ks.dtype).tiny)
    return dx.abs(h) * dx.sqrt(dx.sum(slope_gap * slope_gap) / dx.maximum(dx.sum(state_gap * state_gap), tiny))


def jacobian_stiffness(h: Any, jacobian: Any) -> Any:
    """Bound ``h |lambda|`` by ``|h| ||J||_inf``, which no eigenvalue exceeds."""
    return dx.abs(h) * dx.max(dx.sum(dx.abs(jacobian), axis=1))


@dataclasses.dataclass(frozen=True)
class AutoSwitch(AbstractRungeKutta):
    """Switch between a non-stiff and a stiff solver as the problem demands; the default of ``solve``.

    It starts with ``nonstiff`` (:class:`Tsit5`). After every step it
    estimates ``h |lambda|``, the step size times the modulus of the
    dominant eigenvalue of the Jacobian, from the stages (see
    :func:`tsit5_stiffness`). When ``stiff_steps`` consecutive steps have
    ``h |lambda| > threshold * 3.5`` (3.5 is where Tsit5's stability region
    crosses the negative real axis), the step size is limited by stability
    rather than accuracy, and it switches to ``stiff``
    (:class:`Kvaerno5`). On the stiff solver it bounds ``h |lambda|`` by
    ``|h| ||J||_inf`` with the Jacobian it holds, and switches back after
    ``nonstiff_steps`` consecutive steps below ``threshold * 3.5``.
    Requiring a run of steps keeps one unusual step from switching.

    Both solvers are of order 5 with embedded order 4, so the step-size
    controller carries over. The switch has costs on problems known to be
    non-stiff: under ``jit`` both solvers are compiled, and eager steps
    carry the stiff solver's state. Pass ``solver=Tsit5()`` there.
    ``Solution.stats["num_stiff_steps"]`` counts the steps taken by the
    stiff solver.

    On a 2-state linear problem, tracing and compiling took about 5.3 s
    against Tsit5's 1.4 s (estimate: ``jax.jit(...).lower`` then
    ``.compile``, JAX 0.10.2, a shared 2-core CPU machine). XLA's compile
    of the implicit step takes most of the difference. Each solver's step
    is traced once, and compiling ImplicitEuler, whose step has one Newton
    loop where Kvaerno5 has six, took 2.2 s against Kvaerno5's 2.9 s, so
    one loop over the stages would save little.

    Attributes:
        nonstiff: the explicit solver, :class:`Tsit5`.
        stiff: the implicit solver, an ESDIRK method (default :class:`Kvaerno5`).
        stiff_steps: consecutive stiff-looking steps before switching to ``stiff``.
        nonstiff_steps: consecutive non-stiff steps before switching back.
        threshold: the fraction of the stability boundary that counts as stiff.
    """

    nonstiff: Tsit5 = dataclasses.field(default_factory=Tsit5)
    stiff: AbstractESDIRK = dataclasses.field(default_factory=Kvaerno5)
    stiff_steps: int = 10
    nonstiff_steps: int = 3
    threshold: float = 0.9

    order = 5
    embedded_order = 4
    tableau = Tsit5.tableau

    def __post_init__(self) -> None:
        if not isinstance(self.nonstiff, Tsit5):
            raise TypeError(f"AutoSwitch: nonstiff must be Tsit5, got {type(self.nonstiff).__name__}")
        if not isinstance(self.stiff, AbstractESDIRK):
            raise TypeError(
                f"AutoSwitch: stiff must be an ESDIRK solver (ImplicitEuler, Kvaerno3/4/5), "
                f"got {type(self.stiff).__name__}"
            )

    @property
    def adaptive(self) -> bool:
        return True

    @property
    def dense_stages(self) -> int:
        # The stages of the larger method, plus one row that marks the method.
        return max(self.nonstiff.dense_stages, self.stiff.dense_stages) + 1

    @property
    def function_evaluations_per_step(self) -> int:
        return 0  # counted in the carried state

    def init_state(self, f: VectorField, t0: Any, y0: Any, f0: Any, rtol: float, atol: float) -> dict[str, Any]:
        count = dx.astype(dx.zeros_like(t0), dx.int32)
        return {
            "is_stiff": dx.zeros_like(t0) > 0.0,
            "streak": count,
            "stiffness": dx.zeros_like(t0),
            "num_fevals": count,
            "num_stiff_steps": count,
            "stiff_state": self.stiff.init_state(f, t0, y0, f0, rtol, atol),
        }

    def step_with_state(
        self, f: VectorField, t: Any, y: Any, f0: Any, h: Any, state: dict[str, Any]
    ) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        rows = self.dense_stages - 1

        def explicit_step() -> tuple[Any, ...]:
            y1, y_error, ks, f1 = self.nonstiff.step(f, t, y, f0, h)
            stiffness = dx.stop_gradient(tsit5_stiffness(h, ks))
            marked = _pad_rows(ks, rows, 0.0)
            evaluations = dx.astype(dx.zeros_like(h), dx.int32) + self.nonstiff.function_evaluations_per_step
            return y1, y_error, marked, f1, state["stiff_state"], stiffness, evaluations

        def implicit_step() -> tuple[Any, ...]:
            before = state["stiff_state"]["num_fevals"]
            y1, y_error, ks, f1, stiff_state = self.stiff.step_with_state(f, t, y, f0, h, state["stiff_state"])
            stiffness = dx.stop_gradient(jacobian_stiffness(h, stiff_state["jacobian"]))
            marked = _pad_rows(ks, rows, 1.0)
            return y1, y_error, marked, f1, stiff_state, stiffness, stiff_state["num_fevals"] - before

        y1, y_error, ks, f1, stiff_state, stiffness, evaluations = dx.cond(
            state["is_stiff"], implicit_step, explicit_step
        )
        new_state = dict(state)
        new_state.update(
            stiff_state=stiff_state,
            stiffness=stiffness,
            num_fevals=state["num_fevals"] + evaluations,
            num_stiff_steps=state["num_stiff_steps"] + dx.astype(state["is_stiff"], dx.int32),
        )
        return y1, y_error, ks, f1, new_state

    def update_state(self, state: dict[str, Any], accepted: Any) -> dict[str, Any]:
        is_stiff = state["is_stiff"]
        stiff_state = dx.cond(
            is_stiff, lambda: self.stiff.update_state(state["stiff_state"], accepted), lambda: state["stiff_state"]
        )
        limit = self.threshold * TSIT5_STABILITY_BOUNDARY
        # A step counts towards a switch when it looks like the other regime.
        looks_other = dx.where(is_stiff, state["stiffness"] < limit, state["stiffness"] > limit)
        streak = dx.where(looks_other, state["streak"] + 1, 0)
        needed = dx.where(is_stiff, self.nonstiff_steps, self.stiff_steps)
        switch = streak >= needed
        # Entering the stiff solver, its Jacobian from an earlier stiff phase is out of date.
        stiff_state = dict(stiff_state)
        stiff_state["jacobian_stale"] = stiff_state["jacobian_stale"] | (switch & ~is_stiff)
        new_state = dict(state)
        new_state.update(
            is_stiff=is_stiff ^ switch,
            streak=dx.where(switch, 0, streak),
            stiff_state=stiff_state,
        )
        return new_state

    def failed(self, state: dict[str, Any]) -> Any:
        return self.stiff.failed(state["stiff_state"])

    def statistics(self, state: dict[str, Any], num_steps: Any) -> dict[str, Any]:
        stiff_stats = self.stiff.statistics(state["stiff_state"], num_steps)
        per_jacobian = 0 if self.stiff.jacobian is not None else state["stiff_state"]["jacobian"].shape[0]
        return {
            "num_fevals": state["num_fevals"] + stiff_stats["num_jacobians"] * per_jacobian,
            "num_jacobians": stiff_stats["num_jacobians"],
            "num_lu": stiff_stats["num_lu"],
            "num_stiff_steps": state["num_stiff_steps"],
        }

    def interpolate(self, y0: Any, y1: Any, f0: Any, f1: Any, h: Any, ks: Any, theta: Any) -> Any:
        stiff_step = ks[..., -1, :1] > 0.5
        explicit = self.nonstiff.interpolate(y0, y1, f0, f1, h, ks[..., : self.nonstiff.dense_stages, :], theta)
        implicit = hermite_cubic(y0, y1, f0, f1, h, theta)
        return dx.where(stiff_step, implicit, explicit)


def _pad_rows(ks: Any, rows: int, mark: float) -> Any:
    """Pad the stacked stages with zero rows to ``rows`` rows and append a row filled with ``mark``."""
    parts = [ks]
    if ks.shape[0] < rows:
        parts.append(dx.zeros_like(ks[:1]) * dx.zeros_like(ks[: rows - ks.shape[0], :1]))
    parts.append(dx.zeros_like(ks[:1]) + mark)
    return dx.concat(parts)
