"""The body of ``solve``'s loop: the loop state and one step.

``initial_state`` builds the carry of ``dx.while_loop``: the time, the flat
state, the step size, ``f(t, y)``, the controller's ratios, counters, the
status, the solver's own state, the output buffers and the events' entries.
``make_step`` returns the body. It tries one step and, where the step is
accepted, writes the saved values into the output buffers. So the same code
runs as a Python loop on NumPy and as ``jax.lax.while_loop`` under ``jit``.

The cost of a step does not grow with the number of save times. The carry
contains the index of the next time to save, and the step interpolates only
at the times it passed, writing each row with a functional index update.
Under ``dx.vmap`` the examples' indices differ, so rows are written with
masks there instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core._control import is_jax_tracer
from difflux.core._control_batched import batch_trace_active
from difflux.core._core import value_of

from ._events import EventTracker
from ._progress import ProgressBar
from ._runge_kutta import AbstractRungeKutta
from ._saveat import SaveAt
from ._solution import Status


def _constant(like: Any, values: Any) -> Any:
    """Convert NumPy ``values`` to an array on the backend and dtype of ``like``."""
    return dx.asarray(np.asarray(values), dtype=like.dtype, backend=dx.backend_of(like) or "numpy")


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
        # The times equal to t0 come first (ts is ordered) and are saved already.
        state["save_index"] = dx.astype(dx.sum(dx.astype(at_start[:, 0], dx.int32)), dx.int32)
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
    return dx.asarray(mask, backend=dx.backend_of(like) or "numpy")


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
    # Constants of every step, computed once: the rounding resolution of the
    # time and the save times followed by one that is never reached, so that
    # reading the next time to save needs no bounds check.
    eps = 100 * float(dx.finfo(t1.dtype).eps)
    abs_t1 = dx.abs(t1)
    ts_next = None
    if ts_save is not None:
        ts_next = dx.concat([ts_save, dx.reshape(dx.stop_gradient(direction) * float("inf"), (1,))])

    def step(s: dict[str, Any]) -> dict[str, Any]:
        t, y, f0, h = s["t"], s["y"], s["f"], s["h"]
        f0_finite = dx.all(dx.isfinite(f0))

        # Shorten the step that would pass t1, and land exactly on t1. A
        # step that falls short of t1 only by rounding (ten steps of 0.1
        # from 0 reach 0.9999999999999999) also becomes the last one.
        remaining = (t1 - t) * direction
        resolution = eps * dx.maximum(dx.abs(t), abs_t1)
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
            factor = solver.step_size_factor(solver_state, ratio, accepted)
            if factor is None:
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
        if ts_next is not None:
            step_data = (t, y, f0, t_new, y1, f1, h_step, ks)
            new["save_index"], new["ys_at_ts"] = _save_passed_times(
                solver, ts_next, direction, step_data, t_end, accepted, s["save_index"], s["ys_at_ts"]
            )
        if saveat.steps or saveat.dense:
            # A rejected step writes the current state again into its own
            # row, so the write needs no mask. Its stages go to the next free
            # row as zeros, which that row contains already.
            row = new["num_accepted"]
            new["step_ts"] = write_row(s["step_ts"], row, new["t"])
            new["step_ys"] = write_row(s["step_ys"], row, new["y"])
            if saveat.dense:
                new["step_fs"] = write_row(s["step_fs"], row, new["f"])
                new["step_ks"] = write_row(s["step_ks"], s["num_accepted"], dx.where(accepted, ks, 0.0))
        if progress_bar is not None:
            progress_bar.update(t_end)
        return new

    return step


def _save_passed_times(
    solver: AbstractRungeKutta,
    ts_next: Any,
    direction: Any,
    step_data: tuple[Any, ...],
    t_end: Any,
    accepted: Any,
    index: Any,
    ys_at_ts: Any,
) -> tuple[Any, Any]:
    """Write the interpolated values at the save times that a step passed, from ``ts_next[index]`` on.

    Returns:
        The index of the next time to save and the updated buffer ``ys_at_ts``.
    """
    t, y, f0, t_new, y1, f1, h_step, ks = step_data
    num_times = ys_at_ts.shape[0]

    def due(carry: tuple[Any, Any]) -> Any:
        return accepted & ((read_entry(ts_next, carry[0]) - t_end) * direction <= 0)

    def interpolate_row(row: Any) -> Any:
        # ``row`` is at most num_times - 1, so theta stays finite and a value
        # that a mask discards cannot send nan into the gradients.
        t_save = read_entry(ts_next, row)
        step = h_step
        if batch_trace_active():
            # Under dx.vmap the examples that have reached t1 run this masked
            # with a zero step, so a step of 1 keeps their discarded theta finite.
            step = dx.where(h_step == 0, 1.0, h_step)
        theta = dx.reshape((t_save - t) / step, (1, 1))
        value = solver.interpolate(y[None], y1[None], f0[None], f1[None], h_step, ks[None], theta)[0]
        return dx.where(t_save == t_new, y1, value)

    def save_one(carry: tuple[Any, Any]) -> tuple[Any, Any]:
        i, buffer = carry
        return i + 1, write_row(buffer, i, interpolate_row(dx.minimum(i, num_times - 1)))

    carry = (index, ys_at_ts)
    if is_plain(accepted, t_end, index, ys_at_ts, ts_next, direction, *step_data):
        # Plain values allow a Python loop, so a step that passes no save
        # time costs one comparison. With tracers the loop would bind the
        # values it closes over in some steps only, which dx.while_loop's
        # discovery of closed-over values cannot follow.
        if not bool(value_of(accepted)):
            return carry
        times = value_of(ts_next)
        end = value_of(t_end) * value_of(direction)
        sign = value_of(direction)
        while times[int(value_of(carry[0]))] * sign <= end:
            carry = save_one(carry)
        return carry
    if batch_trace_active():
        return dx.while_loop(due, save_one, carry, max_steps=num_times)
    # With tracers: one masked save runs in every step, and a step that
    # passes more save times takes a branch that interpolates at all of them
    # at once. With no nested loop, reverse mode pulls back through the
    # branch only in the steps that take it.
    i, buffer = carry
    now = due(carry)
    row = dx.astype(dx.minimum(i, num_times - 1), dx.int32)
    value = dx.where(now, interpolate_row(row), buffer[row])
    carry = (i + dx.astype(now, dx.int32), write_row(buffer, row, value))

    def save_all(partial: tuple[Any, Any]) -> tuple[Any, Any]:
        ts_save = ts_next[:num_times]
        passed = (ts_save - t_end) * direction <= 0
        theta = ((ts_save - t) / h_step)[:, None]
        values = solver.interpolate(y[None], y1[None], f0[None], f1[None], h_step, ks[None], theta)
        values = dx.where((ts_save == t_new)[:, None], y1[None, :], values)
        # This also writes the row saved above again, with the same value.
        ready = passed & ((ts_save - t) * direction > 0)
        count = dx.astype(dx.sum(dx.astype(passed, dx.int32)), dx.int32)
        return count, dx.where(ready[:, None], values, partial[1])

    return dx.cond(due(carry), save_all, lambda unchanged: unchanged, carry)


def is_plain(*values: Any) -> bool:
    """Return whether no value is a difflux tracer or a value traced by JAX."""
    return not any(isinstance(value, dx.Tracer) or is_jax_tracer(value) for value in values)


def read_entry(values: Any, index: Any) -> Any:
    """Return ``values[index]`` for a 1-D ``values`` and a scalar integer ``index``."""
    if batch_trace_active():
        # Under dx.vmap the index may differ between examples.
        return dx.sum(dx.where(positions(values) == index, values, 0.0))
    if isinstance(index, dx.Tracer):
        # A plain array's own indexing does not accept a difflux tracer.
        return dx.take(values, index)
    return values[index]


def write_row(buffer: Any, index: Any, value: Any) -> Any:
    """Return ``buffer`` with row ``index`` (a scalar integer) replaced by ``value``."""
    if batch_trace_active():
        # Under dx.vmap the index may differ between examples, so the write is masked.
        mask = dx.reshape(positions(buffer) == index, (-1,) + (1,) * (buffer.ndim - 1))
        return dx.where(mask, value[None], buffer)
    return dx.index_update(buffer, index, value)


def positions(like: Any) -> Any:
    """Return the row indices ``0, 1, ...`` of ``like`` as an int32 array on its backend."""
    n = like.shape[0]
    return dx.asarray(np.arange(n, dtype=np.int32), backend=dx.backend_of(like) or "numpy")
