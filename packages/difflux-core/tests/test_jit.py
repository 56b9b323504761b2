"""Tests of dx.jit and dx.config: parity with eager code, caching, static parts, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from conftest import HAS_JAX, Counter

needs_jax = pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")


class Dense(dx.Module):
    weight: Any
    bias: Any
    activation: Any = dx.tanh

    def __call__(self, x):
        return self.activation(x @ self.weight + self.bias)


def _dense(backend, activation=dx.tanh):
    rng = np.random.default_rng(1)
    return Dense(
        dx.asarray(rng.normal(size=(3, 2)), backend=backend),
        dx.asarray(rng.normal(size=2), backend=backend),
        activation,
    )


def _loss(model, x, y):
    return dx.mean((model(x) - y) ** 2)


def _data(backend):
    rng = np.random.default_rng(2)
    return dx.asarray(rng.normal(size=(5, 3)), backend=backend), dx.asarray(rng.normal(size=(5, 2)), backend=backend)


# -- NumPy: the identity -------------------------------------------------------------


def test_numpy_calls_function_directly():
    counted = Counter(lambda x: x * 2.0)
    jitted = dx.jit(counted)
    x = np.arange(3.0)
    out = jitted(x)
    jitted(x)
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, 2 * x)
    assert counted.calls == 2


def test_numpy_grad_of_module_matches_eager():
    model = _dense("numpy")
    x, y = _data("numpy")
    jitted = dx.jit(dx.grad(_loss))(model, x, y)
    eager = dx.grad(_loss)(model, x, y)
    np.testing.assert_array_equal(jitted.weight, eager.weight)
    np.testing.assert_array_equal(jitted.bias, eager.bias)


# -- JAX: parity with eager code ---------------------------------------------------------


@needs_jax
def test_jit_grad_module_matches_eager():
    import jax

    model = _dense("jax")
    x, y = _data("jax")
    jitted = dx.jit(dx.grad(_loss))(model, x, y)
    eager = dx.grad(_loss)(model, x, y)
    assert type(jitted) is Dense
    assert jitted.activation is dx.tanh
    assert isinstance(jitted.weight, jax.Array)
    np.testing.assert_allclose(np.asarray(jitted.weight), np.asarray(eager.weight), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jitted.bias), np.asarray(eager.bias), rtol=1e-12)


@needs_jax
def test_jit_value_and_grad_matches_jax():
    import jax

    model = _dense("jax")
    x, y = _data("jax")
    value, grads = dx.jit(dx.value_and_grad(_loss))(model, x, y)
    expected_value, expected_grads = jax.value_and_grad(_loss)(model, x, y)
    np.testing.assert_allclose(float(value), float(expected_value), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grads.weight), np.asarray(expected_grads.weight), rtol=1e-12)


@needs_jax
def test_jit_hessian_matches_eager():
    x = dx.asarray(np.array([0.3, -0.4, 1.1]), backend="jax")

    def f(v):
        return dx.sum(dx.sin(v) * v**2)

    np.testing.assert_allclose(np.asarray(dx.jit(dx.hessian(f))(x)), np.asarray(dx.hessian(f)(x)), rtol=1e-12)


@needs_jax
def test_grad_of_jit_runs_inline():
    x = dx.asarray(np.array([0.5, 2.0]), backend="jax")
    inner = dx.jit(lambda v: dx.sum(v**3))
    g = dx.grad(lambda v: inner(v) * 2.0)(x)
    np.testing.assert_allclose(np.asarray(g), 6 * np.asarray(x) ** 2)


@needs_jax
def test_training_step_returns_module():
    model = _dense("jax")
    x, y = _data("jax")

    @dx.jit
    def step(model, x, y, lr):
        grads = dx.grad(_loss)(model, x, y)
        return dx.tree_map(lambda p, g: p - lr * g, model, grads)

    lr = dx.asarray(0.1, backend="jax")
    new = step(model, x, y, lr)
    assert float(_loss(new, x, y)) < float(_loss(model, x, y))
    expected = model.weight - 0.1 * dx.grad(_loss)(model, x, y).weight
    np.testing.assert_allclose(np.asarray(new.weight), np.asarray(expected), rtol=1e-12)


# -- JAX: caching and static parts ---------------------------------------------------------


@needs_jax
def test_new_array_values_do_not_retrace():
    counted = Counter(_loss)
    jitted = dx.jit(counted)
    model = _dense("jax")
    x, y = _data("jax")
    first = jitted(model, x, y)
    second = jitted(dx.tree_map(lambda p: p * 2.0, model), x, y)
    assert counted.calls == 1
    assert float(first) != float(second)


@needs_jax
def test_compiler_options_reach_xla():
    model = _dense("jax")
    x, y = _data("jax")
    expected = float(dx.jit(_loss)(model, x, y))
    # LLVM at level 0 keeps IEEE semantics, so this small loss agrees to rounding.
    quick = dx.jit(_loss, compiler_options={"xla_backend_optimization_level": 0})
    np.testing.assert_allclose(float(quick(model, x, y)), expected, rtol=1e-12)
    # XLA itself rejects an unknown option, so the options reach the compiler.
    rejected = dx.jit(_loss, compiler_options={"xla_no_such_option": 1})
    with pytest.raises(Exception, match="xla_no_such_option"):
        rejected(model, x, y)
    # The decorator form passes them on too.
    decorated = dx.jit(compiler_options={"xla_no_such_option": 1})(_loss)
    with pytest.raises(Exception, match="xla_no_such_option"):
        decorated(model, x, y)


@needs_jax
def test_shape_change_retraces():
    counted = Counter(lambda v: dx.sum(v))
    jitted = dx.jit(counted)
    jitted(dx.ones(3, backend="jax"))
    jitted(dx.ones(4, backend="jax"))
    jitted(dx.ones(3, backend="jax"))
    assert counted.calls == 2


@needs_jax
def test_dtype_change_retraces():
    counted = Counter(lambda v: v * 2)
    jitted = dx.jit(counted)
    single = jitted(dx.ones(3, dtype=dx.float32, backend="jax"))
    double = jitted(dx.ones(3, dtype=dx.float64, backend="jax"))
    jitted(dx.ones(3, dtype=dx.float32, backend="jax"))
    assert counted.calls == 2
    assert single.dtype == dx.float32
    assert double.dtype == dx.float64


@needs_jax
def test_numpy_and_jax_leaves_share_an_entry():
    counted = Counter(lambda v, w: dx.sum(v * dx.asarray(w, backend="jax")))
    jitted = dx.jit(counted)
    first = jitted(dx.ones(3, backend="jax"), np.ones(3))
    second = jitted(dx.ones(3, backend="jax"), np.full(3, 2.0))
    assert counted.calls == 1
    assert float(first) == 3.0
    assert float(second) == 6.0


@needs_jax
def test_module_static_field_change_retraces():
    counted = Counter(_loss)
    jitted = dx.jit(counted)
    x, y = _data("jax")
    jitted(_dense("jax", dx.tanh), x, y)
    jitted(_dense("jax", dx.tanh), x, y)
    assert counted.calls == 1
    out_sin = jitted(_dense("jax", dx.sin), x, y)
    assert counted.calls == 2
    np.testing.assert_allclose(float(out_sin), float(_loss(_dense("jax", dx.sin), x, y)), rtol=1e-12)


@needs_jax
def test_python_numbers_are_static():
    counted = Counter(lambda v, power: dx.sum(v**power))
    jitted = dx.jit(counted)
    v = dx.asarray(np.array([1.0, 2.0]), backend="jax")
    assert float(jitted(v, 2)) == 5.0
    assert float(jitted(v, 2)) == 5.0
    assert counted.calls == 1
    assert float(jitted(v, 3)) == 9.0
    assert counted.calls == 2


@needs_jax
def test_static_argnums_allow_python_control_flow():
    def f(v, mode):
        if mode == "square":
            return v**2
        return -v

    counted = Counter(f)
    jitted = dx.jit(counted, static_argnums=1)
    v = dx.asarray(np.array([1.0, 2.0]), backend="jax")
    np.testing.assert_allclose(np.asarray(jitted(v, "square")), [1.0, 4.0])
    np.testing.assert_allclose(np.asarray(jitted(v, "negate")), [-1.0, -2.0])
    jitted(v, "square")
    assert counted.calls == 2


@needs_jax
def test_static_argnames_by_keyword_and_position():
    def f(v, n):
        return dx.sum(v) * len(n)

    counted = Counter(f)
    jitted = dx.jit(counted, static_argnames="n")
    v = dx.ones(2, backend="jax")
    assert float(jitted(v, n=[1, 2, 3])) == 6.0
    assert float(jitted(v, [1, 2])) == 4.0
    assert counted.calls == 2
    jitted(v, n=[1, 2, 3])  # an equal unhashable value is found in the cache
    assert counted.calls == 2


@needs_jax
def test_decorator_forms():
    @dx.jit(static_argnames="k")
    def scale(v, k):
        return v * k

    class Affine(dx.Module):
        w: Any

        @dx.jit
        def __call__(self, x):
            return self.w * x

    v = dx.ones(2, backend="jax")
    np.testing.assert_allclose(np.asarray(scale(v, k=3)), [3.0, 3.0])
    layer = Affine(dx.asarray(np.array([2.0, 3.0]), backend="jax"))
    np.testing.assert_allclose(np.asarray(layer(v)), [2.0, 3.0])


@needs_jax
def test_bound_method_of_module():
    class Scale(dx.Module):
        w: Any

        def apply(self, x):
            return self.w * x

    v = dx.ones(2, backend="jax")
    first = Scale(dx.asarray(np.array([2.0, 3.0]), backend="jax"))
    second = Scale(dx.asarray(np.array([5.0, 7.0]), backend="jax"))
    np.testing.assert_allclose(np.asarray(dx.jit(first.apply)(v)), [2.0, 3.0])
    np.testing.assert_allclose(np.asarray(dx.jit(second.apply)(v)), [5.0, 7.0])


@needs_jax
def test_non_array_outputs_are_returned():
    jitted = dx.jit(lambda v: {"value": dx.sum(v), "name": "total", "count": 3, "none": None})
    out = jitted(dx.ones(4, backend="jax"))
    assert float(out["value"]) == 4.0
    assert out["name"] == "total"
    assert out["count"] == 3
    assert out["none"] is None
    again = jitted(dx.ones(4, backend="jax") * 2.0)
    assert float(again["value"]) == 8.0
    assert again["name"] == "total"


@needs_jax
def test_default_jax_backend_compiles_without_arrays():
    counted = Counter(lambda n: dx.ones(n) * 2.0)
    jitted = dx.jit(counted, static_argnums=0)
    with dx.backend("jax"):
        out = jitted(3)
        jitted(3)
    assert type(out).__module__.startswith("jax")
    assert counted.calls == 1


# -- errors ----------------------------------------------------------------------------------


@needs_jax
def test_python_if_on_traced_value_raises():
    import jax

    def f(v):
        if dx.sum(v) > 0:
            return v
        return -v

    with pytest.raises(dx.TracerConversionError, match=r"dx\.cond or dx\.where") as info:
        dx.jit(f)(dx.ones(2, backend="jax"))
    assert isinstance(info.value.__cause__, jax.errors.ConcretizationTypeError)


@needs_jax
def test_float_of_traced_value_raises():
    with pytest.raises(dx.TracerConversionError, match="static argument"):
        dx.jit(lambda v: float(dx.sum(v)))(dx.ones(2, backend="jax"))


@needs_jax
def test_python_if_inside_grad_inside_jit_raises():
    def loss(v):
        return dx.sum(v**2) if dx.sum(v) > 0 else dx.sum(v)

    with pytest.raises(dx.TracerConversionError, match=r"dx\.where"):
        dx.jit(dx.grad(loss))(dx.ones(2, backend="jax"))


def test_jit_of_non_callable_raises():
    with pytest.raises(TypeError, match="expects a callable"):
        dx.jit(3)


# -- dx.config ----------------------------------------------------------------------------


@needs_jax
def test_enable_float64_switches_jax_precision():
    import jax.numpy as jnp

    assert dx.config.float64_enabled
    try:
        dx.config.enable_float64(False)
        assert not dx.config.float64_enabled
        assert jnp.ones(2).dtype == jnp.float32
    finally:
        dx.config.enable_float64(True)
    assert dx.config.float64_enabled
    assert jnp.ones(2).dtype == jnp.float64


def test_default_backend_setting():
    original = dx.config.default_backend
    assert dx.default_backend() == original
    with pytest.raises(ValueError, match="Unknown difflux backend"):
        dx.config.default_backend = "torch"
    if HAS_JAX:
        try:
            dx.config.default_backend = "jax"
            assert dx.default_backend() == "jax"
            with dx.backend("numpy"):
                assert dx.default_backend() == "numpy"
            assert type(dx.zeros(2)).__module__.startswith("jax")
        finally:
            dx.config.default_backend = original
    assert dx.default_backend() == original


@pytest.mark.parametrize("name", ["NumPy", "cpu", "torch", ""])
@pytest.mark.parametrize(
    "create",
    [
        lambda b: dx.zeros(2, backend=b),
        lambda b: dx.arange(3, backend=b),
        lambda b: dx.eye(2, backend=b),
        lambda b: dx.asarray([1.0], backend=b),
        lambda b: dx.random.key(0, backend=b),
    ],
    ids=["zeros", "arange", "eye", "asarray", "key"],
)
def test_creation_rejects_unknown_backend(create, name):
    with pytest.raises(ValueError, match=f"Unknown difflux backend {name!r}"):
        create(name)
