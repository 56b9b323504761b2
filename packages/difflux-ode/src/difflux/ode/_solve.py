"""``solve``: the integration loop, written once over ``dx.while_loop``.

The loop carries the time, the flat state, the next step size, ``f(t, y)``
(the first stage of the next step), the last error ratios for the
controller, counters, a status code and fixed-size output buffers. Each
iteration tries one step, and where it is accepted writes the saved values
with ``dx.where`` masks, so the same code runs as a Python loop on NumPy and
as ``jax.lax.while_loop`` under ``jit``. Reverse-mode gradients go through
``dx.while_loop``'s checkpointed pullback (discretise-then-optimise), which
needs the ``max_steps`` bound.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

import difflux.core as dx
from difflux.core._backend import backend_of_value
from difflux.core._core import value_of

from ._auto_switch import AutoSwitch
from ._controller import ConstantStepSize, PIDController, initial_step_size
from ._events import Event, EventTracker, as_events
from ._loop import initial_state, is_plain, make_step, positions
from ._loop_numpy import solve_numpy
from ._progress import ProgressBar
from ._runge_kutta import AbstractRungeKutta
from ._saveat import SaveAt
from ._sensitivity import AbstractSensitivity, RecursiveCheckpointAdjoint, choose_sensitivity
from ._sensitivity_solve import solve_with_sensitivity
from ._solution import Solution, Status, depend_on_check, raise_if_failed

# --------------------------------------------------------------------------
# Flattening the state
# --------------------------------------------------------------------------


def _ravel(y0: Any) -> tuple[Any, Callable[[Any], Any], list[tuple[int, ...]], Any]:
    """Return ``(vector, unravel, shapes, treedef)``; ``unravel`` maps ``(..., d)`` back to the structure."""
    leaves, treedef = dx.tree_flatten(y0)
    if not leaves:
        raise ValueError("solve: y0 has no array leaves; pass an array or a structure of arrays")
    leaves = [dx.asarray(leaf) if not dx.is_array(leaf) else leaf for leaf in leaves]
    dtype = dx.result_type(*leaves)
    if dx.isdtype(dtype, "complex floating"):
        raise TypeError(
            f"solve: y0 has the complex dtype {dtype}; the solvers support real states only. Solve for the "
            "real and imaginary parts as two real arrays (or one array with both stacked)."
        )
    if not dx.isdtype(dtype, "real floating"):
        dtype = dx.float64
    leaves = [dx.astype(leaf, dtype) if leaf.dtype != dtype else leaf for leaf in leaves]
    shapes = [tuple(leaf.shape) for leaf in leaves]
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape in shapes]
    if not sum(sizes):
        raise ValueError(f"solve: y0 has no entries (shapes {shapes}); the state needs at least one number")
    vector = (
        dx.concat([dx.reshape(leaf, (-1,)) for leaf in leaves]) if len(leaves) > 1 else dx.reshape(leaves[0], (-1,))
    )

    def unravel(vec: Any) -> Any:
        batch = tuple(vec.shape[:-1])
        parts, offset = [], 0
        for shape, size in zip(shapes, sizes):
            parts.append(dx.reshape(vec[..., offset : offset + size], batch + shape))
            offset += size
        return dx.tree_unflatten(treedef, parts)

    return vector, unravel, shapes, treedef


def _flat_vector_field(
    vector_field: Callable[..., Any], args: Any, unravel: Callable[[Any], Any], shapes: list[Any], treedef: Any
) -> Callable[[Any, Any], Any]:
    # A state that is one 1-D array is its own flat vector, so f passes it on
    # and returns a NumPy result of the right shape and dtype unchanged. The
    # flattening and its checks cost more than a small vector field.
    single_vector = len(shapes) == 1 and len(shapes[0]) == 1 and treedef == dx.tree_flatten(np.zeros(1))[1]

    def f(t: Any, y: Any) -> Any:
        if single_vector and type(y) is np.ndarray and y.shape == shapes[0]:
            out = vector_field(t, y, args)
            if type(out) is np.ndarray and out.shape == shapes[0] and out.dtype == y.dtype:
                return out
        else:
            out = vector_field(t, unravel(y), args)
        leaves, out_def = dx.tree_flatten(out)
        out_shapes = [tuple(dx.asarray(leaf).shape) if not dx.is_array(leaf) else tuple(leaf.shape) for leaf in leaves]
        if out_def != treedef or out_shapes != shapes:
            raise ValueError(
                f"solve: the vector field returned shapes {out_shapes} (structure {out_def}), but y0 has shapes "
                f"{shapes} (structure {treedef}); vector_field(t, y, args) must return dy/dt with the "
                "structure and shapes of y0"
            )
        for leaf in leaves:
            if dx.isdtype(leaf.dtype, "complex floating"):
                raise TypeError(
                    f"solve: the vector field returned the complex dtype {leaf.dtype} for a real state; "
                    "it must return real values of y0's dtype"
                )
        leaves = [dx.astype(leaf, y.dtype) if leaf.dtype != y.dtype else leaf for leaf in leaves]
        return (
            dx.concat([dx.reshape(leaf, (-1,)) for leaf in leaves]) if len(leaves) > 1 else dx.reshape(leaves[0], (-1,))
        )

    return f


def _is_concrete(x: Any) -> bool:
    value = value_of(x)
    return backend_of_value(value) != "jax" or not type(value).__name__.endswith("Tracer")


# --------------------------------------------------------------------------
# Checking the time span and the solver
# --------------------------------------------------------------------------


def _check_t_span(t_span: Any) -> tuple[Any, Any]:
    """Return ``(t0, t1)`` from ``t_span``, or raise ValueError if it is not a pair of finite scalars.

    Traced times (difflux tracers and JAX tracers) are checked for their
    shape only, so ``solve`` still runs under ``dx.jit``, ``dx.grad`` and
    ``dx.vmap`` with a traced time span.
    """
    shape = getattr(t_span, "shape", None)
    if shape == () or (shape is None and isinstance(t_span, numbers.Number)):
        _raise_not_a_pair(f"the scalar {t_span!r}" if is_plain(t_span) else "a traced scalar", longer=False)
    if shape is not None:
        # An array or a tracer, such as np.linspace(0.0, 1.0, 5).
        shape = tuple(shape)
        if shape != (2,):
            _raise_not_a_pair(f"an array of shape {shape}", longer=len(shape) == 1 and shape[0] > 2)
    elif isinstance(t_span, str | bytes) or not isinstance(t_span, Sequence):
        _raise_not_a_pair(f"an object of type {type(t_span).__name__}", longer=False)
    elif len(t_span) != 2:
        _raise_not_a_pair(f"a {type(t_span).__name__} of length {len(t_span)}", longer=len(t_span) > 2)

    t0, t1 = t_span[0], t_span[1]
    for index, t in enumerate((t0, t1)):
        name = f"t{index} = t_span[{index}]"
        if np.shape(t) != ():
            raise ValueError(f"solve: {name} must be a scalar, got an array of shape {tuple(np.shape(t))}")
        if not is_plain(t):
            continue
        value = np.asarray(t)
        if value.dtype.kind not in "iuf":
            raise ValueError(f"solve: {name} must be a real number, got {t!r}")
        if not np.isfinite(value):
            raise ValueError(f"solve: {name} must be finite, got {value.item()!r}")
    return t0, t1


def _raise_not_a_pair(received: str, longer: bool) -> NoReturn:
    message = f"solve: t_span must be a pair (t0, t1), got {received}."
    if longer:
        message += (
            " To save the solution at several times, pass (t_span[0], t_span[-1]) as t_span"
            " and saveat=ode.SaveAt(ts=t_span)."
        )
    raise ValueError(message)


def _check_solver(solver: Any) -> None:
    """Raise TypeError unless ``solver`` is an ODE solver instance (an ``AbstractRungeKutta``)."""
    if isinstance(solver, type) and issubclass(solver, AbstractRungeKutta):
        raise TypeError(
            f"solve: solver must be a solver instance, got the class {solver.__name__}. "
            f"Pass an instance such as {solver.__name__}()."
        )
    if not isinstance(solver, AbstractRungeKutta):
        received = (
            f"the class {solver.__name__}" if isinstance(solver, type) else f"an object of type {type(solver).__name__}"
        )
        raise TypeError(
            f"solve: solver must be an instance of an ode.AbstractRungeKutta subclass, such as ode.Tsit5(), got {received}"
        )


# --------------------------------------------------------------------------
# The public function
# --------------------------------------------------------------------------


def solve(
    vector_field: Callable[[Any, Any, Any], Any],
    y0: Any,
    t_span: tuple[Any, Any],
    args: Any = None,
    *,
    solver: AbstractRungeKutta | None = None,
    saveat: SaveAt = SaveAt(t1=True),  # noqa: B008 (immutable)
    rtol: float = 1e-6,
    atol: float = 1e-9,
    dt0: Any = None,
    adaptive: bool | None = None,
    controller: PIDController | ConstantStepSize | None = None,
    max_steps: int = 4096,
    throw: bool = True,
    events: Event | Sequence[Event] | None = None,
    progress: bool = False,
    sensitivity: AbstractSensitivity | None = None,
) -> Solution:
    """Solve ``dy/dt = vector_field(t, y, args)`` from ``y(t_span[0]) = y0`` to ``t_span[1]``.

    Args:
        vector_field: ``f(t, y, args)`` returning ``dy/dt`` with the structure and
            shapes of ``y``. ``y0`` and ``args`` may be arrays or any structure
            (tuples, dicts, ``dx.Module`` values); gradients flow to both.
        y0: the initial state.
        t_span: ``(t0, t1)``, two finite scalars. ``t1 < t0`` integrates
            backwards, and ``t1 == t0`` returns ``y0``. A longer sequence of
            times raises ValueError. To save at those times, pass its first
            and last entries here and the times as ``saveat=SaveAt(ts=...)``.
        args: passed unchanged to ``vector_field``.
        solver: a Runge-Kutta solver instance such as ``Tsit5()`` (not the
            class). The default ``None`` uses
            :class:`AutoSwitch`: :class:`Tsit5` until the problem turns
            out stiff, then :class:`Kvaerno5`.
        saveat: which outputs to keep, see :class:`SaveAt` (default: ``t1``).
        rtol: the relative tolerance of the local error; a step is accepted
            when ``|err_i| <= atol + rtol * max(|y_i|, |y1_i|)`` in the RMS norm.
        atol: the absolute tolerance of the local error, in the same test.
        dt0: the first step size (positive), or ``None`` to choose it
            (Hairer, Norsett and Wanner I, Section II.4). Required for
            fixed-step solvers and for ``adaptive=False``.
        adaptive: ``False`` takes constant steps of ``dt0`` even with an
            embedded pair. Defaults to ``True`` for solvers with an error estimate.
        controller: a :class:`PIDController` (default for adaptive solves) or
            :class:`ConstantStepSize`.
        max_steps: the maximum number of steps, accepted and rejected. It
            sizes the output buffers and bounds reverse-mode memory.
        throw: raise :class:`ODESolveError` if the solve fails. Inside ``jit``
            the error is raised when the compiled function runs and uses
            ``Solution.ts`` or ``Solution.ys``, through a host callback, as a
            ``JaxRuntimeError`` (a ``ValueError`` from later calls of the
            same compiled function) that contains the message. With
            ``throw=False`` check ``Solution.status``: a failed solve returns
            ``nan`` at the unreached times.
        events: an :class:`Event` or a list of them. A terminal event stops
            the solve at its crossing (``Solution.event_time``,
            ``event_index``, ``event_y``); every crossing is recorded in
            ``Solution.events``.
        progress: show a tqdm bar of the progress over ``t``. Inside ``jit``
            it moves through ``jax.debug.callback`` while the loop runs.
        sensitivity: how derivatives are computed:
            :class:`RecursiveCheckpointAdjoint`, :class:`BacksolveAdjoint`,
            :class:`InterpolatingAdjoint` or :class:`ForwardSensitivity`.
            ``None`` chooses by problem size and stiffness (see
            :func:`choose_sensitivity`). The values do not depend on it.

    Returns:
        A :class:`Solution`.

    Examples:
        >>> import numpy as np
        >>> from difflux import ode
        >>> sol = ode.solve(lambda t, y, k: -k * y, np.array([1.0]), (0.0, 1.0), 2.0)
        >>> round(float(sol.ys[-1, 0]), 6), round(float(np.exp(-2.0)), 6)
        (0.135335, 0.135335)
    """
    t_span = _check_t_span(t_span)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer) or max_steps < 1:
        raise ValueError(f"solve: max_steps must be a positive integer, got {max_steps!r}")
    max_steps = int(max_steps)
    if solver is None:
        solver = AutoSwitch()
    _check_solver(solver)
    if not (rtol >= 0 and atol > 0):
        raise ValueError(
            f"solve: need rtol >= 0 and atol > 0 (atol keeps the error scale positive), got {rtol=}, {atol=}"
        )
    if isinstance(dt0, int | float) and not dt0 > 0:
        raise ValueError(f"solve: dt0 must be positive (t1 < t0 sets the direction), got {dt0!r}")
    if controller is None:
        controller = ConstantStepSize() if adaptive is False or not solver.adaptive else PIDController()
    if adaptive is None:
        adaptive = solver.adaptive and not isinstance(controller, ConstantStepSize)
    if adaptive and not solver.adaptive:
        raise ValueError(
            f"solve: {type(solver).__name__} has no error estimate, so it cannot adapt its step; "
            "pass dt0 for constant steps or use an adaptive solver (Bosh3, Dopri5, Tsit5)"
        )
    if isinstance(controller, ConstantStepSize):
        adaptive = False
    if not adaptive and dt0 is None:
        raise ValueError(f"solve: constant steps with {type(solver).__name__} need the step size dt0")

    events = as_events(events)
    if sensitivity is None:
        # Event times differentiate through the checkpointed loop only.
        sensitivity = (
            RecursiveCheckpointAdjoint()
            if events
            else choose_sensitivity(vector_field, y0, t_span, args, saveat, solver, adaptive)
        )
    if not isinstance(sensitivity, RecursiveCheckpointAdjoint):
        if events:
            raise NotImplementedError(
                f"solve: events need sensitivity=RecursiveCheckpointAdjoint(), got {type(sensitivity).__name__}; "
                "pass that sensitivity (or None) with events"
            )
        options = {"solver": solver, "rtol": rtol, "atol": atol, "dt0": dt0, "adaptive": adaptive}
        options.update(controller=controller, max_steps=max_steps, throw=throw, progress=progress)
        return solve_with_sensitivity(sensitivity, vector_field, y0, t_span, args, saveat, options)

    # An eager explicit Runge-Kutta solve on NumPy arrays, or on a dx.vmap
    # batch of them, runs in NumPy (_loop_numpy.py). The generic loop below
    # takes every other solve.
    if not events and not progress:
        solution = solve_numpy(
            vector_field,
            y0,
            t_span,
            args,
            solver=solver,
            saveat=saveat,
            rtol=rtol,
            atol=atol,
            dt0=dt0,
            adaptive=adaptive,
            controller=controller,
            max_steps=max_steps,
            throw=throw,
        )
        if solution is not None:
            return solution

    y_vec, unravel, shapes, treedef = _ravel(y0)
    f = _flat_vector_field(vector_field, args, unravel, shapes, treedef)
    zero = dx.zeros_like(y_vec[0])
    t0 = zero + t_span[0]
    t1 = zero + t_span[1]
    direction = dx.astype(dx.where(t1 >= t0, 1.0, -1.0), zero.dtype)
    tracker = EventTracker(events, args, unravel, solver.interpolate, direction) if events else None
    progress_bar = ProgressBar(t0, t1) if progress else None

    ts_save = None
    if saveat.ts is not None:
        ts_save = _save_times(zero, saveat.ts)
        if _is_concrete(ts_save) and _is_concrete(t0) and _is_concrete(t1):
            _check_ts(np.asarray(value_of(ts_save)), float(value_of(t0)), float(value_of(t1)))

    f0 = f(t0, y_vec)
    num_fevals = 1
    if adaptive and dt0 is None:
        # A non-finite y0 or f0 gives a nan guess here and stops the loop at
        # once with status NONFINITE, so NumPy's warnings would only be noise.
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            h0 = initial_step_size(f, t0, y_vec, f0, solver.order, rtol, atol, direction)
        num_fevals += 1
    else:
        h0 = dx.abs(zero + dt0)
    h0 = dx.stop_gradient(dx.astype(h0, zero.dtype))

    state = initial_state(solver, saveat, max_steps, t0, y_vec, f0, h0 * direction, ts_save)
    state["solver_state"] = solver.init_state(f, t0, y_vec, f0, rtol, atol)
    if tracker is not None:
        state.update(tracker.initial_state(t0, y_vec))
    body = make_step(f, solver, controller, saveat, adaptive, rtol, atol, t1, direction, ts_save, tracker, progress_bar)

    def keep_going(s: dict[str, Any]) -> Any:
        running = (s["status"] == 0) & ((t1 - s["t"]) * direction > 0)
        return running if tracker is None else running & ~tracker.stopped(s)

    state = dx.while_loop(keep_going, body, state, max_steps=max_steps)

    unfinished = keep_going(state)
    status = dx.where(unfinished, int(Status.MAX_STEPS_REACHED), state["status"])
    stats = {
        "num_steps": state["num_steps"],
        "num_accepted": state["num_accepted"],
        "num_rejected": state["num_steps"] - state["num_accepted"],
    }
    stats.update(solver.statistics(state["solver_state"], state["num_steps"]))
    stats["num_fevals"] = stats["num_fevals"] + num_fevals
    solution = _assemble(solver, saveat, state, status, stats, t0, y_vec, unravel, tracker)
    if progress_bar is not None:
        final_t = state["t"]
        if tracker is not None:
            final_t = dx.where(tracker.stopped(state), state["event_time"], final_t)
        progress_bar.close(final_t)

    if throw:
        checked = raise_if_failed(status, state["t"], t1, state["num_steps"])
        if checked is not None:
            solution = depend_on_check(solution, checked)
    return solution


def _save_times(like: Any, ts: Any) -> Any:
    """Convert ``SaveAt.ts`` to a 1-D array with the dtype of ``like`` (the state's)."""
    times = dx.reshape(dx.zeros_like(like) + ts, (-1,))
    return dx.astype(times, like.dtype) if times.dtype != like.dtype else times


def _check_ts(ts: np.ndarray, t0: float, t1: float) -> None:
    low, high = min(t0, t1), max(t0, t1)
    if ts.size and (ts.min() < low or ts.max() > high):
        raise ValueError(f"SaveAt: ts must lie in [{low}, {high}], got values from {ts.min()} to {ts.max()}")
    steps = np.diff(ts) * (1.0 if t1 >= t0 else -1.0)
    if np.any(steps < 0):
        raise ValueError("SaveAt: ts must be ordered in the direction of integration (from t0 to t1)")


# --------------------------------------------------------------------------
# The Solution
# --------------------------------------------------------------------------


def _assemble(
    solver: AbstractRungeKutta,
    saveat: SaveAt,
    state: dict[str, Any],
    status: Any,
    stats: dict[str, Any],
    t0: Any,
    y0: Any,
    unravel: Callable[[Any], Any],
    tracker: EventTracker | None = None,
) -> Solution:
    ts_parts, ys_parts = [], []
    if saveat.t0:
        ts_parts.append(t0[None])
        ys_parts.append(y0[None])
    if saveat.ts is not None:
        ts_parts.append(_save_times(t0, saveat.ts))
        ys_parts.append(state["ys_at_ts"])
    # After a terminal event the last step saved and the final state are
    # those at the event; the dense output keeps the whole last step.
    final_t, final_y = state["t"], state["y"]
    if tracker is not None:
        stopped = tracker.stopped(state)
        final_t = dx.where(stopped, state["event_time"], final_t)
        final_y = dx.where(stopped, state["event_y"], final_y)
    if saveat.steps:
        step_ts, step_ys = state["step_ts"], state["step_ys"]
        if tracker is not None:
            last_row = (positions(step_ts) == state["num_accepted"]) & tracker.stopped(state)
            step_ts = dx.where(last_row, final_t, step_ts)
            step_ys = dx.where(last_row[:, None], final_y[None, :], step_ys)
        if _is_concrete(state["num_accepted"]):
            count = int(value_of(state["num_accepted"])) + 1
            step_ts, step_ys = step_ts[:count], step_ys[:count]
        ts_parts.append(step_ts)
        ys_parts.append(step_ys)
    if saveat.t1:
        final_ok = status == 0
        ts_parts.append(final_t[None])
        ys_parts.append(dx.where(final_ok, final_y, float("nan"))[None])

    ts = ys = None
    if len(ts_parts) == 1:
        ts, ys = ts_parts[0], ys_parts[0]
    elif ts_parts:
        ts, ys = dx.concat(ts_parts), dx.concat(ys_parts)
    dense = None
    if saveat.dense:
        dense = (state["step_ts"], state["step_ys"], state["step_fs"], state["step_ks"], state["num_accepted"])
    return Solution(
        ts=ts,
        ys=None if ys is None else unravel(ys),
        stats=stats,
        status=status,
        dense=dense,
        interpolate=solver.interpolate,
        unravel=unravel,
        events=None if tracker is None else tracker.record(state),
    )
