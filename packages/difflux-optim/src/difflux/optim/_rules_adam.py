"""Adam and the rules built on its two moment estimates.

Each rule keeps exponential moving averages of the gradient (the first
moment, ``mu``) and of its square or a relative of it (``nu``), corrects
their bias towards zero at early steps, and steps along their ratio. The
bias corrections use :math:`t`, the number of the update starting at 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

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


def _zeros2(param: Any) -> tuple[Any, ...]:
    return dx.zeros_like(param), dx.zeros_like(param)


@dataclasses.dataclass(frozen=True)
class Adam(Rule):
    """Adam: steps scaled by running estimates of the gradient's first two moments.

    .. math::
        m_t = \\beta_1 m_{t-1} + (1 - \\beta_1)\\, g_t, \\qquad
        v_t = \\beta_2 v_{t-1} + (1 - \\beta_2)\\, g_t^2

        \\hat m_t = m_t / (1 - \\beta_1^t), \\qquad
        \\hat v_t = v_t / (1 - \\beta_2^t), \\qquad
        \\Delta\\theta_t = -\\eta_t\\, \\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon)

    where :math:`\\eta_t` is ``learning_rate``, :math:`\\beta_1` is ``b1``,
    :math:`\\beta_2` is ``b2`` and :math:`\\epsilon` is ``eps``; slots ``mu``
    (:math:`m`) and ``nu`` (:math:`v`) start at zero. Defaults are the
    paper's (Algorithm 1).

    References:
        Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> from difflux import optim
        >>> params = {"w": np.array([1.0, -2.0])}
        >>> loss = lambda p: dx.sum(p["w"] ** 2)
        >>> state = optim.setup(optim.Adam(0.1), params)
        >>> for _ in range(100):
        ...     state, params = optim.update(state, params, dx.grad(loss)(params))
        >>> bool(loss(params) < 1e-2)
        True
    """

    learning_rate: float | ScheduleLike = 0.001
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    slot_names = ("mu", "nu")
    has_numpy_path = True

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, b1=self.b1, b2=self.b2)
        check_positive(self, eps=self.eps)

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return _zeros2(param)

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

        return -lr * mu_hat / (dx.sqrt(nu_hat) + self.eps), (mu, nu)

    def update_leaf_numpy(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        """Compute :meth:`update_leaf` on NumPy arrays with three new arrays and one scratch array.

        The operations and their order are those of :meth:`update_leaf`, so
        the results are the same to the last bit. Writing into arrays made
        in this call (never into ``slots``, which the caller may still
        hold) saves the temporaries of the expression form, whose
        allocation cost more than their arithmetic on these small arrays.
        """
        mu, nu = slots
        b1, b2 = self.b1, self.b2
        if grad.flags.c_contiguous != mu.flags.c_contiguous:
            # A weight's gradient is often a transposed view (the pullback of
            # x @ w.T). One copy in the moments' layout costs less than
            # mixing the two layouts in every operation below.
            grad = np.asarray(grad, order="C" if mu.flags.c_contiguous else "F")
        scratch = np.multiply(grad, 1 - b1)

        mu = np.multiply(mu, b1)
        mu += scratch
        np.square(grad, out=scratch)
        scratch *= 1 - b2
        nu = np.multiply(nu, b2)
        nu += scratch

        np.divide(nu, 1 - b2**t, out=scratch)
        np.sqrt(scratch, out=scratch)
        scratch += self.eps
        update = np.divide(mu, 1 - b1**t)
        np.multiply(update, -lr, out=update)
        update /= scratch
        return update, (mu, nu)


@dataclasses.dataclass(frozen=True)
class AdamW(Rule):
    """Adam with decoupled weight decay.

    .. math::
        \\Delta\\theta_t = -\\eta_t \\left(\\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon)
        + \\lambda\\, \\theta_{t-1}\\right)

    with :math:`\\hat m_t, \\hat v_t` as in :class:`Adam`, :math:`\\lambda`
    ``weight_decay`` and :math:`\\eta_t` ``learning_rate``. The decay is added
    after Adam's normalisation, so it shrinks every weight by the same factor
    :math:`\\eta_t \\lambda` rather than being rescaled per coordinate as an L2
    penalty in the gradient would be. The decay is multiplied by the learning
    rate, as in PyTorch and Optax (the paper's :math:`\\eta_t` is a schedule
    multiplier applied to both terms). ``weight_decay=1e-2`` follows PyTorch
    (Optax uses 1e-4); the paper gives no single default. To exempt some
    parameters from decay, chain :class:`Adam` with a masked
    :class:`WeightDecay` instead.

    References:
        Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    learning_rate: float | ScheduleLike = 0.001
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 1e-2

    slot_names = ("mu", "nu")

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, b1=self.b1, b2=self.b2)
        check_positive(self, eps=self.eps)
        check_nonnegative(self, weight_decay=self.weight_decay)

    def _uses_params(self) -> bool:
        return self.weight_decay != 0

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return _zeros2(param)

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

        direction = mu_hat / (dx.sqrt(nu_hat) + self.eps)
        if self.weight_decay:
            direction = direction + self.weight_decay * param
        return -lr * direction, (mu, nu)


@dataclasses.dataclass(frozen=True)
class NAdam(Rule):
    """Adam with Nesterov momentum: the first moment looks one step ahead.

    .. math::
        \\bar m_t = \\frac{\\beta_1 m_t}{1 - \\beta_1^{t+1}}
        + \\frac{(1 - \\beta_1)\\, g_t}{1 - \\beta_1^t}, \\qquad
        \\Delta\\theta_t = -\\eta_t\\, \\bar m_t / (\\sqrt{\\hat v_t} + \\epsilon)

    with :math:`m_t, \\hat v_t` as in :class:`Adam` and symbols tied to the
    same arguments. This is Dozat's rule with a constant momentum
    :math:`\\beta_1`, as in Optax and Keras; PyTorch's ``NAdam`` adds a
    momentum schedule (``momentum_decay``), so its steps differ slightly.
    Defaults are the paper's (learning rate 0.002).

    References:
        Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.
    """

    learning_rate: float | ScheduleLike = 0.002
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    slot_names = ("mu", "nu")

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, b1=self.b1, b2=self.b2)
        check_positive(self, eps=self.eps)

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return _zeros2(param)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        mu, nu = slots
        lr, t = cast_like(grad, lr, t)
        b1, b2 = self.b1, self.b2

        mu = b1 * mu + (1 - b1) * grad
        nu = b2 * nu + (1 - b2) * grad**2
        mu_bar = b1 * mu / (1 - b1 ** (t + 1)) + (1 - b1) * grad / (1 - b1**t)
        nu_hat = nu / (1 - b2**t)

        return -lr * mu_bar / (dx.sqrt(nu_hat) + self.eps), (mu, nu)


@dataclasses.dataclass(frozen=True)
class RAdam(Rule):
    """Rectified Adam: plain momentum steps until the variance estimate is reliable.

    .. math::
        \\rho_\\infty = \\frac{2}{1 - \\beta_2} - 1, \\qquad
        \\rho_t = \\rho_\\infty - \\frac{2 t \\beta_2^t}{1 - \\beta_2^t}, \\qquad
        r_t = \\sqrt{\\frac{(\\rho_t - 4)(\\rho_t - 2)\\rho_\\infty}
        {(\\rho_\\infty - 4)(\\rho_\\infty - 2)\\rho_t}}

        \\Delta\\theta_t = -\\eta_t\\, r_t\\, \\hat m_t / (\\sqrt{\\hat v_t} + \\epsilon)
        \\ \\text{if}\\ \\rho_t > \\tau, \\quad\\text{else}\\quad
        \\Delta\\theta_t = -\\eta_t\\, \\hat m_t

    with :math:`\\hat m_t, \\hat v_t` as in :class:`Adam`, :math:`\\tau` the
    ``threshold`` and other symbols tied to the same arguments as there.
    The paper's Algorithm 2 rectifies when :math:`\\rho_t > 4`; its authors'
    code, PyTorch and Optax use 5, and so does the default here. The paper
    puts no :math:`\\epsilon` in the denominator; it is added outside the
    square root, as in Optax.

    References:
        Liu, Jiang, He, Chen, Liu, Gao and Han, "On the Variance of the
        Adaptive Learning Rate and Beyond", ICLR 2020.
    """

    learning_rate: float | ScheduleLike = 0.001
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    threshold: float = 5.0

    slot_names = ("mu", "nu")

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, b1=self.b1, b2=self.b2)
        check_positive(self, eps=self.eps)
        if not self.threshold >= 4:
            raise ValueError(
                f"RAdam: threshold must be at least 4, where the rectification term is defined, got {self.threshold!r}"
            )

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return _zeros2(param)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        mu, nu = slots
        lr, t = cast_like(grad, lr, t)
        b1, b2 = self.b1, self.b2
        rho_inf = 2 / (1 - b2) - 1

        mu = b1 * mu + (1 - b1) * grad
        nu = b2 * nu + (1 - b2) * grad**2
        mu_hat = mu / (1 - b1**t)
        nu_hat = nu / (1 - b2**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)

        # rho_t grows towards rho_inf, so with rho_inf <= threshold the
        # rectified step is never taken.
        if rho_inf <= self.threshold:
            return -lr * mu_hat, (mu, nu)
        rectify = rho > self.threshold
        # Where the plain step is taken, rho_inf replaces rho so that the
        # unused branch stays finite (it gives r = 1).
        rho_safe = dx.where(rectify, rho, rho_inf)
        r = dx.sqrt((rho_safe - 4) * (rho_safe - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_safe))
        adaptive = r * mu_hat / (dx.sqrt(nu_hat) + self.eps)
        return -lr * dx.where(rectify, adaptive, mu_hat), (mu, nu)


@dataclasses.dataclass(frozen=True)
class AdaMax(Rule):
    """AdaMax: Adam with the infinity norm in place of the second moment.

    .. math::
        u_t = \\max(\\beta_2 u_{t-1}, |g_t| + \\epsilon), \\qquad
        \\Delta\\theta_t = -\\frac{\\eta_t}{1 - \\beta_1^t}\\, \\frac{m_t}{u_t}

    with :math:`m_t` as in :class:`Adam` and symbols tied to the same
    arguments; slot ``nu`` is :math:`u`. The paper has no
    :math:`\\epsilon`; adding it to :math:`|g_t|` inside the maximum, as
    PyTorch and Optax do, keeps a zero gradient history from dividing by
    zero. Defaults are the paper's (Algorithm 2).

    References:
        Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.1.
    """

    learning_rate: float | ScheduleLike = 0.002
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    slot_names = ("mu", "nu")

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, b1=self.b1, b2=self.b2)
        check_positive(self, eps=self.eps)

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return _zeros2(param)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        mu, nu = slots
        lr, t = cast_like(grad, lr, t)
        b1, b2 = self.b1, self.b2

        mu = b1 * mu + (1 - b1) * grad
        nu = dx.maximum(b2 * nu, dx.abs(grad) + self.eps)

        return -lr / (1 - b1**t) * mu / nu, (mu, nu)


@dataclasses.dataclass(frozen=True)
class AMSGrad(Rule):
    """AMSGrad: Adam whose second-moment estimate never decreases.

    .. math::
        \\hat v^{\\max}_t = \\max(\\hat v^{\\max}_{t-1}, \\hat v_t), \\qquad
        \\Delta\\theta_t = -\\eta_t\\, \\hat m_t / (\\sqrt{\\hat v^{\\max}_t} + \\epsilon)

    with :math:`\\hat m_t, \\hat v_t` as in :class:`Adam` and symbols tied to
    the same arguments; slot ``nu_max`` is :math:`\\hat v^{\\max}`. The
    paper states the rule without bias correction; this is the
    bias-corrected form of Optax (the maximum is taken over the corrected
    estimates). PyTorch takes the maximum before correcting, which differs
    in the first steps. Defaults follow Adam's.

    References:
        Reddi, Kale and Kumar, "On the Convergence of Adam and Beyond", ICLR 2018.
    """

    learning_rate: float | ScheduleLike = 0.001
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    slot_names = ("mu", "nu", "nu_max")

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, b1=self.b1, b2=self.b2)
        check_positive(self, eps=self.eps)

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return dx.zeros_like(param), dx.zeros_like(param), dx.zeros_like(param)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        mu, nu, nu_max = slots
        lr, t = cast_like(grad, lr, t)
        b1, b2 = self.b1, self.b2

        mu = b1 * mu + (1 - b1) * grad
        nu = b2 * nu + (1 - b2) * grad**2
        mu_hat = mu / (1 - b1**t)
        nu_max = dx.maximum(nu_max, nu / (1 - b2**t))

        return -lr * mu_hat / (dx.sqrt(nu_max) + self.eps), (mu, nu, nu_max)


@dataclasses.dataclass(frozen=True)
class AdaBelief(Rule):
    """AdaBelief: Adam with the variance of the gradient around its mean.

    .. math::
        s_t = \\beta_2 s_{t-1} + (1 - \\beta_2)(g_t - m_t)^2 + \\epsilon, \\qquad
        \\hat s_t = s_t / (1 - \\beta_2^t), \\qquad
        \\Delta\\theta_t = -\\eta_t\\, \\hat m_t / (\\sqrt{\\hat s_t} + \\epsilon)

    with :math:`m_t, \\hat m_t` as in :class:`Adam` and symbols tied to the
    same arguments; slot ``nu`` is :math:`s`. As in the paper's
    Algorithm 2, :math:`\\epsilon` enters twice: added to :math:`s_t` and to
    the denominator. (Optax matches with ``eps_root=eps``.) Defaults are the
    authors' (``eps=1e-16``).

    References:
        Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris and Duncan,
        "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed
        Gradients", NeurIPS 2020.
    """

    learning_rate: float | ScheduleLike = 0.001
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-16

    slot_names = ("mu", "nu")

    def __post_init__(self) -> None:
        check_learning_rate(self, self.learning_rate)
        check_decay(self, b1=self.b1, b2=self.b2)
        check_positive(self, eps=self.eps)

    def init_leaf(self, param: Any) -> tuple[Any, ...]:
        return _zeros2(param)

    def update_leaf(
        self, grad: Any, slots: tuple[Any, ...], param: Any, t: Any, lr: Any
    ) -> tuple[Any, tuple[Any, ...]]:
        mu, nu = slots
        lr, t = cast_like(grad, lr, t)
        b1, b2, eps = self.b1, self.b2, self.eps

        mu = b1 * mu + (1 - b1) * grad
        nu = b2 * nu + (1 - b2) * (grad - mu) ** 2 + eps
        mu_hat = mu / (1 - b1**t)
        nu_hat = nu / (1 - b2**t)

        return -lr * mu_hat / (dx.sqrt(nu_hat) + eps), (mu, nu)
