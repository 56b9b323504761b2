"""Weight initialisers: functions ``init(key, shape, dtype=None) -> array``.

The array has the backend of ``key`` (``dx.random.key(seed, backend=...)``)
and the dtype ``dtype``, by default float64 on NumPy and JAX's default float
on JAX (float32 unless float64 is enabled). Options are keyword-only, so
``functools.partial(nn.he_normal, gain=1.0)`` makes a new initialiser.

Fan-in and fan-out follow PyTorch's convention for row-major kernels, which
is also what Flux computes for its column-major ones. For a shape
``(d0, d1, *receptive)``, ``fan_in = d1 * prod(receptive)`` and
``fan_out = d0 * prod(receptive)``. This matches ``Dense`` weights
``(out, in)`` and ``Conv`` kernels ``(C_out, C_in // groups, *kernel)``. A
vector ``(d0,)`` has ``fan_in = fan_out = d0`` and a scalar has 1 for both.
For ``ConvTranspose`` kernels ``(C_in, C_out // groups, *kernel)`` the two
fans swap roles, as in PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import difflux.core as dx

from ._layer import backend_of

Shape = int | Sequence[int]


def _shape(shape: Shape) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(s) for s in shape)


def fans(shape: Shape) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight of this shape (see the module docstring).

    Examples:
        >>> from difflux import nn
        >>> nn.fans((16, 3, 5, 5))
        (75, 400)
    """
    shape = _shape(shape)
    if not shape:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _uniform(key: Any, shape: Shape, dtype: Any, bound: float) -> Any:
    return dx.random.uniform(key, _shape(shape), dtype, minval=-bound, maxval=bound)


def _normal(key: Any, shape: Shape, dtype: Any, std: float) -> Any:
    return std * dx.random.normal(key, _shape(shape), dtype)


# --------------------------------------------------------------------------
# Constants and plain distributions
# --------------------------------------------------------------------------


def zeros(key: Any, shape: Shape, dtype: Any = None) -> Any:
    """Return zeros; ``key`` only sets the backend."""
    return dx.zeros(_shape(shape), dtype=dtype, backend=backend_of(key))


def ones(key: Any, shape: Shape, dtype: Any = None) -> Any:
    """Return ones; ``key`` only sets the backend."""
    return dx.ones(_shape(shape), dtype=dtype, backend=backend_of(key))


def normal(key: Any, shape: Shape, dtype: Any = None, *, mean: float = 0.0, std: float = 1.0) -> Any:
    """Sample from the normal distribution N(``mean``, ``std``²)."""
    sample = _normal(key, shape, dtype, std)
    return sample + mean if mean else sample


def uniform(key: Any, shape: Shape, dtype: Any = None, *, low: float = 0.0, high: float = 1.0) -> Any:
    """Sample uniformly from ``[low, high)``."""
    return dx.random.uniform(key, _shape(shape), dtype, minval=low, maxval=high)


def truncated_normal(
    key: Any,
    shape: Shape,
    dtype: Any = None,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    lower: float = -2.0,
    upper: float = 2.0,
) -> Any:
    """Sample from N(``mean``, ``std``²) truncated to ``[mean + lower * std, mean + upper * std]``.

    The bounds are in units of ``std``, as in ``jax.random.truncated_normal``.
    Sampling inverts the normal CDF on a uniform sample of
    ``[Phi(lower), Phi(upper)]``, so no sample is rejected. Note that ``std``
    is the standard deviation before truncation: the samples' own standard
    deviation is smaller (about ``0.88 * std`` for the default bounds).
    """
    if not lower < upper:
        raise ValueError(f"truncated_normal needs lower < upper, got lower={lower}, upper={upper}")
    low_cdf = 0.5 * math.erfc(-lower / math.sqrt(2.0))
    high_cdf = 0.5 * math.erfc(-upper / math.sqrt(2.0))
    u = dx.random.uniform(key, _shape(shape), dtype, minval=low_cdf, maxval=high_cdf)
    # Rounding of u near the bounds can step just outside them.
    z = dx.clip(dx.ndtri(u), lower, upper)
    return mean + std * z


# --------------------------------------------------------------------------
# Variance scaling
# --------------------------------------------------------------------------


def glorot_uniform(key: Any, shape: Shape, dtype: Any = None, *, gain: float = 1.0) -> Any:
    """Sample from U(-b, b) with ``b = gain * sqrt(6 / (fan_in + fan_out))`` (Glorot and Bengio, 2010).

    Also called Xavier uniform; the default of ``Dense`` and ``Conv``.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> w = nn.glorot_uniform(dx.random.key(0, backend="numpy"), (3, 5))
        >>> w.shape, bool(abs(w).max() <= (6 / 8) ** 0.5)
        ((3, 5), True)
    """
    fan_in, fan_out = fans(shape)
    return _uniform(key, shape, dtype, gain * math.sqrt(6.0 / (fan_in + fan_out)))


def glorot_normal(key: Any, shape: Shape, dtype: Any = None, *, gain: float = 1.0) -> Any:
    """Sample from N(0, s²) with ``s = gain * sqrt(2 / (fan_in + fan_out))`` (Glorot and Bengio, 2010)."""
    fan_in, fan_out = fans(shape)
    return _normal(key, shape, dtype, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def he_uniform(key: Any, shape: Shape, dtype: Any = None, *, gain: float = math.sqrt(2.0)) -> Any:
    """Sample from U(-b, b) with ``b = gain * sqrt(3 / fan_in)`` (He et al., 2015).

    The default ``gain = sqrt(2)`` suits ReLU layers; PyTorch's
    ``kaiming_uniform_`` with ``nonlinearity="relu"`` gives the same bound.
    """
    fan_in, _ = fans(shape)
    return _uniform(key, shape, dtype, gain * math.sqrt(3.0 / fan_in))


def he_normal(key: Any, shape: Shape, dtype: Any = None, *, gain: float = math.sqrt(2.0)) -> Any:
    """Sample from N(0, s²) with ``s = gain / sqrt(fan_in)`` (He et al., 2015).

    An untruncated normal, as in PyTorch's ``kaiming_normal_`` and Flux;
    ``jax.nn.initializers.he_normal`` truncates at two standard deviations.
    """
    fan_in, _ = fans(shape)
    return _normal(key, shape, dtype, gain / math.sqrt(fan_in))


kaiming_uniform = he_uniform
kaiming_normal = he_normal


def lecun_uniform(key: Any, shape: Shape, dtype: Any = None) -> Any:
    """Sample from U(-b, b) with ``b = sqrt(3 / fan_in)`` (LeCun et al., 1998): variance ``1 / fan_in``."""
    fan_in, _ = fans(shape)
    return _uniform(key, shape, dtype, math.sqrt(3.0 / fan_in))


def lecun_normal(key: Any, shape: Shape, dtype: Any = None) -> Any:
    """Sample from N(0, 1 / fan_in) (LeCun et al., 1998); the initialiser that ``selu`` expects.

    An untruncated normal; ``jax.nn.initializers.lecun_normal`` truncates.
    """
    fan_in, _ = fans(shape)
    return _normal(key, shape, dtype, 1.0 / math.sqrt(fan_in))


def orthogonal(key: Any, shape: Shape, dtype: Any = None, *, gain: float = 1.0) -> Any:
    """Return ``gain`` times a random orthogonal matrix (Saxe et al., 2014).

    The shape ``(d0, *rest)`` is treated as a ``d0 x prod(rest)`` matrix.
    Its rows are orthonormal when ``d0 <= prod(rest)``, and otherwise its
    columns are. The matrix is the Q factor of a standard normal matrix with
    the signs of R's diagonal moved into Q, which makes it uniformly
    distributed (Haar measure).

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> q = nn.orthogonal(dx.random.key(0, backend="numpy"), (3, 5))
        >>> bool(np.allclose(q @ q.T, np.eye(3)))
        True
    """
    shape = _shape(shape)
    if len(shape) < 2:
        raise ValueError(f"orthogonal needs a shape with at least two axes, got {shape}")
    rows, cols = shape[0], math.prod(shape[1:])
    a = dx.random.normal(key, (max(rows, cols), min(rows, cols)), dtype)
    q, r = dx.linalg.qr(a)
    q = q * dx.sign(dx.linalg.diagonal(r))
    if rows < cols:
        q = dx.matrix_transpose(q)
    return dx.reshape(gain * q, shape)
