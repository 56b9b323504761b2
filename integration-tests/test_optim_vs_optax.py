"""difflux.optim against Optax, in float64.

Each rule runs 30 steps on the same problem in difflux (on NumPy and on
JAX arrays) and in Optax (gradients from ``jax.grad``), and the parameter
trajectories must agree to about 1e-10. Where the two libraries place a
constant differently, both are configured to one definition:

* AdaGrad: Optax adds ``eps`` inside the square root and difflux outside,
  so Optax runs with ``eps=0`` and difflux with ``eps=1e-300``.
* AdaBelief: difflux follows Zhuang et al. (NeurIPS 2020), who add ``eps`` to the second
  moment as well as to the denominator; Optax does so with ``eps_root=eps``.
* RMSProp: difflux puts ``eps`` outside the square root (Optax
  ``eps_in_sqrt=False``).

Optax (0.2.8, the release these tests were written against) computes
schedule values in float32 from the int32 step count even with float64
enabled, so schedules, and trajectories that use one, agree to about 1e-7.
``MultiSteps`` keeps a running mean where difflux sums and divides: the
first accumulated update agrees exactly, and later ones differ by rounding
that Adam's normalisation amplifies where a mean gradient nearly cancels
(about 1e-9 after 30 steps).

Not compared: ``Rprop``, because Optax 0.2.8's ``scale_by_rprop`` returns
the step computed at the previous call (its first update is zero), a delay
of one step against the algorithm as published and as in PyTorch;
``reduce_on_plateau``, because Optax's (in ``optax.contrib``)
takes the loss at every update and averages it over several, while difflux
takes losses through ``optim.report``; ``ClipNorm``, which Optax lacks (its
``clip_by_block_rms`` bounds the root mean square, not the norm).
Schedules are compared value by value where Optax has the same schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import difflux.core as dx
from difflux import optim

STEPS = 30
RTOL = 1e-10
ATOL = 1e-12

START = {"w": np.array([0.5, -1.5, 2.0]), "m": np.array([[1.0, -0.3], [0.2, 0.8]])}


def loss(xp, params):
    """A coupled, non-quadratic loss, written once for difflux and for jax.numpy."""
    w, m = params["w"], params["m"]
    return xp.sum((w - 1.0) ** 2 * (1.0 + w**2)) + xp.sum(xp.sin(m) * m) + xp.sum(w[:2] * m[0]) ** 2


@dataclass(frozen=True)
class Pair:
    id: str
    ours: Any
    theirs: Callable[[], Any]
    rtol: float = RTOL
    atol: float = ATOL


PAIRS = [
    Pair("Descent", optim.Descent(0.05), lambda: optax.sgd(0.05)),
    Pair("Momentum", optim.Momentum(0.02, momentum=0.8), lambda: optax.sgd(0.02, momentum=0.8)),
    Pair("Nesterov", optim.Nesterov(0.02, momentum=0.8), lambda: optax.sgd(0.02, momentum=0.8, nesterov=True)),
    Pair("Adam", optim.Adam(0.05, b1=0.8, b2=0.95), lambda: optax.adam(0.05, b1=0.8, b2=0.95)),
    Pair("AdamW", optim.AdamW(0.05, weight_decay=0.1), lambda: optax.adamw(0.05, weight_decay=0.1)),
    Pair("NAdam", optim.NAdam(0.05), lambda: optax.nadam(0.05)),
    Pair("RAdam", optim.RAdam(0.05, b2=0.95), lambda: optax.radam(0.05, b2=0.95)),
    Pair("AdaMax", optim.AdaMax(0.05), lambda: optax.adamax(0.05)),
    Pair("AMSGrad", optim.AMSGrad(0.05, b2=0.9), lambda: optax.amsgrad(0.05, b2=0.9)),
    Pair("AdaBelief", optim.AdaBelief(0.05, eps=1e-8), lambda: optax.adabelief(0.05, eps=1e-8, eps_root=1e-8)),
    Pair(
        "AdaGrad",
        optim.AdaGrad(0.1, initial_accumulator=0.1, eps=1e-300),
        lambda: optax.adagrad(0.1, initial_accumulator_value=0.1, eps=0.0),
    ),
    Pair("AdaDelta", optim.AdaDelta(1.0, rho=0.9, eps=1e-4), lambda: optax.adadelta(1.0, rho=0.9, eps=1e-4)),
    Pair("RMSProp", optim.RMSProp(0.01, rho=0.9), lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-8, eps_in_sqrt=False)),
    Pair(
        "RMSProp-centered",
        optim.RMSProp(0.01, rho=0.9, centered=True),
        lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-8, eps_in_sqrt=False, centered=True),
    ),
    Pair("Lion", optim.Lion(0.01, weight_decay=0.1), lambda: optax.lion(0.01, weight_decay=0.1)),
    Pair("Lamb", optim.Lamb(0.05, weight_decay=0.01), lambda: optax.lamb(0.05, weight_decay=0.01)),
    Pair(
        "chain-clip-adam",
        optim.chain(optim.ClipGlobalNorm(0.5), optim.Adam(0.05)),
        lambda: optax.chain(optax.clip_by_global_norm(0.5), optax.adam(0.05)),
    ),
    Pair(
        "chain-clip-value",
        optim.chain(optim.ClipValue(0.3), optim.Momentum(0.05)),
        lambda: optax.chain(optax.clip(0.3), optax.sgd(0.05, momentum=0.9)),
    ),
    Pair(
        "adam-weight-decay",
        optim.chain(optim.Adam(0.05), optim.WeightDecay(0.1, learning_rate=0.05)),
        lambda: optax.adamw(0.05, weight_decay=0.1),
    ),
    Pair(
        "accumulate",
        optim.accumulate(optim.Adam(0.05), every=3),
        lambda: optax.MultiSteps(optax.adam(0.05), every_k_schedule=3),
        rtol=1e-7,
        atol=1e-8,
    ),
    Pair(
        "schedule",
        optim.Adam(optim.warmup_cosine(0.1, warmup_steps=5, decay_steps=25, end_value=0.01)),
        lambda: optax.adam(optax.warmup_cosine_decay_schedule(0.0, 0.1, 5, 25, end_value=0.01)),
        rtol=1e-6,
        atol=1e-7,
    ),
]


def optax_trajectory(transform) -> list[dict[str, np.ndarray]]:
    params = jax.tree.map(jnp.asarray, START)
    state = transform.init(params)
    gradient = jax.grad(lambda p: loss(jnp, p))
    out = []
    for _ in range(STEPS):
        updates, state = transform.update(gradient(params), state, params)
        params = optax.apply_updates(params, updates)
        out.append(jax.tree.map(np.asarray, params))
    return out


def difflux_trajectory(rule, backend: str) -> list[dict[str, np.ndarray]]:
    params = {name: dx.asarray(value, backend=backend) for name, value in START.items()}
    state = optim.setup(rule, params)
    gradient = dx.grad(lambda p: loss(dx, p))
    out = []
    for _ in range(STEPS):
        state, params = optim.update(state, params, gradient(params))
        out.append({name: np.asarray(value) for name, value in params.items()})
    return out


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("pair", PAIRS, ids=[pair.id for pair in PAIRS])
def test_trajectory_matches_optax(pair: Pair, backend: str):
    expected = optax_trajectory(pair.theirs())
    actual = difflux_trajectory(pair.ours, backend)
    for step, (ours, theirs) in enumerate(zip(actual, expected), start=1):
        for name in START:
            np.testing.assert_allclose(
                ours[name], theirs[name], rtol=pair.rtol, atol=pair.atol, err_msg=f"{name} at step {step}"
            )


def test_skip_nonfinite_matches_apply_if_finite():
    theirs = optax.apply_if_finite(optax.adam(0.1), max_consecutive_errors=100)
    ours = optim.skip_nonfinite(optim.Adam(0.1))
    grads = [np.array([1.0, 2.0]), np.array([np.nan, 1.0]), np.array([0.5, -1.0]), np.array([np.inf, 0.0])]
    params_theirs, state_theirs = jnp.zeros(2), theirs.init(jnp.zeros(2))
    params_ours, state_ours = np.zeros(2), ours.init(np.zeros(2))
    for g in grads:
        updates, state_theirs = theirs.update(jnp.asarray(g), state_theirs, params_theirs)
        params_theirs = optax.apply_updates(params_theirs, updates)
        updates, state_ours = ours.update(g, state_ours, params_ours)
        params_ours = dx.apply_updates(params_ours, updates)
        np.testing.assert_allclose(params_ours, np.asarray(params_theirs), rtol=RTOL, atol=ATOL)
    assert int(state_ours.skipped) == int(state_theirs.total_notfinite)


SCHEDULES = [
    (optim.constant(0.3), optax.constant_schedule(0.3)),
    (optim.piecewise_constant(1.0, {10: 0.5, 40: 0.1}), optax.piecewise_constant_schedule(1.0, {10: 0.5, 40: 0.1})),
    (optim.exponential_decay(1.0, 0.7, 9), optax.exponential_decay(1.0, 9, 0.7)),
    (
        optim.exponential_decay(1.0, 0.7, 9, staircase=True, transition_begin=4, end_value=0.3),
        optax.exponential_decay(1.0, 9, 0.7, transition_begin=4, staircase=True, end_value=0.3),
    ),
    (optim.polynomial_decay(1.0, 0.1, 50, power=2.0), optax.polynomial_schedule(1.0, 0.1, 2.0, 50)),
    (optim.cosine_decay(1.0, 50, alpha=0.2), optax.cosine_decay_schedule(1.0, 50, alpha=0.2)),
    (
        optim.warmup_cosine(1.0, 10, 60, init_value=0.1, end_value=0.05),
        optax.warmup_cosine_decay_schedule(0.1, 1.0, 10, 60, end_value=0.05),
    ),
    (optim.one_cycle(2.0, 80), optax.cosine_onecycle_schedule(80, 2.0)),
]


@pytest.mark.parametrize(("ours", "theirs"), SCHEDULES, ids=[repr(s).split("(")[0] for s, _ in SCHEDULES])
def test_schedule_matches_optax(ours, theirs):
    for step in range(100):
        expected = float(theirs(jnp.asarray(step, dtype=jnp.int32)))
        # Optax's schedules compute in float32 (see the module docstring).
        np.testing.assert_allclose(float(ours(step)), expected, rtol=1e-6, atol=1e-7, err_msg=f"step {step}")
