"""Broadcasting in binary operations: gradients for shapes drawn by hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import difflux.core as dx
from difflux.core.testing import check_grads

BINARY = {
    "add": dx.add,
    "subtract": dx.subtract,
    "multiply": dx.multiply,
    "divide": lambda x, y: dx.divide(x, 2.5 + dx.sin(y)),
    "maximum": dx.maximum,
    "atan2": lambda x, y: dx.atan2(x, 3.0 + y),
    "logaddexp": dx.logaddexp,
    "pow": lambda x, y: dx.pow(2.5 + dx.sin(x), y),
}


@st.composite
def broadcastable_pair(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
    elements = st.floats(-1.5, 1.5, allow_nan=False, width=64)
    x = draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=elements))
    y = draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=elements))
    return x, y


@pytest.mark.parametrize("name", sorted(BINARY))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=broadcastable_pair())
def test_broadcast_gradient(name, pair, backend):
    x, y = pair
    if name == "maximum" and np.any(np.isclose(np.broadcast_arrays(x, y)[0], np.broadcast_arrays(x, y)[1], atol=1e-3)):
        return  # maximum is not differentiable where its arguments tie
    args = (dx.asarray(x, backend=backend), dx.asarray(y, backend=backend))
    check_grads(BINARY[name], args, order=1)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=broadcastable_pair())
def test_broadcast_cotangent_shapes(pair, backend):
    x, y = pair
    gx, gy = dx.gradient(lambda a, b: dx.sum(a * b), dx.asarray(x, backend=backend), dx.asarray(y, backend=backend))
    assert np.shape(gx) == x.shape
    assert np.shape(gy) == y.shape


def test_incompatible_shapes_error_names_both(backend, to_backend):
    with pytest.raises(ValueError, match=r"\(2, ?3\).*\(4,?\)|\(4,?\).*\(2, ?3\)"):
        dx.add(to_backend(np.ones((2, 3))), to_backend(np.ones(4)))


def test_array_api_namespace_code_differentiates(backend, to_backend):
    def array_api_function(x):
        xp = x.__array_namespace__()
        return xp.sum(xp.sin(x) * x)

    x = to_backend([0.1, 0.7, -1.3])
    g = dx.grad(array_api_function)(x)
    xs = np.asarray(x)
    np.testing.assert_allclose(np.asarray(g), np.cos(xs) * xs + np.sin(xs))
