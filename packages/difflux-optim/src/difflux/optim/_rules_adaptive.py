"""Per-coordinate step sizes from the gradient history: AdaGrad, AdaDelta, RMSProp, Rprop."""

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
class AdaGrad(Rule):
    """AdaGrad: steps divided by the root of the summed squared gradients.

    .. math::
        G_t = G_{t-1} + g_t^2, \\qquad
        \\Delta\\theta_t = -\\eta_t\\, g_t / (\\sqrt{G_t} + \\epsilon)

    where :math:`\\eta_t` is ``learning_rate``, :math:`\\epsilon` is ``eps``
    and :math:`G_0` is ``initial_accumulator`` (slot ``sum_of_squares``).
    Defaults follow PyTorch; Optax starts :math:`G` at 0.1 and adds
    :math:`\\epsilon` inside the square root.

    References:
        Duchi, Hazan and Singer, "Adaptive Subgradient Methods for Online
        Learning and Stochastic Optimization", JMLR 12, 2011.
    """

    learning_rate: float | ScheduleLike = 0.01
    initial_accumulator: float = 0.0
    eps: float = 1e-10

    slot_names = ("sum_of_squares",)

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_nonnegative(self, initial_accumulator=self.initial_accumulator)
        check_positive(self, eps=self.eps)

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return (dx.full_like(param, self.initial_accumulator),)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        (sum_of_squares,) = slots
        (lr,) = cast_like(grad, lr)

        sum_of_squares = sum_of_squares + grad**2

        return -lr * grad / (dx.sqrt(sum_of_squares) + self.eps), (sum_of_squares,)


@dataclasses.dataclass(frozen=True)
class AdaDelta(Rule):
    """AdaDelta: steps in the units of the parameters, from two running averages.

    .. math::
        E[g^2]_t = \\rho\\, E[g^2]_{t-1} + (1 - \\rho)\\, g_t^2, \\qquad
        \\delta_t = -\\frac{\\sqrt{E[\\delta^2]_{t-1} + \\epsilon}}{\\sqrt{E[g^2]_t + \\epsilon}}\\, g_t

        E[\\delta^2]_t = \\rho\\, E[\\delta^2]_{t-1} + (1 - \\rho)\\, \\delta_t^2, \\qquad
        \\Delta\\theta_t = \\eta_t\\, \\delta_t

    where :math:`\\rho` is ``rho``, :math:`\\epsilon` is ``eps`` and
    :math:`\\eta_t` is ``learning_rate``; slots ``mean_square_grad`` and
    ``mean_square_delta`` start at zero. The paper has no learning rate
    (:math:`\\eta = 1`, the default); as in PyTorch and Optax the running
    average collects the unscaled :math:`\\delta_t`. ``rho`` and ``eps`` are
    the paper's values.

    References:
        Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012.
    """

    learning_rate: float | ScheduleLike = 1.0
    rho: float = 0.95
    eps: float = 1e-6

    slot_names = ("mean_square_grad", "mean_square_delta")

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, rho=self.rho)
        check_positive(self, eps=self.eps)

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return dx.zeros_like(param), dx.zeros_like(param)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        mean_square_grad, mean_square_delta = slots
        (lr,) = cast_like(grad, lr)
        rho, eps = self.rho, self.eps

        mean_square_grad = rho * mean_square_grad + (1 - rho) * grad**2
        delta = -dx.sqrt(mean_square_delta + eps) / dx.sqrt(mean_square_grad + eps) * grad
        mean_square_delta = rho * mean_square_delta + (1 - rho) * delta**2

        return lr * delta, (mean_square_grad, mean_square_delta)


@dataclasses.dataclass(frozen=True)
class RMSProp(Rule):
    """RMSProp: steps divided by a running root mean square of the gradient.

    .. math::
        v_t = \\rho\\, v_{t-1} + (1 - \\rho)\\, g_t^2, \\qquad
        \\Delta\\theta_t = -\\eta_t\\, g_t / (\\sqrt{v_t} + \\epsilon)

    where :math:`\\eta_t` is ``learning_rate``, :math:`\\rho` is ``rho`` and
    :math:`\\epsilon` is ``eps``; slot ``nu`` holds :math:`v`. With
    ``centered=True`` (Graves 2013) a running mean :math:`\\bar g_t` of the
    gradient (slot ``mean_grad``) is kept too and the denominator becomes
    :math:`\\sqrt{v_t - \\bar g_t^2} + \\epsilon`. :math:`\\epsilon` sits
    outside the square root as in PyTorch (Optax: ``eps_in_sqrt=False``).
    Defaults follow Hinton's lecture (:math:`\\rho = 0.9`) and Flux.

    References:
        Tieleman and Hinton, "Lecture 6.5: RMSProp", COURSERA: Neural
        Networks for Machine Learning, 2012. Graves, "Generating Sequences
        With Recurrent Neural Networks", arXiv:1308.0850, 2013.
    """

    learning_rate: float | ScheduleLike = 0.001
    rho: float = 0.9
    eps: float = 1e-8
    centered: bool = False

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, rho=self.rho)
        check_positive(self, eps=self.eps)

    @property
    def slot_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("nu", "mean_grad") if self.centered else ("nu",)

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return tuple(dx.zeros_like(param) for _ in self.slot_names)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        (lr,) = cast_like(grad, lr)
        rho = self.rho

        nu = rho * slots[0] + (1 - rho) * grad**2
        if not self.centered:
            return -lr * grad / (dx.sqrt(nu) + self.eps), (nu,)
        mean_grad = rho * slots[1] + (1 - rho) * grad
        # The variance estimate is non-negative in exact arithmetic; the
        # maximum removes rounding below zero.
        variance = dx.maximum(nu - mean_grad**2, 0.0)
        return -lr * grad / (dx.sqrt(variance) + self.eps), (nu, mean_grad)


@dataclasses.dataclass(frozen=True)
class Rprop(Rule):
    """Rprop: per-coordinate step sizes adapted by the sign of the gradient alone.

    .. math::
        \\Delta_t = \\begin{cases}
            \\min(\\eta^+ \\Delta_{t-1}, \\Delta_{\\max}) & g_t\\, g_{t-1} > 0 \\\\
            \\max(\\eta^- \\Delta_{t-1}, \\Delta_{\\min}) & g_t\\, g_{t-1} < 0 \\\\
            \\Delta_{t-1} & \\text{otherwise}
        \\end{cases}, \\qquad
        \\Delta\\theta_t = -\\operatorname{sign}(g_t)\\, \\Delta_t

    where :math:`\\Delta_0` is ``learning_rate``, :math:`\\eta^-` and
    :math:`\\eta^+` are ``eta_minus`` and ``eta_plus``, and
    :math:`\\Delta_{\\min}, \\Delta_{\\max}` are ``min_step`` and ``max_step``.
    After a sign change the stored gradient is set to zero, so the next step
    neither moves that coordinate nor adapts its step size again (the
    iRprop- variant of Igel and Hüsken, as in PyTorch and Flux). Slots
    ``prev_grad`` and ``step_size`` hold :math:`g_{t-1}` and :math:`\\Delta`.
    Rprop is meant for full-batch gradients. ``learning_rate`` only sets
    the initial step size, so it must be a float; defaults follow PyTorch
    (the paper's :math:`\\eta^\\pm`).

    References:
        Riedmiller and Braun, "A direct adaptive method for faster
        backpropagation learning: the RPROP algorithm", IEEE ICNN 1993.
        Igel and Hüsken, "Improving the Rprop Learning Algorithm", NC 2000.
    """

    learning_rate: float = 0.01
    eta_minus: float = 0.5
    eta_plus: float = 1.2
    min_step: float = 1e-6
    max_step: float = 50.0

    slot_names = ("prev_grad", "step_size")

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate, schedule=False)
        check_positive(self, min_step=self.min_step, max_step=self.max_step)
        if not 0 < self.eta_minus < 1 < self.eta_plus:
            raise ValueError(
                f"Rprop: need 0 < eta_minus < 1 < eta_plus, got eta_minus={self.eta_minus!r} "
                f"and eta_plus={self.eta_plus!r}"
            )
        if self.min_step > self.max_step:
            raise ValueError(f"Rprop: min_step ({self.min_step!r}) exceeds max_step ({self.max_step!r})")

    def learning_rate_at(self, count: Any) -> Any:
        del count  # the learning rate is only the initial step size
        return None

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return dx.zeros_like(param), dx.full_like(param, self.learning_rate)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        prev_grad, step_size = slots

        agreement = dx.sign(grad * prev_grad)
        grown = dx.minimum(step_size * self.eta_plus, self.max_step)
        shrunk = dx.maximum(step_size * self.eta_minus, self.min_step)
        step_size = dx.where(agreement > 0, grown, dx.where(agreement < 0, shrunk, step_size))
        grad = dx.where(agreement < 0, 0.0, grad)

        return -dx.sign(grad) * step_size, (grad, step_size)
