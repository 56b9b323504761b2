"""The result of ``solve``: saved values, dense output, statistics and status."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core._core import value_of


class Status(enum.IntEnum):
    """The reason ``solve`` stopped; ``Solution.status`` contains the integer code."""

    SUCCESSFUL = 0
    MAX_STEPS_REACHED = 1
    NONFINITE = 2
    DT_UNDERFLOW = 3
    NEWTON_FAILED = 4


MESSAGES = {
    Status.SUCCESSFUL: "The solver reached t1.",
    Status.MAX_STEPS_REACHED: (
        "The solver took max_steps steps (accepted and rejected) before reaching t1. Raise max_steps, "
        "loosen rtol/atol, or check whether the problem is stiff (an implicit solver suits stiff problems)."
    ),
    Status.NONFINITE: (
        "The vector field returned a non-finite value (nan or inf) at an accepted state, or a fixed-step "
        "solver produced one. Check the vector field, its args and y0, or take smaller steps."
    ),
    Status.DT_UNDERFLOW: (
        "The step size fell below the resolution of t, so the solver cannot make progress. The solution "
        "may blow up here, or the vector field may return non-finite values for the trial states."
    ),
    Status.NEWTON_FAILED: (
        "The implicit solver's Newton iteration kept failing to converge, even after the step size was cut. "
        "Loosen rtol/atol, give a better Jacobian, or check the vector field for non-smooth points."
    ),
}


class ODESolveError(RuntimeError):
    """Raised by ``solve(..., throw=True)`` when the solve did not reach ``t1``."""


def raise_if_failed(status: Any, t: Any, t1: Any, num_steps: Any) -> Any:
    """Raise :class:`ODESolveError` if ``status`` is not ``SUCCESSFUL``.

    With concrete values it raises at once and returns ``None``. Inside
    ``jax.jit`` the status is only known when the compiled code runs. Then
    the function returns a boolean array that a host callback computes, and
    only when a solve failed, raising the error. JAX reports it as a
    ``JaxRuntimeError`` that contains this message, or as a ``ValueError``
    from later calls of the same compiled function (seen with JAX 0.10).
    The caller makes its outputs depend on that array (see
    :func:`depend_on_check`), so that the check runs whenever they are used.
    Under ``vmap`` the values are batched and the first failing entry is
    reported.
    """
    values = [dx.stop_gradient(value) for value in (status, t, t1, num_steps)]
    values = [value_of(value) for value in values]
    if not any(type(value).__name__.endswith("Tracer") for value in values):
        _raise_failure(*values)
        return None

    import jax
    import jax.numpy as jnp

    def check(*failure: Any) -> np.ndarray:
        _raise_failure(*failure)
        return np.ones(np.shape(failure[0]), dtype=np.bool_)

    # A pure callback in a branch costs nothing while the branch does not
    # run. jax.debug.callback would have a side effect, which made each call
    # of the compiled neural-ODE gradient in benchmarks/bench_neural_ode.py
    # about 0.5 ms slower on CPU (of 1.3 ms), even in a branch that never ran.
    def report(*failure: Any) -> Any:
        shape = jax.ShapeDtypeStruct((), np.bool_)
        return jax.pure_callback(check, shape, *failure, vmap_method="broadcast_all")

    return jax.lax.cond(jnp.any(values[0] != 0), report, lambda *failure: jnp.asarray(True), *values)


def depend_on_check(solution: Solution, checked: Any) -> Solution:
    """Return ``solution`` with ``ts`` and ``ys`` made to depend on the result of :func:`raise_if_failed`.

    ``checked`` is true once the status has been checked, so the values stay
    the same. Without the dependency XLA would remove the check.
    """
    nan = float("nan")
    ts = None if solution.ts is None else dx.where(checked, solution.ts, nan)
    ys = dx.tree_map(lambda leaf: dx.where(checked, leaf, nan), solution.ys)
    return dx.replace(solution, ts=ts, ys=ys)


def _raise_failure(status: Any, t: Any, t1: Any, num_steps: Any) -> None:
    codes = np.asarray(status).reshape(-1)
    if not np.any(codes != 0):
        return
    entry = int(np.argmax(codes != 0))
    t, t1, num_steps = (
        np.broadcast_to(np.asarray(value), np.shape(status)).reshape(-1)[entry] for value in (t, t1, num_steps)
    )
    code = Status(int(codes[entry]))
    where = f" (batch entry {entry})" if codes.size > 1 else ""
    raise ODESolveError(
        f"solve stopped at t = {float(t)} before t1 = {float(t1)}{where} ({code.name}, after "
        f"{int(num_steps)} steps): {MESSAGES[code]} Pass throw=False to get the partial Solution and its "
        "status instead."
    )


class Solution(dx.Module):
    """The output of :func:`difflux.ode.solve`.

    Attributes:
        ts: the saved times, shape ``(n,)``.
        ys: the saved states with the structure of ``y0`` and a leading
            axis of length ``n`` on every leaf.
        stats: ``num_steps`` (accepted and rejected), ``num_accepted``,
            ``num_rejected`` and ``num_fevals`` (vector-field evaluations).
        status: a :class:`Status` code as an integer array.
        events: an :class:`EventRecord` when ``solve`` had ``events``, else ``None``.
    """

    ts: Any
    ys: Any
    stats: dict[str, Any]
    status: Any
    dense: Any = None  # (ts, ys, fs, ks, num_accepted) arrays for evaluate()
    events: Any = None
    interpolate: Any = dx.field(static=True, default=None)
    unravel: Any = dx.field(static=True, default=None)

    @property
    def result(self) -> Status | None:
        """The status as a :class:`Status`, or ``None`` inside ``jit`` where it is not known yet."""
        value = value_of(self.status)
        try:
            return Status(int(value))
        except TypeError:
            return None

    @property
    def message(self) -> str:
        """A sentence that explains the status."""
        result = self.result
        if result is None:
            return "The status is only known when the compiled function returns."
        if result is Status.SUCCESSFUL and self.events is not None and int(value_of(self.events.index)) >= 0:
            return (
                f"Terminal event {int(value_of(self.events.index))} stopped the solve at "
                f"t = {float(value_of(self.events.time))}."
            )
        return MESSAGES[result]

    @property
    def event_time(self) -> Any:
        """The time of the terminal event that stopped the solve (``nan`` if none did)."""
        return self._events().time

    @property
    def event_index(self) -> Any:
        """The position in ``events`` of the terminal event that fired (``-1`` if none did)."""
        return self._events().index

    @property
    def event_y(self) -> Any:
        """The state at the terminal event, with the structure of ``y0`` (``nan`` if none fired)."""
        return self._events().y

    def _events(self) -> Any:
        if self.events is None:
            raise ValueError("Solution: this solve had no events; pass events=ode.Event(condition) to solve")
        return self.events

    def evaluate(self, t: Any) -> Any:
        """Evaluate the dense output at ``t`` (a scalar or a 1-D array of times in ``[t0, t1]``).

        Needs ``SaveAt(dense=True)``. Times outside the solved interval are
        extrapolated from the first or last step, except after the last
        accepted step of a failed solve, where the values are ``nan``.
        """
        if self.dense is None:
            raise ValueError("Solution.evaluate: no dense output; pass saveat=SaveAt(dense=True) to solve")
        ts, ys, fs, ks, num_accepted = self.dense
        t = dx.asarray(t) if not dx.is_array(t) else t
        scalar = len(t.shape) == 0
        t = dx.reshape(t, (-1,))
        t = dx.astype(t, ts.dtype) if t.dtype != ts.dtype else t

        # ts is padded with +inf (or -inf backwards) past the last step, so
        # searching the forward-ordered times finds the step holding t.
        direction = dx.sign(ts[1] - ts[0])
        index = dx.searchsorted(ts * direction, t * direction, side="right") - 1
        index = dx.clip(index, 0, dx.maximum(num_accepted - 1, 0))
        t_start = dx.take(ts, index, axis=0)
        h = dx.take(ts, index + 1, axis=0) - t_start
        theta = ((t - t_start) / h)[:, None]
        values = self.interpolate(
            dx.take(ys, index, axis=0),
            dx.take(ys, index + 1, axis=0),
            dx.take(fs, index, axis=0),
            dx.take(fs, index + 1, axis=0),
            h[:, None],
            dx.take(ks, index, axis=0),
            theta,
        )
        last_time = dx.take(ts, dx.reshape(num_accepted, (1,)), axis=0)[0]
        unreached = (self.status != 0) & ((t - last_time) * direction > 0)
        values = dx.where(unreached[:, None], float("nan"), values)
        return self.unravel(values[0] if scalar else values)

    def __call__(self, t: Any) -> Any:
        return self.evaluate(t)
