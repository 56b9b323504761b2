"""Tests of the NumPy program recorder: replays against eager calls, and the cases it must reject."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from difflux.core._core import value_of
from difflux.core._record import RecordingError, record


def lotka_volterra(y, theta):
    return dx.stack([(theta[0] - theta[1] * y[1]) * y[0], (-theta[2] + theta[3] * y[0]) * y[1]])


def sensitivities(y, s, theta):
    # The forward-sensitivity right-hand side: f and the JVPs of f along the columns of s.
    def column(s_column, e):
        return dx.jvp(lotka_volterra, (y, theta), (s_column, e))[1]

    selector = np.concatenate([np.zeros((2, 4)), np.eye(4)])
    return lotka_volterra(y, theta), dx.vmap(column)(s, selector)


def mixed(x, w):
    hidden = dx.tanh(x @ w + dx.sum(x**2, axis=-1, keepdims=True))
    return {"out": dx.where(hidden > 0, hidden, 0.1 * hidden)[::-1], "norm": dx.sqrt(dx.mean(hidden * hidden))}


def _inputs(seed, shapes):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for shape in shapes]


CASES = [
    ("mixed_operations", mixed, [(3, 4), (4, 2)]),
    ("forward_sensitivities", sensitivities, [(2,), (6, 2), (4,)]),
    ("batched_sensitivities", dx.vmap(sensitivities), [(5, 2), (5, 6, 2), (5, 4)]),
    (
        "hessian_vector_product",
        lambda x, v: dx.jvp(dx.grad(lambda u: dx.sum(dx.sin(u) ** 3)), (x,), (v,))[1],
        [(4,), (4,)],
    ),
]


@pytest.mark.parametrize(("name", "function", "shapes"), CASES, ids=[case[0] for case in CASES])
def test_replay_matches_eager_calls(name, function, shapes):
    program = record(function, _inputs(0, shapes))
    for seed in (0, 1, 2):
        inputs = _inputs(seed, shapes)
        replayed = dx.tree_leaves(program(*inputs))
        expected = dx.tree_leaves(function(*inputs))
        assert len(replayed) == len(expected)
        for got, want in zip(replayed, expected):
            np.testing.assert_array_equal(got, np.asarray(want))


def test_repeated_calls_recorded_once():
    x = np.arange(3.0)
    program = record(lambda v: dx.sin(v) * dx.sin(v) + dx.sin(v), [x])
    assert program.num_calls == 3  # sin once, then multiply and add
    np.testing.assert_array_equal(program(x + 1.0), np.sin(x + 1.0) ** 2 + np.sin(x + 1.0))


def test_unused_calls_dropped():
    x = np.arange(3.0)
    program = record(lambda v: (dx.exp(v), v * 2.0)[1], [x])
    assert program.num_calls == 1


def test_constant_output_passes_through():
    program = record(lambda v: (v + 1.0, np.ones(2)), [np.zeros(3)])
    out, constant = program(np.ones(3))
    np.testing.assert_array_equal(out, np.full(3, 2.0))
    np.testing.assert_array_equal(constant, np.ones(2))


READS = [
    ("python_if", lambda v: v * 2.0 if v[0] > 0 else v),
    ("float", lambda v: v * float(v[0])),
    ("value_of", lambda v: v * value_of(v)[0]),
    ("numpy_conversion", lambda v: v * np.asarray(v)[0]),
]


@pytest.mark.parametrize(("name", "function"), READS, ids=[case[0] for case in READS])
def test_reading_a_value_raises(name, function):
    with pytest.raises((RecordingError, TypeError)):
        record(function, [np.arange(1.0, 4.0)])


def test_tracer_of_another_transformation_raises():
    x = np.arange(3.0)

    def outer(k):
        with pytest.raises(RecordingError, match="another transformation"):
            record(lambda v: v * k, [x])
        return dx.sum(k)

    dx.grad(outer)(np.ones(3))


def test_non_numpy_input_raises():
    with pytest.raises(RecordingError, match="NumPy arrays"):
        record(lambda v: v, [[1.0, 2.0]])
