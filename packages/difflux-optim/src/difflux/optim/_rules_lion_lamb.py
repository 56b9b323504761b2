"""Lion (sign steps from interpolated momentum) and Lamb (layer-wise trust ratios)."""

from __future__ import annotations

import dataclasses
from typing import Any

import difflux.core as dx

from ._base import (
    Rule,
    ScheduleLike,
    cast_like,
    check_decay,
    check_learning_rate,
    check_nonnegative,
    check_positive,
)


@dataclasses.dataclass(frozen=True)
class Lion(Rule):
    """Lion: steps of equal size in every coordinate, along the sign of a momentum blend.

    .. math::
        c_t = \\beta_1 m_{t-1} + (1 - \\beta_1)\\, g_t, \\qquad
        \\Delta\\theta_t = -\\eta_t \\left(\\operatorname{sign}(c_t) + \\lambda\\, \\theta_{t-1}\\right)

        m_t = \\beta_2 m_{t-1} + (1 - \\beta_2)\\, g_t

    where :math:`\\eta_t` is ``learning_rate``, :math:`\\beta_1, \\beta_2` are
    ``b1``, ``b2``, :math:`\\lambda` is ``weight_decay`` and slot ``mu`` is
    :math:`m`, starting at zero. Every step has magnitude :math:`\\eta_t` per
    coordinate, so the learning rate should be 3 to 10 times smaller than
    Adam's. Defaults are the paper's (Algorithm 2; ``weight_decay=0``).

    References:
        Chen, Liang, Huang, Real, Wang, Pham, Dong, Luong, Hsieh, Lu and Le,
        "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.
    """

    learning_rate: float | ScheduleLike = 1e-4
    b1: float = 0.9
    b2: float = 0.99
    weight_decay: float = 0.0

    slot_names = ("mu",)

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, b1=self.b1, b2=self.b2)
        check_nonnegative(self, weight_decay=self.weight_decay)

    def _uses_params(self) -> bool:
        return self.weight_decay != 0

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return (dx.zeros_like(param),)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        (mu,) = slots
        (lr,) = cast_like(grad, lr)
        b1, b2 = self.b1, self.b2

        direction = dx.sign(b1 * mu + (1 - b1) * grad)
        mu = b2 * mu + (1 - b2) * grad

        if self.weight_decay:
            direction = direction + self.weight_decay * param
        return -lr * direction, (mu,)


@dataclasses.dataclass(frozen=True)
class Lamb(Rule):
    """Lamb: Adam steps rescaled per parameter array by a trust ratio.

    .. math::
        r_t = \\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon) + \\lambda\\, \\theta_{t-1}, \\qquad
        \\Delta\\theta_t = -\\eta_t\\, \\frac{\\lVert\\theta_{t-1}\\rVert}{\\lVert r_t\\rVert}\\, r_t

    with :math:`\\hat m_t, \\hat v_t` as in :class:`Adam`, :math:`\\lambda`
    ``weight_decay`` and other symbols tied to the same arguments as there.
    Norms are Euclidean over each parameter array (a layer's weight matrix,
    say); the ratio is 1 when either norm is zero, as in Optax. The paper's
    scaling function :math:`\\phi` is the identity here. Defaults are the
    paper's (Algorithm 2) with ``weight_decay=0``.

    References:
        You, Li, Reddi, Hseu, Kumar, Bhojanapalli, Song, Demmel, Keutzer and
        Hsieh, "Large Batch Optimization for Deep Learning: Training BERT in
        76 minutes", ICLR 2020.
    """

    learning_rate: float | ScheduleLike = 0.001
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-6
    weight_decay: float = 0.0

    slot_names = ("mu", "nu")

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, b1=self.b1, b2=self.b2)
        check_positive(self, eps=self.eps)
        check_nonnegative(self, weight_decay=self.weight_decay)

    def _uses_params(self) -> bool:
        return True

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return dx.zeros_like(param), dx.zeros_like(param)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        mu, nu = slots
        lr, t = cast_like(grad, lr, t)
        b1, b2 = self.b1, self.b2

        mu = b1 * mu + (1 - b1) * grad
        nu = b2 * nu + (1 - b2) * grad**2
        mu_hat = mu / (1 - b1**t)
        nu_hat = nu / (1 - b2**t)
        direction = mu_hat / (dx.sqrt(nu_hat) + self.eps) + self.weight_decay * param

        param_norm = dx.sqrt(dx.sum(param**2))
        direction_norm = dx.sqrt(dx.sum(direction**2))
        trusted = dx.logical_and(param_norm > 0, direction_norm > 0)
        # Where the ratio is 1, the denominator is replaced to keep 0/0 out.
        ratio = dx.where(trusted, param_norm / dx.where(trusted, direction_norm, 1.0), 1.0)
        return -lr * ratio * direction, (mu, nu)
