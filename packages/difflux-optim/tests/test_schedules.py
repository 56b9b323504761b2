"""Schedules: values against closed forms, traced steps, and use as learning rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

import difflux.core as dx
from conftest import HAS_JAX
from difflux import optim

STEPS = [0, 1, 5, 10, 29, 30, 31, 60, 99, 100, 150]


def one_cycle_reference(t, max_value=2.0, total=100, pct=0.3, div=25.0, final_div=1e4):
    initial, final, peak = max_value / div, max_value / div / final_div, int(pct * total)
    if t < peak:
        return initial + (max_value - initial) * 0.5 * (1 - math.cos(math.pi * t / peak))
    fraction = min((t - peak) / (total - peak), 1.0)
    return final + (max_value - final) * 0.5 * (1 + math.cos(math.pi * fraction))


# (schedule, closed form of its value at step t)
SCHEDULES = [
    (optim.constant(0.3), lambda t: 0.3),
    (
        optim.piecewise_constant(1.0, {30: 0.1, 60: 0.5}),
        lambda t: 1.0 * (0.1 if t >= 30 else 1) * (0.5 if t >= 60 else 1),
    ),
    (optim.exponential_decay(2.0, 0.5, 10), lambda t: 2.0 * 0.5 ** (t / 10)),
    (
        optim.exponential_decay(2.0, 0.5, 10, staircase=True, transition_begin=5),
        lambda t: 2.0 * 0.5 ** (max(t - 5, 0) // 10),
    ),
    (optim.exponential_decay(1.0, 0.5, 10, end_value=0.1), lambda t: max(0.5 ** (t / 10), 0.1)),
    (optim.polynomial_decay(1.0, 0.1, 100, power=2.0), lambda t: 0.9 * (1 - min(t, 100) / 100) ** 2 + 0.1),
    (optim.cosine_decay(1.0, 100, alpha=0.1), lambda t: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 100) / 100))),
    (
        optim.warmup_cosine(1.0, warmup_steps=10, decay_steps=110, init_value=0.1, end_value=0.01),
        lambda t: (
            0.1 + 0.9 * t / 10 if t < 10 else 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t - 10, 100) / 100))
        ),
    ),
    (optim.one_cycle(2.0, 100), one_cycle_reference),
    (
        optim.one_cycle(2.0, 100, anneal="linear"),
        lambda t: 0.08 + 1.92 * t / 30 if t < 30 else 2.0 + (0.08e-4 - 2.0) * min((t - 30) / 70, 1.0),
    ),
]
IDS = [repr(schedule).split("(")[0] + f"-{index}" for index, (schedule, _) in enumerate(SCHEDULES)]


@pytest.mark.parametrize(("schedule", "expected"), SCHEDULES, ids=IDS)
def test_schedule_matches_closed_form(schedule, expected, backend):
    for t in STEPS:
        value = schedule(dx.asarray(t, dtype=dx.int32, backend=backend))
        np.testing.assert_allclose(float(value), expected(t), rtol=1e-12, atol=1e-15, err_msg=f"step {t}")


@pytest.mark.parametrize(("schedule", "expected"), SCHEDULES, ids=IDS)
def test_schedule_accepts_python_int(schedule, expected):
    np.testing.assert_allclose(float(schedule(7)), expected(7), rtol=1e-12)


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
@pytest.mark.parametrize(("schedule", "expected"), SCHEDULES, ids=IDS)
def test_schedule_under_jit(schedule, expected):
    compiled = dx.jit(lambda step: dx.asarray(schedule(step), backend="jax"))
    for t in STEPS:
        value = compiled(dx.asarray(t, dtype=dx.int32, backend="jax"))
        np.testing.assert_allclose(float(value), expected(t), rtol=1e-12, atol=1e-15)


def test_schedule_drives_learning_rate(to_backend):
    schedule = optim.piecewise_constant(1.0, {2: 0.5})
    rule = optim.Descent(schedule)
    params = to_backend([0.0])
    state = rule.init(params)
    steps = []
    for _ in range(4):
        updates, state = rule.update(to_backend([1.0]), state, params)
        steps.append(float(updates[0]))
    # The first update uses the schedule at step 0, as in Optax.
    assert steps == [-1.0, -1.0, -0.5, -0.5]


def test_schedule_learning_rate_keeps_float32(backend):
    rule = optim.Adam(optim.cosine_decay(1e-2, 100))
    params = dx.asarray(np.ones(2, np.float32), backend=backend)
    updates, _ = rule.update(params, rule.init(params), params)
    assert updates.dtype == np.float32


def test_schedules_compare_by_value():
    assert optim.cosine_decay(1.0, 10) == optim.cosine_decay(1.0, 10)
    assert hash(optim.Adam(optim.cosine_decay(1.0, 10))) == hash(optim.Adam(optim.cosine_decay(1.0, 10)))
    assert repr(optim.cosine_decay(1.0, 10)) == "cosine_decay(init_value=1.0, decay_steps=10, alpha=0.0)"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: optim.constant(-1.0), "constant: value must be a non-negative finite number, got -1.0"),
        (lambda: optim.cosine_decay(1.0, 0), "cosine_decay: decay_steps must be a positive integer"),
        (lambda: optim.exponential_decay(1.0, -0.5, 10), "decay_rate must be a non-negative finite number, got -0.5"),
        (lambda: optim.warmup_cosine(1.0, 10, 10), r"decay_steps \(10\) counts the warm-up too"),
        (lambda: optim.one_cycle(1.0, 100, pct_start=1.5), r"pct_start must be in \(0, 1\), got 1.5"),
        (
            lambda: optim.piecewise_constant(1.0, {-3: 0.5}),
            "boundary must be a positive integer number of steps, got -3",
        ),
        (
            lambda: optim.exponential_decay(1.0, 0.5, 10, transition_begin=1.5),
            r"exponential_decay: transition_begin must be an integer number of steps >= 0, got 1\.5",
        ),
        (
            lambda: optim.polynomial_decay(1.0, 0.1, 10, transition_begin=None),
            r"polynomial_decay: transition_begin must be an integer number of steps >= 0, got None",
        ),
    ],
)
def test_schedule_rejects_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
