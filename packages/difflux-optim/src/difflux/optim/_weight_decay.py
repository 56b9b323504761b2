"""Decoupled weight decay, as a transformation that follows a rule."""

from __future__ import annotations

import dataclasses
from typing import Any

from ._base import Leafwise, ScheduleLike, cast_like, check_learning_rate, check_nonnegative


@dataclasses.dataclass(frozen=True)
class WeightDecay(Leafwise):
    """Shrink every parameter towards zero by a fixed fraction per step.

    .. math:: \\Delta\\theta_t \\mapsto \\Delta\\theta_t - \\eta_t\\, \\lambda\\, \\theta_{t-1}

    where :math:`\\lambda` is ``weight_decay`` and :math:`\\eta_t` is
    ``learning_rate`` (a float or a schedule). The term is added to the
    *step* that a rule made, after the rule's own scaling, which is what
    makes the decay decoupled from the gradient statistics. So
    ``WeightDecay`` goes after a rule in a :func:`chain`; ``chain`` raises
    if it comes first. With the rule's learning rate,
    ``chain(Adam(1e-3), WeightDecay(1e-2, learning_rate=1e-3))`` is
    :class:`AdamW`, and :func:`masked` exempts parameters such as biases.
    With the default ``learning_rate=1`` each step multiplies the
    parameters by :math:`1 - \\lambda`.

    References:
        Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> rule = optim.chain(optim.Descent(0.1), optim.WeightDecay(0.5, learning_rate=0.1))
        >>> state = optim.setup(rule, np.array([2.0]))
        >>> state, params = optim.update(state, np.array([2.0]), np.array([0.0]))
        >>> params.tolist()
        [1.9]
    """

    weight_decay: float = 5e-4
    learning_rate: float | ScheduleLike = 1.0

    needs_steps = True

    def __post_init__(self) -> None:
        check_nonnegative(self, weight_decay=self.weight_decay)
        check_learning_rate(self, self.learning_rate)

    def _uses_params(self) -> bool:
        return True

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        # ``grad`` is the incoming update: the step the rule before made.
        (lr,) = cast_like(grad, lr)
        return grad - lr * self.weight_decay * param, ()
