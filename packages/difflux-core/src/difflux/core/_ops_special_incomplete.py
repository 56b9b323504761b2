"""The regularised incomplete gamma and beta functions, with derivative rules.

Derivatives with respect to the upper limit ``x`` are closed forms (the
integrands) written in difflux operations, so they differentiate to any
order. Derivatives with respect to the parameters have no closed form: each is
a private primitive computed by a series or continued fraction
(``_ops_special_series.py``) on NumPy, and on JAX by XLA's own
``igamma_grad_a`` for the gamma function. Those primitives differentiate again
in ``x`` (by the closed form of the mixed derivative) but not in the
parameters, so second derivatives in ``a`` (or ``b``) raise
:class:`MissingRuleError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._backend import backend_of
from ._core import MissingRuleError, Primitive
from ._dispatch import broadcast_tangent, make_impl, shape_of, unbroadcast
from ._ops_elementwise import (
    add,
    equal,
    exp,
    log,
    log1p,
    logical_or,
    multiply,
    negative,
    subtract,
    where,
)
from ._ops_special import _scipy, xlog1py, xlogy
from ._ops_special_gamma import betaln, digamma, lgamma
from ._ops_special_series import betainc_grads, gammainc_grad_a_jax, gammainc_grad_a_numpy


def _no_second_parameter_derivative(function: str, parameters: str) -> Callable[..., Any]:
    """Build a derivative rule that raises, because parameter derivatives are not differentiable again."""

    def derivative(*args: Any, **params: Any) -> Any:
        raise MissingRuleError(
            f"dx.{function} has no second derivative with respect to {parameters}, because the "
            "first derivative in a parameter is computed numerically (by a series or continued "
            "fraction) and is not itself differentiable in the parameters. Second derivatives "
            "with respect to x, and mixed ones in x and a parameter, are available. To take a "
            "second derivative with the parameters held fixed in the inner one, pass them through "
            "dx.stop_gradient there."
        )

    return derivative


def _pullbacks_and_jvps(
    derivatives: tuple[Callable[..., Any], ...],
) -> tuple[tuple[Callable[..., Any], ...], tuple[Callable[..., Any], ...]]:
    """Build the pullbacks and jvps of a broadcasting function from its partial derivatives ``d(*args, **params)``."""

    def pullback(index: int, derivative: Callable[..., Any]) -> Callable[..., Any]:
        def rule(g: Any, out: Any, *args: Any, **params: Any) -> Any:
            return unbroadcast(multiply(g, derivative(*args, **params)), shape_of(args[index]))

        return rule

    def jvp(derivative: Callable[..., Any]) -> Callable[..., Any]:
        def rule(t: Any, out: Any, *args: Any, **params: Any) -> Any:
            return multiply(broadcast_tangent(t, out), derivative(*args, **params))

        return rule

    return (
        tuple(pullback(i, d) for i, d in enumerate(derivatives)),
        tuple(jvp(d) for d in derivatives),
    )


def _interior_log(x: Any, boundary: Any) -> Any:
    """log(x) where ``boundary`` is false and 0 where it is true (a safe value, masked later)."""
    return log(where(boundary, 1.0, x))


# -- incomplete gamma ---------------------------------------------------------------


def _gamma_density(a: Any, x: Any) -> Any:
    # dP/dx = x^(a-1) e^(-x) / Gamma(a), which xlogy makes 1 at a == 1, x == 0
    # and 0 for a > 1, x == 0.
    return exp(subtract(subtract(xlogy(subtract(a, 1.0), x), x), lgamma(a)))


def _gammainc_grad_a_dx(a: Any, x: Any) -> Any:
    # d/dx (dP/da) = d/da (dP/dx) = dP/dx * (log x - digamma(a)), taken as 0
    # at x == 0. That is its limit for a > 1, and for a <= 1 the point is singular.
    at_zero = equal(x, 0)
    slope = subtract(_interior_log(x, at_zero), digamma(a))
    return where(at_zero, 0.0, multiply(_gamma_density(a, x), slope))


def _gammainc_grad_a_impl(a: Any, x: Any) -> Any:
    if backend_of((a, x), "gammainc") == "numpy":
        return gammainc_grad_a_numpy(a, x)
    return gammainc_grad_a_jax(a, x)


_grad_a_pullbacks, _grad_a_jvps = _pullbacks_and_jvps(
    (_no_second_parameter_derivative("gammainc", "its parameter a"), _gammainc_grad_a_dx)
)
gammainc_grad_a_p = Primitive("gammainc_grad_a", _gammainc_grad_a_impl, pullbacks=_grad_a_pullbacks, jvps=_grad_a_jvps)

_gammainc_pullbacks, _gammainc_jvps = _pullbacks_and_jvps((lambda a, x: gammainc_grad_a_p(a, x), _gamma_density))
gammainc_p = Primitive(
    "gammainc",
    make_impl("gammainc", _scipy("gammainc"), "jax.scipy.special.gammainc"),
    pullbacks=_gammainc_pullbacks,
    jvps=_gammainc_jvps,
)

_gammaincc_pullbacks, _gammaincc_jvps = _pullbacks_and_jvps(
    (lambda a, x: negative(gammainc_grad_a_p(a, x)), lambda a, x: negative(_gamma_density(a, x)))
)
gammaincc_p = Primitive(
    "gammaincc",
    make_impl("gammaincc", _scipy("gammaincc"), "jax.scipy.special.gammaincc"),
    pullbacks=_gammaincc_pullbacks,
    jvps=_gammaincc_jvps,
)

# -- incomplete beta ------------------------------------------------------------------


def _beta_density(a: Any, b: Any, x: Any) -> Any:
    # dI/dx = x^(a-1) (1-x)^(b-1) / B(a, b).
    return exp(subtract(add(xlogy(subtract(a, 1.0), x), xlog1py(subtract(b, 1.0), negative(x))), betaln(a, b)))


def _betainc_grad_dx(a: Any, b: Any, x: Any, *, wrt: str) -> Any:
    # d/dx (dI/da) = dI/dx * (log x - digamma(a) + digamma(a + b)), and
    # d/dx (dI/db) = dI/dx * (log(1 - x) - digamma(b) + digamma(a + b)).
    # Both are taken as 0 at x == 0 and x == 1, their limits where the density
    # vanishes there.
    boundary = logical_or(equal(x, 0), equal(x, 1))
    if wrt == "a":
        slope = subtract(_interior_log(x, boundary), digamma(a))
    else:
        slope = subtract(log1p(negative(where(boundary, 0.0, x))), digamma(b))
    slope = add(slope, digamma(add(a, b)))
    return where(boundary, 0.0, multiply(_beta_density(a, b, x), slope))


def _betainc_grad_impl(a: Any, b: Any, x: Any, *, wrt: str) -> Any:
    # The continued fraction yields both derivatives at once, but each
    # pullback asks for one, so a gradient in both a and b runs it twice.
    grad_a, grad_b = betainc_grads(a, b, x, backend_of((a, b, x), "betainc"))
    return grad_a if wrt == "a" else grad_b


_no_betainc_second_derivative = _no_second_parameter_derivative("betainc", "its parameters a and b")
_betainc_grad_pullbacks, _betainc_grad_jvps = _pullbacks_and_jvps(
    (_no_betainc_second_derivative, _no_betainc_second_derivative, _betainc_grad_dx)
)
betainc_grad_p = Primitive(
    "betainc_grad", _betainc_grad_impl, pullbacks=_betainc_grad_pullbacks, jvps=_betainc_grad_jvps
)

_betainc_pullbacks, _betainc_jvps = _pullbacks_and_jvps(
    (
        lambda a, b, x: betainc_grad_p(a, b, x, wrt="a"),
        lambda a, b, x: betainc_grad_p(a, b, x, wrt="b"),
        _beta_density,
    )
)
betainc_p = Primitive(
    "betainc",
    make_impl("betainc", _scipy("betainc"), "jax.scipy.special.betainc"),
    pullbacks=_betainc_pullbacks,
    jvps=_betainc_jvps,
)

# -- public functions ------------------------------------------------------------------


def gammainc(a: Any, x: Any, /) -> Any:
    r"""Return the regularised lower incomplete gamma function :math:`P(a, x)`.

    .. math::

        P(a, x) = \frac{1}{\Gamma(a)} \int_0^x t^{a-1} e^{-t}\,dt,
        \qquad a > 0,\ x \ge 0,

    the CDF at ``x`` of a Gamma distribution with shape ``a`` and unit rate.
    ``a`` and ``x`` broadcast; NaN outside the domain.

    Derivatives: with respect to ``x`` the density
    :math:`x^{a-1} e^{-x} / \Gamma(a)`, to any order. With respect to ``a``
    a series (for ``x <= max(1, a)``) or Legendre's continued fraction,
    differentiated term by term, on NumPy, and XLA's ``igamma_grad_a`` on JAX.
    The second derivative with respect to ``a`` is not implemented and raises
    :class:`MissingRuleError`. Mixed second derivatives in ``a`` and ``x``
    work.

    Examples:
        >>> import difflux.core as dx
        >>> round(float(dx.gammainc(1.0, 2.0)), 6)  # 1 - exp(-2)
        0.864665
    """
    return gammainc_p(a, x)


def gammaincc(a: Any, x: Any, /) -> Any:
    r"""Return the regularised upper incomplete gamma function :math:`Q(a, x) = 1 - P(a, x)`.

    It is accurate where :math:`P` rounds to 1 (the Gamma survival function
    far in the right tail). Derivatives are those of :func:`gammainc` with
    the sign changed, with the same limit: no second derivative in ``a``.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.gammaincc(2.0, 100.0)) > 0.0
        True
    """
    return gammaincc_p(a, x)


def betainc(a: Any, b: Any, x: Any, /) -> Any:
    r"""Return the regularised incomplete beta function :math:`I_x(a, b)`.

    .. math::

        I_x(a, b) = \frac{1}{B(a, b)} \int_0^x t^{a-1} (1-t)^{b-1}\,dt,
        \qquad a, b > 0,\ 0 \le x \le 1,

    the CDF at ``x`` of a Beta(a, b) distribution. ``a``, ``b`` and ``x``
    broadcast; NaN outside the domain.

    Derivatives: with respect to ``x`` the Beta density, to any order. With
    respect to ``a`` and ``b`` the continued fraction for :math:`I_x(a, b)`
    differentiated convergent by convergent, on NumPy and on JAX (where it
    runs in a ``lax.while_loop``). Second derivatives with respect to ``a`` or
    ``b`` are not implemented and raise :class:`MissingRuleError`. Mixed ones
    in a parameter and ``x`` work.

    Examples:
        >>> import difflux.core as dx
        >>> round(float(dx.betainc(2.0, 3.0, 0.3)), 6)
        0.3483
    """
    return betainc_p(a, b, x)
