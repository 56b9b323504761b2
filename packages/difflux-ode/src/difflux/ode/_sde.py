"""``solve_sde``: Itô SDEs ``dy = f(t, y) dt + g(t, y) dW`` with fixed steps.

The Brownian increments come from a :class:`BrownianPath` built from an
explicit key, so a solve is reproducible, and halving ``dt`` refines the
same path (Lévy's construction, see ``_brownian.py``). The steps run in
``dx.scan``, so gradients with respect to ``y0`` and ``args`` are those of
the discrete scheme along that fixed path (pathwise derivatives), in
forward and reverse mode, eagerly and under ``jit``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

import difflux.core as dx
from difflux.core._backend import backend_of_value
from difflux.core._core import value_of

from ._brownian import BrownianPath, key_backend
from ._saveat import SaveAt
from ._solution import ODESolveError, Solution, Status
from ._solve import _ravel

Drift = Callable[[Any, Any], Any]  # (t, y) -> f on flat vectors, shape (d,)
Diffusion = Callable[[Any, Any], Any]  # (t, y) -> g, shape (d,) for diagonal noise or (d, m)


@dataclasses.dataclass(frozen=True)
class AbstractSDESolver:
    """Base class of the fixed-step Itô SDE solvers.

    A subclass sets ``strong_order`` and ``weak_order`` and implements
    :meth:`step`. ``diagonal_only`` marks a method that needs diagonal
    noise (``g_i`` depends on ``y_i`` only and multiplies ``dW_i``).
    """

    strong_order: ClassVar[float]
    weak_order: ClassVar[float]
    diagonal_only: ClassVar[bool] = False
    # Calls of the drift and the diffusion per step (a jvp counts as one call).
    evaluations_per_step: ClassVar[int] = 2

    def step(self, drift: Drift, diffusion: Diffusion, t: Any, y: Any, dt: float, dw: Any, diagonal: bool) -> Any:
        """Return the state after one step of size ``dt`` with Brownian increment ``dw``."""
        raise NotImplementedError


def noise_term(g: Any, dw: Any, diagonal: bool) -> Any:
    """Return ``g dW``: elementwise for diagonal noise, else the matrix-vector product."""
    return g * dw if diagonal else g @ dw


def solve_sde(
    drift: Callable[[Any, Any, Any], Any],
    diffusion: Callable[[Any, Any, Any], Any],
    y0: Any,
    t_span: tuple[float, float],
    args: Any = None,
    *,
    key: Any,
    dt: float,
    solver: AbstractSDESolver | None = None,
    saveat: SaveAt = SaveAt(t1=True),  # noqa: B008 (immutable)
    noise_shape: tuple[int, ...] | None = None,
    throw: bool = True,
) -> Solution:
    """Solve the Itô SDE ``dy = drift(t, y, args) dt + diffusion(t, y, args) dW`` with fixed steps ``dt``.

    Args:
        drift: ``f(t, y, args)`` with the structure and shapes of ``y``.
        diffusion: ``g(t, y, args)``. With diagonal noise (``noise_shape=None``)
            it has the structure and shapes of ``y`` and each entry
            multiplies its own Brownian motion. With ``noise_shape=(m,)`` and
            a 1-D ``y0`` of length ``d`` it returns a ``(d, m)`` matrix that
            multiplies an ``m``-dimensional Brownian increment.
        y0: the initial state (an array or a structure of arrays).
        t_span: ``(t0, t1)`` with ``t1 > t0``, concrete numbers.
        args: passed unchanged to ``drift`` and ``diffusion``; gradients
            flow to it and to ``y0``.
        key: a ``dx.random`` key on the backend of ``y0``. The same key
            gives the same Brownian path, and halving ``dt`` refines it:
            the path is sampled on the dyadic grid of ``2**L`` steps that
            spans ``t0`` to ``t0 + 2**L * dt``, ``L = ceil(log2(num_steps))``.
        dt: the step size; ``(t1 - t0) / dt`` must be a whole number of steps.
        solver: :class:`EulerMaruyama` (default) or :class:`Milstein`.
        saveat: ``t0``, ``t1``, ``steps`` (every step) and ``ts`` (times on
            the step grid) are supported; ``dense`` is not.
        noise_shape: ``None`` for diagonal noise, or ``(m,)``.
        throw: raise :class:`ODESolveError` when the state turns non-finite.
            Otherwise (and inside ``jit``) the status is ``NONFINITE`` and
            the values from the failing step on are ``nan``.

    Returns:
        A :class:`Solution` with ``ts``, ``ys``, ``stats`` (``num_steps``,
        ``num_fevals``) and ``status``.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> from difflux import ode
        >>> key = dx.random.key(0, backend="numpy")
        >>> sol = ode.solve_sde(
        ...     lambda t, y, mu: mu * y, lambda t, y, mu: 0.2 * y, np.ones(3), (0.0, 1.0), 0.5, key=key, dt=0.01
        ... )
        >>> sol.ys.shape
        (1, 3)
    """
    from ._solver_euler_maruyama import EulerMaruyama

    solver = EulerMaruyama() if solver is None else solver
    if not isinstance(solver, AbstractSDESolver):
        raise TypeError(f"solve_sde: solver must be an SDE solver (EulerMaruyama, Milstein), got {solver!r}")
    if saveat.dense:
        raise NotImplementedError("solve_sde: SaveAt(dense=True) is not supported; save steps=True or ts instead")
    diagonal = noise_shape is None
    if not diagonal and solver.diagonal_only:
        raise NotImplementedError(
            f"solve_sde: {type(solver).__name__} supports diagonal noise only (noise_shape=None); "
            f"got noise_shape={noise_shape}. Use EulerMaruyama for general noise."
        )
    t0, t1, num_steps = _grid(t_span, dt)

    y_vec, unravel, shapes, treedef = _ravel(y0)
    if key_backend(key) != _backend(y_vec):
        raise ValueError(
            f"solve_sde: the key is a {key_backend(key)} key but y0 is on {_backend(y_vec)}; "
            f"make the key with dx.random.key(seed, backend={_backend(y_vec)!r})"
        )
    d = y_vec.shape[0]
    if not diagonal and (len(shapes) != 1 or len(shapes[0]) != 1 or len(tuple(noise_shape or ())) != 1):
        raise ValueError(
            f"solve_sde: noise_shape=(m,) needs a 1-D array y0 and a 1-D noise shape, got y0 shapes {shapes} "
            f"and noise_shape={noise_shape}"
        )
    f = _flat_drift(drift, args, unravel, shapes, treedef)
    g = _flat_diffusion(diffusion, args, unravel, shapes, treedef, d, noise_shape)

    levels = max(0, math.ceil(math.log2(num_steps)))
    brownian_shape = (d,) if diagonal else tuple(noise_shape or ())
    path = BrownianPath(key, t0, dt * 2**levels, brownian_shape, dtype=y_vec.dtype)
    increments = path.increments(levels, num_steps)
    times = t0 + dt * dx.asarray(np.arange(num_steps, dtype=np.float64), dtype=y_vec.dtype, backend=_backend(y_vec))

    def step(carry: tuple[Any, Any], inputs: tuple[Any, Any]) -> tuple[tuple[Any, Any], Any]:
        y, status = carry
        t, dw = inputs
        y1 = solver.step(f, g, t, y, dt, dw, diagonal)
        failed = (status != 0) | ~dx.all(dx.isfinite(y1))
        y1 = dx.where(failed, float("nan"), y1)
        status = dx.where(failed, int(Status.NONFINITE), status)
        return (y1, dx.astype(status, dx.int32)), y1

    status0 = dx.astype(dx.zeros_like(y_vec[0]), dx.int32)
    (_, status), ys = dx.scan(step, (y_vec, status0), (times, increments))
    path_ys = dx.concat([y_vec[None], ys])

    stats = {"num_steps": num_steps, "num_fevals": num_steps * solver.evaluations_per_step}
    solution = _assemble(saveat, path_ys, status, stats, t0, t1, dt, num_steps, unravel, y_vec)
    if throw and _is_concrete(status) and int(value_of(status)) != 0:
        finite = np.all(np.isfinite(np.asarray(value_of(dx.stop_gradient(path_ys)))), axis=1)
        failed_at = t0 + dt * int(np.argmin(finite))
        code = Status(int(value_of(status)))
        raise ODESolveError(
            f"solve_sde stopped at t = {failed_at} before t1 = {t1} ({code.name}): the state became non-finite "
            "(nan or inf). Check the drift, the diffusion and y0, or take smaller steps. "
            "Pass throw=False to get the Solution (nan from there on) and its status instead."
        )
    return solution


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _grid(t_span: tuple[Any, Any], dt: Any) -> tuple[float, float, int]:
    try:
        t0, t1 = (float(value_of(dx.stop_gradient(t))) for t in t_span)
        dt = float(value_of(dx.stop_gradient(dt)))
    except (TypeError, ValueError) as error:  # a JAX tracer cannot become a float
        raise ValueError(
            "solve_sde: t_span and dt must be concrete numbers (they fix the number of steps); "
            "pass Python floats, not traced values"
        ) from error
    if not dt > 0:
        raise ValueError(f"solve_sde: dt must be positive, got {dt!r}")
    if not t1 > t0:
        raise ValueError(f"solve_sde: need t1 > t0, got t_span = ({t0}, {t1})")
    num_steps = round((t1 - t0) / dt)
    if num_steps < 1 or abs(num_steps * dt - (t1 - t0)) > 1e-9 * max(1.0, abs(t1 - t0)):
        raise ValueError(
            f"solve_sde: dt = {dt} does not divide t1 - t0 = {t1 - t0} into whole steps; "
            f"use dt = (t1 - t0) / n, e.g. {(t1 - t0) / max(num_steps, 1)}"
        )
    return t0, t1, num_steps


def _flat_drift(drift: Callable[..., Any], args: Any, unravel: Any, shapes: list[Any], treedef: Any) -> Drift:
    def f(t: Any, y: Any) -> Any:
        return _flatten_like_y("drift", drift(t, unravel(y), args), y, shapes, treedef)

    return f


def _flat_diffusion(
    diffusion: Callable[..., Any],
    args: Any,
    unravel: Any,
    shapes: list[Any],
    treedef: Any,
    d: int,
    noise_shape: tuple[int, ...] | None,
) -> Diffusion:
    def g(t: Any, y: Any) -> Any:
        out = diffusion(t, unravel(y), args)
        if noise_shape is None:
            return _flatten_like_y("diffusion", out, y, shapes, treedef)
        out = dx.asarray(out) if not dx.is_array(out) else out
        expected = (d, *noise_shape)
        if tuple(out.shape) != expected:
            raise ValueError(
                f"solve_sde: the diffusion returned shape {tuple(out.shape)}, but y0 of shape ({d},) with "
                f"noise_shape={noise_shape} needs shape {expected}"
            )
        return dx.astype(out, y.dtype) if out.dtype != y.dtype else out

    return g


def _flatten_like_y(name: str, out: Any, y: Any, shapes: list[Any], treedef: Any) -> Any:
    leaves, out_def = dx.tree_flatten(out)
    leaves = [dx.asarray(leaf) if not dx.is_array(leaf) else leaf for leaf in leaves]
    out_shapes = [tuple(leaf.shape) for leaf in leaves]
    if out_def != treedef or out_shapes != shapes:
        raise ValueError(
            f"solve_sde: the {name} returned shapes {out_shapes} (structure {out_def}), but y0 has shapes "
            f"{shapes} (structure {treedef}); {name}(t, y, args) must return the structure and shapes of y0"
        )
    leaves = [dx.astype(leaf, y.dtype) if leaf.dtype != y.dtype else leaf for leaf in leaves]
    return dx.concat([dx.reshape(leaf, (-1,)) for leaf in leaves]) if len(leaves) > 1 else dx.reshape(leaves[0], (-1,))


def _assemble(
    saveat: SaveAt,
    path_ys: Any,
    status: Any,
    stats: dict[str, Any],
    t0: float,
    t1: float,
    dt: float,
    num_steps: int,
    unravel: Any,
    like: Any,
) -> Solution:
    grid = t0 + dt * np.arange(num_steps + 1)
    grid[-1] = t1
    rows: list[int] = []
    if saveat.t0:
        rows.append(0)
    if saveat.ts is not None:
        rows.extend(_grid_rows(np.asarray(value_of(dx.stop_gradient(saveat.ts)), dtype=np.float64), grid, dt))
    if saveat.steps:
        rows.extend(range(num_steps + 1))
    if saveat.t1:
        rows.append(num_steps)
    index = dx.asarray(np.asarray(rows, dtype=np.int32), backend=_backend(like))
    ts = dx.asarray(grid[rows], dtype=like.dtype, backend=_backend(like))
    ys = dx.take(path_ys, index, axis=0)
    return Solution(ts=ts, ys=unravel(ys), stats=stats, status=status, unravel=unravel)


def _grid_rows(ts: np.ndarray, grid: np.ndarray, dt: float) -> list[int]:
    ts = ts.reshape(-1)
    rows = np.rint((ts - grid[0]) / dt).astype(np.int64)
    off_grid = (rows < 0) | (rows >= grid.size) | (np.abs(grid[np.clip(rows, 0, grid.size - 1)] - ts) > 1e-9 * dt)
    if off_grid.any():
        raise ValueError(
            f"solve_sde: SaveAt.ts must be times on the step grid t0 + k * dt within t_span; "
            f"{ts[off_grid].tolist()} are not"
        )
    return rows.tolist()


def _backend(like: Any) -> str:
    return backend_of_value(value_of(like)) or "numpy"


def _is_concrete(x: Any) -> bool:
    return not type(value_of(x)).__name__.endswith("Tracer")
