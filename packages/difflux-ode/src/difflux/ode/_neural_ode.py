"""``NeuralODE``: a layer whose output is the solution of ``dy/dt = f_theta(y)``."""

from __future__ import annotations

from typing import Any

import numpy as np

import difflux.core as dx

from ._saveat import SaveAt
from ._sensitivity import AbstractSensitivity
from ._solve import solve
from ._solver_tsit5 import Tsit5


def _autonomous_field(t: Any, y: Any, func: Any) -> Any:
    return func(y)


def _time_dependent_field(t: Any, y: Any, func: Any) -> Any:
    return func(t, y)


class NeuralODE(dx.Module):
    """``y(t) = y0 + integral from t0 to t of func(y(s)) ds``: a neural ODE as a layer.

    ``model(y0)`` solves ``dy/dt = func(y)`` (or ``func(t, y)`` with
    ``time_dependent=True``) from ``y0`` at ``t_span[0]`` and returns the
    states at the saved times, with a leading time axis: shape
    ``(num_times, *y0.shape)``. ``y0`` may carry batch axes when ``func``
    accepts them (an ``nn.Chain`` of ``Dense`` layers maps the last axis).
    The network's parameters are the layer's parameters, so ``dx.grad``,
    ``nn.fit`` and ``optim.update`` treat it as any other layer. The solver
    settings are static fields. Reference: R. T. Q. Chen, Y. Rubanova,
    J. Bettencourt and D. Duvenaud, Neural ordinary differential equations,
    NeurIPS 2018.

    Args:
        func: the vector field, any callable ``dx.Module`` (an ``nn.Chain``,
            say) mapping ``y`` to ``dy/dt`` of the same shape.
        t_span: ``(t0, t1)``; defaults to the first and last of ``ts``.
        ts: the times to return; ``None`` returns the state at ``t1``.
        solver: the Runge-Kutta solver, :class:`Tsit5` by default.
        saveat: the outputs, overriding ``ts`` (see :class:`SaveAt`).
        rtol: the relative tolerance of the local error.
        atol: the absolute tolerance of the local error.
        sensitivity: how gradients are computed (``None``: see
            :func:`choose_sensitivity`; for a network of many parameters
            that is :class:`RecursiveCheckpointAdjoint`).
        max_steps: the maximum number of steps of one solve.
        dt0: the first step size, ``None`` to choose it.
        time_dependent: call ``func(t, y)`` instead of ``func(y)``.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> from difflux import nn, ode
        >>> func = nn.Chain(nn.Dense(2, 8, nn.tanh, key=dx.random.key(0, backend="numpy"), dtype="float64"),
        ...                 nn.Dense(8, 2, key=dx.random.key(1, backend="numpy"), dtype="float64"))
        >>> model = ode.NeuralODE(func, ts=np.linspace(0.0, 1.0, 5))
        >>> model(np.array([1.0, 0.5])).shape
        (5, 2)
    """

    func: Any
    t_span: tuple[float, float] = dx.field(static=True)
    solver: Any = dx.field(static=True)
    saveat: SaveAt = dx.field(static=True)
    rtol: float = dx.field(static=True)
    atol: float = dx.field(static=True)
    sensitivity: AbstractSensitivity | None = dx.field(static=True)
    max_steps: int = dx.field(static=True)
    dt0: float | None = dx.field(static=True)
    time_dependent: bool = dx.field(static=True)

    def __init__(
        self,
        func: Any,
        t_span: tuple[float, float] | None = None,
        *,
        ts: Any = None,
        solver: Any = None,
        saveat: SaveAt | None = None,
        rtol: float = 1e-6,
        atol: float = 1e-6,
        sensitivity: AbstractSensitivity | None = None,
        max_steps: int = 4096,
        dt0: float | None = None,
        time_dependent: bool = False,
    ) -> None:
        if not callable(func):
            raise TypeError(f"NeuralODE: func must be a callable module mapping y to dy/dt, got {type(func).__name__}")
        if ts is not None:
            ts = np.asarray(ts, dtype=float)
            if ts.ndim != 1 or ts.size == 0:
                raise ValueError(f"NeuralODE: ts must be a non-empty 1-D sequence of times, got shape {ts.shape}")
        if t_span is None:
            if ts is None:
                raise ValueError("NeuralODE: pass t_span=(t0, t1), or ts to integrate from ts[0] to ts[-1]")
            t_span = (float(ts[0]), float(ts[-1]))
        if saveat is None:
            saveat = SaveAt(ts=ts) if ts is not None else SaveAt(t1=True)
        self.func = func
        self.t_span = (float(t_span[0]), float(t_span[1]))
        self.solver = Tsit5() if solver is None else solver
        self.saveat = saveat
        self.rtol = rtol
        self.atol = atol
        self.sensitivity = sensitivity
        self.max_steps = max_steps
        self.dt0 = dt0
        self.time_dependent = time_dependent

    def solve(self, y0: Any) -> Any:
        """Return the full :class:`Solution` from ``y0`` (times, states, statistics, status)."""
        field = _time_dependent_field if self.time_dependent else _autonomous_field
        return solve(
            field,
            y0,
            self.t_span,
            self.func,
            solver=self.solver,
            saveat=self.saveat,
            rtol=self.rtol,
            atol=self.atol,
            dt0=self.dt0,
            max_steps=self.max_steps,
            sensitivity=self.sensitivity,
        )

    def __call__(self, y0: Any) -> Any:
        return self.solve(y0).ys
