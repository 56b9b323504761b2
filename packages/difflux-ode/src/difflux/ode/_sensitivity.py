"""The ``sensitivity=`` options of ``solve`` and their automatic choice.

* :class:`RecursiveCheckpointAdjoint` differentiates the solver's own steps
  (discretise-then-optimise) through ``dx.while_loop``'s checkpointed
  pullback. It gives the exact derivative of the computed solution.
* :class:`BacksolveAdjoint` and :class:`InterpolatingAdjoint` solve the
  continuous adjoint equations backwards in time (optimise-then-discretise),
  inside a ``dx.custom_vjp`` around the solve.
* :class:`ForwardSensitivity` integrates the sensitivity equations
  ``S' = J_y S + J_p`` beside the state and returns them through a
  ``dx.custom_vjp``, so that reverse mode only multiplies by ``S``.

The three continuous methods return the values at ``t0``, ``SaveAt.ts`` and
``t1``. Their gradients reach ``y0``, the float leaves of ``args`` and of a
``dx.Module`` vector field, the time span and ``SaveAt.ts``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import difflux.core as dx
from difflux.core._core import Tracer

# ForwardSensitivity integrates one column of S per differentiated scalar
# (the state's entries and the parameters'), each costing about one
# vector-field evaluation per stage. The automatic choice takes it up to
# this many columns. The bound is an estimate of where it stops beating the
# checkpointed reverse pass, which costs a second forward sweep plus the
# backward sweep with each step recorded.
FORWARD_SENSITIVITY_MAX_COLUMNS = 8


@dataclasses.dataclass(frozen=True)
class AbstractSensitivity:
    """Base class of the ``sensitivity=`` options of :func:`difflux.ode.solve`."""


@dataclasses.dataclass(frozen=True)
class RecursiveCheckpointAdjoint(AbstractSensitivity):
    """Differentiate through the solver's steps (discretise-then-optimise).

    Reverse mode pulls back through ``dx.while_loop``, which stores
    ``2 * sqrt(max_steps)`` loop states and recomputes the others, so memory
    stays bounded for long adaptive solves. The gradient is the exact
    derivative of the computed solution, and it works with every ``SaveAt``
    option, dense output included. Higher derivatives (Hessian-vector
    products) differentiate the pullback again.
    """


@dataclasses.dataclass(frozen=True)
class BacksolveAdjoint(AbstractSensitivity):
    """Solve the adjoint equations backwards with the state itself (Chen et al. 2018).

    The backward pass integrates, from ``t1`` to ``t0``,

        y' = f(t, y, p),  a' = -a^T df/dy,  g_p' = -a^T df/dp,

    starting each segment between saved times from the forward solution
    there, and adds the output cotangent to ``a`` at each saved time. Memory
    is independent of the number of steps. Integrating ``y`` backwards is
    unstable for stiff or dissipative problems, and the gradient matches
    the exact one only to the tolerances. Reference: R. T. Q. Chen, Y.
    Rubanova, J. Bettencourt and D. Duvenaud, Neural ordinary differential
    equations, NeurIPS 2018.

    Attributes:
        rtol: the relative tolerance of the backward solve (``None``: the
            forward solve's).
        atol: its absolute tolerance (``None``: the forward solve's).
    """

    rtol: float | None = None
    atol: float | None = None


@dataclasses.dataclass(frozen=True)
class InterpolatingAdjoint(AbstractSensitivity):
    """Solve the adjoint equations backwards, reading ``y(t)`` from the forward dense output.

    The forward solve keeps every step's interpolant (``max_steps`` rows of
    stages), and the backward pass integrates only ``a`` and ``g_p`` (see
    :class:`BacksolveAdjoint`) with ``y(t)`` evaluated from it. Stable where
    the backsolve is not, for memory proportional to ``max_steps``.

    Attributes:
        rtol: the relative tolerance of the backward solve (``None``: the
            forward solve's).
        atol: its absolute tolerance (``None``: the forward solve's).
    """

    rtol: float | None = None
    atol: float | None = None


@dataclasses.dataclass(frozen=True)
class ForwardSensitivity(AbstractSensitivity):
    """Integrate the forward sensitivities ``S = dy/d(y0, p)`` beside the state.

    The forward pass solves ``y' = f(t, y, p)`` together with
    ``S' = J_y S + [0 | J_p]``, ``S(t0) = [I | 0]``, where each column of
    ``J_y S + J_p`` is one ``dx.jvp`` of ``f``. The reverse pass returns
    ``S^T g`` at each saved time. The cost grows with the number of columns
    (state size plus parameter count), so it suits few parameters.
    """


def _count_scalars(leaves: list[Any]) -> int:
    return sum(math.prod(leaf.shape) for leaf in leaves)


def _is_float(leaf: Any) -> bool:
    if isinstance(leaf, float):
        return True
    return dx.is_array(leaf) and dx.isdtype(leaf.dtype, "real floating")


def _traced_float_leaves(tree: Any) -> list[Any]:
    return [
        leaf for leaf in dx.tree_leaves(tree) if isinstance(leaf, Tracer) and dx.isdtype(leaf.dtype, "real floating")
    ]


def _closes_over_tracer(function: Callable[..., Any]) -> bool:
    """Return whether ``function`` (or the ``__call__`` of a module) captures a differentiated value in a closure."""
    call_method = type(function).__dict__.get("__call__")
    for candidate in (function, call_method):
        cells = getattr(candidate, "__closure__", None) or ()
        for cell in cells:
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if any(isinstance(leaf, Tracer) for leaf in dx.tree_leaves(contents)):
                return True
    return False


def _is_explicit(solver: Any) -> bool:
    """Return whether ``solver`` is an explicit Runge-Kutta method.

    Solvers for stiff problems carry arrays between steps (a Jacobian, its
    factorisation, the mode of the stiffness switch) by overriding
    ``init_state``, and explicit methods carry nothing.
    """
    from ._runge_kutta import AbstractRungeKutta

    return isinstance(solver, AbstractRungeKutta) and type(solver).init_state is AbstractRungeKutta.init_state


def choose_sensitivity(
    vector_field: Callable[..., Any],
    y0: Any,
    t_span: Any,
    args: Any,
    saveat: Any,
    solver: Any,
    adaptive: bool,
) -> AbstractSensitivity:
    """Choose the sensitivity method of ``solve(..., sensitivity=None)``.

    The rules, in order:

    1. :class:`RecursiveCheckpointAdjoint` in any of these cases: nothing
       among ``y0``, ``args``, ``t_span`` and a module vector field is
       differentiated; the vector field closes over a differentiated value;
       the outputs include ``SaveAt(steps=True)`` or ``SaveAt(dense=True)``;
       the steps are constant; or the solver is one for stiff problems (an
       implicit or Rosenbrock method, or :class:`AutoSwitch`, which turns
       implicit when it detects stiffness). It is exact, so it suits the
       discrete outputs, and the continuous methods do not help stiff
       problems. Backsolving a stiff problem is unstable, and
       forward sensitivities enlarge the implicit solver's linear systems
       ``N + 1`` times.
    2. :class:`ForwardSensitivity` when it integrates at most
       ``FORWARD_SENSITIVITY_MAX_COLUMNS`` (8) columns ``N``: the entries of
       ``y0`` plus the float entries of ``args`` and of a module vector
       field, differentiated or not, because it integrates a column for each.
    3. Otherwise :class:`RecursiveCheckpointAdjoint`.

    :class:`BacksolveAdjoint` and :class:`InterpolatingAdjoint` are never
    chosen automatically. Pass them for very long solves where the loop's
    stored states do not fit in memory.
    """
    traced = _traced_float_leaves((vector_field, y0, t_span, args))
    exact_only = (
        not traced
        or saveat.steps
        or saveat.dense
        or not adaptive
        or not _is_explicit(solver)
        or _closes_over_tracer(vector_field)
    )
    if exact_only:
        return RecursiveCheckpointAdjoint()

    parameters = [leaf for leaf in dx.tree_leaves((vector_field, args)) if _is_float(leaf)]
    columns = _count_scalars([dx.asarray(leaf) if not dx.is_array(leaf) else leaf for leaf in dx.tree_leaves(y0)])
    columns += _count_scalars([dx.asarray(leaf) if not dx.is_array(leaf) else leaf for leaf in parameters])
    if columns <= FORWARD_SENSITIVITY_MAX_COLUMNS:
        return ForwardSensitivity()
    return RecursiveCheckpointAdjoint()
