"""The solve loop written in NumPy, for eager solves on NumPy.

The generic loop (``_loop.py`` over ``dx.while_loop``) dispatches every
operation through difflux, and under ``dx.vmap`` through a batch trace and
masked control flow as well. On the small states of typical models that
dispatch costs far more than the arithmetic. :func:`solve_numpy` runs the
same algorithm with NumPy calls on a leading axis of examples, so a
``dx.vmap`` of solves (the chains of a vectorised sampler, say) runs as one
loop:

* the vector field is recorded once per solve as a program of NumPy calls
  (``difflux.core._record``), batched over the examples by ``dx.vmap``, and
  each stage replays it. A vector field that cannot be recorded is called
  directly when there is one example, and otherwise sends the solve back
  to the generic loop;
* each step computes what ``make_step`` computes, in the same order, and an
  example that has stopped keeps its values, as in the masked generic loop.

It takes a solve only when nothing needs the generic loop. Every input must
be a NumPy array or a ``dx.vmap`` batch of NumPy arrays, because a
derivative tracer means that the loop itself is differentiated. The solver
must be an explicit Runge-Kutta method that carries no state between steps,
or, without a ``dx.vmap`` batch, a solver that carries state (the stiff
solvers), whose hooks the loop calls as ``make_step`` does. The outputs
must be ``SaveAt`` ``t0``, ``ts`` and ``t1``, without events or a progress
bar. The forward-sensitivity solves qualify: their custom rule hands the
loop plain arrays and differentiates outside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core._batching import BatchTrace, BatchTracer
from difflux.core._core import Primitive, Tracer
from difflux.core._record import RecordingError, RecordTracer, record

from ._controller import ConstantStepSize, PIDController
from ._runge_kutta import AbstractRungeKutta
from ._saveat import SaveAt
from ._solution import Solution, Status, _raise_failure

# The hooks through which a solver could change the loop. A solver that
# overrides one of them carries state: it runs in the generic loop under
# dx.vmap and steps through its own hooks otherwise.
_STEP_HOOKS = (
    "step",
    "step_with_state",
    "init_state",
    "update_state",
    "step_size_factor",
    "failed",
    "statistics",
)


def _explicit_without_state(solver: Any) -> bool:
    if not isinstance(solver, AbstractRungeKutta) or not hasattr(type(solver), "tableau"):
        return False
    for name in _STEP_HOOKS:
        base = getattr(AbstractRungeKutta, name, None)
        if base is not None and getattr(type(solver), name) is not base:
            return False
    return True


class _Inputs:
    """The array leaves of a solve's inputs, unwrapped from at most one ``dx.vmap`` batch.

    Attributes:
        trace: the batch trace of the batched leaves, or ``None`` without any.
        size: the number of examples (1 without a batch).
    """

    def __init__(self) -> None:
        self.trace: BatchTrace | None = None
        self.size = 1
        self.recording = False

    def unwrap(self, leaf: Any) -> tuple[Any, bool] | None:
        """Return ``(NumPy value, batched)`` for an input leaf, or ``None`` if the NumPy loop cannot take it.

        Under ``difflux.core._record.record`` the value is a recorded array
        (``recording`` turns true), for which the solve becomes one call.
        """
        if type(leaf) is BatchTracer:
            trace = leaf._trace
            value = leaf.value
            if type(value) is RecordTracer:
                self.recording = True
            elif not isinstance(value, np.ndarray):
                return None
            if self.trace is not None and trace is not self.trace:
                return None
            assert isinstance(trace, BatchTrace)
            self.trace, self.size = trace, trace.size
            return value, True
        if type(leaf) is RecordTracer:
            self.recording = True
            return leaf, False
        if isinstance(leaf, Tracer):
            return None
        if isinstance(leaf, np.ndarray | np.generic):
            return leaf, False
        if isinstance(leaf, bool | int | float):
            return np.asarray(leaf), False
        return None


def solve_numpy(
    vector_field: Callable[..., Any],
    y0: Any,
    t_span: tuple[Any, Any],
    args: Any,
    *,
    solver: Any,
    saveat: SaveAt,
    rtol: float,
    atol: float,
    dt0: Any,
    adaptive: bool,
    controller: Any,
    max_steps: int,
    throw: bool,
) -> Solution | None:
    """Solve as :func:`difflux.ode.solve` does, in NumPy; return ``None`` when the generic loop must run.

    The caller has checked the arguments and has no events or progress bar.
    """
    from ._solve import _ravel

    stateful = not _explicit_without_state(solver)
    if saveat.steps or saveat.dense or (stateful and not isinstance(solver, AbstractRungeKutta)):
        return None
    if isinstance(controller, PIDController):
        if type(controller).factor is not PIDController.factor:
            return None
    elif not isinstance(controller, ConstantStepSize):
        return None

    # -- the inputs, unwrapped from a dx.vmap batch -----------------------------
    inputs = _Inputs()
    y_leaves, y_def = dx.tree_flatten(y0)
    field_leaves, field_def = dx.tree_flatten((vector_field, args), is_leaf=lambda x: x is None)
    array_positions = [i for i, leaf in enumerate(field_leaves) if dx.is_array(leaf)]
    unwrapped = []
    for leaf in [*y_leaves, t_span[0], t_span[1], saveat.ts, dt0, *(field_leaves[i] for i in array_positions)]:
        if leaf is None:
            unwrapped.append((None, False))
            continue
        entry = inputs.unwrap(leaf)
        if entry is None:
            return None
        unwrapped.append(entry)
    count = len(y_leaves)
    y_entries, (t0_entry, t1_entry, ts_entry, dt0_entry) = unwrapped[:count], unwrapped[count : count + 4]
    arg_entries = unwrapped[count + 4 :]
    batched = inputs.trace is not None
    size = inputs.size
    if stateful and (batched or inputs.recording):
        # The solver's state has no axis of examples, and it calls the
        # vector field with the caller's own arrays.
        return None

    example_leaves = [np.zeros(leaf_shape(value, is_batched), dtype=value.dtype) for value, is_batched in y_entries]
    _, unravel, _, _ = _ravel(dx.tree_unflatten(y_def, example_leaves))
    spec = _SolveSpec(
        y_def=y_def,
        y_batched=[is_batched for _, is_batched in y_entries],
        field_leaves=field_leaves,
        field_def=field_def,
        array_positions=array_positions,
        arg_batched=[is_batched for _, is_batched in arg_entries],
        time_batched=[is_batched for _, is_batched in (t0_entry, t1_entry, ts_entry, dt0_entry)],
        time_present=[value is not None for value, _ in (t0_entry, t1_entry, ts_entry, dt0_entry)],
        size=size if batched else None,
        solver=solver,
        saveat=saveat,
        options={"rtol": rtol, "atol": atol, "adaptive": adaptive, "controller": controller, "max_steps": max_steps},
        throw=throw,
        stateful=stateful,
        caller_field=(vector_field, args),
    )
    values = [value for value, _ in unwrapped if value is not None]
    if inputs.recording:
        # Inside a recording the solve is one call of the program, which
        # runs the loop on whatever arrays the program is given.
        times, values_out, status, *counters = _solve_p(*values, spec=spec)
        stats: dict[str, Any] = dict(zip(_COUNTERS, counters))
    else:
        outputs = _solve_values(*values, spec=spec)
        if outputs is None:
            return None
        times, values_out, status, stats = outputs
    if batched:
        trace = inputs.trace
        assert trace is not None
        times, values_out, status = trace.wrap(times), trace.wrap(values_out), trace.wrap(status)
        stats = {name: trace.wrap(value) for name, value in stats.items()}
    return Solution(
        ts=times,
        ys=unravel(values_out),
        stats=stats,
        status=status,
        dense=None,
        interpolate=solver.interpolate,
        unravel=unravel,
    )


def leaf_shape(value: Any, batched: bool) -> tuple[int, ...]:
    """Return the shape of one example of an input leaf."""
    shape = tuple(np.shape(value)) if not isinstance(value, Tracer) else tuple(value.shape)
    return shape[1:] if batched else shape


class _SolveSpec:
    """Everything about a solve but its arrays: where they go, the solver and its options."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def _solve_values(*values: Any, spec: Any) -> tuple[Any, Any, Any, dict[str, Any]] | None:
    """Run the NumPy loop on the input arrays of a solve; return its outputs, or ``None`` to use the generic loop.

    The outputs are the saved times, the flat saved states, the status and
    the dictionary of ``Solution.stats``, each array with a leading axis of
    examples when batched.
    """
    from ._solve import _check_ts, _flat_vector_field, _ravel

    solver, saveat, options = spec.solver, spec.saveat, spec.options
    remaining = iter(values)
    y_entries = [(next(remaining), is_batched) for is_batched in spec.y_batched]
    t0_entry, t1_entry, ts_entry, dt0_entry = (
        (next(remaining) if present else None, is_batched)
        for present, is_batched in zip(spec.time_present, spec.time_batched)
    )
    arg_entries = [(next(remaining), is_batched) for is_batched in spec.arg_batched]
    batched = spec.size is not None
    size = spec.size or 1
    field_leaves, field_def, array_positions = spec.field_leaves, spec.field_def, spec.array_positions
    stateful = spec.stateful

    # -- the flat state, with a leading axis of examples when batched ------------
    example_leaves = [value[0] if is_batched else value for value, is_batched in y_entries]
    example_vector, unravel, shapes, treedef = _ravel(dx.tree_unflatten(spec.y_def, example_leaves))
    dtype = example_vector.dtype
    lanes = (size,) if batched else ()
    parts = [
        np.broadcast_to(np.reshape(value, ((size,) if is_batched else ()) + (-1,)), (*lanes, int(np.prod(shape))))
        for (value, is_batched), shape in zip(y_entries, shapes)
    ]
    y_start = np.concatenate(parts, axis=-1).astype(dtype) if len(parts) > 1 else parts[0].astype(dtype, copy=True)

    def per_lane(entry: tuple[Any, bool]) -> np.ndarray:
        value, is_batched = entry
        value = np.asarray(value, dtype=dtype)
        return value if is_batched or not batched else np.broadcast_to(value, lanes + value.shape)

    t0 = per_lane(t0_entry)
    t1 = per_lane(t1_entry)
    ts = None
    if ts_entry[0] is not None:
        value, is_batched = ts_entry
        ts = np.asarray(value, dtype=dtype).reshape(((size,) if is_batched else ()) + (-1,))
        if batched and not is_batched:
            ts = np.broadcast_to(ts, lanes + ts.shape)
        for row, start, end in zip(np.reshape(ts, (-1, ts.shape[-1])), np.ravel(t0), np.ravel(t1)):
            _check_ts(row, float(start), float(end))
    dt0_value = None if dt0_entry[0] is None else per_lane(dt0_entry)

    # -- the vector field as a NumPy program -------------------------------------
    arg_values = [value for value, _ in arg_entries]

    def flat_field(t: Any, y: Any, *leaves: Any) -> Any:
        rebuilt = list(field_leaves)
        for position, leaf in zip(array_positions, leaves):
            rebuilt[position] = leaf
        field, field_args = dx.tree_unflatten(field_def, rebuilt)
        return _flat_vector_field(field, field_args, unravel, shapes, treedef)(t, y)

    field = _compile_field(flat_field, t0, y_start, arg_entries, batched)
    if field is None:
        if batched:
            return None
        field = _direct_field(flat_field, arg_values)

    loop = _Loop(
        solver,
        options["controller"],
        options["adaptive"],
        options["rtol"],
        options["atol"],
        options["max_steps"],
        field,
        arg_values,
        t0,
        t1,
        ts,
        dtype,
    )
    if stateful:
        # Without a batch or a recording the arguments are the caller's own NumPy values.
        vector_field, args = spec.caller_field
        loop.solver_field = _solver_field(loop.f, _flat_vector_field(vector_field, args, unravel, shapes, treedef))
    try:
        with np.errstate(all="ignore"):
            # Stopped examples keep computing, masked, so their overflows and
            # invalid values are noise; the status reports a real failure.
            state = loop.run(y_start, dt0_value)
    except _NotNumpyError:
        return None

    # -- the outputs, as solve's generic path returns them -----------------------
    ts_parts, ys_parts = [], []
    if saveat.t0:
        ts_parts.append(t0[..., None])
        ys_parts.append(y_start[..., None, :])
    if ts is not None:
        ts_parts.append(ts)
        ys_parts.append(state["ys_at_ts"])
    if saveat.t1:
        final_ok = (state["status"] == 0)[..., None]
        ts_parts.append(state["t"][..., None])
        ys_parts.append(np.where(final_ok, state["y"], np.nan)[..., None, :])
    times = ts_parts[0] if len(ts_parts) == 1 else np.concatenate(ts_parts, axis=-1)
    saved = ys_parts[0] if len(ys_parts) == 1 else np.concatenate(ys_parts, axis=-2)
    stats = {
        "num_steps": state["num_steps"],
        "num_accepted": state["num_accepted"],
        "num_rejected": state["num_steps"] - state["num_accepted"],
    }
    if stateful:
        stats.update(solver.statistics(state["solver_state"], state["num_steps"]))
        stats["num_fevals"] = stats["num_fevals"] + state["num_fevals"]
    else:
        stats["num_fevals"] = state["num_steps"] * solver.function_evaluations_per_step + state["num_fevals"]
    status = state["status"]
    if spec.throw:
        _raise_failure(status, state["t"], t1, state["num_steps"])
    return times, saved, status, stats


# The counters of an explicit solver's Solution.stats, in the order of _solve_recorded's outputs.
_COUNTERS = ("num_steps", "num_accepted", "num_rejected", "num_fevals")


def _solve_recorded(*values: Any, spec: Any) -> tuple[Any, ...]:
    outputs = _solve_values(*values, spec=spec)
    if outputs is None:
        raise RecordingError("this solve needs the generic loop, which cannot be recorded")
    times, saved, status, stats = outputs
    return (times, saved, status, *(stats[name] for name in _COUNTERS))


# The NumPy loop as one call of a recorded program (difflux.core._record).
# It has no derivative rules, because only recorded arrays, never tracers of
# a derivative, reach it.
_solve_p = Primitive("numpy_solve", _solve_recorded, multiple_results=True)


class _NotNumpyError(Exception):
    """Raised inside the loop when a directly called vector field returns something other than a NumPy array."""


def _compile_field(
    flat_field: Callable[..., Any], t0: np.ndarray, y0: np.ndarray, arg_entries: list[tuple[Any, bool]], batched: bool
) -> Callable[..., Any] | None:
    """Record ``flat_field`` (vmapped over the examples when batched); return ``None`` if it cannot be recorded."""
    arg_values = [value for value, _ in arg_entries]
    if batched:
        in_axes = (0, 0, *(0 if is_batched else None for _, is_batched in arg_entries))
        function = dx.vmap(flat_field, in_axes=in_axes)
    else:
        function = flat_field
    try:
        program = record(function, [t0, y0, *arg_values])
    except RecordingError:
        return None
    except Exception:
        # NumPy functions applied to a recorded array, isinstance checks
        # and the like fail only under recording. The generic loop calls the
        # vector field on plain arrays and reports any error of its own.
        return None
    flat = program.flat

    def field(t: np.ndarray, y: np.ndarray, *leaves: Any) -> np.ndarray:
        return flat(t, y, *leaves)[0]

    return field


def _solver_field(field: Callable[[Any, Any], Any], flat_field: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Return the vector field for a solver's own calls: ``field`` on NumPy values, ``flat_field`` on tracers.

    A stiff solver differentiates the field (``dx.jacfwd`` for its
    Jacobian, ``dx.jvp`` in time), which the recorded NumPy program cannot.
    """

    def solver_field(t: Any, y: Any) -> Any:
        if type(y) is np.ndarray and isinstance(t, np.ndarray | np.generic):
            return field(t, y)
        return flat_field(t, y)

    return solver_field


def _direct_field(flat_field: Callable[..., Any], arg_values: list[Any]) -> Callable[..., Any]:
    def field(t: np.ndarray, y: np.ndarray, *leaves: Any) -> np.ndarray:
        out = flat_field(t, y, *leaves)
        if type(out) is not np.ndarray:
            raise _NotNumpyError
        return out

    return field


class _Loop:
    """The integration loop on NumPy arrays with an optional leading axis of examples."""

    def __init__(
        self,
        solver: AbstractRungeKutta,
        controller: Any,
        adaptive: bool,
        rtol: float,
        atol: float,
        max_steps: int,
        field: Callable[..., Any],
        arg_values: list[Any],
        t0: np.ndarray,
        t1: np.ndarray,
        ts: np.ndarray | None,
        dtype: Any,
    ) -> None:
        self.solver = solver
        self.controller = controller
        self.adaptive = adaptive
        self.rtol = rtol
        self.atol = atol
        self.max_steps = max_steps
        self.field = field
        self.arg_values = arg_values
        self.t0, self.t1, self.ts = t0, t1, ts
        self.dtype = dtype
        # A solver with state steps through its own hooks, with this field.
        self.solver_field: Callable[[Any, Any], Any] | None = None
        if _explicit_without_state(solver):
            tableau = solver.tableau
            self.stages = tableau.stages
            self.fsal = tableau.fsal
            self.nodes = [float(c) for c in tableau.c]
            # The rows of a, then b and b_error, each as its nonzero weights with
            # their stage indices: zero weights are skipped, as _combine skips
            # them, so a non-finite stage that a row does not use stays out.
            self.stage_weights = [_weights(row, dtype) for row in tableau.a]
            self.b = _weights(tableau.b, dtype)
            self.b_error = None if tableau.b_error is None else _weights(tableau.b_error, dtype)
        self.error_order = (solver.embedded_order or solver.order) + 1
        self.eps = 100 * float(np.finfo(dtype).eps)
        self.save_rows = None if ts is None else np.arange(ts.shape[-1], dtype=np.int32)

    def f(self, t: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.field(t, y, *self.arg_values)

    def initial_step(self, y0: np.ndarray, f0: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Choose the first step size as ``initial_step_size`` does, per example."""
        tiny = float(np.finfo(self.dtype).tiny)
        scale = self.atol + self.rtol * np.abs(y0)
        d0 = _rms(y0 / scale)
        d1 = _rms(f0 / scale)
        h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.maximum(d1, tiny))
        y1 = y0 + (direction * h0)[..., None] * f0
        f1 = self.f(self.t0 + direction * h0, y1)
        d2 = _rms((f1 - f0) / scale) / h0
        largest = np.maximum(d1, d2)
        h1 = np.where(
            largest <= 1e-15,
            np.maximum(1e-6, h0 * 1e-3),
            (0.01 / np.maximum(largest, tiny)) ** (1.0 / (self.solver.order + 1)),
        )
        return np.minimum(100 * h0, h1).astype(self.dtype)

    def run(self, y0: np.ndarray, dt0: np.ndarray | None) -> dict[str, Any]:
        t0, t1, ts, dtype = self.t0, self.t1, self.ts, self.dtype
        lanes = t0.shape
        direction = np.where(t1 >= t0, 1.0, -1.0).astype(dtype)
        self.direction = direction
        self.abs_t1 = np.abs(t1)
        f0 = self.f(t0, y0)
        # An example's f changes only with an accepted step, whose f1 is
        # finite, so whether f is finite is decided here once.
        self.f0_finite = _all_finite(f0)
        num_fevals = np.ones(lanes, dtype=np.int32)
        if self.adaptive and dt0 is None:
            h0 = self.initial_step(y0, f0, direction)
            num_fevals += 1
        else:
            assert dt0 is not None
            h0 = np.abs(np.zeros(lanes, dtype=dtype) + dt0).astype(dtype)

        zeros = np.zeros(lanes, dtype=np.int32)
        ones = np.ones(lanes, dtype=dtype)
        state: dict[str, Any] = {
            "t": t0.copy(),
            "y": y0,
            "f": f0,
            "h": h0 * direction,
            # The controller's last two error ratios, the generic loop's "ratios".
            "ratio": ones,
            "previous_ratio": ones,
            "num_steps": zeros,
            "num_accepted": zeros,
            "status": zeros,
            "num_fevals": num_fevals,
        }
        if self.solver_field is not None:
            state["solver_state"] = self.solver.init_state(self.solver_field, t0, y0, f0, self.rtol, self.atol)
        if ts is not None:
            at_start = ts == t0[..., None]
            state["ys_at_ts"] = np.where(at_start[..., None], y0[..., None, :], np.nan).astype(dtype)
            state["save_index"] = np.sum(at_start, axis=-1).astype(np.int32)
            # The times to save followed by one that is never reached, as the generic loop's ts_next.
            never = np.broadcast_to((direction * np.inf)[..., None], lanes + (1,))
            self.ts_next = np.concatenate([ts, never], axis=-1)
            state["next_save"] = np.take_along_axis(self.ts_next, state["save_index"][..., None], axis=-1)[..., 0]

        def running(s: dict[str, Any]) -> np.ndarray:
            return (s["status"] == 0) & ((t1 - s["t"]) * direction > 0)

        for _ in range(self.max_steps):
            active = running(state)
            if lanes:
                if not np.count_nonzero(active):
                    break
                state = self.step(state, active)
            else:
                if not active:
                    break
                # Without examples the loop stops with the solve, so every step is active.
                state = self.step(state, None)
        state["status"] = np.where(running(state), np.int32(Status.MAX_STEPS_REACHED), state["status"])
        return state

    def step(self, s: dict[str, Any], active: np.ndarray | None) -> dict[str, Any]:
        """Try one step from every example's state, as ``make_step`` does.

        ``active`` marks the examples still running (``None``: all of them).
        The others keep their state, as in the masked generic loop.
        """
        if self.solver_field is not None and active is None and self.dtype == np.float64:
            return self.step_with_solver_state(s)
        t, y, f0, h = s["t"], s["y"], s["f"], s["h"]
        t1, direction, f0_finite = self.t1, self.direction, self.f0_finite

        to_end = t1 - t
        remaining = to_end * direction
        resolution = self.eps * np.maximum(np.abs(t), self.abs_t1)
        last = np.abs(h) >= remaining - resolution
        h_step = np.where(last, to_end, h)
        solver_state = None
        if self.solver_field is None:
            y1, y_error, ks, f1 = self.runge_kutta(t, y, f0, h_step)
        else:
            y1, y_error, ks, f1, solver_state = self.solver.step_with_state(
                self.solver_field, t, y, f0, h_step, s["solver_state"]
            )
        t_new = np.where(last, t1, t + h_step)
        finite = _all_finite(y1) & _all_finite(f1)

        new = dict(s)
        if self.adaptive:
            assert y_error is not None
            scale = self.atol + self.rtol * np.maximum(np.abs(y), np.abs(y1))
            scaled = y_error / scale
            ratio = np.sqrt(np.add.reduce(scaled * scaled, axis=-1) / scaled.shape[-1])
            finite = finite & np.isfinite(ratio)
            accepted = finite & (ratio <= 1.0) & f0_finite
            ratio = np.where(finite, ratio, 1e10)
            previous, before_previous = s["ratio"], s["previous_ratio"]
            factor = None if solver_state is None else self.solver.step_size_factor(solver_state, ratio, accepted)
            if factor is None:
                factor = _pid_factor(self.controller, ratio, previous, before_previous, accepted, self.error_order)
            h_next = h_step * factor
            h_next = np.where(last & accepted, h, h_next)
            underflow = (~accepted) & (np.abs(h_next) < resolution)
            status = np.where(~f0_finite, _NONFINITE, np.where(underflow, _DT_UNDERFLOW, _SUCCESSFUL))
            if active is not None:
                accepted = accepted & active
            new["ratio"] = np.where(accepted, ratio, previous)
            new["previous_ratio"] = np.where(accepted, previous, before_previous)
        else:
            accepted = finite & f0_finite
            h_next = h
            status = np.where(accepted, _SUCCESSFUL, _NONFINITE)
            if active is not None:
                accepted = accepted & active
        if active is not None:
            h_next = np.where(active, h_next, h)
            status = np.where(active, status, s["status"])

        accepted_row = accepted[..., None]
        new["t"] = np.where(accepted, t_new, t)
        new["y"] = np.where(accepted_row, y1, y)
        new["f"] = np.where(accepted_row, f1, f0)
        new["h"] = h_next
        new["num_steps"] = s["num_steps"] + (1 if active is None else active)
        new["num_accepted"] = s["num_accepted"] + accepted
        if solver_state is not None:
            new["solver_state"] = self.solver.update_state(solver_state, accepted)
            solver_failed = self.solver.failed(new["solver_state"])
            if solver_failed is not None:
                status = np.where(solver_failed, np.int32(Status.NEWTON_FAILED), status)
        new["status"] = status
        if self.ts is not None and np.count_nonzero(accepted & ((s["next_save"] - t_new) * direction <= 0)):
            self.save(new, s, (t, y, f0, t_new, y1, f1, h_step, ks), accepted)
        return new

    def step_with_solver_state(self, s: dict[str, Any]) -> dict[str, Any]:
        """Take one step of a single float64 example with a solver that carries state, as :meth:`step` does.

        The time, step size, error ratios, flags and counters are Python
        numbers. They are IEEE doubles, so the results are the bits of
        :meth:`step`, but each operation costs a fraction of one on a 0-d
        array, and a stiff step has few other operations.
        """
        solver_field = self.solver_field
        assert solver_field is not None
        y, f0 = s["y"], s["f"]
        t, h = float(s["t"]), float(s["h"])
        t1, direction = float(self.t1), float(self.direction)

        to_end = t1 - t
        remaining = to_end * direction
        resolution = self.eps * max(abs(t), abs(t1))
        last = abs(h) >= remaining - resolution
        h_step = to_end if last else h
        y1, y_error, ks, f1, solver_state = self.solver.step_with_state(
            solver_field, s["t"], y, f0, np.float64(h_step), s["solver_state"]
        )
        t_new = t1 if last else t + h_step
        finite = bool(np.isfinite(y1).all()) and bool(np.isfinite(f1).all())

        new = dict(s)
        if self.adaptive:
            scale = self.atol + self.rtol * np.maximum(np.abs(y), np.abs(y1))
            scaled = y_error / scale
            ratio = math.sqrt(float(np.add.reduce(scaled * scaled)) / scaled.shape[-1])
            finite = finite and math.isfinite(ratio)
            accepted = finite and ratio <= 1.0 and bool(self.f0_finite)
            if not finite:
                ratio = 1e10
            previous, before_previous = float(s["ratio"]), float(s["previous_ratio"])
            factor = self.solver.step_size_factor(solver_state, np.float64(ratio), np.bool_(accepted))
            if factor is None:
                ratios = (ratio, previous, before_previous)
                factor = _pid_factor_scalar(self.controller, ratios, accepted, self.error_order)
            h_next = h if last and accepted else h_step * float(factor)
            underflow = not accepted and abs(h_next) < resolution
            status = _NONFINITE if not self.f0_finite else (_DT_UNDERFLOW if underflow else _SUCCESSFUL)
            if accepted:
                new["ratio"], new["previous_ratio"] = np.float64(ratio), np.float64(previous)
        else:
            accepted = finite and bool(self.f0_finite)
            h_next = h
            status = _SUCCESSFUL if accepted else _NONFINITE

        if accepted:
            new["t"], new["y"], new["f"] = np.float64(t_new), y1, f1
        new["h"] = np.float64(h_next)
        new["num_steps"] = s["num_steps"] + np.int32(1)
        new["num_accepted"] = s["num_accepted"] + np.int32(accepted)
        new["solver_state"] = self.solver.update_state(solver_state, np.bool_(accepted))
        solver_failed = self.solver.failed(new["solver_state"])
        if solver_failed is not None and solver_failed:
            status = np.int32(Status.NEWTON_FAILED)
        new["status"] = status
        if self.ts is not None and accepted and (float(s["next_save"]) - t_new) * direction <= 0:
            step = (s["t"], y, f0, np.float64(t_new), y1, f1, np.float64(h_step), ks)
            self.save(new, s, step, np.asarray(True))
        return new

    def runge_kutta(self, t: np.ndarray, y: np.ndarray, f0: np.ndarray, h: np.ndarray) -> tuple[Any, Any, Any, Any]:
        """Take one Runge-Kutta step of size ``h``, as ``AbstractRungeKutta.step`` does."""
        ks = np.empty(y.shape[:-1] + (self.stages, y.shape[-1]), dtype=self.dtype)
        ks[..., 0, :] = f0
        h_column = h[..., None]
        for i in range(1, self.stages):
            y_stage = _combine(y, h_column, self.stage_weights[i], ks)
            ks[..., i, :] = self.f(t + self.nodes[i] * h, y_stage)
        y1 = _combine(y, h_column, self.b, ks)
        f1 = ks[..., -1, :] if self.fsal else self.f(t + h, y1)
        y_error = None if self.b_error is None else _combine(None, h_column, self.b_error, ks)
        return y1, y_error, ks, f1

    def save(self, new: dict[str, Any], s: dict[str, Any], step: tuple[Any, ...], accepted: np.ndarray) -> None:
        """Write the interpolated values at the save times this step passed, as ``_save_passed_times`` does."""
        t, y, f0, t_new, y1, f1, h_step, ks = step
        ts = self.ts
        assert ts is not None
        direction = self.direction[..., None]
        # Rows at or past the next one to save whose time this step passed.
        due = (self.save_rows >= s["save_index"][..., None]) & ((ts - t_new[..., None]) * direction <= 0)
        due &= accepted[..., None]
        theta = ((ts - t[..., None]) / h_step[..., None])[..., None]
        values = self.solver.interpolate(
            y[..., None, :],
            y1[..., None, :],
            f0[..., None, :],
            f1[..., None, :],
            h_step[..., None, None],
            ks[..., None, :, :],
            theta,
        )
        values = np.where((ts == t_new[..., None])[..., None], y1[..., None, :], values)
        new["ys_at_ts"] = np.where(due[..., None], values, s["ys_at_ts"])
        new["save_index"] = s["save_index"] + np.add.reduce(due, axis=-1, dtype=np.int32)
        new["next_save"] = np.take_along_axis(self.ts_next, new["save_index"][..., None], axis=-1)[..., 0]


def _weights(row: Any, dtype: Any) -> tuple[np.ndarray, np.ndarray | slice]:
    """Return a row of tableau weights as ``(nonzero weights, their stage indices)``.

    The indices are a slice when they are ``0, 1, ..., k - 1``, so that the
    stages are a view and not a copy.
    """
    indices = [j for j, w in enumerate(row) if w != 0]
    weights = np.array([float(row[j]) for j in indices], dtype=dtype)
    if indices == list(range(len(indices))):
        return weights, slice(0, len(indices))
    return weights, np.array(indices)


def _combine(y: np.ndarray | None, h: np.ndarray, weights: tuple[np.ndarray, Any], ks: np.ndarray) -> np.ndarray:
    """Return ``y + h * sum_j w_j ks[..., j, :]`` over the nonzero weights (``y = None`` means 0)."""
    values, indices = weights
    if values.size == 0:
        total = np.zeros_like(ks[..., 0, :])
    else:
        # A reduction over an axis that is not the last adds the terms one
        # after another, in _combine's order, so the sums match it bit for
        # bit. A matrix product may add them in another order, and the error
        # estimate (weights summing to 0) is sensitive to that.
        total = np.add.reduce(values[:, None] * ks[..., indices, :], axis=-2)
    return total * h if y is None else y + h * total


def _pid_factor(
    controller: PIDController,
    ratio: np.ndarray,
    previous: np.ndarray,
    before_previous: np.ndarray,
    accepted: np.ndarray,
    error_order: int,
) -> np.ndarray:
    """Compute ``PIDController.factor`` in NumPy, in the same order of operations."""
    tiny = 1e-10
    factor = controller.safety * np.maximum(ratio, tiny) ** (-controller.beta1 / error_order)
    if controller.beta2 != 0:
        factor = factor * np.maximum(previous, tiny) ** (-controller.beta2 / error_order)
    if controller.beta3 != 0:
        factor = factor * np.maximum(before_previous, tiny) ** (-controller.beta3 / error_order)
    factor = np.clip(factor, controller.factor_min, controller.factor_max)
    return np.where(accepted, factor, np.minimum(factor, 1.0))


def _pid_factor_scalar(
    controller: PIDController, ratios: tuple[float, float, float], accepted: bool, error_order: int
) -> float:
    """Compute :func:`_pid_factor` for one example with Python floats, in the same order of operations.

    ``ratios`` are the current, previous and second-previous error ratios.
    """
    ratio, previous, before_previous = ratios
    tiny = 1e-10
    factor = controller.safety * max(ratio, tiny) ** (-controller.beta1 / error_order)
    if controller.beta2 != 0:
        factor = factor * max(previous, tiny) ** (-controller.beta2 / error_order)
    if controller.beta3 != 0:
        factor = factor * max(before_previous, tiny) ** (-controller.beta3 / error_order)
    factor = min(max(factor, controller.factor_min), controller.factor_max)
    return factor if accepted else min(factor, 1.0)


_SUCCESSFUL = np.int32(Status.SUCCESSFUL)
_NONFINITE = np.int32(Status.NONFINITE)
_DT_UNDERFLOW = np.int32(Status.DT_UNDERFLOW)


def _all_finite(x: np.ndarray) -> np.ndarray:
    return np.logical_and.reduce(np.isfinite(x), axis=-1)


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(x * x, axis=-1))
