"""The body of ``solve``'s loop: the loop state and one step.

``initial_state`` builds the carry of ``dx.while_loop``: the time, the flat
state, the step size, ``f(t, y)``, the controller's ratios, counters, the
status, the solver's own state, the output buffers and the events' entries.
``make_step`` returns the body. It tries one step and, where the step is
accepted, writes the saved values with ``dx.where`` masks. So the same code
runs as a Python loop on NumPy and as ``jax.lax.while_loop`` under ``jit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core._backend import backend_of_value
from difflux.core._core import value_of

from ._events import EventTracker
from ._progress import ProgressBar
from ._runge_kutta import AbstractRungeKutta
from ._saveat import SaveAt
from ._solution import Status


def _constant(like: Any, values: Any) -> Any:
    """Convert NumPy ``values`` to an array on the backend and dtype of ``like``."""
    return dx.asarray(np.asarray(values), dtype=like.dtype, backend=backend_of_value(value_of(like)) or "numpy")


def initial_state(
    solver: AbstractRungeKutta,
    saveat: SaveAt,
    max_steps: int,
    t0: Any,
    y0: Any,
    f0: Any,
    h0: Any,
    ts_save: Any,
) -> dict[str, Any]:
    d = y0.shape[0]
    count = dx.astype(dx.zeros_like(t0), dx.int32)
    state: dict[str, Any] = {
        "t": t0,
        "y": y0,
        "f": f0,
        "h": h0,
        "ratios": dx.ones_like(dx.stack([t0, t0])),
        "num_steps": count,
        "num_accepted": count,
        "status": count,
    }
    nan = float("nan")
    if ts_save is not None:
        at_start = (ts_save == t0)[:, None]
        state["ys_at_ts"] = dx.where(at_start, y0[None, :], _constant(y0, np.full((ts_save.shape[0], d), nan)))
    if saveat.steps or saveat.dense:
        inf_times = _constant(t0, np.full(max_steps + 1, np.inf))
        state["step_ts"] = dx.where(_first_row(max_steps + 1, t0), t0, inf_times * dx.where(h0 >= 0, 1.0, -1.0))
        state["step_ys"] = dx.where(
            _first_row(max_steps + 1, t0)[:, None], y0[None, :], _constant(y0, np.full((max_steps + 1, d), nan))
        )
    if saveat.dense:
        state["step_fs"] = dx.where(
            _first_row(max_steps + 1, t0)[:, None], f0[None, :], _constant(y0, np.zeros((max_steps + 1, d)))
        )
        state["step_ks"] = _constant(y0, np.zeros((max_steps, solver.dense_stages, d)))
    return state


def _first_row(n: int, like: Any) -> Any:
    mask = np.zeros(n, dtype=bool)
    mask[0] = True
    return dx.asarray(mask, backend=backend_of_value(value_of(like)) or "numpy")


def make_step(
    f: Callable[[Any, Any], Any],
    solver: AbstractRungeKutta,
    controller: Any,
    saveat: SaveAt,
    adaptive: bool,
    rtol: float,
    atol: float,
    t1: Any,
    direction: Any,
    ts_save: Any,
    tracker: EventTracker | None = None,
    progress_bar: ProgressBar | None = None,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    error_order = (solver.embedded_order or solver.order) + 1

    def step(s: dict[str, Any]) -> dict[str, Any]:
        t, y, f0, h = s["t"], s["y"], s["f"], s["h"]
        f0_finite = dx.all(dx.isfinite(f0))

        # Shorten the step that would pass t1, and land exactly on t1. A
        # step that falls short of t1 only by rounding (ten steps of 0.1
        # from 0 reach 0.9999999999999999) also becomes the last one.
        remaining = (t1 - t) * direction
        resolution = 100 * float(dx.finfo(y.dtype).eps) * dx.maximum(dx.abs(t), dx.abs(t1))
        last = dx.abs(h) >= remaining - resolution
        h_step = dx.where(last, t1 - t, h)
        y1, y_error, ks, f1, solver_state = solver.step_with_state(f, t, y, f0, h_step, s["solver_state"])
        t_new = dx.where(last, t1, t + h_step)
        finite = dx.all(dx.isfinite(y1)) & dx.all(dx.isfinite(f1))

        # Accept or reject, then choose the next step size. The controller
        # receives the error through stop_gradient, so derivatives follow
        # the steps taken and not the step-size choice.
        if adaptive:
            scale = atol + rtol * dx.maximum(dx.abs(y), dx.abs(y1))
            scaled = dx.stop_gradient(y_error / scale)
            ratio = dx.sqrt(dx.mean(scaled * scaled))
            finite = finite & dx.isfinite(ratio)
            accepted = finite & (ratio <= 1.0) & f0_finite
            ratio = dx.where(finite, ratio, 1e10)
            previous, before_previous = s["ratios"][0], s["ratios"][1]
            factor = controller.factor(ratio, previous, before_previous, accepted, error_order)
            h_next = dx.stop_gradient(h_step * factor)
            h_next = dx.where(last & accepted, h, h_next)
            ratios = dx.where(accepted, dx.stack([ratio, previous]), s["ratios"])
            underflow = (~accepted) & (dx.abs(h_next) < resolution)
            status = dx.where(~f0_finite, int(Status.NONFINITE), dx.where(underflow, int(Status.DT_UNDERFLOW), 0))
        else:
            accepted = finite & f0_finite
            h_next = h
            ratios = s["ratios"]
            status = dx.where(accepted, 0, int(Status.NONFINITE))

        new: dict[str, Any] = dict(s)
        new["t"] = dx.where(accepted, t_new, t)
        new["y"] = dx.where(accepted, y1, y)
        new["f"] = dx.where(accepted, f1, f0)
        new["h"] = h_next
        new["ratios"] = ratios
        new["num_steps"] = s["num_steps"] + 1
        new["num_accepted"] = s["num_accepted"] + dx.astype(accepted, dx.int32)
        new["solver_state"] = solver.update_state(solver_state, accepted)
        solver_failed = solver.failed(new["solver_state"])
        if solver_failed is not None:
            status = dx.where(solver_failed, int(Status.NEWTON_FAILED), status)
        new["status"] = dx.astype(status, dx.int32)

        # A terminal event ends the solution inside the step, at t_end.
        t_end = t_new
        if tracker is not None:
            t_end = tracker.update(new, s, (t, y, f0, t_new, y1, f1, h_step, ks), accepted)

        # Save: values at the requested times this step passed, then the step itself.
        if ts_save is not None:
            passed = accepted & ((ts_save - t) * direction > 0) & ((ts_save - t_end) * direction <= 0)
            theta = ((ts_save - t) / h_step)[:, None]
            values = solver.interpolate(y[None], y1[None], f0[None], f1[None], h_step, ks[None], theta)
            values = dx.where((ts_save == t_new)[:, None], y1[None, :], values)
            new["ys_at_ts"] = dx.where(passed[:, None], values, s["ys_at_ts"])
        if saveat.steps or saveat.dense:
            row = accepted & (positions(s["step_ts"]) == new["num_accepted"])
            new["step_ts"] = dx.where(row, t_new, s["step_ts"])
            new["step_ys"] = dx.where(row[:, None], y1[None, :], s["step_ys"])
            if saveat.dense:
                new["step_fs"] = dx.where(row[:, None], f1[None, :], s["step_fs"])
                k_row = accepted & (positions(s["step_ks"][:, 0, 0]) == s["num_accepted"])
                new["step_ks"] = dx.where(k_row[:, None, None], ks[None], s["step_ks"])
        if progress_bar is not None:
            progress_bar.update(t_end)
        return new

    return step


def positions(like: Any) -> Any:
    """Return the row indices ``0, 1, ...`` of ``like`` as an int32 array on its backend."""
    n = like.shape[0]
    return dx.asarray(np.arange(n, dtype=np.int32), backend=backend_of_value(value_of(like)) or "numpy")
