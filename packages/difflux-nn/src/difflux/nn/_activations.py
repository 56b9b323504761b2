"""Activation functions, element-wise and numerically stable at extreme inputs.

Each is a composition of difflux operations, so its derivatives of every
order come from core's rules. A branch that could overflow, such as ``exp``
of a large input in ``elu``, is evaluated on a clamped input. Otherwise
``dx.where`` would send ``0 * inf = NaN`` from the unused branch into the
gradient.
Core's ``relu``, ``sigmoid``, ``softplus``, ``log_sigmoid``, ``softmax``,
``log_softmax`` and ``tanh`` are re-exported unchanged. ``relu`` is a core
primitive rather than a composition, because the eager NumPy backward pass
of ``dx.where`` costs several times more than a multiplication by its mask.
"""

from __future__ import annotations

import math
from typing import Any

import difflux.core as dx

relu = dx.relu
sigmoid = dx.sigmoid
softplus = dx.softplus
log_sigmoid = dx.log_sigmoid
softmax = dx.softmax
log_softmax = dx.log_softmax
tanh = dx.tanh

# SELU's constants (Klambauer et al., 2017), which make zero mean and unit
# variance a fixed point of a layer with lecun_normal weights.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def relu6(x: Any) -> Any:
    """Return ``min(max(x, 0), 6)``."""
    return dx.where(x > 0, dx.where(x < 6, x, 6.0), 0.0)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
    """Return ``x`` for ``x >= 0`` and ``negative_slope * x`` below."""
    return dx.where(x >= 0, x, negative_slope * x)


def _negative_part(x: Any) -> Any:
    """Return ``min(x, 0)``: a safe input for ``exp`` in the branch that uses only ``x <= 0``."""
    return dx.where(x < 0, x, 0.0)


def elu(x: Any, alpha: float = 1.0) -> Any:
    """Return ``x`` for ``x > 0`` and ``alpha * (exp(x) - 1)`` below (Clevert et al., 2016)."""
    return dx.where(x > 0, x, alpha * dx.expm1(_negative_part(x)))


def selu(x: Any) -> Any:
    """Return ``scale * elu(x, alpha)`` with SELU's constants (Klambauer et al., 2017).

    ``alpha = 1.6732632...`` and ``scale = 1.0507009...``; pair it with
    ``lecun_normal`` weights.
    """
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


def celu(x: Any, alpha: float = 1.0) -> Any:
    """Return ``max(x, 0) + min(0, alpha * (exp(x / alpha) - 1))`` (Barron, 2017)."""
    return dx.where(x > 0, x, alpha * dx.expm1(_negative_part(x) / alpha))


def gelu(x: Any, approximate: bool = False) -> Any:
    """Return the Gaussian error linear unit (Hendrycks and Gimpel, 2016).

    Exact (the default, as in PyTorch): ``x * Phi(x)`` with ``Phi`` the
    standard normal CDF, computed with ``dx.ndtr``, which stays accurate in
    the left tail. With ``approximate=True``:
    ``x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))``, written as
    ``x * sigmoid(2 * sqrt(2 / pi) * (x + 0.044715 * x**3))``. Note that
    ``jax.nn.gelu`` defaults to the approximation and Flux's ``gelu`` is the
    approximation too.
    """
    if approximate:
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
        return x * dx.sigmoid(2.0 * inner)
    return x * dx.ndtr(x)


def silu(x: Any) -> Any:
    """Return ``x * sigmoid(x)`` (also called swish)."""
    return x * dx.sigmoid(x)


swish = silu


def hard_sigmoid(x: Any) -> Any:
    """Return ``relu6(x + 3) / 6``, a piecewise-linear sigmoid."""
    return relu6(x + 3.0) / 6.0


def hard_tanh(x: Any) -> Any:
    """Return ``x`` clipped to ``[-1, 1]``."""
    return dx.where(x > -1, dx.where(x < 1, x, 1.0), -1.0)


def hard_swish(x: Any) -> Any:
    """Return ``x * hard_sigmoid(x)`` (Howard et al., 2019)."""
    return x * hard_sigmoid(x)


def softsign(x: Any) -> Any:
    """Return ``x / (1 + |x|)``."""
    return x / (1.0 + dx.abs(x))


def mish(x: Any) -> Any:
    """Return ``x * tanh(softplus(x))`` (Misra, 2019)."""
    return x * dx.tanh(dx.softplus(x))
