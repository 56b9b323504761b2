"""The table of rules that drives the generic tests in test_rules.py.

Each case holds a rule with hyperparameters away from the defaults (so that
each of them shows in the result), the parameters after each of its first
steps written out in NumPy from the equations of the paper that the rule's
docstring cites, a configuration that fits the test problems, and
constructor arguments that must be rejected. A new rule needs one entry
here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from difflux import optim

THETA0 = np.array([0.5, -1.5, 2.0])
# Gradients with sign changes and a coordinate that shrinks, so that
# momentum, maxima and Rprop's sign logic all matter.
GRADS = [np.array([1.0, -2.0, 0.5]), np.array([-0.5, -3.0, 0.25]), np.array([0.2, 1.0, -1.0])]
# RAdam rectifies only once rho_t > 5, from about the sixth step on.
LONG_GRADS = [np.array([1.0, -2.0, 0.5]) * (1 + 0.3 * np.sin(k)) for k in range(8)]


@dataclass(frozen=True)
class RuleCase:
    id: str
    rule: Any
    by_hand: Callable[[np.ndarray, list[np.ndarray]], list[np.ndarray]]
    fit: Any
    grads: list[np.ndarray] = field(default_factory=lambda: GRADS)
    adaptive: bool = True
    invalid: tuple[dict[str, Any], ...] = ()
    # Steps on the quadratic, and the learning rate on the Rosenbrock function.
    steps: int = 150
    rosenbrock_lr: float = 0.02


def _bias(beta: float, t: int) -> float:
    return 1 - beta**t


# --------------------------------------------------------------------------
# The rules' equations, step by step
# --------------------------------------------------------------------------


def descent(theta, grads, lr=0.1):
    out = []
    for g in grads:
        theta = theta - lr * g
        out.append(theta)
    return out


def momentum(theta, grads, lr=0.1, mu=0.5, nesterov=False):
    out, v = [], np.zeros_like(theta)
    for g in grads:
        v = mu * v + g
        theta = theta - lr * (g + mu * v if nesterov else v)
        out.append(theta)
    return out


def adam(theta, grads, lr=0.1, b1=0.8, b2=0.9, eps=1e-3, weight_decay=0.0, kind="adam"):
    out, m, v, v_max = [], np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / _bias(b1, t), v / _bias(b2, t)
        if kind == "nadam":
            m_hat = b1 * m / _bias(b1, t + 1) + (1 - b1) * g / _bias(b1, t)
        if kind == "amsgrad":
            v_max = np.maximum(v_max, v_hat)
            v_hat = v_max
        theta = theta - lr * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * theta)
        out.append(theta)
    return out


def radam(theta, grads, lr=0.1, b1=0.8, b2=0.999, eps=1e-3, threshold=5.0):
    out, m, v = [], np.zeros_like(theta), np.zeros_like(theta)
    rho_inf = 2 / (1 - b2) - 1
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / _bias(b1, t), v / _bias(b2, t)
        rho = rho_inf - 2 * t * b2**t / _bias(b2, t)
        if rho > threshold:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            theta = theta - lr * r * m_hat / (np.sqrt(v_hat) + eps)
        else:
            theta = theta - lr * m_hat
        out.append(theta)
    return out


def adamax(theta, grads, lr=0.1, b1=0.8, b2=0.9, eps=1e-3):
    out, m, u = [], np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        theta = theta - lr / _bias(b1, t) * m / u
        out.append(theta)
    return out


def adabelief(theta, grads, lr=0.1, b1=0.8, b2=0.9, eps=1e-3):
    out, m, s = [], np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * (g - m) ** 2 + eps
        theta = theta - lr * (m / _bias(b1, t)) / (np.sqrt(s / _bias(b2, t)) + eps)
        out.append(theta)
    return out


def adagrad(theta, grads, lr=0.1, initial=0.1, eps=1e-3):
    out, acc = [], np.full_like(theta, initial)
    for g in grads:
        acc = acc + g**2
        theta = theta - lr * g / (np.sqrt(acc) + eps)
        out.append(theta)
    return out


def adadelta(theta, grads, lr=0.5, rho=0.8, eps=1e-3):
    out, eg2, edx2 = [], np.zeros_like(theta), np.zeros_like(theta)
    for g in grads:
        eg2 = rho * eg2 + (1 - rho) * g**2
        delta = -np.sqrt(edx2 + eps) / np.sqrt(eg2 + eps) * g
        edx2 = rho * edx2 + (1 - rho) * delta**2
        theta = theta + lr * delta
        out.append(theta)
    return out


def rmsprop(theta, grads, lr=0.1, rho=0.8, eps=1e-3, centered=False):
    out, v, mg = [], np.zeros_like(theta), np.zeros_like(theta)
    for g in grads:
        v = rho * v + (1 - rho) * g**2
        mg = rho * mg + (1 - rho) * g
        denominator = np.sqrt(v - mg**2 if centered else v) + eps
        theta = theta - lr * g / denominator
        out.append(theta)
    return out


def rprop(theta, grads, lr=0.1, eta_minus=0.5, eta_plus=1.2, min_step=0.04, max_step=0.15):
    out, previous, step = [], np.zeros_like(theta), np.full_like(theta, lr)
    for g in grads:
        g = g.copy()
        for i in range(theta.size):
            if g[i] * previous[i] > 0:
                step[i] = min(step[i] * eta_plus, max_step)
            elif g[i] * previous[i] < 0:
                step[i] = max(step[i] * eta_minus, min_step)
                g[i] = 0.0
        theta = theta - np.sign(g) * step
        previous = g
        out.append(theta)
    return out


def lion(theta, grads, lr=0.1, b1=0.8, b2=0.5, weight_decay=0.1):
    out, m = [], np.zeros_like(theta)
    for g in grads:
        c = b1 * m + (1 - b1) * g
        theta = theta - lr * (np.sign(c) + weight_decay * theta)
        m = b2 * m + (1 - b2) * g
        out.append(theta)
    return out


def lamb(theta, grads, lr=0.1, b1=0.8, b2=0.9, eps=1e-3, weight_decay=0.1):
    out, m, v = [], np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        r = (m / _bias(b1, t)) / (np.sqrt(v / _bias(b2, t)) + eps) + weight_decay * theta
        theta = theta - lr * np.linalg.norm(theta) / np.linalg.norm(r) * r
        out.append(theta)
    return out


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------

_NEGATIVE_LR = {"learning_rate": -0.1}
_BETAS = ({"b1": 1.0}, {"b1": -0.1}, {"b2": 1.5})

RULES = [
    RuleCase(
        "Descent",
        optim.Descent(0.1),
        descent,
        optim.Descent(0.05),
        adaptive=False,
        invalid=(_NEGATIVE_LR, {"learning_rate": float("nan")}),
    ),
    RuleCase(
        "Momentum",
        optim.Momentum(0.1, momentum=0.5),
        momentum,
        optim.Momentum(0.02),
        adaptive=False,
        invalid=(_NEGATIVE_LR, {"momentum": 1.0}),
    ),
    RuleCase(
        "Nesterov",
        optim.Nesterov(0.1, momentum=0.5),
        lambda theta, grads: momentum(theta, grads, nesterov=True),
        optim.Nesterov(0.02),
        adaptive=False,
        invalid=(_NEGATIVE_LR, {"momentum": -0.5}),
    ),
    RuleCase(
        "Adam",
        optim.Adam(0.1, b1=0.8, b2=0.9, eps=1e-3),
        adam,
        optim.Adam(0.1),
        invalid=(_NEGATIVE_LR, *_BETAS, {"eps": 0.0}),
    ),
    RuleCase(
        "AdamW",
        optim.AdamW(0.1, b1=0.8, b2=0.9, eps=1e-3, weight_decay=0.1),
        lambda theta, grads: adam(theta, grads, weight_decay=0.1),
        optim.AdamW(0.1),
        invalid=(_NEGATIVE_LR, *_BETAS, {"weight_decay": -1.0}),
    ),
    RuleCase(
        "NAdam",
        optim.NAdam(0.1, b1=0.8, b2=0.9, eps=1e-3),
        lambda theta, grads: adam(theta, grads, kind="nadam"),
        optim.NAdam(0.1),
        invalid=(_NEGATIVE_LR, *_BETAS, {"eps": -1e-8}),
    ),
    RuleCase(
        "RAdam",
        optim.RAdam(0.1, b1=0.8, b2=0.999, eps=1e-3),
        radam,
        optim.RAdam(0.1),
        grads=LONG_GRADS,
        invalid=(_NEGATIVE_LR, *_BETAS, {"threshold": 3.0}),
        # The first steps, before rectification, are unnormalised momentum
        # steps, which a gradient of size 200 would throw far off.
        rosenbrock_lr=1e-3,
    ),
    RuleCase(
        "AdaMax",
        optim.AdaMax(0.1, b1=0.8, b2=0.9, eps=1e-3),
        adamax,
        optim.AdaMax(0.1),
        invalid=(_NEGATIVE_LR, *_BETAS, {"eps": 0.0}),
    ),
    RuleCase(
        "AMSGrad",
        optim.AMSGrad(0.1, b1=0.8, b2=0.9, eps=1e-3),
        lambda theta, grads: adam(theta, grads, kind="amsgrad"),
        optim.AMSGrad(0.1),
        invalid=(_NEGATIVE_LR, *_BETAS),
    ),
    RuleCase(
        "AdaBelief",
        optim.AdaBelief(0.1, b1=0.8, b2=0.9, eps=1e-3),
        adabelief,
        optim.AdaBelief(0.1),
        invalid=(_NEGATIVE_LR, *_BETAS, {"eps": 0.0}),
    ),
    RuleCase(
        "AdaGrad",
        optim.AdaGrad(0.1, initial_accumulator=0.1, eps=1e-3),
        adagrad,
        optim.AdaGrad(0.5),
        invalid=(_NEGATIVE_LR, {"initial_accumulator": -1.0}, {"eps": 0.0}),
    ),
    RuleCase(
        "AdaDelta",
        optim.AdaDelta(0.5, rho=0.8, eps=1e-3),
        adadelta,
        optim.AdaDelta(1.0, eps=1e-3),
        invalid=(_NEGATIVE_LR, {"rho": 1.0}, {"eps": 0.0}),
    ),
    RuleCase(
        "RMSProp",
        optim.RMSProp(0.1, rho=0.8, eps=1e-3),
        rmsprop,
        optim.RMSProp(0.05),
        invalid=(_NEGATIVE_LR, {"rho": 1.2}, {"eps": 0.0}),
    ),
    RuleCase(
        "RMSProp-centered",
        optim.RMSProp(0.1, rho=0.8, eps=1e-3, centered=True),
        lambda theta, grads: rmsprop(theta, grads, centered=True),
        optim.RMSProp(0.05, centered=True),
    ),
    RuleCase(
        "Rprop",
        optim.Rprop(0.1, eta_minus=0.5, eta_plus=1.2, min_step=0.04, max_step=0.15),
        rprop,
        optim.Rprop(0.01),
        adaptive=False,
        invalid=(_NEGATIVE_LR, {"eta_minus": 1.5}, {"eta_plus": 0.9}, {"min_step": 2.0, "max_step": 1.0}),
    ),
    RuleCase(
        "Lion",
        optim.Lion(0.1, b1=0.8, b2=0.5, weight_decay=0.1),
        lion,
        optim.Lion(0.03),
        adaptive=False,
        # The slow momentum (b2 = 0.99) overshoots before it settles.
        steps=300,
        invalid=(_NEGATIVE_LR, *_BETAS, {"weight_decay": -0.1}),
    ),
    RuleCase(
        "Lamb",
        optim.Lamb(0.1, b1=0.8, b2=0.9, eps=1e-3, weight_decay=0.1),
        lamb,
        optim.Lamb(0.05),
        invalid=(_NEGATIVE_LR, *_BETAS, {"eps": 0.0}),
    ),
]
