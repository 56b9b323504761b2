r"""Quantile functions without closed forms: Gamma and Beta, by bisection plus one Newton step.

The quantile :math:`x` solves :math:`F(x; \theta) = q`. Bisection on a
transformed variable (``log x`` for Gamma, ``logit x`` for Beta) finds it
to about machine precision with constant parameters, so the loop is
unrolled plain arithmetic that runs eagerly and under ``dx.jit`` alike. One
Newton step then both polishes the value and carries the derivatives:

.. math:: x = x^* - \frac{F(x^*; \theta) - q}{\operatorname{sg}[f(x^*; \theta)]}

with :math:`x^*` constant and sg the stop-gradient. At the root this gives
the implicit-function derivatives :math:`\partial x / \partial q = 1/f` and
:math:`\partial x / \partial \theta = -(\partial F / \partial \theta) / f`.
NOTE: second derivatives of these quantiles are not exact, because the step
treats the density as constant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import difflux.core as dx

# Bisection halves the bracket each time: 80 halvings shrink a bracket of
# width 800 (log or logit scale) to below 1e-21.
_BISECTIONS = 80


def _bisect(cdf: Callable[[Any], Any], q: Any, lower: Any, upper: Any, to_x: Callable[[Any], Any]) -> Any:
    """Return ``t`` in ``[lower, upper]`` with ``cdf(to_x(t))`` closest to ``q`` (an increasing map)."""
    lo, hi = lower, upper
    for _ in range(_BISECTIONS):
        middle = 0.5 * (lo + hi)
        below = cdf(to_x(middle)) < q
        lo = dx.where(below, middle, lo)
        hi = dx.where(below, hi, middle)
    return 0.5 * (lo + hi)


def _newton_step(x_star: Any, q: Any, cdf: Callable[[Any], Any], density: Callable[[Any], Any]) -> Any:
    f = dx.stop_gradient(density(x_star))
    positive = f > 0
    step = (cdf(x_star) - q) / dx.where(positive, f, 1.0)
    return x_star - dx.where(positive, step, 0.0)


def gamma_quantile(concentration: Any, q: Any) -> Any:
    """Return the ``q``-quantile of Gamma(``concentration``, 1), differentiable in both."""
    a = concentration
    a_const, q_const = dx.stop_gradient(a), dx.stop_gradient(q)
    # Zeros of the broadcast shape, backend and dtype of the arguments.
    zero = 0.0 * (a_const + q_const)
    lower = zero - 745.0
    # Far beyond the upper tail: mean + 40 standard deviations + 60.
    upper = dx.log(a_const + 40.0 * dx.sqrt(a_const) + 60.0) + zero
    t = _bisect(lambda x: dx.gammainc(a_const, x), q_const, lower, upper, dx.exp)
    x_star = dx.stop_gradient(dx.exp(t))
    density = lambda x: dx.exp(dx.xlogy(a_const - 1.0, x) - x - dx.lgamma(a_const))  # noqa: E731
    return _newton_step(x_star, q, lambda x: dx.gammainc(a, x), density)


def beta_quantile(a: Any, b: Any, q: Any) -> Any:
    """Return the ``q``-quantile of Beta(``a``, ``b``), differentiable in all three."""
    a_const, b_const, q_const = dx.stop_gradient(a), dx.stop_gradient(b), dx.stop_gradient(q)
    # Zeros of the broadcast shape, backend and dtype of the arguments.
    zero = 0.0 * (a_const + b_const + q_const)
    t = _bisect(lambda x: dx.betainc(a_const, b_const, x), q_const, zero - 745.0, zero + 40.0, dx.sigmoid)
    x_star = dx.stop_gradient(dx.sigmoid(t))
    density = lambda x: dx.exp(  # noqa: E731
        dx.xlogy(a_const - 1.0, x) + dx.xlog1py(b_const - 1.0, -x) - dx.betaln(a_const, b_const)
    )
    return _newton_step(x_star, q, lambda x: dx.betainc(a, b, x), density)
