"""Parameter derivatives of the regularised incomplete gamma and beta functions.

These are array algorithms on plain NumPy or JAX values, with no difflux
operations and no derivative rules of their own: they are the implementations
of the private primitives that the rules of ``gammainc`` and ``betainc`` call.

Both functions are a closed-form prefactor times a power series or a
continued fraction. The derivative with respect to a parameter follows by
carrying each term's (or each convergent's) derivative through the same
recurrence, forward-mode style. Each loop runs until every element has
converged to about the dtype's machine epsilon, or a fixed maximum number of
iterations. Tests compare the results with finite differences of SciPy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._ops_special import elementwise_jit, float_dtype
from ._ops_special_gamma import betaln_jax

# The gamma series needs about sqrt(2 a ln(1 / eps)) terms when x is close to
# a, and the beta continued fraction about sqrt(max(a, b)) iterations (1051 at
# a = b = 1e6). The caps keep full float64 precision up to a = 4e6 for the
# gamma function and a, b = 2e7 for the beta function.
# NOTE: beyond those sizes the sums are cut off and lose accuracy without an error.
_MAX_GAMMA_TERMS = 20000
_MAX_BETA_ITERATIONS = 5000


# -- incomplete gamma, NumPy ---------------------------------------------------------


def _gammainc_series_grad_a(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dP/da from P(a, x) = x^a e^-x / Gamma(a + 1) * sum_n x^n / ((a + 1) ... (a + n)), for x <= max(1, a)."""
    from scipy.special import gammaln, psi

    log_x = np.log(x)
    log_prefactor = a * log_x - x - gammaln(a + 1.0)
    prefactor_slope = log_x - psi(a + 1.0)

    # term_n = x^n / ((a + 1) ... (a + n)) and slope_n = d log(term_n) / da = -sum_k 1 / (a + k).
    term = np.ones_like(a)
    slope = np.zeros_like(a)
    total = np.ones_like(a)
    total_da = np.zeros_like(a)
    eps = np.finfo(np.float64).eps
    for n in range(1, _MAX_GAMMA_TERMS + 1):
        term = term * x / (a + n)
        slope = slope - 1.0 / (a + n)
        total = total + term
        total_da = total_da + term * slope
        scale = total * np.abs(prefactor_slope) + np.abs(total_da)
        if np.all(term * (np.abs(prefactor_slope) + np.abs(slope)) <= eps * scale):
            break
    return np.exp(log_prefactor) * (total * prefactor_slope + total_da)


def _gammaincc_fraction_grad_a(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dQ/da from Q(a, x) = x^a e^-x / Gamma(a) / (b0 + a1 / (b1 + a2 / (b2 + ...))), for x > max(1, a).

    The fraction has b_n = x + 2n + 1 - a and a_n = -n (n - a) (Legendre's
    continued fraction for the upper incomplete gamma function).
    """
    from scipy.special import gammaln, psi

    log_x = np.log(x)
    log_prefactor = a * log_x - x - gammaln(a)
    prefactor_slope = log_x - psi(a)

    # Convergents A_n / B_n of G = b0 + a1 / (b1 + ...), with their derivatives
    # in a. The fraction in Q is F = 1 / G = B_n / A_n.
    numerator_prev, numerator = np.ones_like(a), x + 1.0 - a
    denominator_prev, denominator = np.zeros_like(a), np.ones_like(a)
    numerator_da_prev, numerator_da = np.zeros_like(a), -np.ones_like(a)
    denominator_da_prev, denominator_da = np.zeros_like(a), np.zeros_like(a)
    fraction = denominator / numerator
    fraction_da = (denominator_da * numerator - denominator * numerator_da) / numerator**2
    eps = np.finfo(np.float64).eps
    for n in range(1, _MAX_GAMMA_TERMS + 1):
        a_n, a_n_da = -n * (n - a), float(n)
        b_n = x + 2.0 * n + 1.0 - a
        numerator_next = b_n * numerator + a_n * numerator_prev
        denominator_next = b_n * denominator + a_n * denominator_prev
        numerator_da_next = -numerator + b_n * numerator_da + a_n_da * numerator_prev + a_n * numerator_da_prev
        denominator_da_next = (
            -denominator + b_n * denominator_da + a_n_da * denominator_prev + a_n * denominator_da_prev
        )

        # The convergents grow geometrically; dividing the four latest by the
        # same number keeps them finite and leaves both ratios unchanged.
        scale = np.where(numerator_next == 0, 1.0, np.abs(numerator_next))
        numerator_prev, numerator = numerator / scale, numerator_next / scale
        denominator_prev, denominator = denominator / scale, denominator_next / scale
        numerator_da_prev, numerator_da = numerator_da / scale, numerator_da_next / scale
        denominator_da_prev, denominator_da = denominator_da / scale, denominator_da_next / scale

        new_fraction = denominator / numerator
        new_fraction_da = (denominator_da * numerator - denominator * numerator_da) / numerator**2
        size = np.abs(new_fraction * prefactor_slope) + np.abs(new_fraction_da)
        converged = np.all(
            (np.abs(new_fraction - fraction) <= eps * np.abs(new_fraction))
            & (np.abs(new_fraction_da - fraction_da) <= eps * size)
        )
        fraction, fraction_da = new_fraction, new_fraction_da
        if converged:
            break
    return np.exp(log_prefactor) * (fraction * prefactor_slope + fraction_da)


def gammainc_grad_a_numpy(a: Any, x: Any) -> np.ndarray:
    """Return dP(a, x)/da on NumPy arrays; 0 at x == 0 and x == inf, NaN outside a > 0, x >= 0."""
    dtype = float_dtype(a, x)
    a_arr, x_arr = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(x, np.float64))
    shape = a_arr.shape
    a_flat, x_flat = a_arr.reshape(-1), x_arr.reshape(-1)

    result = np.zeros(a_flat.shape)
    valid = (a_flat > 0) & (x_flat >= 0)
    interior = valid & (x_flat > 0) & np.isfinite(x_flat)
    # The split of XLA's igamma_grad_a: the series converges fast below
    # max(1, a), the continued fraction above.
    use_fraction = interior & (x_flat > 1) & (x_flat > a_flat)
    use_series = interior & ~use_fraction
    if np.any(use_series):
        result[use_series] = _gammainc_series_grad_a(a_flat[use_series], x_flat[use_series])
    if np.any(use_fraction):
        result[use_fraction] = -_gammaincc_fraction_grad_a(a_flat[use_fraction], x_flat[use_fraction])
    result[~valid] = np.nan
    return result.reshape(shape).astype(dtype)


@elementwise_jit
def gammainc_grad_a_jax(a: Any, x: Any) -> Any:
    """Return dP(a, x)/da on JAX arrays through XLA's own ``igamma_grad_a``."""
    import jax
    import jax.numpy as jnp

    dtype = jnp.result_type(a, x)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    a_arr, x_arr = jnp.broadcast_arrays(jnp.asarray(a, dtype), jnp.asarray(x, dtype))
    return jax.lax.igamma_grad_a(a_arr, x_arr)


# -- incomplete beta, NumPy and JAX -------------------------------------------------------


class _Namespace:
    """The array functions one backend gives the beta algorithm."""

    def __init__(self, backend: str) -> None:
        if backend == "numpy":
            from scipy.special import betaln, psi

            self.xp: Any = np
            self.digamma: Callable[[Any], Any] = psi
            self.betaln: Callable[[Any, Any], Any] = betaln
            self.while_loop: Callable[..., Any] = _python_while_loop
        else:
            import jax
            import jax.numpy as jnp
            import jax.scipy.special as jsp

            self.xp = jnp
            self.digamma = jsp.digamma
            self.betaln = betaln_jax
            self.while_loop = jax.lax.while_loop


def _python_while_loop(cond: Callable[[Any], Any], body: Callable[[Any], Any], state: Any) -> Any:
    while cond(state):
        state = body(state)
    return state


def _beta_fraction_step(state: tuple[Any, ...], d: Any, d_dp: Any, d_dq: Any, xp: Any) -> tuple[Any, ...]:
    """Advance A_n = A_{n-1} + d_n A_{n-2} (and B_n, and both derivatives) by one n, rescaled.

    ``state`` is (A_{n-1}, A_{n-2}, B_{n-1}, B_{n-2}), then the same four
    differentiated in p, then in q.
    """
    (a1, a2, b1, b2, a1_p, a2_p, b1_p, b2_p, a1_q, a2_q, b1_q, b2_q) = state
    a0 = a1 + d * a2
    b0 = b1 + d * b2
    a0_p = a1_p + d_dp * a2 + d * a2_p
    b0_p = b1_p + d_dp * b2 + d * b2_p
    a0_q = a1_q + d_dq * a2 + d * a2_q
    b0_q = b1_q + d_dq * b2 + d * b2_q
    scale = xp.where(a0 == 0, 1.0, xp.abs(a0))
    return tuple(v / scale for v in (a0, a1, b0, b1, a0_p, a1_p, b0_p, b1_p, a0_q, a1_q, b0_q, b1_q))


def _odd_coefficient(p: Any, q: Any, y: Any, m: Any) -> tuple[Any, Any, Any]:
    """d_{2m+1} = -(p + m)(p + q + m) y / ((p + 2m)(p + 2m + 1)) and its derivatives in p and q."""
    d = -(p + m) * (p + q + m) * y / ((p + 2 * m) * (p + 2 * m + 1))
    d_dp = d * (1 / (p + m) + 1 / (p + q + m) - 1 / (p + 2 * m) - 1 / (p + 2 * m + 1))
    d_dq = d / (p + q + m)
    return d, d_dp, d_dq


def _even_coefficient(p: Any, q: Any, y: Any, m: Any) -> tuple[Any, Any, Any]:
    """d_{2m} = m (q - m) y / ((p + 2m - 1)(p + 2m)) and its derivatives in p and q."""
    denominator = (p + 2 * m - 1) * (p + 2 * m)
    d = m * (q - m) * y / denominator
    d_dp = -d * (1 / (p + 2 * m - 1) + 1 / (p + 2 * m))
    d_dq = m * y / denominator
    return d, d_dp, d_dq


def _fraction_and_derivatives(state: tuple[Any, ...]) -> tuple[Any, Any, Any]:
    a1, _, b1, _, a1_p, _, b1_p, _, a1_q, _, b1_q, _ = state
    fraction = b1 / a1
    return fraction, (b1_p * a1 - b1 * a1_p) / a1**2, (b1_q * a1 - b1 * a1_q) / a1**2


def _beta_fraction_grads(p: Any, q: Any, y: Any, ns: _Namespace) -> tuple[Any, Any]:
    """Return dI/dp and dI/dq of I_y(p, q) by the continued fraction, valid for y < (p + 1) / (p + q + 2).

    I_y(p, q) = K / (1 + d_1 / (1 + d_2 / (1 + ...))) with
    K = y^p (1 - y)^q / (p B(p, q)) and the coefficients d_n of
    ``_odd_coefficient`` and ``_even_coefficient``.
    """
    xp = ns.xp
    eps = float(xp.finfo(p.dtype).eps)
    one, zero = xp.ones_like(p), xp.zeros_like(p)
    # Convergents before the first coefficient: A_0 = A_-1 = 1, B_0 = 1, B_-1 = 0.
    state = (one, one, one, zero) + (zero,) * 8
    state = _beta_fraction_step(state, *_odd_coefficient(p, q, y, 0), xp)
    log_prefactor_dp = xp.log(y) - 1 / p - ns.digamma(p) + ns.digamma(p + q)
    log_prefactor_dq = xp.log1p(-y) - ns.digamma(q) + ns.digamma(p + q)

    def body(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        m, _, values, state = carry
        state = _beta_fraction_step(state, *_even_coefficient(p, q, y, m), xp)
        state = _beta_fraction_step(state, *_odd_coefficient(p, q, y, m), xp)
        new_values = _fraction_and_derivatives(state)
        fraction = new_values[0]
        converged = xp.abs(new_values[0] - values[0]) <= eps * xp.abs(fraction)
        for new, old, slope in (
            (new_values[1], values[1], log_prefactor_dp),
            (new_values[2], values[2], log_prefactor_dq),
        ):
            size = xp.abs(new) + xp.abs(fraction) * (xp.abs(slope) + 1)
            converged = converged & (xp.abs(new - old) <= eps * size)
        return m + 1, xp.all(converged), new_values, state

    def cond(carry: tuple[Any, ...]) -> Any:
        m, done, _, _ = carry
        return (m <= _MAX_BETA_ITERATIONS) & ~done

    carry = (xp.asarray(1), xp.asarray(False), _fraction_and_derivatives(state), state)
    _, _, (fraction, fraction_dp, fraction_dq), _ = ns.while_loop(cond, body, carry)

    prefactor = xp.exp(p * xp.log(y) + q * xp.log1p(-y) - xp.log(p) - ns.betaln(p, q))
    return (
        prefactor * (fraction * log_prefactor_dp + fraction_dp),
        prefactor * (fraction * log_prefactor_dq + fraction_dq),
    )


def betainc_grads(a: Any, b: Any, x: Any, backend: str) -> tuple[Any, Any]:
    """Return (dI/da, dI/db) of the regularised incomplete beta function I_x(a, b).

    Both are 0 at x == 0 and x == 1, and NaN outside a > 0, b > 0, 0 <= x <= 1.
    """
    if backend == "numpy":
        return _betainc_grads(a, b, x, "numpy")
    return _betainc_grads_jax(a, b, x)


def _betainc_grads(a: Any, b: Any, x: Any, backend: str) -> tuple[Any, Any]:
    ns = _Namespace(backend)
    xp = ns.xp
    if backend == "numpy":
        dtype = float_dtype(a, b, x)
        work_dtype: Any = np.float64
    else:
        dtype = xp.result_type(a, b, x)
        if not xp.issubdtype(dtype, xp.floating):
            dtype = xp.result_type(float)
        work_dtype = dtype
    a, b, x = xp.broadcast_arrays(xp.asarray(a, work_dtype), xp.asarray(b, work_dtype), xp.asarray(x, work_dtype))

    valid = (a > 0) & (b > 0) & (x >= 0) & (x <= 1)
    interior = valid & (x > 0) & (x < 1)
    # Elsewhere run the loop on harmless values, so that NaN cannot keep it
    # from converging, and overwrite the result below.
    a = xp.where(interior, a, 1.0)
    b = xp.where(interior, b, 1.0)
    x = xp.where(interior, x, 0.25)

    # The fraction converges fast below the mean-like point (a + 1) / (a + b + 2).
    # Above it, use I_x(a, b) = 1 - I_{1-x}(b, a).
    swap = x > (a + 1) / (a + b + 2)
    p = xp.where(swap, b, a)
    q = xp.where(swap, a, b)
    y = xp.where(swap, 1 - x, x)
    grad_p, grad_q = _beta_fraction_grads(p, q, y, ns)
    grad_a = xp.where(swap, -grad_q, grad_p)
    grad_b = xp.where(swap, -grad_p, grad_q)

    nan = xp.asarray(np.nan, work_dtype)
    grad_a = xp.where(valid, xp.where(interior, grad_a, 0.0), nan)
    grad_b = xp.where(valid, xp.where(interior, grad_b, 0.0), nan)
    return xp.asarray(grad_a, dtype), xp.asarray(grad_b, dtype)


@elementwise_jit
def _betainc_grads_jax(a: Any, b: Any, x: Any) -> tuple[Any, Any]:
    return _betainc_grads(a, b, x, "jax")
