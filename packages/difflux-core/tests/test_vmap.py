"""Tests of dx.vmap: values against Python loops, axes, nesting, gradients, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from conftest import HAS_JAX

needs_jax = pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")


class Dense(dx.Module):
    weight: Any
    bias: Any

    def __call__(self, x):
        return dx.tanh(x @ self.weight + self.bias)


def _loss(params, x, y):
    prediction = dx.tanh(x @ params["w"] + params["b"])
    return dx.sum((prediction - y) ** 2)


@pytest.fixture
def problem(to_backend):
    rng = np.random.default_rng(0)
    params = {"w": to_backend(rng.normal(size=(3, 2))), "b": to_backend(rng.normal(size=2))}
    xs = to_backend(rng.normal(size=(6, 3)))
    ys = to_backend(rng.normal(size=(6, 2)))
    return params, xs, ys


def _as_numpy(tree):
    return dx.tree_map(lambda leaf: np.asarray(leaf), tree)


# -- values ----------------------------------------------------------------------------------


def test_per_example_gradients_match_loop(backend, problem):
    params, xs, ys = problem
    batched = dx.vmap(dx.grad(_loss), in_axes=(None, 0, 0))(params, xs, ys)
    for i in range(xs.shape[0]):
        expected = dx.grad(_loss)(params, xs[i], ys[i])
        np.testing.assert_allclose(np.asarray(batched["w"][i]), np.asarray(expected["w"]), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(batched["b"][i]), np.asarray(expected["b"]), rtol=1e-12)


def test_output_backend_follows_inputs(backend, problem):
    params, xs, ys = problem
    out = dx.vmap(_loss, in_axes=(None, 0, 0))(params, xs, ys)
    assert dx.tree_leaves(out)[0].shape == (6,)
    expected_module = "numpy" if backend == "numpy" else "jax"
    assert type(out).__module__.split(".")[0].startswith(expected_module)


def test_in_axes_none_broadcasts(backend, to_backend):
    matrix = to_backend(np.arange(6.0).reshape(2, 3))
    vectors = to_backend(np.arange(12.0).reshape(4, 3))
    out = dx.vmap(lambda m, v: m @ v, in_axes=(None, 0))(matrix, vectors)
    np.testing.assert_allclose(np.asarray(out), np.asarray(vectors) @ np.asarray(matrix).T)


def test_in_axes_nonzero_and_negative(backend, to_backend):
    x = to_backend(np.arange(24.0).reshape(2, 3, 4))
    along_1 = dx.vmap(dx.sum, in_axes=1)(x)
    along_last = dx.vmap(dx.sum, in_axes=-1)(x)
    np.testing.assert_allclose(np.asarray(along_1), np.asarray(x).sum(axis=(0, 2)))
    np.testing.assert_allclose(np.asarray(along_last), np.asarray(x).sum(axis=(0, 1)))


def test_in_axes_dict_prefix(backend, to_backend):
    data = {"scale": to_backend(np.array([1.0, 2.0, 3.0])), "shift": to_backend(np.array(10.0))}
    out = dx.vmap(lambda d: d["scale"] * 2.0 + d["shift"], in_axes=({"scale": 0, "shift": None},))(data)
    np.testing.assert_allclose(np.asarray(out), [12.0, 14.0, 16.0])


def test_keyword_arguments_are_mapped(backend, to_backend):
    xs = to_backend(np.arange(3.0))
    out = dx.vmap(lambda x, *, offset: x + offset)(xs, offset=to_backend(np.array([10.0, 20.0, 30.0])))
    np.testing.assert_allclose(np.asarray(out), [10.0, 21.0, 32.0])


def test_out_axes(backend, to_backend):
    x = to_backend(np.arange(6.0).reshape(2, 3))
    moved = dx.vmap(lambda row: row * 2.0, out_axes=1)(x)
    np.testing.assert_allclose(np.asarray(moved), 2 * np.asarray(x).T)
    pair = dx.vmap(lambda row, c: (row, c * 1.0), in_axes=(0, None), out_axes=(0, None))(x, to_backend(np.array(5.0)))
    np.testing.assert_allclose(np.asarray(pair[0]), np.asarray(x))
    assert float(pair[1]) == 5.0


def test_static_arguments_and_outputs_pass_through(backend, to_backend):
    xs = to_backend(np.arange(3.0))
    out = dx.vmap(lambda x, n, name: (x * n, name), in_axes=(0, None, None))(xs, 2, "doubled")
    np.testing.assert_allclose(np.asarray(out[0]), [0.0, 2.0, 4.0])
    assert out[1] == "doubled"


def test_axis_size_without_mapped_arguments(backend):
    with dx.backend(backend):
        out = dx.vmap(lambda: dx.ones(2), axis_size=3)()
    assert np.asarray(out).shape == (3, 2)


def test_module_ensemble(backend, to_backend):
    rng = np.random.default_rng(3)
    weights = to_backend(rng.normal(size=(4, 3, 2)))
    biases = to_backend(rng.normal(size=(4, 2)))
    ensemble = Dense(weights, biases)
    x = to_backend(rng.normal(size=3))
    out = dx.vmap(lambda member, x: member(x), in_axes=(0, None))(ensemble, x)
    for i in range(4):
        expected = np.tanh(np.asarray(x) @ np.asarray(weights[i]) + np.asarray(biases[i]))
        np.testing.assert_allclose(np.asarray(out[i]), expected, rtol=1e-12)


def test_nested_vmap_outer_product(backend, to_backend):
    a = to_backend(np.array([1.0, 2.0, 3.0]))
    b = to_backend(np.array([10.0, 20.0]))
    outer = dx.vmap(dx.vmap(lambda x, y: x * y, in_axes=(None, 0)), in_axes=(0, None))(a, b)
    np.testing.assert_allclose(np.asarray(outer), np.outer(np.asarray(a), np.asarray(b)))


def test_nested_vmap_per_example_hessian_diagonal(backend, to_backend):
    xs = to_backend(np.array([[0.1, 0.2], [0.3, -0.4], [1.0, 2.0]]))

    def f(x):
        return dx.sum(dx.sin(x) * x)

    batched = dx.vmap(dx.hessian(f))(xs)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(dx.hessian(f)(xs[i])), rtol=1e-12)


# -- gradients through vmap --------------------------------------------------------------------


def test_grad_of_vmap_matches_loop(backend, problem):
    params, xs, ys = problem

    def batch_loss(p):
        return dx.sum(dx.vmap(_loss, in_axes=(None, 0, 0))(p, xs, ys))

    def loop_loss(p):
        return sum(_loss(p, xs[i], ys[i]) for i in range(xs.shape[0]))

    g = dx.grad(batch_loss)(params)
    expected = dx.grad(loop_loss)(params)
    np.testing.assert_allclose(np.asarray(g["w"]), np.asarray(expected["w"]), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g["b"]), np.asarray(expected["b"]), rtol=1e-12)


def test_grad_of_vmap_closure(backend, problem):
    params, xs, _ = problem

    def batch_loss(w):
        per_example = dx.vmap(lambda x: dx.sum(dx.tanh(x @ w)))(xs)
        return dx.sum(per_example**2)

    expected = dx.grad(lambda w: dx.sum(dx.sum(dx.tanh(xs @ w), axis=1) ** 2))(params["w"])
    np.testing.assert_allclose(np.asarray(dx.grad(batch_loss)(params["w"])), np.asarray(expected), rtol=1e-12)


def test_check_grads_through_vmap(backend, problem):
    from difflux.core.testing import check_grads

    params, xs, _ = problem
    check_grads(lambda w: dx.vmap(lambda x: dx.sin(x @ w))(xs), (params["w"],), order=2)


@needs_jax
def test_jit_of_grad_of_vmap():
    rng = np.random.default_rng(4)
    w = dx.asarray(rng.normal(size=(3, 2)), backend="jax")
    xs = dx.asarray(rng.normal(size=(5, 3)), backend="jax")

    def batch_loss(w):
        return dx.sum(dx.vmap(lambda x: dx.sum(dx.tanh(x @ w) ** 2))(xs))

    np.testing.assert_allclose(
        np.asarray(dx.jit(dx.grad(batch_loss))(w)), np.asarray(dx.grad(batch_loss)(w)), rtol=1e-12
    )


# -- strategy ------------------------------------------------------------------------------------


def _calls_and_loop_reference(f, *args, in_axes=0):
    """Return dx.vmap(f)(*args), how often f ran, and a per-example NumPy reference."""
    calls = []

    def counted(*inner):
        calls.append(1)
        return f(*inner)

    out = dx.vmap(counted, in_axes=in_axes)(*args)
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    size = next(np.shape(a)[ax] for a, ax in zip(args, axes) if ax is not None)
    reference = np.stack(
        [
            np.asarray(f(*[a if ax is None else np.take(np.asarray(a), i, axis=ax) for a, ax in zip(args, axes)]))
            for i in range(size)
        ]
    )
    return np.asarray(out), len(calls), reference


BATCHED_CASES = [
    ("elementwise", lambda x: dx.tanh(x) * 2.0 + dx.where(x > 0, x, -x), ((4, 3),)),
    ("reductions", lambda x: dx.stack([dx.sum(x), dx.max(x), dx.logsumexp(x), dx.mean(x**2)]), ((4, 2, 3),)),
    ("sum_over_axis", lambda x: dx.sum(x, axis=-1, keepdims=True), ((4, 2, 3),)),
    ("reshape_transpose", lambda x: dx.reshape(x, (3, 2)).T, ((4, 2, 3),)),
    ("broadcast_to", lambda x: dx.broadcast_to(x, (5, 3)), ((4, 3),)),
    ("basic_index", lambda x: x[1:, ::-1][0] + x[..., 2], ((4, 3, 3),)),
    ("integer_array_index", lambda x: x[np.array([2, 0])], ((4, 3),)),
    ("concat_with_constant", lambda x: dx.concat([x, np.ones(2)]), ((4, 3),)),
    ("cumulative_flip_roll", lambda x: dx.roll(dx.flip(dx.cumulative_sum(x)), 1, axis=0), ((4, 3),)),
    ("squeeze_expand", lambda x: dx.squeeze(dx.expand_dims(x, 0), 0) * dx.sign(x), ((4, 3),)),
    ("integer_cast", lambda x: dx.astype(x > 0, dx.int32) * x + dx.astype(dx.sum(x > 0), dx.int32), ((4, 3),)),
    ("index_update_row", lambda x: dx.index_update(x, 1, x[0] * 2.0), ((4, 3, 2),)),
    ("index_add_lower_rank", lambda x: dx.index_add(x, slice(None), x[0]), ((4, 3, 2),)),
    ("index_add_array_index", lambda x: dx.index_add(x, (slice(None), np.array([0, 0])), x[:, 1:]), ((4, 3, 2),)),
    ("index_update_constant_array", lambda x: dx.index_update(np.zeros((3, 2)), (2, slice(None)), x), ((4, 2),)),
    ("einsum_one_batched", lambda x: dx.einsum("ij,jk->ik", x, np.arange(6.0).reshape(3, 2)), ((4, 2, 3),)),
    ("einsum_both_batched", lambda x: dx.einsum("ij,ij->i", x, x[::-1]), ((4, 2, 3),)),
    ("grad_through_indexing", lambda x: dx.grad(lambda v: v[1] ** 3 + dx.sum(v[::2]))(x), ((4, 3),)),
    ("nested_vmap_of_batched_value", lambda x: dx.vmap(lambda row: row * dx.sum(row))(x), ((4, 3, 2),)),
]


@pytest.mark.parametrize(("name", "f", "shapes"), BATCHED_CASES, ids=[c[0] for c in BATCHED_CASES])
def test_batching_rules_match_loop(name, f, shapes):
    rng = np.random.default_rng(5)
    args = [rng.normal(size=shape) for shape in shapes]
    out, calls, reference = _calls_and_loop_reference(f, *args)
    assert calls == 1
    np.testing.assert_allclose(out, reference, rtol=1e-12)


MATMUL_CASES = [
    ("vector_matrix", (4, 3), (3, 2), (0, None)),
    ("matrix_vector", (2, 3), (4, 3), (None, 0)),
    ("batched_vectors", (4, 3), (4, 3), (0, 0)),
    ("vector_batched_matrix", (4, 3), (4, 3, 2), (0, 0)),
    ("batched_matrix_vector", (4, 2, 3), (4, 3), (0, 0)),
    ("matrix_stack", (4, 2, 3), (5, 3, 2), (0, None)),
    ("constant_vector_batched_matrix", (3,), (4, 3, 2), (None, 0)),
    ("batch_axis_1", (2, 4, 3), (3,), (1, None)),
    ("batched_vector_constant_vector", (4, 3), (3,), (0, None)),
    ("constant_vector_batched_vector", (3,), (4, 3), (None, 0)),
]


@pytest.mark.parametrize(("name", "x_shape", "y_shape", "in_axes"), MATMUL_CASES, ids=[c[0] for c in MATMUL_CASES])
def test_batched_matmul_matches_loop(name, x_shape, y_shape, in_axes):
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=x_shape), rng.normal(size=y_shape)
    out, calls, reference = _calls_and_loop_reference(dx.matmul, x, y, in_axes=in_axes)
    assert calls == 1
    np.testing.assert_allclose(out, reference, rtol=1e-12)


def test_unbatchable_code_falls_back_to_loop():
    def f(x):
        return x * 2.0 if float(dx.sum(x)) > 0 else -x  # Python control flow per example

    x = np.array([[1.0, 2.0], [-3.0, 1.0], [0.5, 0.5]])
    out, calls, reference = _calls_and_loop_reference(f, x)
    assert calls == 1 + 3  # the batched attempt, then one call per example
    np.testing.assert_allclose(out, reference)


def test_boolean_mask_falls_back_to_loop():
    x = np.array([[1.0, -2.0], [3.0, 4.0]])
    out, calls, reference = _calls_and_loop_reference(lambda v: dx.sum(v[np.array([True, False])]), x)
    assert calls == 1 + 2
    np.testing.assert_allclose(out, reference)


def test_grad_of_vmap_records_batched_operations(backend, problem):
    params, xs, ys = problem
    calls = []

    def per_example(p, x, y):
        calls.append(1)
        return _loss(p, x, y)

    dx.grad(lambda p: dx.sum(dx.vmap(per_example, in_axes=(None, 0, 0))(p, xs, ys)))(params)
    assert len(calls) == 1


@needs_jax
def test_jax_uses_one_batched_trace():
    calls = []
    out = dx.vmap(lambda x: calls.append(1) or x * 2.0)(dx.asarray(np.arange(4.0), backend="jax"))
    assert len(calls) == 1
    np.testing.assert_allclose(np.asarray(out), [0.0, 2.0, 4.0, 6.0])


@needs_jax
def test_jax_python_if_on_batched_value_raises():
    def f(x):
        return x if x > 0 else -x

    with pytest.raises(dx.TracerConversionError, match=r"dx\.where"):
        dx.vmap(f)(dx.asarray(np.array([1.0, -2.0]), backend="jax"))
    np.testing.assert_allclose(dx.vmap(f)(np.array([1.0, -2.0])), [1.0, 2.0])


# -- errors ----------------------------------------------------------------------------------------


def test_mismatched_sizes_raise():
    with pytest.raises(ValueError, match="different sizes"):
        dx.vmap(lambda a, b: a + b)(np.ones(3), np.ones(4))


def test_mapping_python_number_raises():
    with pytest.raises(ValueError, match="only arrays can be mapped"):
        dx.vmap(lambda a, b: a * b)(np.ones(3), 2.0)


def test_no_mapped_argument_raises():
    with pytest.raises(ValueError, match="axis_size"):
        dx.vmap(lambda a: a, in_axes=None)(np.ones(3))


def test_in_axes_length_mismatch_raises():
    with pytest.raises(ValueError, match="2 entries but the function was called with 1"):
        dx.vmap(lambda a: a, in_axes=(0, None))(np.ones(3))


def test_axis_out_of_range_raises():
    with pytest.raises(ValueError, match="no such axis"):
        dx.vmap(lambda a: a, in_axes=2)(np.ones((3, 2)))


def test_in_axes_structure_mismatch_raises():
    with pytest.raises(ValueError, match="does not match the structure"):
        dx.vmap(lambda d: d["a"], in_axes=({"b": 0},))({"a": np.ones(3)})


def test_unmapped_output_that_varies_raises():
    with pytest.raises(ValueError, match="varies across the batch"):
        dx.vmap(lambda x: x * 2.0, out_axes=None)(np.arange(3.0))


def test_jvp_over_batched_tangents_runs_once_on_numpy():
    # The columns of a Jacobian by forward mode: vmap must batch dx.jvp, not loop over the columns.
    calls = []

    def f(x):
        calls.append(1)
        return dx.sin(x) * x[0]

    x = np.array([0.3, -1.2, 2.0])
    columns = dx.vmap(lambda e: dx.jvp(f, (x,), (e,))[1], out_axes=1)(np.eye(3))
    expected = np.diag(x[0] * np.cos(x))
    expected[:, 0] += np.sin(x)
    np.testing.assert_allclose(columns, expected, rtol=1e-12)
    assert len(calls) == 1
