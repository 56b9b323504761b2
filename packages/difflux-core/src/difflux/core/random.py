"""``dx.random``: explicit random keys and samplers on NumPy and JAX.

Random numbers come from keys, never from hidden global state, so a result
is reproducible for a given seed and backend, and the same code runs under
``dx.jit`` and ``dx.vmap``. The pattern is JAX's: make a key with
``key(seed)``, derive fresh keys with ``split`` (or ``fold_in``), and pass a
key to each sampler once.

A key is a ``uint32`` array of shape ``(2,)`` of the backend that was the
default when ``key`` was called (``DIFFLUX_BACKEND`` or ``dx.backend``), and
samplers return arrays of their key's backend.

* On JAX, keys are the raw data of ``jax.random.key`` (threefry) and every
  sampler calls ``jax.random``. Typed keys made by ``jax.random.key`` are
  accepted too.
* On NumPy, a key seeds a counter-based Philox generator
  (``numpy.random.Philox``), and ``split``/``fold_in`` derive child keys
  by hashing the parent key together with the request through
  ``numpy.random.SeedSequence``. Different keys therefore give independent
  streams, and child keys are unrelated to their parent's samples.

The two backends use different generators, so one seed gives different
numbers on NumPy and on JAX.

Samplers return plain arrays. ``uniform`` is differentiable with respect to
``minval`` and ``maxval``. ``gamma``, ``beta`` and ``dirichlet`` are
differentiable with respect to their shape parameters (implicit
reparameterisation, first order). ``permutation`` and ``choice`` of an array
are differentiable with respect to that array. Other parameters (``p``,
``logits``, ``lam``, ``n``) carry no derivative.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._backend import backend_of_value, check_backend_name, default_backend, jax_module
from ._batching import BatchTrace, BatchTracer
from ._core import Primitive, Tracer, value_of

Shape = int | Sequence[int]

__all__ = [
    "bernoulli",
    "beta",
    "binomial",
    "categorical",
    "choice",
    "dirichlet",
    "exponential",
    "fold_in",
    "gamma",
    "key",
    "normal",
    "permutation",
    "poisson",
    "randint",
    "split",
    "uniform",
]

# Domain separation of the requests hashed by SeedSequence on NumPy.
_SPLIT, _FOLD_IN = 0, 1


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


def key(seed: int, *, backend: str | None = None) -> Any:
    """Make a random key from an integer seed.

    Args:
        seed: any Python integer (on JAX also a traced integer).
        backend: ``"numpy"`` or ``"jax"``; the default backend when omitted.

    Examples:
        >>> import difflux.core as dx
        >>> k = dx.random.key(0, backend="numpy")
        >>> k.shape, k.dtype
        ((2,), dtype('uint32'))
    """
    name = backend if backend is not None else default_backend()
    if name == "jax":
        jax = jax_module()
        return jax.random.key_data(jax.random.key(seed))
    if name != "numpy":
        check_backend_name(name)
    try:
        seed = operator.index(seed)
    except TypeError:
        raise TypeError(f"dx.random.key needs an integer seed, got {type(seed).__name__} {seed!r}") from None
    return np.random.SeedSequence([abs(seed), int(seed < 0)]).generate_state(2, np.uint32)


def _unpack(k: Any, function: str) -> tuple[str, Any]:
    """Return the key's backend and the key in the form that backend's samplers take."""
    value = value_of(k)
    backend = backend_of_value(value)
    if backend == "jax":
        jax = jax_module()
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            return "jax", value
        if value.ndim != 1 or not np.issubdtype(np.dtype(value.dtype), np.unsignedinteger):
            raise _invalid_key(function, value)
        return "jax", jax.random.wrap_key_data(value)
    if backend == "numpy" and value.shape == (2,) and value.dtype == np.uint32:
        return "numpy", value
    raise _invalid_key(function, value)


def _invalid_key(function: str, value: Any) -> Exception:
    shape = getattr(value, "shape", None)
    described = f"an array of shape {tuple(shape)} and dtype {value.dtype}" if shape is not None else repr(value)
    advice = ""
    if shape is not None and len(shape) == 2:
        advice = " It looks like a batch of keys: map over it with dx.vmap, or index one key."
    return TypeError(
        f"dx.random.{function} expects one key from dx.random.key(seed) or dx.random.split, got {described}.{advice}"
    )


def _per_key(sampler: Callable[..., Any]) -> Callable[..., Any]:
    """Let ``sampler`` take a batch of keys from ``dx.vmap``: it runs once per key and the results are stacked.

    Without this, reading a batched key's array would make ``dx.vmap`` fall
    back to running the whole mapped function once per example (see
    ``_batching``), which turns NUTS with vectorised chains on NumPy into a
    loop over the chains. Only the key may be batched; a traced argument
    besides the key takes the unbatched path as before.
    """

    @functools.wraps(sampler)
    def wrapper(k: Any, *args: Any, **kwargs: Any) -> Any:
        if type(k) is not BatchTracer or any(isinstance(a, Tracer) for a in (*args, *kwargs.values())):
            return sampler(k, *args, **kwargs)
        keys = k.value
        draws = [sampler(keys[i], *args, **kwargs) for i in range(keys.shape[0])]
        xp = np if isinstance(draws[0], np.ndarray | np.generic) else jax_module().numpy
        trace = k._trace
        assert isinstance(trace, BatchTrace)
        return trace.wrap(xp.stack(draws))

    return wrapper


def _is_typed(k: Any) -> bool:
    """Return whether ``k`` is a typed JAX key (from ``jax.random.key``) rather than raw key data."""
    value = value_of(k)
    if backend_of_value(value) != "jax":
        return False
    jax = jax_module()
    return bool(jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key))


def _numpy_child_keys(k: np.ndarray, request: tuple[int, int], count: int) -> np.ndarray:
    sequence = np.random.SeedSequence([int(k[0]), int(k[1])], spawn_key=request)
    return sequence.generate_state(2 * count, np.uint32).reshape(count, 2)


_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(key: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the Threefry-2x32 block cipher (20 rounds) to the word pairs ``(x1, x2)`` under ``key``.

    Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as
    1, 2, 3" (SC 2011), as JAX's ``threefry2x32`` computes it, in NumPy.
    """
    with np.errstate(over="ignore"):
        return _threefry_rounds(
            np.uint32(key[0]), np.uint32(key[1]), np.asarray(x1, dtype=np.uint32), np.asarray(x2, dtype=np.uint32)
        )


def _threefry_rounds(k1: Any, k2: Any, x1: Any, x2: Any) -> tuple[Any, Any]:
    """Return Threefry-2x32's 20 rounds on ``uint32`` words, NumPy arrays or traced JAX arrays alike.

    The rotations are Python constants, so under tracing the rounds unroll
    into shifts by constant amounts.
    """
    schedule = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x = [x1 + schedule[0], x2 + schedule[1]]
    for block in range(5):
        for rotation in _THREEFRY_ROTATIONS[block % 2]:
            x[0] = x[0] + x[1]
            x[1] = (x[1] << np.uint32(rotation)) | (x[1] >> np.uint32(32 - rotation))
            x[1] = x[0] ^ x[1]
        x[0] = x[0] + schedule[(block + 1) % 3]
        x[1] = x[1] + schedule[(block + 2) % 3] + np.uint32(block + 1)
    return x[0], x[1]


def _default_threefry_key(value: Any) -> bool:
    """Return whether ``value`` is a raw ``uint32`` key of shape ``(2,)`` under JAX's default partitionable threefry."""
    jax = jax_module()
    return (
        value.shape == (2,)
        and value.dtype == np.uint32
        and jax.config.jax_threefry_partitionable
        and jax.config.jax_default_prng_impl == "threefry2x32"
    )


def _threefry_split_on_host(value: Any, num: int) -> np.ndarray | None:
    """Return ``jax.random.split`` of a concrete raw JAX key, computed in NumPy; ``None`` where it cannot.

    Eager JAX compiles a program for each new operation, about 0.2 s for a
    split, so the set-up code of a compiled run (MCMC's chains, say) would
    pay that before its own compilation. The keys are JAX's bit for bit:
    the default threefry implementation with partitionable splitting (the
    default since JAX 0.5) counts ``i = 0 .. num - 1`` as the word pairs
    ``(0, i)``. Traced keys, typed keys and other settings return ``None``
    and go through JAX.
    """
    jax = jax_module()
    if not isinstance(value, jax.Array) or isinstance(value, jax.core.Tracer) or not _default_threefry_key(value):
        return None
    bits1, bits2 = threefry2x32(np.asarray(value), np.zeros(num, dtype=np.uint32), np.arange(num, dtype=np.uint32))
    return np.stack([bits1, bits2], axis=1)


# --------------------------------------------------------------------------
# Threefry under tracing
# --------------------------------------------------------------------------
#
# On CPU, JAX lowers its threefry hash as a loop of five blocks whose rotation
# amounts are loop-carried values, and LLVM's optimisation of those variable
# shifts is slow. One vmapped jax.random.normal of shape (2, 31) compiled in
# 0.82 s, and the same draw through the unrolled hash below, with constant
# rotations, in 0.07 s (JAX 0.10.2, one pinned core of a 2-core machine).
# So ``normal`` and ``split`` with a traced key take the unrolled hash, which
# gives JAX's bits exactly. Concrete keys keep JAX's own compiled program.
#
# NOTE: the unrolled ``split`` ends in an optimisation barrier. Without it, a
# chain of splits (the initial-value search of difflux.ppl) compiled slower at
# XLA's optimisation level 0, because XLA copied each unrolled hash into every
# fusion that reads its keys. With it, the NUTS chunk program of a logistic
# regression compiled about 0.2 s (5%) faster than with JAX's looped hash.
# ``uniform`` keeps JAX's hash.


def _threefry_counts(shape: tuple[int, ...]) -> tuple[Any, Any]:
    """Return the word pairs ``(0, i)`` that JAX's partitionable threefry hashes for element ``i`` of ``shape``."""
    lax = jax_module().lax
    size = math.prod(shape)
    low = lax.reshape(lax.iota(np.uint32, size), shape)
    return lax.full(shape, 0, np.uint32), low


def _unrolled_unit_uniform(value: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """Return ``jax.random.uniform(key, shape, dtype)`` on ``[0, 1)`` for the raw key ``value``, bit for bit."""
    lax = jax_module().lax
    bits1, bits2 = _threefry_rounds(value[0], value[1], *_threefry_counts(shape))
    finfo = np.finfo(dtype)
    if finfo.bits == 64:
        bits = lax.shift_left(lax.convert_element_type(bits1, np.uint64), np.uint64(32))
        bits = bits | lax.convert_element_type(bits2, np.uint64)
        unsigned = np.uint64
    else:
        bits = bits1 ^ bits2
        unsigned = np.uint32
    # Random mantissa bits under the exponent of 1.0 give a float in [1, 2).
    float_bits = lax.shift_right_logical(bits, unsigned(finfo.bits - finfo.nmant))
    float_bits = float_bits | np.array(1.0, dtype).view(unsigned)
    return lax.bitcast_convert_type(float_bits, dtype) - np.array(1.0, dtype)


def _unrolled_normal(value: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """Return ``jax.random.normal(key, shape, dtype)`` for the raw key ``value``, bit for bit."""
    lax = jax_module().lax
    low = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    high = np.array(1.0, dtype)
    unit = _unrolled_unit_uniform(value, shape, dtype)
    uniform = lax.max(low, unit * (high - low) + low)
    return lax.mul(np.array(np.sqrt(2), dtype), lax.erf_inv(uniform))


@functools.cache
def _compiled_unrolled_normal() -> Callable[..., Any]:
    # Shape and dtype are static. Inside an enclosing jax.jit this is one call in that program.
    return jax_module().jit(_unrolled_normal, static_argnums=(1, 2))


def _unrolled_split(value: Any, num: int) -> Any:
    """Return ``jax.random.split(key, num)`` for the raw key ``value``, bit for bit, as a ``(num, 2)`` array."""
    lax = jax_module().lax
    bits1, bits2 = _threefry_rounds(value[0], value[1], *_threefry_counts((num, 1)))
    # The barrier keeps XLA from copying the hash into every fusion that reads a key.
    return lax.optimization_barrier(lax.concatenate([bits1, bits2], 1))


@functools.cache
def _compiled_unrolled_split() -> Callable[..., Any]:
    return jax_module().jit(_unrolled_split, static_argnums=(1,))


def _unrolled_float_dtype(value: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """Return the dtype of a sample from the unrolled hash, or ``None`` where ``jax.random`` must sample.

    The unrolled hash serves raw ``uint32`` keys of shape ``(2,)`` that are
    traced, under JAX's default threefry with partitionable counting, for
    float32 and float64 samples of fewer than ``2**32`` elements.
    """
    jax = jax_module()
    if not isinstance(value, jax.core.Tracer) or not _default_threefry_key(value) or math.prod(shape) >= 2**32:
        return None
    resolved = np.dtype(jax.dtypes.canonicalize_dtype(float if dtype is None else dtype))
    return resolved if resolved in (np.dtype(np.float32), np.dtype(np.float64)) else None


@_per_key
def split(k: Any, num: int = 2) -> Any:
    """Derive ``num`` new independent keys from ``k``; returns an array of shape ``(num, 2)``.

    Do not use ``k`` itself again after splitting it.

    Examples:
        >>> import difflux.core as dx
        >>> k1, k2 = dx.random.split(dx.random.key(0, backend="numpy"))
        >>> bool((k1 != k2).any())
        True
    """
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"dx.random.split needs num >= 0, got {num}")
    backend, unpacked = _unpack(k, "split")
    if backend == "jax":
        jax = jax_module()
        value = value_of(k)
        host = _threefry_split_on_host(value, num)
        if host is not None:
            return jax.device_put(host)
        if isinstance(value, jax.core.Tracer) and _default_threefry_key(value):
            return _compiled_unrolled_split()(value, num)
        keys = jax.random.split(unpacked, num)
        return keys if _is_typed(k) else jax.random.key_data(keys)
    return _numpy_child_keys(unpacked, (_SPLIT, num), num)


@_per_key
def fold_in(k: Any, data: int) -> Any:
    """Derive a new key from ``k`` and an integer (a step or example index, say).

    Examples:
        >>> import difflux.core as dx
        >>> k = dx.random.key(0, backend="numpy")
        >>> bool((dx.random.fold_in(k, 1) != dx.random.fold_in(k, 2)).any())
        True
    """
    backend, unpacked = _unpack(k, "fold_in")
    if backend == "jax":
        jax = jax_module()
        folded = jax.random.fold_in(unpacked, data)
        return folded if _is_typed(k) else jax.random.key_data(folded)
    return _numpy_child_keys(unpacked, (_FOLD_IN, operator.index(data) % 2**32), 1)[0]


def _generator(k: np.ndarray) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(key=int(k[0]) | (int(k[1]) << 32)))


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _shape(shape: Shape | None) -> tuple[int, ...]:
    if shape is None:
        return ()
    if isinstance(shape, int | np.integer):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _float_dtype(dtype: Any, function: str) -> Any:
    """Return the NumPy float dtype of a sample (float64 by default)."""
    result = np.dtype(np.float64 if dtype is None else dtype)
    if result.kind != "f":
        raise TypeError(f"dx.random.{function} samples floats; dtype {result} is not a float dtype")
    return result


def _as_array(x: Any, backend: str) -> Any:
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(x)
    return np.asarray(x)


# --------------------------------------------------------------------------
# Continuous samplers
# --------------------------------------------------------------------------


@_per_key
def normal(k: Any, shape: Shape = (), dtype: Any = None) -> Any:
    """Sample standard normal values of the given shape.

    Examples:
        >>> import difflux.core as dx
        >>> dx.random.normal(dx.random.key(0, backend="numpy"), (2, 3)).shape
        (2, 3)
    """
    backend, unpacked = _unpack(k, "normal")
    shape = _shape(shape)
    if backend == "jax":
        jax = jax_module()
        unrolled = _unrolled_float_dtype(value_of(k), shape, dtype)
        if unrolled is not None:
            return _compiled_unrolled_normal()(value_of(k), shape, unrolled)
        return jax.random.normal(unpacked, shape, **({} if dtype is None else {"dtype": dtype}))
    dtype = _float_dtype(dtype, "normal")
    sample = _generator(unpacked).standard_normal(shape, dtype=np.float64 if dtype.itemsize < 4 else dtype)
    return np.asarray(sample, dtype=dtype)


@_per_key
def uniform(k: Any, shape: Shape = (), dtype: Any = None, minval: Any = 0.0, maxval: Any = 1.0) -> Any:
    """Sample values uniformly from ``[minval, maxval)``.

    The sample is ``minval + (maxval - minval) * u`` with ``u`` uniform on
    ``[0, 1)``, so it is differentiable with respect to ``minval`` and
    ``maxval`` (the reparameterisation trick). Both broadcast against
    ``shape``.

    Examples:
        >>> import difflux.core as dx
        >>> x = dx.random.uniform(dx.random.key(0, backend="numpy"), (1000,), minval=2.0, maxval=3.0)
        >>> bool((x >= 2.0).all() and (x < 3.0).all())
        True
    """
    backend, unpacked = _unpack(k, "uniform")
    shape = _shape(shape)
    if backend == "jax":
        jax = jax_module()
        unit = jax.random.uniform(unpacked, shape, **({} if dtype is None else {"dtype": dtype}))
    else:
        dtype = _float_dtype(dtype, "uniform")
        unit = np.asarray(
            _generator(unpacked).random(shape, dtype=np.float64 if dtype.itemsize < 4 else dtype), dtype=dtype
        )
    if isinstance(minval, int | float) and isinstance(maxval, int | float):
        if minval == 0.0 and maxval == 1.0:
            return unit
        return minval + (maxval - minval) * unit
    from ._ops_elementwise import add, multiply, subtract

    return add(minval, multiply(subtract(maxval, minval), unit))


@_per_key
def exponential(k: Any, shape: Shape = (), dtype: Any = None) -> Any:
    """Sample standard exponential values (rate 1)."""
    backend, unpacked = _unpack(k, "exponential")
    shape = _shape(shape)
    if backend == "jax":
        jax = jax_module()
        return jax.random.exponential(unpacked, shape, **({} if dtype is None else {"dtype": dtype}))
    dtype = _float_dtype(dtype, "exponential")
    return np.asarray(_generator(unpacked).standard_exponential(shape), dtype=dtype)


def _gamma_sample_da(a: Any, x: Any) -> Any:
    """Compute dx/da of a Gamma(a, 1) sample ``x`` kept at a fixed CDF level.

    Implicit reparameterisation (Figurnov, Mohamed and Mnih, 2018): the
    sample solves P(a, x) = u for a uniform ``u`` that does not depend on
    ``a``, so dx/da = -(dP/da) / (dP/dx), where dP/dx is the Gamma density.
    Where the density underflows to 0 (far tails) the derivative is taken
    as 0 rather than the 0/0 NaN.
    """
    from ._ops_elementwise import divide, greater, negative, where
    from ._ops_special_incomplete import _gamma_density, gammainc_grad_a_p

    density = _gamma_density(a, x)
    positive = greater(density, 0.0)
    safe_density = where(positive, density, 1.0)
    return where(positive, negative(divide(gammainc_grad_a_p(a, x), safe_density)), 0.0)


def _gamma_reparam_pullback(g: Any, out: Any, a: Any, x: Any) -> Any:
    from ._dispatch import shape_of, unbroadcast
    from ._ops_elementwise import multiply

    return unbroadcast(multiply(g, _gamma_sample_da(a, x)), shape_of(a))


def _gamma_reparam_jvp(t: Any, out: Any, a: Any, x: Any) -> Any:
    from ._dispatch import broadcast_tangent
    from ._ops_elementwise import multiply

    return multiply(broadcast_tangent(t, out), _gamma_sample_da(a, x))


def _gamma_reparam_impl(a: Any, x: Any) -> Any:
    return x


# Attaches the implicit derivative in ``a`` to a sample drawn without one;
# the sample itself (argument ``x``) has no derivative.
_gamma_reparam_p = Primitive(
    "random_gamma",
    _gamma_reparam_impl,
    pullbacks=(_gamma_reparam_pullback, None),
    jvps=(_gamma_reparam_jvp, None),
)


def _raw_gamma(backend: str, unpacked: Any, a: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    if backend == "jax":
        jax = jax_module()
        return jax.random.gamma(unpacked, a, shape, **({} if dtype is None else {"dtype": dtype}))
    dtype = _float_dtype(dtype, "gamma")
    a = np.asarray(a, dtype=np.float64)
    if np.any(a <= 0):
        raise ValueError(f"dx.random.gamma needs a > 0, got a = {a}")
    return np.asarray(_generator(unpacked).standard_gamma(np.broadcast_to(a, shape), shape), dtype=dtype)


def gamma(k: Any, a: Any, shape: Shape | None = None, dtype: Any = None) -> Any:
    """Sample Gamma(``a``, 1) values; ``shape`` defaults to the shape of ``a``.

    The sample is differentiable with respect to ``a`` by implicit
    reparameterisation: dx/da = -(dP/da) / (dP/dx) with P(a, x) the Gamma
    CDF (``dx.gammainc``). The derivative is first order only: a second
    derivative in ``a`` raises ``MissingRuleError``, as for ``dx.gammainc``.

    Examples:
        >>> import difflux.core as dx
        >>> dx.random.gamma(dx.random.key(0, backend="numpy"), 2.0, (3,)).shape
        (3,)
    """
    backend, unpacked = _unpack(k, "gamma")
    a_value = value_of(a)
    shape = tuple(np.shape(a_value)) if shape is None else _shape(shape)
    sample = _raw_gamma(backend, unpacked, a_value, shape, dtype)
    if isinstance(a, Tracer):
        return _gamma_reparam_p(a, sample)
    return sample


def beta(k: Any, a: Any, b: Any, shape: Shape | None = None, dtype: Any = None) -> Any:
    """Sample Beta(``a``, ``b``) values; ``shape`` defaults to the broadcast shape of ``a`` and ``b``.

    The sample is ``x / (x + y)`` with ``x ~ Gamma(a)`` and ``y ~ Gamma(b)``, so it
    is differentiable in ``a`` and ``b`` through :func:`gamma`.

    Examples:
        >>> import difflux.core as dx
        >>> x = dx.random.beta(dx.random.key(0, backend="numpy"), 2.0, 3.0, (100,))
        >>> bool(((x > 0) & (x < 1)).all())
        True
    """
    _unpack(k, "beta")  # rejects an invalid key before splitting it
    if shape is None:
        shape = np.broadcast_shapes(np.shape(value_of(a)), np.shape(value_of(b)))
    shape = _shape(shape)
    key_a, key_b = split(k)
    x = gamma(key_a, _broadcast(a, shape), shape, dtype)
    y = gamma(key_b, _broadcast(b, shape), shape, dtype)
    from ._ops_elementwise import add, divide

    return divide(x, add(x, y))


def dirichlet(k: Any, alpha: Any, shape: Shape | None = None, dtype: Any = None) -> Any:
    """Sample Dirichlet(``alpha``) vectors; the categories lie on the last axis of ``alpha``.

    ``shape`` is the batch shape of the output (without the category axis)
    and defaults to ``alpha.shape[:-1]``; the result has shape
    ``shape + alpha.shape[-1:]``. Normalised Gamma samples, so the result is
    differentiable in ``alpha`` through :func:`gamma`.
    """
    alpha_shape = np.shape(value_of(alpha))
    if len(alpha_shape) == 0:
        raise ValueError("dx.random.dirichlet needs alpha with at least one axis of categories")
    batch = tuple(alpha_shape[:-1]) if shape is None else _shape(shape)
    full_shape = batch + tuple(alpha_shape[-1:])
    g = gamma(k, _broadcast(alpha, full_shape), full_shape, dtype)
    from ._ops_elementwise import divide
    from ._ops_reduction import sum as reduce_sum

    return divide(g, reduce_sum(g, axis=-1, keepdims=True))


def _broadcast(x: Any, shape: tuple[int, ...]) -> Any:
    if np.shape(value_of(x)) == shape:
        return x
    if isinstance(x, Tracer):
        from ._ops_shape import broadcast_to

        return broadcast_to(x, shape)
    value = value_of(x)
    if backend_of_value(value) == "jax":
        import jax.numpy as jnp

        return jnp.broadcast_to(value, shape)
    return np.broadcast_to(np.asarray(value, dtype=np.float64), shape)


# --------------------------------------------------------------------------
# Discrete samplers
# --------------------------------------------------------------------------


@_per_key
def bernoulli(k: Any, p: Any = 0.5, shape: Shape | None = None) -> Any:
    """Sample booleans that are ``True`` with probability ``p``.

    ``shape`` defaults to the shape of ``p``, and ``p`` broadcasts against it.
    """
    backend, unpacked = _unpack(k, "bernoulli")
    p = value_of(p)
    shape = tuple(np.shape(p)) if shape is None else _shape(shape)
    if backend == "jax":
        jax = jax_module()
        return jax.random.bernoulli(unpacked, p, shape)
    return _generator(unpacked).random(shape) < np.asarray(p)


@_per_key
def randint(k: Any, shape: Shape, minval: Any, maxval: Any, dtype: Any = None) -> Any:
    """Sample integers uniformly from ``[minval, maxval)``."""
    backend, unpacked = _unpack(k, "randint")
    shape = _shape(shape)
    if backend == "jax":
        jax = jax_module()
        return jax.random.randint(unpacked, shape, minval, maxval, **({} if dtype is None else {"dtype": dtype}))
    dtype = np.dtype(np.int64 if dtype is None else dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"dx.random.randint samples integers; dtype {dtype} is not an integer dtype")
    return np.asarray(_generator(unpacked).integers(minval, maxval, size=shape, dtype=dtype))


def categorical(k: Any, logits: Any, axis: int = -1, shape: Shape | None = None) -> Any:
    """Sample category indices with probabilities ``softmax(logits)`` along ``axis``.

    The categories lie along ``axis`` of ``logits``; the other axes are a
    batch of independent distributions. ``shape`` is the output shape and
    defaults to that batch shape. It must end with the batch shape, and extra
    leading axes draw more samples.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> dx.random.categorical(dx.random.key(0, backend="numpy"), np.log([0.2, 0.8]), shape=(5,)).shape
        (5,)
    """
    backend, unpacked = _unpack(k, "categorical")
    logits = value_of(logits)
    if backend == "jax":
        jax = jax_module()
        return jax.random.categorical(unpacked, logits, axis, None if shape is None else _shape(shape))
    logits = np.asarray(logits)
    if logits.ndim == 0:
        raise ValueError("dx.random.categorical needs logits with at least one axis of categories")
    axis = axis % logits.ndim
    moved = np.moveaxis(logits, axis, -1)
    batch_shape = moved.shape[:-1]
    out_shape = batch_shape if shape is None else _shape(shape)
    try:
        np.broadcast_shapes(out_shape, batch_shape)
    except ValueError:
        raise ValueError(
            f"dx.random.categorical: shape {out_shape} does not broadcast with the batch shape "
            f"{batch_shape} of logits {logits.shape} (categories on axis {axis})"
        ) from None
    if np.broadcast_shapes(out_shape, batch_shape) != out_shape:
        raise ValueError(f"dx.random.categorical: shape {out_shape} must contain the batch shape {batch_shape}")
    # Gumbel-max: argmax(logits + Gumbel noise) is distributed as softmax(logits).
    noise = _generator(unpacked).gumbel(size=out_shape + moved.shape[-1:])
    return np.argmax(moved + noise, axis=-1)


def poisson(k: Any, lam: Any, shape: Shape | None = None) -> Any:
    """Sample Poisson(``lam``) counts as int64 (int32 on JAX without x64); ``shape`` defaults to the shape of ``lam``.

    ``lam`` broadcasts against ``shape`` and carries no derivative.
    """
    backend, unpacked = _unpack(k, "poisson")
    lam = value_of(lam)
    shape = tuple(np.shape(lam)) if shape is None else _shape(shape)
    if backend == "jax":
        return jax_module().random.poisson(unpacked, lam, shape)
    lam = np.asarray(lam, dtype=np.float64)
    if np.any(lam < 0) or np.any(np.isnan(lam)):
        raise ValueError(f"dx.random.poisson needs lam >= 0, got lam = {lam}")
    return _generator(unpacked).poisson(np.broadcast_to(lam, shape), shape)


def binomial(k: Any, n: Any, p: Any, shape: Shape | None = None, dtype: Any = None) -> Any:
    """Sample Binomial(``n``, ``p``) counts; ``shape`` defaults to the broadcast shape of ``n`` and ``p``.

    Returns floats of ``dtype`` (float64 by default), as ``jax.random.binomial``
    does. ``n`` and ``p`` carry no derivative.
    """
    backend, unpacked = _unpack(k, "binomial")
    n, p = value_of(n), value_of(p)
    if shape is None:
        shape = np.broadcast_shapes(np.shape(n), np.shape(p))
    shape = _shape(shape)
    if backend == "jax":
        jax = jax_module()
        return jax.random.binomial(unpacked, n, p, shape, **({} if dtype is None else {"dtype": dtype}))
    dtype = _float_dtype(dtype, "binomial")
    n_int = np.asarray(n)
    if np.any(n_int < 0) or np.any(n_int != np.round(n_int)):
        raise ValueError(f"dx.random.binomial needs integer n >= 0, got n = {n_int}")
    p = np.asarray(p, dtype=np.float64)
    if np.any(p < 0) or np.any(p > 1) or np.any(np.isnan(p)):
        raise ValueError(f"dx.random.binomial needs 0 <= p <= 1, got p = {p}")
    counts = _generator(unpacked).binomial(np.broadcast_to(n_int.astype(np.int64), shape), np.broadcast_to(p, shape))
    return np.asarray(counts, dtype=dtype)


def _indices_permutation(backend: str, unpacked: Any, n: int) -> Any:
    if backend == "jax":
        return jax_module().random.permutation(unpacked, n)
    return _generator(unpacked).permutation(n)


def _take(x: Any, indices: Any, axis: int) -> Any:
    from ._ops_shape import getitem

    ndim = len(np.shape(value_of(x)))
    axis = axis % ndim
    return getitem(x, (slice(None),) * axis + (indices,))


def permutation(k: Any, x: Any, axis: int = 0) -> Any:
    """Return a random permutation of ``range(x)`` (an int) or of ``x`` along ``axis``.

    Examples:
        >>> import difflux.core as dx
        >>> sorted(dx.random.permutation(dx.random.key(0, backend="numpy"), 5).tolist())
        [0, 1, 2, 3, 4]
    """
    backend, unpacked = _unpack(k, "permutation")
    if isinstance(x, int | np.integer):
        return _indices_permutation(backend, unpacked, int(x))
    shape = np.shape(value_of(x))
    if not shape:
        raise ValueError("dx.random.permutation needs an int or an array with at least one axis")
    return _take(x, _indices_permutation(backend, unpacked, shape[axis]), axis)


def choice(k: Any, a: Any, shape: Shape = (), replace: bool = True, p: Any = None, axis: int = 0) -> Any:
    """Sample from ``range(a)`` (an int) or from the entries of ``a`` along ``axis``.

    Args:
        shape: the shape of the sample (of the index array).
        replace: whether an entry may be drawn more than once.
        p: the probability of each entry (normalised to sum to one);
            uniform when ``None``.
    """
    backend, unpacked = _unpack(k, "choice")
    shape = _shape(shape)
    n = int(a) if isinstance(a, int | np.integer) else np.shape(value_of(a))[axis]
    if not replace and math.prod(shape) > n:
        raise ValueError(f"dx.random.choice cannot draw {math.prod(shape)} entries without replacement from {n}")
    p_value = None if p is None else value_of(p)
    if backend == "jax":
        indices = jax_module().random.choice(unpacked, n, shape, replace, p_value)
    else:
        if p_value is not None:
            p_value = np.asarray(p_value, dtype=np.float64)
            if p_value.shape != (n,):
                raise ValueError(f"dx.random.choice: p has shape {p_value.shape} but there are {n} entries")
            p_value = p_value / p_value.sum()
        indices = _generator(unpacked).choice(n, size=shape, replace=replace, p=p_value)
        indices = np.asarray(indices)
    if isinstance(a, int | np.integer):
        return indices
    return _take(a, indices, axis)
