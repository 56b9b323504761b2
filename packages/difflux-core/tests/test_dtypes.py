"""Dtype policy: derivatives keep the dtype of the differentiated input."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from difflux.core._ops_elementwise import UNARY_DOMAINS

EXPRESSIONS = {
    "square_by_pow": lambda x: x**2,
    "cube_by_pow": lambda x: x**3.0,
    "scaled": lambda x: 2.0 * x + 1,
    "divided": lambda x: 1.0 / (1.0 + x * x),
    "where": lambda x: dx.where(x > 0, x, 0.5 * x),
    "maximum": lambda x: dx.maximum(x, 0.0),
    "clip": lambda x: dx.clip(x, -0.5, 0.5),
}


@pytest.mark.parametrize("name", sorted(UNARY_DOMAINS))
def test_unary_gradient_keeps_float32(name, backend):
    low, high = UNARY_DOMAINS[name]
    x = dx.asarray(np.linspace(low, high, 4) * 0.9 + 0.05 * (low + high), dtype=np.float32, backend=backend)
    g = dx.grad(lambda v: dx.sum(getattr(dx, name)(v)))(x)
    assert np.dtype(g.dtype) == np.float32


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_expression_gradient_keeps_float32(name, backend):
    x = dx.asarray(np.array([0.3, -0.7, 1.2]), dtype=np.float32, backend=backend)
    fn = EXPRESSIONS[name]
    value = fn(x)
    g = dx.grad(lambda v: dx.sum(fn(v)))(x)
    assert np.dtype(value.dtype) == np.float32
    assert np.dtype(g.dtype) == np.float32


def test_python_float_gives_float64_on_numpy():
    assert dx.asarray(1.5).dtype == np.float64
    assert np.dtype(dx.grad(lambda x: x * x)(1.5).dtype) == np.float64
