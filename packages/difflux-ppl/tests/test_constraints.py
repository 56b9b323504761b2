"""Tests of constraints: membership checks, event shapes, feasible points and reprs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from difflux.ppl.dist import constraints as C  # noqa: N812 (short alias for a table)

L_GOOD = np.array([[1.0, 0.0], [0.5, 2.0]])
CORR_L = np.array([[1.0, 0.0], [0.6, 0.8]])

# (constraint, values inside, values outside); one element (event) per entry.
CASES = [
    (C.real, [0.0, -1e300, 5.0], [np.inf, -np.inf, np.nan]),
    (C.positive, [1e-300, 2.0], [0.0, -1.0, np.nan]),
    (C.nonnegative, [0.0, 2.0], [-1e-12, -1.0]),
    (C.unit_interval, [0.0, 0.5, 1.0], [-0.1, 1.1]),
    (C.interval(-1.0, 2.0), [-1.0, 2.0], [-1.5, 2.5]),
    (C.open_interval(-1.0, 2.0), [0.0, 1.9], [-1.0, 2.0]),
    (C.greater_than(3.0), [3.5], [3.0, 2.0]),
    (C.greater_than_eq(3.0), [3.0], [2.9]),
    (C.less_than(-1.0), [-2.0], [-1.0]),
    (C.circular, [0.0, np.pi], [4.0]),
    (C.boolean, [0.0, 1.0], [0.5, 2.0]),
    (C.nonnegative_integer, [0.0, 7.0], [-1.0, 1.5]),
    (C.positive_integer, [1.0, 3.0], [0.0, 2.5]),
    (C.integer_interval(0, 3), [0.0, 3.0], [4.0, 1.5, -1.0]),
    (C.real_vector, [[1.0, 2.0]], [[1.0, np.nan]]),
    (C.simplex, [[0.2, 0.8], [1.0, 0.0]], [[0.5, 0.6], [-0.1, 1.1]]),
    (C.ordered_vector, [[-1.0, 2.0]], [[2.0, 1.0], [1.0, 1.0]]),
    (C.lower_cholesky, [L_GOOD], [L_GOOD.T, -L_GOOD]),
    (C.corr_cholesky, [CORR_L], [L_GOOD, np.array([[1.0, 0.0], [0.6, 0.7]])]),
    (
        C.positive_definite,
        [L_GOOD @ L_GOOD.T],
        [np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([[1.0, 0.5], [0.0, 1.0]])],
    ),
    (C.corr_matrix, [CORR_L @ CORR_L.T], [L_GOOD @ L_GOOD.T]),
    (C.independent(C.positive, 1), [[1.0, 2.0]], [[1.0, -2.0]]),
]
ids = [repr(c) for c, _, _ in CASES]


@pytest.mark.parametrize(("constraint", "inside", "outside"), CASES, ids=ids)
def test_check_accepts_inside_and_rejects_outside(
    constraint: Any, inside: list[Any], outside: list[Any], backend: str
) -> None:
    good = dx.asarray(np.asarray(inside, dtype=np.float64), backend=backend)
    bad = dx.asarray(np.asarray(outside, dtype=np.float64), backend=backend)
    assert np.all(np.asarray(constraint.check(good)))
    assert not np.any(np.asarray(constraint.check(bad)))
    assert np.shape(np.asarray(constraint.check(good))) == (len(inside),)


@pytest.mark.parametrize(("constraint", "inside", "outside"), CASES, ids=ids)
def test_feasible_like_is_inside(constraint: Any, inside: list[Any], outside: list[Any], backend: str) -> None:
    prototype = dx.asarray(np.zeros((3,) + np.shape(inside[0])), backend=backend)
    point = constraint.feasible_like(prototype)
    assert point.shape == prototype.shape
    assert np.all(np.asarray(constraint.check(point)))


def test_event_dims() -> None:
    assert C.real.event_dim == 0
    assert C.simplex.event_dim == 1
    assert C.lower_cholesky.event_dim == 2
    assert C.independent(C.simplex, 2).event_dim == 3
    assert C.integer_interval(0, 2).is_discrete
    assert not C.positive.is_discrete


def test_reprs() -> None:
    assert repr(C.positive) == "positive"
    assert repr(C.unit_interval) == "unit_interval"
    assert repr(C.lower_cholesky) == "lower_cholesky"
    assert repr(C.interval(0.0, 2.0)) == "interval(lower_bound=0.0, upper_bound=2.0)"
    assert repr(C.independent(C.real, 1)) == "independent(real, 1)"


def test_independent_rejects_negative_ndims() -> None:
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims"):
        C.independent(C.real, -1)


def test_dependent_cannot_be_checked() -> None:
    with pytest.raises(ValueError, match="dependent"):
        C.dependent.check(np.zeros(2))
    assert C.dependent(is_discrete=True, event_dim=1).event_dim == 1
