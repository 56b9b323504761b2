"""The strong Wolfe line search: both conditions on test functions, edge cases, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import difflux.core as dx
from difflux import optim


def quadratic(x):
    return dx.sum((x - 3.0) ** 2)


def rosenbrock(x):
    return dx.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


# One-dimensional functions of Moré and Thuente, "Line search algorithms with
# guaranteed sufficient decrease", ACM TOMS 20(3), 1994, table 1 and 2: a
# minimiser far out, a steep valley near zero, and a wiggly one.
def more_thuente_1(x):
    return dx.sum(-x / (x * x + 2.0))


def more_thuente_2(x):
    return dx.sum((x + 0.004) ** 5 - 2.0 * (x + 0.004) ** 4)


def more_thuente_3(x):
    beta, ell = 0.01, 39.0
    smooth = 2.0 * (1.0 - beta) / (ell * math.pi) * dx.sin(ell * math.pi / 2.0 * x)
    return dx.sum(
        dx.where(
            x <= 1.0 - beta, 1.0 - x, dx.where(x >= 1.0 + beta, x - 1.0, (x - 1.0) ** 2 / (2.0 * beta) + beta / 2.0)
        )
        + smooth
    )


CASES = [
    ("quadratic", quadratic, [0.0, 0.0], [1.0, 1.0]),
    ("rosenbrock", rosenbrock, [-1.2, 1.0], [1.0, 0.0]),
    ("more_thuente_1", more_thuente_1, [0.0], [1.0]),
    ("more_thuente_2", more_thuente_2, [0.0], [1.0]),
    ("more_thuente_3", more_thuente_3, [0.0], [1.0]),
]


def assert_strong_wolfe(fun, x, direction, result, c1, c2):
    value, grad = dx.value_and_grad(fun)(x)
    slope = float(dx.sum(grad * direction))
    step = float(result.step)
    new_value, new_grad = dx.value_and_grad(fun)(x + step * direction)
    new_slope = float(dx.sum(new_grad * direction))
    assert step > 0.0
    assert float(new_value) <= float(value) + c1 * step * slope
    assert abs(new_slope) <= c2 * abs(slope)


@pytest.mark.parametrize(("name", "fun", "start", "direction"), CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize("initial_step", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("c2", [0.1, 0.9])
def test_strong_wolfe_conditions_hold(name, fun, start, direction, initial_step, c2):
    x = np.array(start)
    p = np.array(direction)
    result = optim.line_search(fun, x, p, initial_step=initial_step, c2=c2)
    assert bool(result.success)
    assert_strong_wolfe(fun, x, p, result, 1e-4, c2)


@pytest.mark.parametrize(("name", "fun", "start", "direction"), CASES[:3], ids=[case[0] for case in CASES[:3]])
def test_result_fields_match_accepted_point(name, fun, start, direction):
    x = np.array(start)
    p = np.array(direction)
    result = optim.line_search(fun, x, p, c2=0.1)
    value, grad = dx.value_and_grad(fun)(x + result.step * p)
    np.testing.assert_allclose(result.x, x + result.step * p)
    np.testing.assert_allclose(result.fun, value)
    np.testing.assert_allclose(result.grad, grad)
    np.testing.assert_allclose(result.slope, dx.sum(grad * p))
    assert int(result.n_fev) >= 2  # the start and at least one trial


def test_line_search_on_both_backends(backend, to_backend):
    x = to_backend([-1.2, 1.0])
    p = -dx.grad(rosenbrock)(x)
    result = optim.line_search(rosenbrock, x, p, c2=0.1, initial_step=1.0)
    assert bool(result.success)
    assert_strong_wolfe(rosenbrock, x, p, result, 1e-4, 0.1)
    assert type(result.x) is type(x)


def test_quadratic_step_is_exact_minimiser():
    # The cubic through two points of a quadratic is that quadratic.
    result = optim.line_search(lambda x: (x[0] - 3.0) ** 2, np.zeros(1), np.ones(1), c2=0.1)
    assert float(result.step) == pytest.approx(3.0)


def test_non_finite_trial_shrinks_step():
    def barrier(x):
        return dx.sum(dx.where(x < 1.0, (x - 0.9) ** 2, math.inf))

    result = optim.line_search(barrier, np.zeros(1), np.ones(1), initial_step=10.0, c2=0.1)
    assert bool(result.success)
    assert float(result.step) < 1.0
    assert np.isfinite(float(result.fun))


def test_step_stops_at_max_step():
    result = optim.line_search(lambda x: -dx.sum(x), np.zeros(2), np.ones(2), max_step=2.5)
    assert bool(result.success)
    assert float(result.step) == 2.5


def test_ascent_direction_fails_without_trials():
    result = optim.line_search(quadratic, np.zeros(2), -np.ones(2))
    assert not bool(result.success)
    assert int(result.n_fev) == 1
    assert float(result.step) == 0.0
    np.testing.assert_array_equal(result.x, np.zeros(2))


def test_evaluation_limit_fails():
    result = optim.line_search(more_thuente_1, np.zeros(1), np.ones(1), initial_step=1e-8, max_evals=3)
    assert not bool(result.success)
    assert int(result.n_fev) == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"c1": 0.5, "c2": 0.1}, "0 < c1 < c2 < 1"),
        ({"c2": 1.0}, "0 < c1 < c2 < 1"),
        ({"max_evals": 0}, "max_evals"),
        ({"initial_step": -1.0}, "positive"),
    ],
)
def test_invalid_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.line_search(quadratic, np.zeros(2), np.ones(2), **kwargs)


def test_direction_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"direction has shape \(3,\) but x has shape \(2,\)"):
        optim.line_search(quadratic, np.zeros(2), np.ones(3))
