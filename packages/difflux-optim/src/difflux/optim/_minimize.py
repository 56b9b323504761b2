"""``optim.minimize``: one entry point to BFGS, L-BFGS and L-BFGS-B."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ._bfgs import BFGS
from ._lbfgs import LBFGS
from ._lbfgsb import LBFGSB
from ._quasi_newton import QuasiNewton
from ._quasi_newton_result import MinimizeResult

_METHODS: dict[str, type[QuasiNewton]] = {"bfgs": BFGS, "lbfgs": LBFGS, "lbfgsb": LBFGSB}


def _method_class(method: str) -> type[QuasiNewton]:
    key = method.lower().replace("-", "").replace("_", "")
    if key not in _METHODS:
        raise ValueError(
            f"minimize: unknown method {method!r}. Choose 'bfgs', 'lbfgs' or 'lbfgs-b', "
            "or pass a method object such as optim.LBFGS(history_size=20)."
        )
    return _METHODS[key]


def minimize(
    fun: Callable[..., Any],
    x0: Any,
    method: str | QuasiNewton | None = None,
    bounds: Any = None,
    *,
    tol: float | None = None,
    ftol: float | None = None,
    max_iter: int | None = None,
    history_size: int | None = None,
    args: tuple[Any, ...] = (),
    jit: bool = False,
) -> MinimizeResult:
    """Minimise ``fun(x, *args)`` from ``x0`` with a quasi-Newton method.

    Gradients come from ``dx.value_and_grad``, so ``fun`` is written with
    difflux operations. ``x0`` is an array or any structure of
    floating-point arrays (a dict, a list, a ``dx.Module``). The methods work
    on the flattened vector and return ``x`` and ``grad`` in the structure of
    ``x0``. Every method runs eagerly on NumPy and JAX and inside
    ``dx.jit``, where the whole run compiles to one XLA loop.

    Methods:

    * ``"bfgs"``: dense inverse-Hessian BFGS (:class:`BFGS`), ``O(n^2)``
      memory, for up to a few thousand parameters.
    * ``"lbfgs"``: limited-memory BFGS (:class:`LBFGS`), ``O(history_size n)``.
    * ``"lbfgs-b"``: L-BFGS with bound constraints (:class:`LBFGSB`).

    The default is ``"lbfgs-b"`` when ``bounds`` are given and ``"lbfgs"``
    otherwise. A method object (``optim.LBFGS(history_size=20, c2=0.5)``)
    sets every option; ``tol``, ``ftol``, ``max_iter`` and ``history_size``
    given here override its own.

    Args:
        fun: the objective, a scalar function ``fun(x, *args)``.
        x0: the starting point; with bounds it is first projected onto the box.
        method: a method name, or a method object.
        bounds: bound constraints, for ``"lbfgs-b"`` only: ``(lower, upper)``
            (each ``None``, a number, an array like ``x0``, or a structure like
            ``x0``), or SciPy's sequence of ``(low, high)`` pairs, one per
            coordinate of the flattened ``x0``, with ``None`` or ``±inf`` for
            no bound, or an object with ``lb`` and ``ub`` such as
            ``scipy.optimize.Bounds``. A lower bound above its upper bound
            raises ``ValueError``.
        tol: stop when the infinity norm of the gradient (with bounds, of the
            projected gradient ``P(x - g) - x``) is at most ``tol``; default
            ``1e-5``.
        ftol: stop when a step lowers the objective by at most
            ``ftol * max(|f_old|, |f_new|, 1)`` (reported as success, status
            4); default 0 (off) for ``"bfgs"`` and ``"lbfgs"``, ``2.2e-9`` for
            ``"lbfgs-b"``, as in SciPy.
        max_iter: the most iterations; default 1000.
        history_size: the number of curvature pairs of ``"lbfgs"`` and
            ``"lbfgs-b"``; default 10.
        args: extra positional arguments of ``fun``; arrays among them are
            traced by ``jit``, so new data does not compile again.
        jit: compile the run with ``dx.jit`` (JAX arrays only; on NumPy it
            changes nothing). Compiled runs are cached per ``fun``, method and
            array shapes.

    Returns:
        A :class:`MinimizeResult` with ``x``, ``fun``, ``grad``,
        ``grad_norm``, ``n_iter``, ``n_fev``, ``success``, ``status`` and a
        ``message``. A non-finite objective or gradient at ``x0`` gives
        ``status`` 3 without iterating.

    Derivatives of the solution: ``dx.grad`` cannot differentiate through
    the iterations, because their loops have no bound on the number of
    steps. The solution ``x*(theta)`` of a smooth unconstrained problem
    solves ``grad f(x, theta) = 0``, so ``dx.custom_root`` differentiates it
    by the implicit function theorem (last example below). ``dx.vmap`` over
    ``minimize`` works on both backends.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> from difflux import optim
        >>> def rosenbrock(x):
        ...     return dx.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
        >>> result = optim.minimize(rosenbrock, np.array([-1.2, 1.0]), method="bfgs", tol=1e-8)
        >>> np.round(result.x, 6).tolist(), bool(result.success)
        ([1.0, 1.0], True)
        >>> result = optim.minimize(rosenbrock, np.array([-1.2, 1.0]), bounds=[(-2.0, 0.5), (-2.0, 2.0)])
        >>> np.round(result.x, 4).tolist()
        [0.5, 0.25]

        The derivative of a solution with respect to a parameter:

        >>> def energy(x, theta):
        ...     return dx.sum((x - theta) ** 2 + 0.1 * x**4)
        >>> def stationary(x, args):
        ...     return dx.grad(lambda z: energy(z, *args))(x)
        >>> @dx.custom_root(stationary)
        ... def solve(x0, args):
        ...     return optim.minimize(energy, x0, args=args, tol=1e-12).x
        >>> slope = dx.grad(lambda theta: dx.sum(solve(np.zeros(1), (theta,))))(np.array([1.0]))
        >>> np.round(slope, 6).tolist()  # 2 / (2 + 1.2 x*^2) at x* = 0.86883
        [0.688269]
    """
    if method is None:
        method = "lbfgs-b" if bounds is not None else "lbfgs"
    settings: dict[str, Any] = {}
    if tol is not None:
        settings["tol"] = tol
    if ftol is not None:
        settings["ftol"] = ftol
    if max_iter is not None:
        settings["max_iter"] = max_iter
    if isinstance(method, str):
        kind = _method_class(method)
    elif isinstance(method, QuasiNewton):
        kind = type(method)
    else:
        raise TypeError(
            f"minimize: method must be a name ('bfgs', 'lbfgs', 'lbfgs-b') or a method object such as "
            f"optim.BFGS(), got {type(method).__name__}."
        )
    if history_size is not None:
        if not any(field.name == "history_size" for field in dataclasses.fields(kind)):
            raise ValueError(
                f"minimize: history_size applies to 'lbfgs' and 'lbfgs-b', but the method is {kind.name!r}, "
                "which keeps a dense matrix. Drop history_size or choose a limited-memory method."
            )
        settings["history_size"] = history_size
    solver = kind(**settings) if isinstance(method, str) else dataclasses.replace(method, **settings)
    return solver.minimize(fun, x0, args=args, bounds=bounds, jit=jit)
