"""Dtypes, promotion, constants and the broadcasting helpers against NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest

import difflux.core as dx


def as_numpy(x: object) -> np.ndarray:
    return np.asarray(x)


# -- dtypes and constants -------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ],
)
def test_dtype_objects_match_numpy(name):
    assert getattr(dx, name) == np.dtype(name)


def test_dtype_objects_work_on_both_backends(backend):
    x = dx.zeros((2,), dtype=dx.float32, backend=backend)
    assert x.dtype == dx.float32
    assert dx.astype(x, dx.int32).dtype == dx.int32


def test_constants():
    assert dx.e == math.e
    assert dx.pi == math.pi
    assert dx.inf == math.inf
    assert math.isnan(dx.nan)
    assert dx.newaxis is None
    assert np.zeros(3)[dx.newaxis].shape == (1, 3)


# -- finfo and iinfo -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_finfo_matches_numpy(dtype):
    info = dx.finfo(dtype)
    expected = np.finfo(dtype)
    assert info.bits == expected.bits
    assert info.eps == expected.eps
    assert info.max == expected.max
    assert info.min == expected.min
    assert info.smallest_normal == expected.smallest_normal


def test_finfo_of_array_and_tracer(backend):
    x = dx.ones((2,), dtype=dx.float32, backend=backend)
    assert dx.finfo(x).eps == np.finfo(np.float32).eps
    seen = []

    def loss(y):
        seen.append(dx.finfo(y).bits)
        return dx.sum(y)

    dx.grad(loss)(dx.ones((2,), backend=backend))
    assert seen == [64]


def test_iinfo_matches_numpy():
    assert dx.iinfo(dx.int8).min == -128
    assert dx.iinfo(dx.uint16).max == 65535
    assert dx.iinfo(np.arange(3, dtype=np.int32)).bits == 32


def test_finfo_rejects_integer_dtype():
    with pytest.raises(ValueError, match="iinfo"):
        dx.finfo(dx.int32)


def test_iinfo_rejects_float_dtype():
    with pytest.raises(ValueError, match="finfo"):
        dx.iinfo(dx.float64)


def test_finfo_rejects_non_dtype():
    with pytest.raises(TypeError, match="dtype"):
        dx.finfo([1.0, 2.0])


# -- promotion and casting ---------------------------------------------------------------


def test_result_type_numpy_rules():
    assert dx.result_type(dx.int32, dx.float32) == np.float64
    assert dx.result_type(np.ones(2, dtype=np.float32), 1.0) == np.float32
    assert dx.result_type(dx.int8, dx.uint8) == np.int16
    assert dx.result_type(dx.float32, dx.complex64) == np.complex64


def test_result_type_jax_rules():
    jnp = pytest.importorskip("jax.numpy")
    assert dx.result_type(jnp.ones(2, dtype=jnp.float32), dx.float32) == np.float32
    assert dx.result_type(jnp.ones(2, dtype=jnp.float32), 1.0) == np.float32
    assert dx.result_type(jnp.ones(2, dtype=jnp.int32), jnp.ones(2, dtype=jnp.float64)) == np.float64


def test_result_type_needs_arguments():
    with pytest.raises(ValueError, match="at least one"):
        dx.result_type()


def test_can_cast():
    assert dx.can_cast(dx.int32, dx.float64)
    assert not dx.can_cast(dx.float64, dx.float32)
    assert not dx.can_cast(np.ones(2), dx.int64)
    assert dx.can_cast(dx.bool, dx.uint8)


@pytest.mark.parametrize(
    ("dtype", "kind", "expected"),
    [
        (np.float32, "real floating", True),
        (np.float32, "integral", False),
        (np.int16, "signed integer", True),
        (np.uint16, "signed integer", False),
        (np.uint16, ("signed integer", "unsigned integer"), True),
        (np.complex64, "numeric", True),
        (np.bool_, "numeric", False),
        (np.float64, np.float64, True),
        (np.float64, (np.float32, "complex floating"), False),
    ],
)
def test_isdtype(dtype, kind, expected):
    assert dx.isdtype(np.dtype(dtype), kind) is expected


def test_isdtype_jax_bfloat16():
    jnp = pytest.importorskip("jax.numpy")
    assert dx.isdtype(jnp.bfloat16, "real floating")
    assert dx.finfo(jnp.bfloat16).bits == 16


def test_isdtype_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kinds"):
        dx.isdtype(dx.float32, "floating")


# -- broadcasting helpers ------------------------------------------------------------------


def test_broadcast_shapes_matches_numpy():
    assert dx.broadcast_shapes((3, 1), (4,), ()) == (3, 4)
    assert dx.broadcast_shapes() == ()


def test_broadcast_shapes_rejects_mismatch():
    with pytest.raises(ValueError, match=r"\(3,\), \(4,\) do not broadcast"):
        dx.broadcast_shapes((3,), (4,))


def test_broadcast_arrays_matches_numpy(to_backend):
    x, y = np.arange(3.0).reshape(3, 1), np.arange(4.0)
    out = dx.broadcast_arrays(to_backend(x), to_backend(y))
    expected = np.broadcast_arrays(x, y)
    assert isinstance(out, list)
    for got, want in zip(out, expected):
        np.testing.assert_array_equal(as_numpy(got), want)


def test_broadcast_arrays_gradient_sums(to_backend):
    g = dx.grad(lambda x, y: dx.sum(dx.broadcast_arrays(x, y)[0]))(
        to_backend([[1.0], [2.0]]), to_backend([1.0, 2.0, 3.0])
    )
    np.testing.assert_array_equal(as_numpy(g), [[3.0], [3.0]])


@pytest.mark.parametrize("indexing", ["xy", "ij"])
def test_meshgrid_matches_numpy(indexing, to_backend):
    inputs = [np.arange(2.0), np.arange(3.0) + 10, np.arange(4.0) + 20]
    for count in (1, 2, 3):
        out = dx.meshgrid(*[to_backend(a) for a in inputs[:count]], indexing=indexing)
        expected = np.meshgrid(*inputs[:count], indexing=indexing)
        assert len(out) == count
        for got, want in zip(out, expected):
            np.testing.assert_array_equal(as_numpy(got), want)


def test_meshgrid_rejects_2d_input():
    with pytest.raises(ValueError, match="argument 1 has shape"):
        dx.meshgrid(np.ones(2), np.ones((2, 2)))


def test_meshgrid_rejects_bad_indexing():
    with pytest.raises(ValueError, match="'xy' or 'ij'"):
        dx.meshgrid(np.ones(2), indexing="yx")
