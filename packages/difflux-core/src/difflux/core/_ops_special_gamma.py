"""The gamma family with derivative rules: lgamma, digamma, polygamma, betaln.

Each derivative is the next function of the family (lgamma' = digamma,
digamma' = polygamma(1, .), polygamma(n, .)' = polygamma(n + 1, .)), so the
rules differentiate again to any order.
"""

from __future__ import annotations

import operator
from typing import Any

from ._core import Primitive, Tracer
from ._ops_elementwise import add, multiply, subtract
from ._ops_special import _scipy, _special_binary, _special_unary, elementwise_jit

lgamma_p = _special_unary("lgamma", "gammaln", "jax.scipy.special.gammaln", lambda x, out: digamma(x))
digamma_p = _special_unary("digamma", "psi", "jax.scipy.special.digamma", lambda x, out: polygamma(1, x))


def _polygamma_impl(x: Any, *, n: int) -> Any:
    from ._backend import backend_of

    if backend_of((x,), "polygamma") == "numpy":
        return _scipy("polygamma")(n, x)
    import jax.scipy.special

    return jax.scipy.special.polygamma(n, x)


polygamma_p = Primitive(
    "polygamma",
    _polygamma_impl,
    pullbacks=(lambda g, out, x, n: multiply(g, polygamma(n + 1, x)),),
    jvps=(lambda t, out, x, n: multiply(t, polygamma(n + 1, x)),),
)


def _betaln_da(a: Any, b: Any, out: Any) -> Any:
    return subtract(digamma(a), digamma(add(a, b)))


def _betaln_db(a: Any, b: Any, out: Any) -> Any:
    return subtract(digamma(b), digamma(add(a, b)))


# The coefficients B_2k / (2k (2k - 1)) of Stirling's series
# lgamma(x) = (x - 1/2) log x - x + log(2 pi) / 2 + sum_k c_k / x^(2k - 1).
# From x = 8 on, the first omitted term is below 1e-15.
_STIRLING_COEFFICIENTS = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)


def _stirling_correction(x: Any) -> Any:
    inverse_square = 1.0 / (x * x)
    total = 0.0 * x
    for coefficient in reversed(_STIRLING_COEFFICIENTS):
        total = total * inverse_square + coefficient
    return total / x


@elementwise_jit
def betaln_jax(a: Any, b: Any) -> Any:
    """Return log|B(a, b)| on JAX arrays.

    NOTE: ``jax.scipy.special.betaln`` of JAX 0.10.2 is off by up to about
    1e-6 when the larger argument is 8 or more (its ``algdiv`` helper takes
    the wrong series variable), so this replaces that branch. For
    ``small = min(a, b) > 0`` and ``large = max(a, b) >= 8``, Stirling's series
    for lgamma(large) and lgamma(small + large) gives

        log B = lgamma(small) + small - (large - 1/2) log1p(small / large)
                - small log(small + large) + delta(large) - delta(small + large),

    free of the cancellation between the two large lgamma values.
    """
    import jax.numpy as jnp
    from jax.scipy.special import gammaln

    dtype = jnp.result_type(a, b)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    a, b = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
    small, large = jnp.minimum(a, b), jnp.maximum(a, b)
    direct = gammaln(small) + gammaln(large) - gammaln(small + large)

    use_series = (small > 0) & (large >= 8)
    small = jnp.where(use_series, small, 1.0)
    large = jnp.where(use_series, large, 8.0)
    total = small + large
    series = (
        gammaln(small)
        + small
        - (large - 0.5) * jnp.log1p(small / large)
        - small * jnp.log(total)
        + (_stirling_correction(large) - _stirling_correction(total))
    )
    return jnp.where(use_series, series, direct)


betaln_p = _special_binary("betaln", "betaln", betaln_jax, _betaln_da, _betaln_db)

# -- public functions --------------------------------------------------------------------


def lgamma(x: Any, /) -> Any:
    r"""Return :math:`\log|\Gamma(x)|` element-wise (``scipy.special.gammaln``).

    The derivative is ``digamma(x)``.

    Examples:
        >>> import difflux.core as dx
        >>> round(float(dx.lgamma(5.0)), 6)  # log(4!)
        3.178054
    """
    return lgamma_p(x)


def digamma(x: Any, /) -> Any:
    r"""Return the digamma function :math:`\psi(x) = \frac{d}{dx}\log\Gamma(x)` element-wise.

    The derivative is ``polygamma(1, x)`` (the trigamma function).

    Examples:
        >>> import difflux.core as dx
        >>> round(float(dx.digamma(1.0)), 6)  # minus the Euler-Mascheroni constant
        -0.577216
    """
    return digamma_p(x)


def polygamma(n: int, x: Any, /) -> Any:
    r"""Return the polygamma function :math:`\psi^{(n)}(x) = \frac{d^{n+1}}{dx^{n+1}}\log\Gamma(x)`.

    Args:
        n: the order, a non-negative Python integer. It is static
            configuration, not an array, and has no derivative.
        x: the argument; its derivative is ``polygamma(n + 1, x)``.

    Examples:
        >>> import difflux.core as dx
        >>> round(float(dx.polygamma(1, 1.0)), 6)  # pi**2 / 6
        1.644934
    """
    if isinstance(n, Tracer | bool) or not hasattr(n, "__index__") or getattr(n, "ndim", 0) != 0:
        raise TypeError(
            f"polygamma's order n must be a non-negative Python integer, got {type(n).__name__} {n!r}. "
            "The order is static configuration: pass a literal such as dx.polygamma(2, x), "
            "and evaluate several orders with one call each."
        )
    order = operator.index(n)
    if order < 0:
        raise ValueError(f"polygamma's order n must be non-negative, got {order}")
    if order == 0:
        return digamma_p(x)
    return polygamma_p(x, n=order)


def betaln(a: Any, b: Any, /) -> Any:
    r"""Return :math:`\log|B(a, b)| = \log|\Gamma(a)| + \log|\Gamma(b)| - \log|\Gamma(a + b)|`.

    The partial derivatives are ``digamma(a) - digamma(a + b)`` and
    ``digamma(b) - digamma(a + b)``. ``a`` and ``b`` broadcast.

    Examples:
        >>> import difflux.core as dx
        >>> round(float(dx.betaln(2.0, 3.0)), 6)  # log(1 / 12)
        -2.484907
    """
    return betaln_p(a, b)
