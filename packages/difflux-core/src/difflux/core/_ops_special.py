"""Special functions with derivative rules: error functions, the normal
distribution, ``xlogy`` and scaled Bessel functions, and the helpers that
define every special-function primitive.

Values come from ``scipy.special`` on NumPy and ``jax.scipy.special`` on JAX,
both imported on first use. Every derivative is written in difflux operations,
so the rules differentiate again.

The gamma family lives in ``_ops_special_gamma.py``; the incomplete gamma and
beta functions, whose parameter derivatives need series and continued
fractions, in ``_ops_special_incomplete.py``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._core import Primitive
from ._dispatch import broadcast_tangent, make_impl, shape_of, unbroadcast
from ._ops_elementwise import (
    add,
    divide,
    equal,
    exp,
    log,
    log1p,
    logical_and,
    multiply,
    negative,
    sign,
    square,
    subtract,
    where,
)

_SQRT_PI = math.sqrt(math.pi)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def float_dtype(*arrays: Any) -> np.dtype:
    """Return the NumPy result type of ``arrays`` as a float dtype (float64 for integers).

    Python scalars are weak (NEP 50), so float32 arrays stay float32.
    """
    dtype = np.result_type(*arrays, 1.0)
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def _scipy(name: str) -> Callable[..., Any]:
    """Return a function calling ``scipy.special.<name>``, imported on first call.

    Some SciPy functions (``gammainc`` among them) compute only in float64, so
    the result is cast back to the arguments' float dtype, as JAX returns it.
    """
    resolved: list[Callable[..., Any]] = []

    def call(*args: Any, **params: Any) -> Any:
        if not resolved:
            resolved.append(getattr(importlib.import_module("scipy.special"), name))
        out = resolved[0](*args, **params)
        dtype = float_dtype(*args)
        return out if out.dtype == dtype else out.astype(dtype)

    call.__name__ = name
    return call


def _special_unary(
    name: str, scipy_name: str, jax_path: str | Callable[..., Any], derivative: Callable[[Any, Any], Any]
) -> Primitive:
    """Build a unary primitive whose pullback is ``g * d`` and tangent ``t * d``, with ``d = derivative(x, out)``."""
    return Primitive(
        name,
        make_impl(name, _scipy(scipy_name), jax_path),
        pullbacks=(lambda g, out, x: multiply(g, derivative(x, out)),),
        jvps=(lambda t, out, x: multiply(t, derivative(x, out)),),
    )


def _special_binary(
    name: str,
    scipy_name: str,
    jax_path: str | Callable[..., Any],
    derivative_x: Callable[[Any, Any, Any], Any],
    derivative_y: Callable[[Any, Any, Any], Any],
) -> Primitive:
    """Build a broadcasting binary primitive from its two partial derivatives ``d(x, y, out)``."""
    return Primitive(
        name,
        make_impl(name, _scipy(scipy_name), jax_path),
        pullbacks=(
            lambda g, out, x, y: unbroadcast(multiply(g, derivative_x(x, y, out)), shape_of(x)),
            lambda g, out, x, y: unbroadcast(multiply(g, derivative_y(x, y, out)), shape_of(y)),
        ),
        jvps=(
            lambda t, out, x, y: multiply(broadcast_tangent(t, out), derivative_x(x, y, out)),
            lambda t, out, x, y: multiply(broadcast_tangent(t, out), derivative_y(x, y, out)),
        ),
    )


def elementwise_jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Compile an element-wise JAX function once per dtype and size bucket.

    Eager JAX would dispatch each small operation separately and trace a
    ``lax.while_loop`` again on every call, and compiling per input shape
    costs seconds for the loops and lgamma expansions here. So eager calls
    broadcast the arguments, flatten them, pad them with 0.5 (a harmless point
    of every function using this) to a power-of-two length of at least 8, and
    run one compiled function per dtype and length. Inside an outer
    ``jax.jit`` the function is traced inline instead. ``fn`` returns one
    array or a tuple of arrays of the broadcast shape.
    """
    compiled: list[Callable[..., Any]] = []

    def call(*args: Any) -> Any:
        import jax
        import jax.core
        import jax.numpy as jnp

        if not compiled:
            compiled.append(jax.jit(fn))
        if any(isinstance(arg, jax.core.Tracer) for arg in args):
            return fn(*args)

        dtype = jnp.result_type(*args)
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.result_type(float)
        arrays = jnp.broadcast_arrays(*(jnp.asarray(arg, dtype) for arg in args))
        shape = arrays[0].shape
        size = max(arrays[0].size, 1)
        padded_size = max(8, 1 << (size - 1).bit_length())
        flat = [jnp.pad(array.reshape(-1), (0, padded_size - array.size), constant_values=0.5) for array in arrays]
        out = compiled[0](*flat)
        if isinstance(out, tuple):
            return tuple(o[: arrays[0].size].reshape(shape) for o in out)
        return out[: arrays[0].size].reshape(shape)

    call.__name__ = fn.__name__
    call.__doc__ = fn.__doc__
    return call


# -- error function and the normal distribution ---------------------------------------


def _gaussian_kernel(x: Any) -> Any:
    return exp(negative(square(x)))


erf_p = _special_unary(
    "erf", "erf", "jax.scipy.special.erf", lambda x, out: multiply(2.0 / _SQRT_PI, _gaussian_kernel(x))
)
erfc_p = _special_unary(
    "erfc", "erfc", "jax.scipy.special.erfc", lambda x, out: multiply(-2.0 / _SQRT_PI, _gaussian_kernel(x))
)
# erfinv'(x) = 1 / erf'(erfinv(x)) = sqrt(pi) / 2 * exp(erfinv(x)**2).
erfinv_p = _special_unary(
    "erfinv", "erfinv", "jax.scipy.special.erfinv", lambda x, out: multiply(_SQRT_PI / 2.0, exp(square(out)))
)


def _normal_log_pdf(x: Any) -> Any:
    return subtract(multiply(-0.5, square(x)), _LOG_SQRT_2PI)


ndtr_p = _special_unary("ndtr", "ndtr", "jax.scipy.special.ndtr", lambda x, out: exp(_normal_log_pdf(x)))
# ndtri'(p) = 1 / pdf(ndtri(p)).
ndtri_p = _special_unary(
    "ndtri", "ndtri", "jax.scipy.special.ndtri", lambda x, out: multiply(_SQRT_2PI, exp(multiply(0.5, square(out))))
)
# log_ndtr'(x) = pdf(x) / cdf(x), formed as exp(log pdf(x) - log_ndtr(x)) so
# that it stays finite in the left tail, where pdf and cdf both underflow
# (at x = -40 the ratio is about 40 while both are below 1e-347).
log_ndtr_p = _special_unary(
    "log_ndtr", "log_ndtr", "jax.scipy.special.log_ndtr", lambda x, out: exp(subtract(_normal_log_pdf(x), out))
)

# -- x * log(y) with 0 * log(0) = 0 -------------------------------------------------


def _xlogy_dy(x: Any, y: Any, out: Any) -> Any:
    # x / y, taken as 0 at x == y == 0. Only the singular point is replaced, so
    # at x == 0 and y != 0 the rule is still x / y and its own derivative with
    # respect to x (1 / y) stays right at second order.
    singular = logical_and(equal(x, 0), equal(y, 0))
    return divide(x, where(singular, 1.0, y))


def _xlog1py_dy(x: Any, y: Any, out: Any) -> Any:
    # x / (1 + y), taken as 0 at x == 0, y == -1.
    one_plus_y = add(y, 1.0)
    singular = logical_and(equal(x, 0), equal(one_plus_y, 0))
    return divide(x, where(singular, 1.0, one_plus_y))


xlogy_p = _special_binary("xlogy", "xlogy", "jax.scipy.special.xlogy", lambda x, y, out: log(y), _xlogy_dy)
xlog1py_p = _special_binary("xlog1py", "xlog1py", "jax.scipy.special.xlog1py", lambda x, y, out: log1p(y), _xlog1py_dy)

# -- exponentially scaled modified Bessel functions --------------------------------------
# With I0' = I1 and I1' = I0 - I1 / x, the product rule on exp(-|x|) * I(x) gives
#   i0e'(x) = i1e(x) - sign(x) * i0e(x),
#   i1e'(x) = i0e(x) - i1e(x) / x - sign(x) * i1e(x),
# where i1e(x) / x -> 1/2 as x -> 0.


def _i1e_over_x(x: Any, out: Any) -> Any:
    at_zero = equal(x, 0)
    return where(at_zero, 0.5, divide(out, where(at_zero, 1.0, x)))


i0e_p = _special_unary("i0e", "i0e", "jax.scipy.special.i0e", lambda x, out: subtract(i1e(x), multiply(sign(x), out)))
i1e_p = _special_unary(
    "i1e",
    "i1e",
    "jax.scipy.special.i1e",
    lambda x, out: subtract(subtract(i0e(x), _i1e_over_x(x, out)), multiply(sign(x), out)),
)

# -- public functions --------------------------------------------------------------------


def erf(x: Any, /) -> Any:
    r"""Return the error function :math:`\frac{2}{\sqrt\pi}\int_0^x e^{-t^2}\,dt` element-wise.

    Examples:
        >>> import difflux.core as dx
        >>> round(float(dx.erf(1.0)), 6)
        0.842701
    """
    return erf_p(x)


def erfc(x: Any, /) -> Any:
    r"""Return the complementary error function :math:`1 - \operatorname{erf}(x)`, accurate for large ``x``.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.erfc(10.0)) > 0.0
        True
    """
    return erfc_p(x)


def erfinv(x: Any, /) -> Any:
    r"""Return the inverse error function on ``[-1, 1]`` (``±inf`` at ``±1``).

    The derivative is :math:`\frac{\sqrt\pi}{2} e^{\operatorname{erfinv}(x)^2}`.

    Examples:
        >>> import difflux.core as dx
        >>> round(float(dx.erfinv(dx.erf(0.3))), 12)
        0.3
    """
    return erfinv_p(x)


def ndtr(x: Any, /) -> Any:
    r"""Return the standard normal CDF :math:`\Phi(x) = \frac{1}{2}\operatorname{erfc}(-x/\sqrt2)`.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.ndtr(0.0))
        0.5
    """
    return ndtr_p(x)


def ndtri(p: Any, /) -> Any:
    r"""Return the standard normal quantile :math:`\Phi^{-1}(p)` on ``[0, 1]`` (``±inf`` at the ends).

    The derivative is :math:`1 / \varphi(\Phi^{-1}(p))`, with :math:`\varphi` the normal density.

    Examples:
        >>> import difflux.core as dx
        >>> round(float(dx.ndtri(0.975)), 6)
        1.959964
    """
    return ndtri_p(p)


def log_ndtr(x: Any, /) -> Any:
    r"""Return :math:`\log\Phi(x)`, accurate far into the left tail.

    ``log_ndtr(-40.0)`` is about ``-804.608`` and its derivative
    :math:`\varphi(x)/\Phi(x)` (about ``40.02``) is finite, where
    ``log(ndtr(x))`` gives ``-inf`` and a NaN gradient.

    Examples:
        >>> import difflux.core as dx
        >>> round(float(dx.log_ndtr(-40.0)), 3)
        -804.608
    """
    return log_ndtr_p(x)


def xlogy(x: Any, y: Any, /) -> Any:
    r"""Return ``x * log(y)``, with ``0 * log(0) = 0``; ``x`` and ``y`` broadcast.

    The derivative with respect to ``x`` is ``log(y)`` and with respect to
    ``y`` is ``x / y``, taken as 0 at ``x == y == 0``, so the gradient of an
    entropy term ``xlogy(p, p)`` or of a likelihood with a zero count stays
    finite.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.xlogy(0.0, 0.0))
        0.0
    """
    return xlogy_p(x, y)


def xlog1py(x: Any, y: Any, /) -> Any:
    r"""Return ``x * log1p(y)``, with 0 where ``x == 0`` (even at ``y == -1``).

    The derivative with respect to ``y`` is ``x / (1 + y)``, taken as 0 at
    ``x == 0, y == -1``.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.xlog1py(0.0, -1.0))
        0.0
    """
    return xlog1py_p(x, y)


def i0e(x: Any, /) -> Any:
    r"""Return the exponentially scaled modified Bessel function :math:`e^{-|x|} I_0(x)`.

    It stays finite where :math:`I_0` overflows, so the von Mises log
    normaliser is ``log(i0e(kappa)) + kappa``. The derivative is
    ``i1e(x) - sign(x) * i0e(x)``.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.i0e(0.0))
        1.0
    """
    return i0e_p(x)


def i1e(x: Any, /) -> Any:
    r"""Return the exponentially scaled modified Bessel function :math:`e^{-|x|} I_1(x)`.

    The derivative is ``i0e(x) - i1e(x) / x - sign(x) * i1e(x)``, equal to
    1/2 at ``x == 0``.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.i1e(0.0))
        0.0
    """
    return i1e_p(x)
