"""Events: zero crossings of ``condition(t, y, args)`` located on the dense output.

After every accepted step the loop evaluates each condition at the step's
end and compares its sign with the value at the step's start. Where the
sign changes (in the event's direction), the crossing is located inside the
step on the solver's interpolant ``y(t0 + theta h)`` by the Illinois method
(regula falsi that halves the retained end's value when the same end is
kept twice, M. Dowell and P. Jarratt, BIT 11 (1971), 168-174), run on
values without derivatives until the bracket is as narrow as the
resolution of ``t``.

The located time then gets Newton steps written in differentiable
operations, ``t_e = t_c - g(t_c) / (dg/dt)(t_c)``, where ``g(t)`` is the
condition along the interpolant and ``dg/dt`` its total derivative (a
``dx.jvp``). At the root ``g(t_c) = 0``, so a step leaves the value in
place but gives the implicit-function-theorem derivative
``dt_e/dp = -(dg/dp) / (dg/dt)`` with respect to ``y0`` and ``args``.
A second step makes the second derivatives exact as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core._backend import backend_of_value
from difflux.core._core import value_of

# The Illinois iteration stops after this many steps even if the bracket is
# still wider than the resolution of t. Near a simple root it converges with
# order about 1.44, so it needs far fewer steps than this in float64.
_MAX_ITERATIONS = 100

# Differentiable Newton steps after the located time (see EventTracker._newton).
_NEWTON_STEPS = 2


@dataclasses.dataclass(frozen=True, eq=False)
class Event:
    """A zero crossing of ``condition(t, y, args)`` to stop at or to record.

    The solver checks the sign of the condition at the end of every accepted
    step and, where it changed, locates the crossing on the step's
    interpolant to the resolution of ``t``. The located time is
    differentiable with respect to ``y0`` and ``args`` (by the implicit
    function theorem, ``dt_e/dp = -(dg/dp) / (dg/dt)``).

    Attributes:
        condition: ``g(t, y, args)`` returning a scalar; ``y`` has the
            structure of ``y0``. A condition that is zero at ``t0`` does not
            fire there.
        terminal: stop the solve at the first crossing. ``Solution.ts`` and
            ``Solution.ys`` then end at the event (``SaveAt(t1=True)`` gives
            the event time and state), and values saved at later times are
            ``nan``. A non-terminal event is only recorded.
        direction: ``+1`` fires only where ``g`` crosses from negative to
            non-negative, ``-1`` only from positive to non-positive, ``0``
            both ways.
        max_records: how many crossings to keep in ``Solution.events.ts``
            and ``Solution.events.ys`` (their fixed buffer size). Later
            crossings are only counted in ``Solution.events.counts``.

    Examples:
        >>> import numpy as np
        >>> from difflux import ode
        >>> ground = ode.Event(lambda t, y, args: y[0])
        >>> fall = lambda t, y, g: np.stack([y[1], -g])
        >>> sol = ode.solve(fall, np.array([1.0, 0.0]), (0.0, 5.0), 9.81, events=ground)
        >>> round(float(sol.event_time), 9), round(float(np.sqrt(2.0 / 9.81)), 9)
        (0.451523641, 0.451523641)
    """

    condition: Callable[[Any, Any, Any], Any]
    terminal: bool = True
    direction: int = 0
    max_records: int = 16

    def __post_init__(self) -> None:
        if not callable(self.condition):
            raise TypeError(f"Event: condition must be a function g(t, y, args), got {type(self.condition).__name__}")
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"Event: direction must be -1, 0 or +1, got {self.direction!r}")
        if isinstance(self.max_records, bool) or not isinstance(self.max_records, int) or self.max_records < 1:
            raise ValueError(f"Event: max_records must be a positive integer, got {self.max_records!r}")


class EventRecord(dx.Module):
    """The events of a solve, in ``Solution.events``.

    Attributes:
        time: the time of the terminal event that stopped the solve
            (``nan`` if none fired).
        index: the position of that event in the ``events`` list passed to
            ``solve`` (``-1`` if none fired).
        y: the state at that event, with the structure of ``y0`` (``nan``
            if none fired).
        ts: one array of shape ``(max_records,)`` per event with the times
            of its crossings in order, padded with ``nan``.
        ys: the states at those crossings, one structure per event with a
            leading axis of length ``max_records``.
        counts: the number of crossings of each event, shape ``(n_events,)``
            (it may exceed ``max_records``).
    """

    time: Any
    index: Any
    y: Any
    ts: tuple[Any, ...]
    ys: tuple[Any, ...]
    counts: Any


def as_events(events: Event | Sequence[Event] | None) -> tuple[Event, ...]:
    """Return ``events`` as a tuple, checking that every entry is an :class:`Event`."""
    if events is None:
        return ()
    if isinstance(events, Event):
        return (events,)
    events = tuple(events)
    for i, event in enumerate(events):
        if not isinstance(event, Event):
            raise TypeError(f"solve: events[{i}] is a {type(event).__name__}; wrap the condition in ode.Event(...)")
    return events


# --------------------------------------------------------------------------
# Detection and location inside the solve loop
# --------------------------------------------------------------------------


class EventTracker:
    """The loop's side of events: initial entries of the loop state, the per-step update and the record."""

    def __init__(
        self,
        events: tuple[Event, ...],
        args: Any,
        unravel: Callable[[Any], Any],
        interpolate: Callable[..., Any],
        direction: Any,
    ) -> None:
        self.events = events
        self.args = args
        self.unravel = unravel
        self.interpolate = interpolate
        self.direction = direction  # the direction of integration, +1.0 or -1.0 as an array

    def conditions(self, t: Any, y: Any, args: Any) -> Any:
        """Evaluate every condition: ``t`` has shape ``(n,)`` and ``y`` shape ``(n, d)``; returns shape ``(n,)``."""
        values = []
        for k, event in enumerate(self.events):
            value = event.condition(t[k], self.unravel(y[k]), args)
            value = dx.asarray(value) if not dx.is_array(value) else value
            if tuple(value.shape) not in ((), (1,)):
                raise ValueError(
                    f"Event: condition {k} returned shape {tuple(value.shape)}; it must return a scalar g(t, y, args)"
                )
            if not dx.isdtype(value.dtype, ("real floating", "integral")):
                # Root finding needs a sign change of a continuous function:
                # a boolean jumps, and bisection on it misplaces the event.
                raise TypeError(
                    f"Event: condition {k} returned dtype {value.dtype}; it must return a real number whose sign "
                    "changes at the event, such as y[0] - 0.5 in place of y[0] > 0.5"
                )
            values.append(dx.astype(dx.reshape(value, ()), y.dtype))
        return dx.stack(values)

    def initial_state(self, t0: Any, y0: Any) -> dict[str, Any]:
        """Return the loop-state entries: the conditions at ``t0`` and empty records."""
        n, d = len(self.events), y0.shape[0]
        nan = float("nan")
        state: dict[str, Any] = {
            "event_g": self.conditions(dx.broadcast_to(t0, (n,)), dx.broadcast_to(y0[None, :], (n, d)), self.args),
            "event_time": dx.full_like(t0, nan),
            "event_y": dx.full_like(y0, nan),
            "event_index": dx.astype(dx.zeros_like(t0), dx.int32) - 1,
            "event_counts": dx.zeros((n,), dtype=dx.int32, backend=_backend(y0)),
        }
        for k, event in enumerate(self.events):
            state[f"event_ts_{k}"] = dx.full_like(_zeros(event.max_records, t0), nan)
            state[f"event_ys_{k}"] = dx.full_like(_zeros((event.max_records, d), y0), nan)
        return state

    def stopped(self, state: dict[str, Any]) -> Any:
        """Return whether a terminal event has fired."""
        return state["event_index"] >= 0

    def update(
        self,
        new: dict[str, Any],
        old: dict[str, Any],
        step: tuple[Any, ...],
        accepted: Any,
    ) -> Any:
        """Detect, locate and record crossings in an accepted step; returns where the step ends.

        ``step`` is ``(t, y, f0, t_new, y1, f1, h, ks)``. ``new`` is the loop
        state after the step and gets the updated event entries. The return
        value is the event time where a terminal event fired in this step,
        else ``t_new``.
        """
        t, y, f0, t_new, y1, f1, h, ks = step
        n = len(self.events)
        g_old = old["event_g"]
        g_new = self.conditions(dx.broadcast_to(t_new, (n,)), dx.broadcast_to(y1[None, :], (n, y1.shape[0])), self.args)
        crossed = accepted & (g_old != 0) & self._sign_changed(g_old, g_new)

        # Locate on values without derivatives, and only in a step where some
        # event crossed; the Newton step below restores the derivatives.
        plain = [dx.stop_gradient(v) for v in (t, y, f0, y1, f1, h, ks, g_old, g_new, crossed)]
        plain_args = dx.stop_gradient(self.args)
        theta = dx.cond(
            dx.any(plain[-1]),
            lambda *values: self._locate(values, plain_args),
            lambda *values: dx.ones_like(values[7]),
            *plain,
        )
        theta = dx.stop_gradient(theta)
        times, states = self._newton(t, y, f0, y1, f1, h, ks, theta, crossed)

        # The first terminal crossing in the step stops the solve; crossings
        # after it in the same step are not recorded.
        fired = dx.zeros_like(accepted)
        first = dx.full_like(theta, 2.0)[0]
        index = old["event_index"]
        event_time, event_y = old["event_time"], old["event_y"]
        for k, event in enumerate(self.events):
            if not event.terminal:
                continue
            earlier = crossed[k] & (theta[k] < first)
            first = dx.where(earlier, theta[k], first)
            index = dx.where(earlier, k, index)
            event_time = dx.where(earlier, times[k], event_time)
            event_y = dx.where(earlier, states[k], event_y)
            fired = fired | earlier
        new["event_index"] = dx.astype(index, dx.int32)
        new["event_time"] = event_time
        new["event_y"] = event_y

        counts = []
        for k, event in enumerate(self.events):
            record = crossed[k] & (theta[k] <= first)
            count = old["event_counts"][k]
            row = record & (_arange(event.max_records, count) == count)
            new[f"event_ts_{k}"] = dx.where(row, times[k], old[f"event_ts_{k}"])
            new[f"event_ys_{k}"] = dx.where(row[:, None], states[k][None, :], old[f"event_ys_{k}"])
            counts.append(count + dx.astype(record, dx.int32))
        new["event_counts"] = dx.stack(counts)
        new["event_g"] = dx.where(accepted, g_new, g_old)
        return dx.where(fired, event_time, t_new)

    def record(self, state: dict[str, Any]) -> EventRecord:
        """Return the :class:`EventRecord` of the final loop state."""
        return EventRecord(
            time=state["event_time"],
            index=state["event_index"],
            y=self.unravel(state["event_y"]),
            ts=tuple(state[f"event_ts_{k}"] for k in range(len(self.events))),
            ys=tuple(self.unravel(state[f"event_ys_{k}"]) for k in range(len(self.events))),
            counts=state["event_counts"],
        )

    # ----------------------------------------------------------------------

    def _sign_changed(self, g_old: Any, g_new: Any) -> Any:
        rising = (g_old < 0) & (g_new >= 0)
        falling = (g_old > 0) & (g_new <= 0)
        # Directions refer to t increasing; integrating backwards swaps them.
        directions = np.array([event.direction for event in self.events], dtype=np.float64)
        directions = dx.asarray(directions, dtype=g_old.dtype, backend=_backend(g_old)) * self.direction
        return dx.where(directions > 0, rising, dx.where(directions < 0, falling, rising | falling))

    def _values_along_step(
        self, t: Any, y: Any, f0: Any, y1: Any, f1: Any, h: Any, ks: Any, theta: Any, args: Any
    ) -> Any:
        """Return ``g_k(t + theta_k h, y(theta_k))`` for every event ``k``."""
        states = self.interpolate(y[None], y1[None], f0[None], f1[None], h, ks[None], theta[:, None])
        return self.conditions(t + theta * h, states, args)

    def _locate(self, values: tuple[Any, ...], args: Any) -> Any:
        """Return the crossing of every event as a fraction ``theta`` of the step (1 where none crossed).

        ``values`` is ``(t, y, f0, y1, f1, h, ks, g_old, g_new, crossed)`` without derivatives.
        """
        t, y, f0, y1, f1, h, ks, g_old, g_new, crossed = values
        finfo = dx.finfo(y.dtype)
        resolution = 4 * float(finfo.eps) * dx.maximum(dx.abs(t), dx.abs(t + h)) + float(finfo.tiny)
        tolerance = resolution / dx.abs(h)
        ones = dx.ones_like(g_old)
        # Events that did not cross get a fake bracket, so no division is by zero.
        low, f_low = dx.zeros_like(g_old), dx.where(crossed, g_old, -ones)
        high, f_high = ones, dx.where(crossed, g_new, ones)

        def unfinished(carry: tuple[Any, ...]) -> Any:
            low, _, high, f_high = carry
            open_bracket = crossed & (dx.abs(high - low) > tolerance) & (f_high != 0)
            return dx.any(open_bracket)

        def illinois(carry: tuple[Any, ...]) -> tuple[Any, ...]:
            low, f_low, high, f_high = carry
            slope = f_high - f_low
            secant = high - f_high * (high - low) / dx.where(slope != 0, slope, ones)
            secant = dx.clip(secant, dx.minimum(low, high), dx.maximum(low, high))
            f_secant = self._values_along_step(t, y, f0, y1, f1, h, ks, secant, args)
            moved = crossed & (dx.abs(high - low) > tolerance) & (f_high != 0)
            opposite = f_secant * f_high < 0
            new_low = dx.where(opposite, high, low)
            new_f_low = dx.where(opposite, f_high, 0.5 * f_low)
            return (
                dx.where(moved, new_low, low),
                dx.where(moved, new_f_low, f_low),
                dx.where(moved, secant, high),
                dx.where(moved, f_secant, f_high),
            )

        carry = (low, f_low, high, f_high)
        if _is_jax_tracer(low):
            carry = dx.while_loop(unfinished, illinois, carry, max_steps=_MAX_ITERATIONS)
        else:
            # Concrete values (NumPy, eager JAX): a Python loop avoids
            # compiling a JAX loop for every step that has a crossing.
            for _ in range(_MAX_ITERATIONS):
                if not bool(unfinished(carry)):
                    break
                carry = illinois(carry)
        low, f_low, high, f_high = carry
        best = dx.where(dx.abs(f_low) < dx.abs(f_high), low, high)
        return dx.where(crossed, best, ones)

    def _newton(
        self, t: Any, y: Any, f0: Any, y1: Any, f1: Any, h: Any, ks: Any, theta: Any, crossed: Any
    ) -> tuple[list[Any], list[Any]]:
        """Apply two differentiable Newton steps to each located time; returns the times and the states there.

        The first step, from the located time without derivatives, gives the
        exact first derivatives. Newton's iteration doubles the order of
        the derivatives it gets right, so the second step makes second
        derivatives (Hessians of event times) exact too.
        """
        times, states = [], []
        for k, event in enumerate(self.events):
            t_event = t + theta[k] * h
            for _ in range(_NEWTON_STEPS):

                def along_step(t_at: Any, event: Event = event) -> Any:
                    state = self.interpolate(y, y1, f0, f1, h, ks, (t_at - t) / h)
                    value = event.condition(t_at, self.unravel(state), self.args)
                    value = dx.asarray(value) if not dx.is_array(value) else value
                    return dx.astype(dx.reshape(value, ()), y.dtype)

                value, rate = dx.jvp(along_step, (t_event,), (dx.ones_like(t_event),))
                # Where no event crossed, the rate may be 0: divide by 1 there
                # so the masked-out branch keeps finite derivatives.
                usable = crossed[k] & (rate != 0)
                t_event = t_event - dx.where(usable, value / dx.where(usable, rate, 1.0), 0.0)
            times.append(t_event)
            states.append(self.interpolate(y, y1, f0, f1, h, ks, (t_event - t) / h))
        return times, states


def _is_jax_tracer(x: Any) -> bool:
    return type(value_of(x)).__name__.endswith("Tracer")


def _backend(like: Any) -> str:
    return backend_of_value(value_of(like)) or "numpy"


def _zeros(shape: Any, like: Any) -> Any:
    return dx.zeros(shape, dtype=like.dtype, backend=_backend(like))


def _arange(n: int, like: Any) -> Any:
    return dx.asarray(np.arange(n, dtype=np.int32), backend=_backend(like))
