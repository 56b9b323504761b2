"""Gradient descent with and without momentum."""

from __future__ import annotations

import dataclasses
from typing import Any

import difflux.core as dx

from ._base import Rule, ScheduleLike, cast_like, check_decay, check_learning_rate


@dataclasses.dataclass(frozen=True)
class Descent(Rule):
    """Plain gradient descent.

    .. math:: \\Delta\\theta_t = -\\eta_t\\, g_t

    where :math:`\\eta_t` is ``learning_rate`` (a float, or a schedule of the
    step count) and :math:`g_t` the gradient. The default follows Flux.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> state = optim.setup(optim.Descent(0.1), {"w": np.array([1.0, -2.0])})
        >>> state, params = optim.update(state, {"w": np.array([1.0, -2.0])}, {"w": np.array([1.0, -2.0])})
        >>> params["w"].tolist()
        [0.9, -1.8]
    """

    learning_rate: float | ScheduleLike = 0.1

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        (lr,) = cast_like(grad, lr)
        return -lr * grad, ()


@dataclasses.dataclass(frozen=True)
class Momentum(Rule):
    """Gradient descent with heavy-ball momentum.

    .. math::
        v_t = \\mu\\, v_{t-1} + g_t, \\qquad \\Delta\\theta_t = -\\eta_t\\, v_t

    where :math:`\\eta_t` is ``learning_rate``, :math:`\\mu` is ``momentum``
    and :math:`v_0 = 0`. The learning rate scales the velocity when the step
    is taken, not when it is accumulated (as in PyTorch and Optax), so a
    schedule changes the step at once. Defaults follow Flux.

    References:
        Polyak, "Some methods of speeding up the convergence of iteration
        methods", USSR Computational Mathematics and Mathematical Physics 4(5), 1964.
    """

    learning_rate: float | ScheduleLike = 0.01
    momentum: float = 0.9

    slot_names = ("velocity",)

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, momentum=self.momentum)

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return (dx.zeros_like(param),)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        (velocity,) = slots
        (lr,) = cast_like(grad, lr)

        velocity = self.momentum * velocity + grad

        return -lr * velocity, (velocity,)


@dataclasses.dataclass(frozen=True)
class Nesterov(Rule):
    """Gradient descent with Nesterov momentum, in the form of Sutskever et al.

    .. math::
        v_t = \\mu\\, v_{t-1} + g_t, \\qquad
        \\Delta\\theta_t = -\\eta_t\\,(g_t + \\mu\\, v_t)

    where :math:`\\eta_t` is ``learning_rate``, :math:`\\mu` is ``momentum``
    and :math:`v_0 = 0`. This is the look-ahead gradient rewritten to need
    only the gradient at the current parameters, as in PyTorch
    (``nesterov=True``) and Optax. Defaults follow Flux.

    References:
        Sutskever, Martens, Dahl and Hinton, "On the importance of
        initialization and momentum in deep learning", ICML 2013.
    """

    learning_rate: float | ScheduleLike = 0.001
    momentum: float = 0.9

    slot_names = ("velocity",)

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, momentum=self.momentum)

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return (dx.zeros_like(param),)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        (velocity,) = slots
        (lr,) = cast_like(grad, lr)

        velocity = self.momentum * velocity + grad

        return -lr * (grad + self.momentum * velocity), (velocity,)
