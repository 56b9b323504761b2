"""A line search for the strong Wolfe conditions (Nocedal & Wright, ch. 3).

Along a descent direction ``p`` from ``x``, with ``phi(a) = f(x + a p)``, the
search looks for a step ``a > 0`` with

* sufficient decrease: ``phi(a) <= phi(0) + c1 a phi'(0)``, and
* curvature: ``|phi'(a)| <= c2 |phi'(0)|``,

using Algorithm 3.5 of Nocedal & Wright, Numerical Optimization (2nd ed.,
2006). The search widens the step until an interval that contains such a
step is bracketed, then shrinks it with ``zoom`` (Algorithm 3.6). The trial
steps of zoom are the minimisers of the cubic interpolant of both ends
(eq. 3.59), else of the quadratic through ``phi(lo)``, ``phi'(lo)`` and
``phi(hi)``, else the midpoint.

Each iteration of the search evaluates ``f`` and its gradient once. The
search is a ``dx.while_loop`` over an explicit state whose branches are
``dx.where`` selections between scalars, so it runs as a Python loop on
NumPy and as one ``jax.lax.while_loop`` on JAX, inside ``dx.jit`` too.

Departures from the textbook: a trial point where ``f`` or its gradient is
not finite counts as a step that is too long (the search shrinks it rather
than failing), and when the step reaches ``max_step`` (the edge of a feasible
box in L-BFGS-B) with sufficient decrease and a still negative slope, that
step is accepted, because no longer step is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import difflux.core as dx

ValueAndGrad = Callable[[Any], tuple[Any, Any]]

# Trial steps in zoom keep this fraction of the interval away from its ends,
# so that no trial repeats an end point.
_ZOOM_MARGIN = 0.1
# Steps in the bracketing phase grow by a factor between these two.
_MIN_GROWTH = 1.1
_MAX_GROWTH = 4.0


class LineSearchResult(dx.Module):
    """The outcome of :func:`line_search`.

    Attributes:
        step: the accepted step length ``a`` (0 when the search failed).
        x: the accepted point ``x + a p`` (``x`` when the search failed).
        fun: the objective at ``x``.
        grad: its gradient at ``x``.
        slope: the directional derivative ``grad . p`` at ``x``.
        n_fev: the number of objective and gradient evaluations.
        success: whether the accepted point satisfies the strong Wolfe
            conditions (or is the sufficient-decrease point at ``max_step``).
    """

    step: Any
    x: Any
    fun: Any
    grad: Any
    slope: Any
    n_fev: Any
    success: Any


# --------------------------------------------------------------------------
# Interpolation (Nocedal & Wright, section 3.5)
# --------------------------------------------------------------------------


def _cubic_minimiser(a: Any, fa: Any, da: Any, b: Any, fb: Any, db: Any) -> tuple[Any, Any]:
    """Return the minimiser of the cubic through ``(a, fa, da)`` and ``(b, fb, db)`` and whether it exists."""
    finite = dx.isfinite(fa) & dx.isfinite(fb) & dx.isfinite(da) & dx.isfinite(db) & (a != b)
    fa, fb, da, db = (dx.where(finite, v, 0.0) for v in (fa, fb, da, db))
    b_safe = dx.where(finite, b, a + 1.0)
    d1 = da + db - 3.0 * (fa - fb) / (a - b_safe)
    discriminant = d1 * d1 - da * db
    d2 = dx.sign(b_safe - a) * dx.sqrt(dx.maximum(discriminant, 0.0))
    denominator = db - da + 2.0 * d2
    valid = finite & (discriminant >= 0.0) & (denominator != 0.0)
    step = b_safe - (b_safe - a) * (db + d2 - d1) / dx.where(valid, denominator, 1.0)
    return step, valid & dx.isfinite(step)


def _quadratic_minimiser(a: Any, fa: Any, da: Any, b: Any, fb: Any) -> tuple[Any, Any]:
    """Return the minimiser of the quadratic with ``(a, fa, da)`` and value ``fb`` at ``b``, and whether it exists."""
    finite = dx.isfinite(fa) & dx.isfinite(fb) & dx.isfinite(da)
    width = dx.where(finite, b - a, 1.0)
    curvature = dx.where(finite, fb - fa - da * width, 0.0)
    valid = curvature > 0.0
    step = a - da * width * width / (2.0 * dx.where(valid, curvature, 1.0))
    return step, valid & dx.isfinite(step)


def _zoom_trial(lo: Any, f_lo: Any, d_lo: Any, hi: Any, f_hi: Any, d_hi: Any) -> Any:
    """Return the next trial step inside ``(lo, hi)``: cubic, else quadratic, else midpoint.

    An interpolated step that falls inside the interval but near one of its
    ends is moved to 10% of the width from that end. Near the minimiser the
    cubic's step lands next to ``lo``, and rejecting it for the midpoint (as
    a plain safeguard would) turns fast convergence into bisection, while
    moving it usually makes it the new ``hi`` of a much shorter interval.
    """
    left = dx.minimum(lo, hi)
    right = dx.maximum(lo, hi)
    margin = _ZOOM_MARGIN * (right - left)

    def inside(step: Any, valid: Any) -> Any:
        return valid & (step >= left) & (step <= right)

    with np.errstate(all="ignore"):  # overflow in the interpolants; those steps are rejected
        cubic, cubic_ok = _cubic_minimiser(lo, f_lo, d_lo, hi, f_hi, d_hi)
        quadratic, quadratic_ok = _quadratic_minimiser(lo, f_lo, d_lo, hi, f_hi)
    midpoint = 0.5 * (lo + hi)
    use_cubic = inside(cubic, cubic_ok)
    use_quadratic = ~use_cubic & inside(quadratic, quadratic_ok)
    step = dx.where(use_cubic, cubic, dx.where(use_quadratic, quadratic, midpoint))
    return dx.clip(step, left + margin, right - margin)


def _extrapolation_trial(previous: Any, f_prev: Any, d_prev: Any, step: Any, f_step: Any, d_step: Any) -> Any:
    """Return a longer trial step: the cubic's minimiser kept between 1.1 and 4 times the last increase."""
    increase = step - previous
    low = step + _MIN_GROWTH * increase
    high = step + _MAX_GROWTH * increase
    with np.errstate(all="ignore"):
        cubic, cubic_ok = _cubic_minimiser(previous, f_prev, d_prev, step, f_step, d_step)
    return dx.where(cubic_ok & (cubic > step), dx.clip(cubic, low, high), high)


# --------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------


def strong_wolfe(
    value_and_grad: ValueAndGrad,
    x: Any,
    direction: Any,
    value: Any,
    grad: Any,
    *,
    slope: Any = None,
    initial_step: Any = 1.0,
    max_step: Any = math.inf,
    project: Callable[[Any], Any] | None = None,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_evals: int = 20,
) -> LineSearchResult:
    """Search ``x + a * direction`` for a step satisfying the strong Wolfe conditions.

    ``value_and_grad`` maps a point to the objective and its gradient, arrays
    of the shape of ``x``; ``value`` and ``grad`` are their values at ``x``.
    ``project`` (the projection onto a box, in L-BFGS-B) is applied to every
    trial point, to keep rounding from leaving the feasible set. The search
    fails at once (``success`` false, no evaluation) unless ``slope``, the
    directional derivative at ``x``, is finite and negative.
    """
    if slope is None:
        slope = dx.sum(grad * direction)
    zero = dx.zeros_like(value)
    initial_step = zero + initial_step
    max_step = zero + max_step
    threshold = c1 * slope
    curvature_bound = -c2 * slope
    eps = float(dx.finfo(value.dtype).eps)

    def point(step: Any) -> Any:
        moved = x + step * direction
        return moved if project is None else project(moved)

    state = {
        "step": dx.minimum(initial_step, max_step),
        # The previous trial of the bracketing phase (first the start, a = 0).
        "prev": zero,
        "f_prev": value,
        "d_prev": slope,
        # The zoom interval: lo has the lowest value seen with sufficient decrease.
        "lo": zero,
        "f_lo": value,
        "d_lo": slope,
        "hi": zero,
        "f_hi": value,
        "d_hi": slope,
        "zooming": dx.zeros_like(value, dtype=dx.bool),
        "done": dx.zeros_like(value, dtype=dx.bool),
        "n_fev": dx.zeros_like(value, dtype=dx.int32),
        "x": x,
        "f": value,
        "g": grad,
        "d": slope,
        "accepted": zero,
    }
    can_start = dx.isfinite(slope) & (slope < 0.0)

    def keep_going(s: dict[str, Any]) -> Any:
        interval = dx.abs(s["hi"] - s["lo"])
        collapsed = s["zooming"] & (interval <= eps * dx.maximum(dx.abs(s["lo"]), dx.abs(s["hi"])))
        return can_start & ~s["done"] & (s["n_fev"] < max_evals) & ~collapsed

    def iterate(s: dict[str, Any]) -> dict[str, Any]:
        step = s["step"]
        trial = point(step)
        f_raw, g_raw = value_and_grad(trial)
        finite = dx.isfinite(f_raw) & dx.all(dx.isfinite(g_raw))
        f = dx.where(finite, f_raw, math.inf)
        g = dx.where(finite, g_raw, 0.0)
        d = dx.where(finite, dx.sum(g * direction), math.nan)
        decrease = finite & (f <= value + step * threshold)
        curvature = finite & (dx.abs(d) <= curvature_bound)
        zooming = s["zooming"]

        # Bracketing (Algorithm 3.5): is [prev, step] or [step, prev] known to hold a Wolfe step?
        too_long = ~decrease | ((s["n_fev"] > 0) & (f >= s["f_prev"]))
        uphill = ~too_long & ~curvature & (d >= 0.0)
        at_max = ~too_long & ~curvature & ~uphill & (step >= max_step)
        bracket_done = ~too_long & (curvature | at_max)
        start_zoom = ~zooming & (too_long | uphill)

        # Zoom (Algorithm 3.6): shrink [lo, hi] around the step.
        replaces_hi = ~decrease | (f >= s["f_lo"])
        zoom_done = ~replaces_hi & curvature
        flips = ~replaces_hi & ~curvature & (d * (s["hi"] - s["lo"]) >= 0.0)

        done = dx.where(zooming, zoom_done, bracket_done)

        # The new zoom interval. Entering zoom from bracketing: too long gives
        # [prev, step], uphill gives [step, prev].
        enter_lo = dx.where(too_long, s["prev"], step)
        enter_hi = dx.where(too_long, step, s["prev"])
        enter_f_lo = dx.where(too_long, s["f_prev"], f)
        enter_f_hi = dx.where(too_long, f, s["f_prev"])
        enter_d_lo = dx.where(too_long, s["d_prev"], d)
        enter_d_hi = dx.where(too_long, d, s["d_prev"])
        # Inside zoom: the step replaces hi, or becomes lo (the old lo becoming hi on a flip).
        zoom_hi = dx.where(replaces_hi, step, dx.where(flips, s["lo"], s["hi"]))
        zoom_f_hi = dx.where(replaces_hi, f, dx.where(flips, s["f_lo"], s["f_hi"]))
        zoom_d_hi = dx.where(replaces_hi, d, dx.where(flips, s["d_lo"], s["d_hi"]))
        zoom_lo = dx.where(replaces_hi, s["lo"], step)
        zoom_f_lo = dx.where(replaces_hi, s["f_lo"], f)
        zoom_d_lo = dx.where(replaces_hi, s["d_lo"], d)

        lo = dx.where(zooming, zoom_lo, dx.where(start_zoom, enter_lo, s["lo"]))
        hi = dx.where(zooming, zoom_hi, dx.where(start_zoom, enter_hi, s["hi"]))
        f_lo = dx.where(zooming, zoom_f_lo, dx.where(start_zoom, enter_f_lo, s["f_lo"]))
        f_hi = dx.where(zooming, zoom_f_hi, dx.where(start_zoom, enter_f_hi, s["f_hi"]))
        d_lo = dx.where(zooming, zoom_d_lo, dx.where(start_zoom, enter_d_lo, s["d_lo"]))
        d_hi = dx.where(zooming, zoom_d_hi, dx.where(start_zoom, enter_d_hi, s["d_hi"]))
        now_zooming = zooming | start_zoom

        longer = dx.minimum(_extrapolation_trial(s["prev"], s["f_prev"], s["d_prev"], step, f, d), max_step)
        next_step = dx.where(now_zooming, _zoom_trial(lo, f_lo, d_lo, hi, f_hi, d_hi), longer)

        return {
            "step": dx.where(done, step, next_step),
            "prev": dx.where(now_zooming, s["prev"], step),
            "f_prev": dx.where(now_zooming, s["f_prev"], f),
            "d_prev": dx.where(now_zooming, s["d_prev"], d),
            "lo": lo,
            "f_lo": f_lo,
            "d_lo": d_lo,
            "hi": hi,
            "f_hi": f_hi,
            "d_hi": d_hi,
            "zooming": now_zooming,
            "done": done,
            "n_fev": s["n_fev"] + 1,
            "x": dx.where(done, trial, s["x"]),
            "f": dx.where(done, f, s["f"]),
            "g": dx.where(done, g, s["g"]),
            "d": dx.where(done, d, s["d"]),
            "accepted": dx.where(done, step, s["accepted"]),
        }

    final = dx.while_loop(keep_going, iterate, state)
    return LineSearchResult(
        step=final["accepted"],
        x=final["x"],
        fun=final["f"],
        grad=final["g"],
        slope=final["d"],
        n_fev=final["n_fev"],
        success=final["done"],
    )


def line_search(
    fun: Callable[..., Any],
    x: Any,
    direction: Any,
    *,
    args: tuple[Any, ...] = (),
    initial_step: float = 1.0,
    max_step: float = math.inf,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_evals: int = 20,
) -> LineSearchResult:
    """Find a step along ``direction`` that satisfies the strong Wolfe conditions.

    With ``phi(a) = fun(x + a * direction, *args)`` the accepted step ``a``
    satisfies

    .. math::

        \\phi(a) \\le \\phi(0) + c_1 a \\phi'(0), \\qquad
        |\\phi'(a)| \\le c_2 |\\phi'(0)|,

    found by bracketing and zoom with cubic and quadratic interpolation
    (Nocedal & Wright, Numerical Optimization, 2nd ed., Algorithms 3.5 and
    3.6). The gradients come from ``dx.value_and_grad``. The search runs on
    NumPy and JAX, inside ``dx.jit`` too.

    Args:
        fun: the objective, a scalar function of an array ``x``.
        x: the starting point, a floating-point array of any shape.
        direction: the search direction, an array of the shape of ``x``; it
            must be a descent direction (``grad . direction < 0``), else the
            search fails without evaluating ``fun``.
        args: extra positional arguments of ``fun``.
        initial_step: the first trial step.
        max_step: the maximum step length.
        c1: the sufficient-decrease constant, ``0 < c1 < c2``.
        c2: the curvature constant, ``c1 < c2 < 1`` (0.9 suits quasi-Newton
            directions, 0.1 conjugate gradients).
        max_evals: the most evaluations of ``fun`` before the search fails.

    Returns:
        A :class:`LineSearchResult`; ``success`` says whether the conditions hold.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> result = optim.line_search(lambda x: (x[0] - 3.0) ** 2, np.zeros(1), np.ones(1), c2=0.1)
        >>> bool(result.success), float(result.step)
        (True, 3.0)
    """
    if not 0.0 < c1 < c2 < 1.0:
        raise ValueError(f"line_search: the constants must satisfy 0 < c1 < c2 < 1, got c1={c1} and c2={c2}.")
    if isinstance(max_evals, bool) or not isinstance(max_evals, int) or max_evals < 1:
        raise ValueError(f"line_search: max_evals must be a positive integer, got {max_evals!r}.")
    if not initial_step > 0.0 or not max_step > 0.0:
        raise ValueError(f"line_search: initial_step and max_step must be positive, got {initial_step} and {max_step}.")
    x = dx.asarray(x)
    direction = dx.asarray(direction)
    if tuple(direction.shape) != tuple(x.shape):
        raise ValueError(
            f"line_search: direction has shape {tuple(direction.shape)} but x has shape {tuple(x.shape)}; "
            "they must be equal."
        )
    value_and_grad = dx.value_and_grad(lambda point: fun(point, *args))

    def evaluate(point: Any) -> tuple[Any, Any]:
        value, grad = value_and_grad(point)
        return dx.astype(dx.asarray(value), x.dtype), grad

    value, grad = evaluate(x)
    result = strong_wolfe(
        evaluate,
        x,
        direction,
        value,
        grad,
        initial_step=initial_step,
        max_step=max_step,
        c1=c1,
        c2=c2,
        max_evals=max_evals,
    )
    return dx.replace(result, n_fev=result.n_fev + 1)
