"""Element-wise operations of the Array API standard, with derivative rules.

Unary operations are defined by their derivative ``d(x, out)``: the pullback is
``g * d`` and the tangent ``t * d``. Rules are written in difflux operations so
they differentiate again. Binary operations undo broadcasting with
``unbroadcast``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._core import Primitive, bind
from ._dispatch import broadcast_tangent, make_impl, shape_of, sum_like, unbroadcast

# The parameters of every call here: none. bind() only reads them.
_NO_PARAMS: dict[str, Any] = {}

# A registry of every primitive and a sample-input domain, read by the
# gradient sweep in the tests: name -> (primitive, domain).
UNARY_DOMAINS: dict[str, tuple[float, float]] = {}


def _unary(
    name: str,
    derivative: Callable[[Any, Any], Any],
    domain: tuple[float, float] = (-2.0, 2.0),
    numpy_fn: Callable[..., Any] | None = None,
    jax_fn: Any = None,
    numpy_pullback: Callable[[Any, Any, Any], Any] | None = None,
) -> Primitive:
    def pullback(g: Any, out: Any, x: Any) -> Any:
        return multiply(g, derivative(x, out))

    prim = Primitive(
        name,
        make_impl(name, numpy_fn, jax_fn),
        pullbacks=(pullback,),
        numpy_pullbacks=None if numpy_pullback is None else (numpy_pullback,),
        jvps=(lambda t, out, x: multiply(t, derivative(x, out)),),
    )
    UNARY_DOMAINS[name] = domain
    return prim


def _nondiff(name: str, numpy_fn: Callable[..., Any] | None = None, jax_fn: Any = None) -> Primitive:
    return Primitive(name, make_impl(name, numpy_fn, jax_fn), differentiable=False)


# -- arithmetic ----------------------------------------------------------------

# NumPy pullbacks (see Primitive) compute the same cotangents as the rules
# next to them with NumPy directly. The backward pass calls them only on plain
# NumPy values. Those of add and multiply run for most operations of a program,
# so they test the common same-shape case before calling sum_like.


def _add_numpy_pullback_x(g: Any, out: Any, x: Any, y: Any) -> Any:
    return g if g.shape == getattr(x, "shape", None) else sum_like(g, x)


def _add_numpy_pullback_y(g: Any, out: Any, x: Any, y: Any) -> Any:
    return g if g.shape == getattr(y, "shape", None) else sum_like(g, y)


def _multiply_numpy_pullback_x(g: Any, out: Any, x: Any, y: Any) -> Any:
    product = g * y
    return product if product.shape == getattr(x, "shape", None) else sum_like(product, x)


def _multiply_numpy_pullback_y(g: Any, out: Any, x: Any, y: Any) -> Any:
    product = g * x
    return product if product.shape == getattr(y, "shape", None) else sum_like(product, y)


add_p = Primitive(
    "add",
    make_impl("add"),
    pullbacks=(
        lambda g, out, x, y: unbroadcast(g, shape_of(x)),
        lambda g, out, x, y: unbroadcast(g, shape_of(y)),
    ),
    numpy_pullbacks=(_add_numpy_pullback_x, _add_numpy_pullback_y),
    jvps=(
        lambda t, out, x, y: broadcast_tangent(t, out),
        lambda t, out, x, y: broadcast_tangent(t, out),
    ),
)
subtract_p = Primitive(
    "subtract",
    make_impl("subtract"),
    pullbacks=(
        lambda g, out, x, y: unbroadcast(g, shape_of(x)),
        lambda g, out, x, y: unbroadcast(negative(g), shape_of(y)),
    ),
    numpy_pullbacks=(
        lambda g, out, x, y: sum_like(g, x),
        # Negating after the reduction touches fewer elements; IEEE rounding
        # is symmetric, so the result equals reducing -g.
        lambda g, out, x, y: -sum_like(g, y),
    ),
    jvps=(
        lambda t, out, x, y: broadcast_tangent(t, out),
        lambda t, out, x, y: broadcast_tangent(negative(t), out),
    ),
)
multiply_p = Primitive(
    "multiply",
    make_impl("multiply"),
    pullbacks=(
        lambda g, out, x, y: unbroadcast(multiply(g, y), shape_of(x)),
        lambda g, out, x, y: unbroadcast(multiply(g, x), shape_of(y)),
    ),
    numpy_pullbacks=(_multiply_numpy_pullback_x, _multiply_numpy_pullback_y),
    jvps=(
        lambda t, out, x, y: broadcast_tangent(multiply(t, y), out),
        lambda t, out, x, y: broadcast_tangent(multiply(x, t), out),
    ),
)
divide_p = Primitive(
    "divide",
    make_impl("divide"),
    pullbacks=(
        lambda g, out, x, y: unbroadcast(divide(g, y), shape_of(x)),
        lambda g, out, x, y: unbroadcast(negative(multiply(g, divide(out, y))), shape_of(y)),
    ),
    numpy_pullbacks=(
        lambda g, out, x, y: sum_like(g / y, x),
        lambda g, out, x, y: sum_like(-(g * (out / y)), y),
    ),
    jvps=(
        lambda t, out, x, y: broadcast_tangent(divide(t, y), out),
        lambda t, out, x, y: broadcast_tangent(negative(multiply(t, divide(out, y))), out),
    ),
)


def _pow_dx(x: Any, y: Any) -> Any:
    # d/dx x**y = y * x**(y-1). A Python-number exponent stays a Python
    # number (NumPy's np.int64(1) would promote float32 x to float64), and
    # y == 0 gives exactly 0 even at x == 0, where x**-1 is inf.
    if isinstance(y, int | float):
        if y == 0:
            from ._ops_creation import zeros_like

            return zeros_like(x)
        return multiply(y, pow(x, y - 1))
    return where(equal(y, 0), 0.0, multiply(y, pow(x, subtract(y, 1))))


def _pow_dy(x: Any, y: Any, out: Any) -> Any:
    # d/dy x**y = log(x) * x**y, taken as 0 where x == 0 (the limit for y > 0).
    safe_x = where(equal(x, 0), 1.0, x)
    return where(equal(x, 0), 0.0, multiply(out, log(safe_x)))


pow_p = Primitive(
    "pow",
    make_impl("pow", np.power, "jax.numpy.power"),
    pullbacks=(
        lambda g, out, x, y: unbroadcast(multiply(g, _pow_dx(x, y)), shape_of(x)),
        lambda g, out, x, y: unbroadcast(multiply(g, _pow_dy(x, y, out)), shape_of(y)),
    ),
    jvps=(
        lambda t, out, x, y: broadcast_tangent(multiply(t, _pow_dx(x, y)), out),
        lambda t, out, x, y: broadcast_tangent(multiply(t, _pow_dy(x, y, out)), out),
    ),
)

negative_p = Primitive(
    "negative",
    make_impl("negative"),
    pullbacks=(lambda g, out, x: negative(g),),
    numpy_pullbacks=(lambda g, out, x: -g,),
    jvps=(lambda t, out, x: negative(t),),
)
positive_p = Primitive(
    "positive",
    make_impl("positive"),
    pullbacks=(lambda g, out, x: g,),
    jvps=(lambda t, out, x: t,),
)


def _select_pullback(g: Any, out: Any, x: Any, y: Any, pick_x: bool) -> Any:
    # The derivative of max(x, y) with respect to x is 1 where x wins, 0
    # where y wins and 1/2 at ties, so max(x, x) has derivative 1 overall.
    # The masks are multiplied in g's dtype, which on NumPy is about three
    # times faster than where() on the same arrays and keeps float32.
    from ._ops_dtype import astype

    dtype = getattr(g, "dtype", None) or np.result_type(g)
    # out == x is also true at a tie, so subtracting half the tie mask leaves
    # 1/2 there. Comparing with out serves maximum and minimum alike.
    won = equal(out, x) if pick_x else equal(out, y)
    mask = subtract(astype(won, dtype), multiply(astype(equal(x, y), dtype), 0.5))
    return multiply(g, mask)


def _select_pullback_numpy(g: Any, out: Any, x: Any, y: Any, pick_x: bool) -> Any:
    # The mask of _select_pullback, with the tie correction only when a tie exists.
    dtype = g.dtype
    mask = (out == (x if pick_x else y)).astype(dtype)
    tie = x == y
    if tie.any():
        mask = mask - 0.5 * tie.astype(dtype)
    if type(mask) is np.ndarray and mask.shape == np.shape(g):
        mask *= g  # the mask is a new array of g's dtype and shape, so it is reused
        return mask
    return g * mask


maximum_p = Primitive(
    "maximum",
    make_impl("maximum"),
    pullbacks=(
        lambda g, out, x, y: unbroadcast(_select_pullback(g, out, x, y, True), shape_of(x)),
        lambda g, out, x, y: unbroadcast(_select_pullback(g, out, x, y, False), shape_of(y)),
    ),
    numpy_pullbacks=(
        lambda g, out, x, y: sum_like(_select_pullback_numpy(g, out, x, y, True), x),
        lambda g, out, x, y: sum_like(_select_pullback_numpy(g, out, x, y, False), y),
    ),
    jvps=(
        lambda t, out, x, y: _select_pullback(broadcast_tangent(t, out), out, x, y, True),
        lambda t, out, x, y: _select_pullback(broadcast_tangent(t, out), out, x, y, False),
    ),
)
minimum_p = Primitive(
    "minimum",
    make_impl("minimum"),
    pullbacks=maximum_p.pullbacks,
    numpy_pullbacks=maximum_p.numpy_pullbacks,
    jvps=maximum_p.jvps,
)


def _logaddexp_weight(x: Any, other: Any, out: Any) -> Any:
    # exp(x - out), with -inf - -inf taken as weight 0 instead of nan.
    both_minus_inf = logical_and(isinf(out), less(out, 0))
    return where(both_minus_inf, 0.0, exp(subtract(x, where(both_minus_inf, 0.0, out))))


logaddexp_p = Primitive(
    "logaddexp",
    make_impl("logaddexp"),
    pullbacks=(
        lambda g, out, x, y: unbroadcast(multiply(g, _logaddexp_weight(x, y, out)), shape_of(x)),
        lambda g, out, x, y: unbroadcast(multiply(g, _logaddexp_weight(y, x, out)), shape_of(y)),
    ),
    jvps=(
        lambda t, out, x, y: broadcast_tangent(multiply(t, _logaddexp_weight(x, y, out)), out),
        lambda t, out, x, y: broadcast_tangent(multiply(t, _logaddexp_weight(y, x, out)), out),
    ),
)


def _atan2_dy(y: Any, x: Any) -> Any:
    return divide(x, add(square(x), square(y)))


def _atan2_dx(y: Any, x: Any) -> Any:
    return divide(negative(y), add(square(x), square(y)))


atan2_p = Primitive(
    "atan2",
    make_impl("atan2", np.arctan2, "jax.numpy.arctan2"),
    pullbacks=(
        lambda g, out, y, x: unbroadcast(multiply(g, _atan2_dy(y, x)), shape_of(y)),
        lambda g, out, y, x: unbroadcast(multiply(g, _atan2_dx(y, x)), shape_of(x)),
    ),
    jvps=(
        lambda t, out, y, x: broadcast_tangent(multiply(t, _atan2_dy(y, x)), out),
        lambda t, out, y, x: broadcast_tangent(multiply(t, _atan2_dx(y, x)), out),
    ),
)


def _safe_hypot_weight(a: Any, out: Any) -> Any:
    # d hypot / da = a / hypot, taken as 0 at the origin (a subgradient).
    zero = equal(out, 0)
    return where(zero, 0.0, divide(a, where(zero, 1.0, out)))


hypot_p = Primitive(
    "hypot",
    make_impl("hypot"),
    pullbacks=(
        lambda g, out, x, y: unbroadcast(multiply(g, _safe_hypot_weight(x, out)), shape_of(x)),
        lambda g, out, x, y: unbroadcast(multiply(g, _safe_hypot_weight(y, out)), shape_of(y)),
    ),
    jvps=(
        lambda t, out, x, y: broadcast_tangent(multiply(t, _safe_hypot_weight(x, out)), out),
        lambda t, out, x, y: broadcast_tangent(multiply(t, _safe_hypot_weight(y, out)), out),
    ),
)

# -- unary ---------------------------------------------------------------------


def _sqrt_derivative(x: Any, out: Any) -> Any:
    # 0.5 / sqrt(x) with sqrt(x) floored at the smallest normal number: at
    # x == 0 the derivative is huge but finite instead of inf, so the chain
    # rule through sqrt(x**2 + y**2) at the origin gives huge * 0 = 0 (the
    # minimum-norm subgradient) instead of inf * 0 = nan.
    from ._ops_creation import finfo_tiny

    return divide(0.5, maximum(out, finfo_tiny(out)))


exp_p = _unary("exp", lambda x, out: out, numpy_pullback=lambda g, out, x: g * out)
expm1_p = _unary("expm1", lambda x, out: add(out, 1.0))
log_p = _unary("log", lambda x, out: reciprocal(x), (0.1, 3.0), numpy_pullback=lambda g, out, x: g * (1 / x))
log1p_p = _unary("log1p", lambda x, out: reciprocal(add(x, 1.0)), (-0.9, 3.0))
log2_p = _unary("log2", lambda x, out: reciprocal(multiply(x, float(np.log(2.0)))), (0.1, 3.0))
log10_p = _unary("log10", lambda x, out: reciprocal(multiply(x, float(np.log(10.0)))), (0.1, 3.0))
sqrt_p = _unary("sqrt", _sqrt_derivative, (0.1, 3.0))
square_p = _unary("square", lambda x, out: multiply(2.0, x), numpy_pullback=lambda g, out, x: g * (2 * x))
sin_p = _unary("sin", lambda x, out: cos(x), numpy_pullback=lambda g, out, x: g * np.cos(x))
cos_p = _unary("cos", lambda x, out: negative(sin(x)), numpy_pullback=lambda g, out, x: g * -np.sin(x))
tan_p = _unary("tan", lambda x, out: add(1.0, square(out)), (-1.2, 1.2))
asin_p = _unary(
    "asin", lambda x, out: reciprocal(sqrt(subtract(1.0, square(x)))), (-0.9, 0.9), np.arcsin, "jax.numpy.arcsin"
)
acos_p = _unary(
    "acos",
    lambda x, out: negative(reciprocal(sqrt(subtract(1.0, square(x))))),
    (-0.9, 0.9),
    np.arccos,
    "jax.numpy.arccos",
)
atan_p = _unary("atan", lambda x, out: reciprocal(add(1.0, square(x))), (-2.0, 2.0), np.arctan, "jax.numpy.arctan")
sinh_p = _unary("sinh", lambda x, out: cosh(x))
cosh_p = _unary("cosh", lambda x, out: sinh(x))
tanh_p = _unary("tanh", lambda x, out: subtract(1.0, square(out)), numpy_pullback=lambda g, out, x: g * (1 - out * out))
asinh_p = _unary(
    "asinh", lambda x, out: reciprocal(sqrt(add(square(x), 1.0))), (-2.0, 2.0), np.arcsinh, "jax.numpy.arcsinh"
)
acosh_p = _unary(
    "acosh",
    lambda x, out: reciprocal(sqrt(subtract(square(x), 1.0))),
    (1.1, 3.0),
    np.arccosh,
    "jax.numpy.arccosh",
)
atanh_p = _unary(
    "atanh",
    lambda x, out: reciprocal(subtract(1.0, square(x))),
    (-0.9, 0.9),
    np.arctanh,
    "jax.numpy.arctanh",
)
reciprocal_p = _unary("reciprocal", lambda x, out: negative(square(out)), (0.2, 3.0))


def _abs_derivative(x: Any, out: Any) -> Any:
    # sign(x), which is 0 at x == 0: the minimum-norm subgradient.
    return sign(x)


abs_p = _unary("abs", _abs_derivative)

# -- piecewise constant and boolean results (zero derivative) ------------------

sign_p = _nondiff("sign")
floor_p = _nondiff("floor")
ceil_p = _nondiff("ceil")
trunc_p = _nondiff("trunc")
round_p = _nondiff("round")
floor_divide_p = _nondiff("floor_divide")
equal_p = _nondiff("equal")
not_equal_p = _nondiff("not_equal")
less_p = _nondiff("less")
less_equal_p = _nondiff("less_equal")
greater_p = _nondiff("greater")
greater_equal_p = _nondiff("greater_equal")
isnan_p = _nondiff("isnan")
isinf_p = _nondiff("isinf")
isfinite_p = _nondiff("isfinite")
signbit_p = _nondiff("signbit")
logical_and_p = _nondiff("logical_and")
logical_or_p = _nondiff("logical_or")
logical_xor_p = _nondiff("logical_xor")
logical_not_p = _nondiff("logical_not")
bitwise_and_p = _nondiff("bitwise_and")
bitwise_or_p = _nondiff("bitwise_or")
bitwise_xor_p = _nondiff("bitwise_xor")
bitwise_invert_p = _nondiff("bitwise_invert", np.invert, "jax.numpy.invert")
bitwise_left_shift_p = _nondiff("bitwise_left_shift", np.left_shift, "jax.numpy.left_shift")
bitwise_right_shift_p = _nondiff("bitwise_right_shift", np.right_shift, "jax.numpy.right_shift")


def _remainder_dy(x: Any, y: Any) -> Any:
    return negative(floor(divide(x, y)))


remainder_p = Primitive(
    "remainder",
    make_impl("remainder"),
    pullbacks=(
        lambda g, out, x, y: unbroadcast(g, shape_of(x)),
        lambda g, out, x, y: unbroadcast(multiply(g, _remainder_dy(x, y)), shape_of(y)),
    ),
    jvps=(
        lambda t, out, x, y: broadcast_tangent(t, out),
        lambda t, out, x, y: broadcast_tangent(multiply(t, _remainder_dy(x, y)), out),
    ),
)

copysign_p = Primitive(
    "copysign",
    make_impl("copysign"),
    pullbacks=(
        lambda g, out, x, y: unbroadcast(multiply(g, multiply(sign(x), sign(out))), shape_of(x)),
        None,
    ),
    jvps=(lambda t, out, x, y: broadcast_tangent(multiply(t, multiply(sign(x), sign(out))), out), None),
)

# -- where and clip --------------------------------------------------------------


def _where_pullback(branch: int) -> Callable[..., Any]:
    def pullback(g: Any, out: Any, condition: Any, x: Any, y: Any) -> Any:
        from ._ops_creation import zeros_like

        zero = zeros_like(g)
        picked = where(condition, g, zero) if branch == 1 else where(condition, zero, g)
        return unbroadcast(picked, shape_of(x if branch == 1 else y))

    return pullback


def _where_numpy_pullback(branch: int) -> Callable[..., Any]:
    def pullback(g: Any, out: Any, condition: Any, x: Any, y: Any) -> Any:
        # np.where promotes the Python 0 to g's dtype, as zeros_like(g) does.
        picked = np.where(condition, g, 0) if branch == 1 else np.where(condition, 0, g)
        return sum_like(picked, x if branch == 1 else y)

    return pullback


def _where_jvp(tangents: list[Any], out: Any, condition: Any, x: Any, y: Any) -> Any:
    from ._ops_creation import zeros_like

    _, tx, ty = tangents
    tx = zeros_like(out) if tx is None else broadcast_tangent(tx, out)
    ty = zeros_like(out) if ty is None else broadcast_tangent(ty, out)
    return where(condition, tx, ty)


where_p = Primitive(
    "where",
    make_impl("where"),
    pullbacks=(None, _where_pullback(1), _where_pullback(2)),
    numpy_pullbacks=(None, _where_numpy_pullback(1), _where_numpy_pullback(2)),
    jvp=_where_jvp,
)


def _clip_mask(x: Any, low: Any, high: Any) -> Any:
    inside = None
    if low is not None:
        inside = greater_equal(x, low)
    if high is not None:
        upper = less_equal(x, high)
        inside = upper if inside is None else logical_and(inside, upper)
    return inside


clip_p = Primitive(
    "clip",
    make_impl("clip"),
    pullbacks=(
        lambda g, out, x, low, high: unbroadcast(where(_clip_mask(x, low, high), g, 0.0), shape_of(x)),
        lambda g, out, x, low, high: unbroadcast(where(less(x, low), g, 0.0), shape_of(low)),
        lambda g, out, x, low, high: unbroadcast(where(greater(x, high), g, 0.0), shape_of(high)),
    ),
    jvps=(
        lambda t, out, x, low, high: where(_clip_mask(x, low, high), broadcast_tangent(t, out), 0.0),
        lambda t, out, x, low, high: where(less(x, low), broadcast_tangent(t, out), 0.0),
        lambda t, out, x, low, high: where(greater(x, high), broadcast_tangent(t, out), 0.0),
    ),
)

# -- public functions ---------------------------------------------------------------


def add(x: Any, y: Any, /) -> Any:
    """Return ``x + y`` element-wise, broadcasting as the Array API specifies."""
    return bind(
        add_p,
        (
            x,
            y,
        ),
        _NO_PARAMS,
    )


def subtract(x: Any, y: Any, /) -> Any:
    """Return ``x - y`` element-wise."""
    return bind(
        subtract_p,
        (
            x,
            y,
        ),
        _NO_PARAMS,
    )


def multiply(x: Any, y: Any, /) -> Any:
    """Return ``x * y`` element-wise."""
    return bind(
        multiply_p,
        (
            x,
            y,
        ),
        _NO_PARAMS,
    )


def divide(x: Any, y: Any, /) -> Any:
    """Return ``x / y`` element-wise (true division)."""
    return bind(
        divide_p,
        (
            x,
            y,
        ),
        _NO_PARAMS,
    )


def pow(x: Any, y: Any, /) -> Any:  # noqa: A001 (Array API name)
    """Return ``x ** y`` element-wise.

    The derivative with respect to ``y`` is ``log(x) * x**y``, taken as 0
    where ``x == 0``.
    """
    return bind(
        pow_p,
        (
            x,
            y,
        ),
        _NO_PARAMS,
    )


def negative(x: Any, /) -> Any:
    """Return ``-x`` element-wise."""
    return bind(negative_p, (x,), _NO_PARAMS)


def positive(x: Any, /) -> Any:
    """Return ``+x`` element-wise."""
    return bind(positive_p, (x,), _NO_PARAMS)


def maximum(x: Any, y: Any, /) -> Any:
    """Return the element-wise maximum; ties share the gradient equally."""
    return bind(
        maximum_p,
        (
            x,
            y,
        ),
        _NO_PARAMS,
    )


def minimum(x: Any, y: Any, /) -> Any:
    """Return the element-wise minimum; ties share the gradient equally."""
    return bind(
        minimum_p,
        (
            x,
            y,
        ),
        _NO_PARAMS,
    )


def logaddexp(x: Any, y: Any, /) -> Any:
    """Return ``log(exp(x) + exp(y))`` without overflow; finite gradient at ``-inf``."""
    return bind(
        logaddexp_p,
        (
            x,
            y,
        ),
        _NO_PARAMS,
    )


def atan2(x1: Any, x2: Any, /) -> Any:
    """Return the angle of the point ``(x2, x1)``, i.e. ``atan(x1 / x2)`` by quadrant."""
    return bind(
        atan2_p,
        (
            x1,
            x2,
        ),
        _NO_PARAMS,
    )


def hypot(x1: Any, x2: Any, /) -> Any:
    """Return ``sqrt(x1**2 + x2**2)``, with gradient 0 (not nan) at the origin."""
    return bind(
        hypot_p,
        (
            x1,
            x2,
        ),
        _NO_PARAMS,
    )


def remainder(x: Any, y: Any, /) -> Any:
    """Return ``x mod y`` with the sign of ``y``."""
    return bind(
        remainder_p,
        (
            x,
            y,
        ),
        _NO_PARAMS,
    )


def copysign(x1: Any, x2: Any, /) -> Any:
    """Return ``|x1|`` with the sign of ``x2``; differentiable in ``x1`` only."""
    return bind(
        copysign_p,
        (
            x1,
            x2,
        ),
        _NO_PARAMS,
    )


def where(condition: Any, x1: Any, x2: Any, /) -> Any:
    """Select ``x1`` where ``condition`` holds, else ``x2``.

    The gradient flows only into the selected branch. A NaN produced by the
    untaken branch of the *primal* still poisons the gradient when that branch
    is itself differentiated (``0 * nan = nan``), so evaluate the risky
    function on a safe input instead ("double where")::

        safe = dx.where(x > 0, x, 1.0)
        y = dx.where(x > 0, dx.log(safe), 0.0)
    """
    return bind(
        where_p,
        (
            condition,
            x1,
            x2,
        ),
        _NO_PARAMS,
    )


def clip(x: Any, /, min: Any = None, max: Any = None) -> Any:  # noqa: A002 (Array API name)
    """Clamp ``x`` to ``[min, max]``; the gradient is zero outside the interval."""
    if min is None and max is None:
        return x
    if min is None:
        return minimum(x, max)
    if max is None:
        return maximum(x, min)
    return bind(
        clip_p,
        (
            x,
            min,
            max,
        ),
        _NO_PARAMS,
    )


def _export_unary(prim: Primitive) -> Callable[[Any], Any]:
    def op(x: Any, /) -> Any:
        return bind(prim, (x,), _NO_PARAMS)

    op.__name__ = prim.name
    op.__qualname__ = prim.name
    op.__doc__ = f"Return ``{prim.name}(x)`` element-wise."
    return op


exp = _export_unary(exp_p)
expm1 = _export_unary(expm1_p)
log = _export_unary(log_p)
log1p = _export_unary(log1p_p)
log2 = _export_unary(log2_p)
log10 = _export_unary(log10_p)
sqrt = _export_unary(sqrt_p)
square = _export_unary(square_p)
sin = _export_unary(sin_p)
cos = _export_unary(cos_p)
tan = _export_unary(tan_p)
asin = _export_unary(asin_p)
acos = _export_unary(acos_p)
atan = _export_unary(atan_p)
sinh = _export_unary(sinh_p)
cosh = _export_unary(cosh_p)
tanh = _export_unary(tanh_p)
asinh = _export_unary(asinh_p)
acosh = _export_unary(acosh_p)
atanh = _export_unary(atanh_p)
reciprocal = _export_unary(reciprocal_p)
abs = _export_unary(abs_p)  # noqa: A001 (Array API name)
sign = _export_unary(sign_p)
floor = _export_unary(floor_p)
ceil = _export_unary(ceil_p)
trunc = _export_unary(trunc_p)
isnan = _export_unary(isnan_p)
isinf = _export_unary(isinf_p)
isfinite = _export_unary(isfinite_p)
signbit = _export_unary(signbit_p)
logical_not = _export_unary(logical_not_p)
bitwise_invert = _export_unary(bitwise_invert_p)


def round(x: Any, /) -> Any:  # noqa: A001 (Array API name)
    """Round to the nearest integer (halves to even); zero derivative."""
    return bind(round_p, (x,), _NO_PARAMS)


def _export_binary(prim: Primitive) -> Callable[[Any, Any], Any]:
    def op(x1: Any, x2: Any, /) -> Any:
        return bind(prim, (x1, x2), _NO_PARAMS)

    op.__name__ = prim.name
    op.__qualname__ = prim.name
    op.__doc__ = f"Return ``{prim.name}(x1, x2)`` element-wise (no derivative)."
    return op


floor_divide = _export_binary(floor_divide_p)
equal = _export_binary(equal_p)
not_equal = _export_binary(not_equal_p)
less = _export_binary(less_p)
less_equal = _export_binary(less_equal_p)
greater = _export_binary(greater_p)
greater_equal = _export_binary(greater_equal_p)
logical_and = _export_binary(logical_and_p)
logical_or = _export_binary(logical_or_p)
logical_xor = _export_binary(logical_xor_p)
bitwise_and = _export_binary(bitwise_and_p)
bitwise_or = _export_binary(bitwise_or_p)
bitwise_xor = _export_binary(bitwise_xor_p)
bitwise_left_shift = _export_binary(bitwise_left_shift_p)
bitwise_right_shift = _export_binary(bitwise_right_shift_p)
