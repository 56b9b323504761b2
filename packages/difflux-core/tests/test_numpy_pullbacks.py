"""NumPy pullbacks against the difflux-op rules they stand in for.

The backward pass calls a primitive's NumPy pullbacks when the cotangent and
the arguments are plain NumPy values. They must return exactly what the
generic rules return on the same values: same shape, dtype and numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from difflux.core import _core
from difflux.core import _ops_elementwise as ew
from difflux.core import _ops_extra as extra
from difflux.core import _ops_matmul as mm
from difflux.core import _ops_reduction as red
from difflux.core import _ops_shape as shp

RNG = np.random.default_rng(0)


def _normal(*shape: int, dtype: Any = np.float64) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def _with_ties(x: np.ndarray, value: float) -> np.ndarray:
    x = x.copy()
    x.flat[::3] = value
    return x


# (name, primitive, positional arguments, parameters)
CASES = [
    ("add broadcast row", ew.add_p, (_normal(3, 4), _normal(4)), {}),
    ("add broadcast both", ew.add_p, (_normal(3, 1), _normal(1, 4)), {}),
    ("add float32", ew.add_p, (_normal(3, 4, dtype=np.float32), _normal(4, dtype=np.float32)), {}),
    ("subtract broadcast", ew.subtract_p, (_normal(3, 4), _normal(3, 1)), {}),
    ("multiply broadcast", ew.multiply_p, (_normal(3, 4), _normal(4)), {}),
    ("multiply by number", ew.multiply_p, (_normal(3, 4), 2.5), {}),
    ("divide broadcast", ew.divide_p, (_normal(3, 4), _normal(3, 1) + 3.0), {}),
    ("negative", ew.negative_p, (_normal(3, 4),), {}),
    ("maximum with ties", ew.maximum_p, (_with_ties(_normal(3, 4), 0.0), 0.0), {}),
    ("maximum broadcast ties", ew.maximum_p, (_with_ties(_normal(3, 4), 0.5), np.full(4, 0.5)), {}),
    ("minimum float32", ew.minimum_p, (_normal(3, 4, dtype=np.float32), _normal(4, dtype=np.float32)), {}),
    ("exp", ew.exp_p, (_normal(5),), {}),
    ("log", ew.log_p, (np.abs(_normal(5)) + 0.5,), {}),
    ("sin", ew.sin_p, (_normal(5),), {}),
    ("cos", ew.cos_p, (_normal(5),), {}),
    ("tanh", ew.tanh_p, (_normal(5),), {}),
    ("square", ew.square_p, (_normal(5),), {}),
    ("relu with zeros", extra.relu_p, (_with_ties(_normal(3, 4), 0.0),), {}),
    ("relu float32 with nan", extra.relu_p, (np.array([np.nan, -1.0, 0.0, 2.0], dtype=np.float32),), {}),
    ("permute_dims matrix", shp.permute_dims_p, (_normal(3, 4),), {"axes": (1, 0)}),
    ("permute_dims rank 3", shp.permute_dims_p, (_normal(2, 3, 4),), {"axes": (2, 0, 1)}),
    ("getitem slice", shp.getitem_p, (_normal(4, 5),), {"index": (slice(1, 3), slice(None, None, 2))}),
    ("getitem repeated indices", shp.getitem_p, (_normal(4, 5),), {"index": np.array([2, 0, 2, 2])}),
    ("getitem pick per row", shp.getitem_p, (_normal(4, 5),), {"index": (np.arange(4), np.array([4, 0, 2, 4]))}),
    ("getitem boolean mask", shp.getitem_p, (_normal(3, 4),), {"index": _normal(3, 4) > 0}),
    ("getitem float32", shp.getitem_p, (_normal(6, dtype=np.float32),), {"index": np.array([5, 1, 1])}),
    ("where both arrays", ew.where_p, (_normal(3, 4) > 0, _normal(3, 4), _normal(3, 4)), {}),
    ("where broadcast", ew.where_p, (_normal(3, 4) > 0, _normal(4), _normal(3, 1)), {}),
    ("where float32", ew.where_p, (_normal(5) > 0, _normal(5, dtype=np.float32), _normal(5, dtype=np.float32)), {}),
    ("linear matrix", mm.linear_p, (_normal(5, 3), _normal(4, 3), _normal(4)), {}),
    ("linear vector", mm.linear_p, (_normal(3), _normal(4, 3), _normal(4)), {}),
    ("linear leading axes", mm.linear_p, (_normal(2, 5, 3), _normal(4, 3), _normal(4)), {}),
    (
        "linear float32",
        mm.linear_p,
        (_normal(5, 3, dtype=np.float32), _normal(4, 3, dtype=np.float32), _normal(4, dtype=np.float32)),
        {},
    ),
    ("matmul matrices", mm.matmul_p, (_normal(5, 3), _normal(3, 2)), {}),
    ("matmul batch broadcast", mm.matmul_p, (_normal(3, 4), _normal(2, 4, 5)), {}),
    ("matmul vector", mm.matmul_p, (_normal(3, 4), _normal(4)), {}),
    ("sum one axis", red.sum_p, (_normal(3, 4),), {"axis": (1,), "keepdims": False}),
    ("sum keepdims", red.sum_p, (_normal(3, 4),), {"axis": (0,), "keepdims": True}),
    ("sum all axes", red.sum_p, (_normal(3, 4),), {"axis": (0, 1), "keepdims": False}),
    ("sum beyond copy size", red.sum_p, (_normal(300, 300),), {"axis": (1,), "keepdims": False}),
    ("logsumexp", red.logsumexp_p, (_normal(4, 6),), {"axis": (1,), "keepdims": True}),
    ("logsumexp weights", red.logsumexp_p, (_normal(4, 6), np.abs(_normal(6))), {"axis": (1,), "keepdims": False}),
    (
        "logsumexp empty slice",
        red.logsumexp_p,
        (np.array([[-np.inf, -np.inf], [0.5, 1.0]]),),
        {"axis": (1,), "keepdims": False},
    ),
]


@pytest.mark.parametrize(("name", "prim", "args", "params"), CASES, ids=[case[0] for case in CASES])
def test_numpy_pullback_matches_rule(name, prim, args, params):
    out = prim.impl(*args, **params)
    g = _normal(*np.shape(out), dtype=np.result_type(out))
    checked = 0
    for i, arg in enumerate(args):
        if not isinstance(arg, np.ndarray):
            continue  # a Python number is never a traced argument
        if prim.pullbacks[i] is None:
            continue  # an argument without a derivative, such as where's condition
        fast = prim.numpy_pullbacks[i](g, out, *args, **params)
        generic = prim.pullbacks[i](g, out, *args, **params)
        assert np.shape(fast) == np.shape(arg), f"argument {i}"
        assert np.result_type(fast) == np.result_type(generic), f"argument {i}"
        np.testing.assert_array_equal(fast, generic, err_msg=f"argument {i}")
        checked += 1
    assert checked > 0


def test_primitives_with_numpy_pullbacks_cover_cases():
    covered = {id(case[1]) for case in CASES}
    for prim in (
        ew.add_p,
        ew.subtract_p,
        ew.multiply_p,
        ew.divide_p,
        ew.maximum_p,
        ew.where_p,
        extra.relu_p,
        shp.permute_dims_p,
        shp.getitem_p,
        mm.matmul_p,
        mm.linear_p,
        red.sum_p,
    ):
        assert prim.numpy_pullbacks is not None, prim.name
        assert id(prim) in covered, prim.name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_pullback_keeps_transposed_layout(dtype):
    # The y of x @ w.T is a transposed view. Its cotangent comes back as the
    # transpose of a C-contiguous array, so w's cotangent is C-contiguous.
    x = _normal(6, 4, dtype=dtype)
    w = _normal(3, 4, dtype=dtype)
    out = x @ w.T
    g = _normal(6, 3, dtype=dtype)
    fast_rule = mm._matmul_numpy_pullback_y
    generic_rule = mm._matmul_pullback_y
    assert mm.matmul_p.numpy_pullbacks == (mm._matmul_numpy_pullback_x, fast_rule)
    fast = fast_rule(g, out, x, w.T)
    generic = generic_rule(g, out, x, w.T)
    assert fast.T.flags.c_contiguous
    assert fast.dtype == generic.dtype
    # The same sums, possibly blocked differently by BLAS.
    np.testing.assert_allclose(fast, generic, rtol=10 * np.finfo(dtype).eps)


def test_dense_weight_gradient_is_c_contiguous():
    x = _normal(6, 4, dtype=np.float32)
    w = _normal(3, 4, dtype=np.float32)
    g = dx.grad(lambda w: dx.sum(dx.tanh(x @ dx.matrix_transpose(w))))(w)
    assert g.flags.c_contiguous
    expected = ((1 - np.tanh(x @ w.T) ** 2).T @ x).astype(np.float32)
    np.testing.assert_allclose(g, expected, rtol=1e-5)


def _chain(x: Any) -> Any:
    for _ in range(4):
        x = dx.tanh(x) * 1.5 + dx.sin(x)
    return dx.sum(dx.maximum(x, 0.0) ** 2)


def test_tape_order_matches_sorted_order():
    x = np.linspace(-1.0, 1.0, 7)
    recorded_tape = _core.ReverseTrace(keep_tape=True)
    with recorded_tape:
        leaf_tape = recorded_tape.leaf(x)
        out_tape = _chain(leaf_tape)
    tape = recorded_tape.take_tape()
    recorded_sorted = _core.ReverseTrace()
    with recorded_sorted:
        leaf_sorted = recorded_sorted.leaf(x)
        out_sorted = _chain(leaf_sorted)
    assert recorded_sorted.tape is None

    seed = np.ones(())
    from_tape = _core.backward([out_tape], [seed], tape)[id(leaf_tape)]
    from_sort = _core.backward([out_sorted], [seed])[id(leaf_sorted)]
    np.testing.assert_array_equal(from_tape, from_sort)


def test_numpy_gradient_matches_second_order_path():
    # A NumPy gradient takes the NumPy pullbacks. Under an outer jvp the same
    # rules run as difflux operations, and the first-order values must agree.
    x = np.linspace(-1.0, 1.0, 7)
    plain = dx.grad(_chain)(x)
    traced, _ = dx.jvp(dx.grad(_chain), (x,), (np.ones_like(x),))
    np.testing.assert_allclose(plain, traced, rtol=1e-14)


def test_take_tape_stops_recording():
    trace = _core.ReverseTrace(keep_tape=True)
    with trace:
        y = dx.sin(trace.leaf(np.ones(2)))
    tape = trace.take_tape()
    assert tape is not None
    assert len(tape) == 1
    with trace:
        dx.cos(y)
    assert trace.tape is None
