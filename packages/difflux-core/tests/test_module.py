"""Tests of dx.Module: construction, immutability, structure, printing, gradients."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from conftest import HAS_JAX


class Dense(dx.Module):
    weight: Any
    bias: Any
    activation: Any = dx.tanh

    def __call__(self, x):
        return self.activation(x @ self.weight + self.bias)


class MLP(dx.Module):
    layers: list
    scale: float = 1.0

    def __init__(self, sizes, scale=1.0, backend="numpy"):
        rng = np.random.default_rng(0)
        self.layers = [
            Dense(
                dx.asarray(rng.normal(size=(m, n)), backend=backend),
                dx.asarray(np.zeros(n), backend=backend),
            )
            for m, n in itertools.pairwise(sizes)
        ]
        self.scale = scale

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.scale * x


def _mlp_loss(model, x):
    return dx.sum(model(x) ** 2)


# -- construction ------------------------------------------------------------------


def test_dataclass_init_and_defaults():
    layer = Dense(np.ones((3, 4)), np.zeros(4))
    assert layer.activation is dx.tanh
    assert layer.weight.shape == (3, 4)
    keyword = Dense(weight=np.ones((2, 2)), bias=np.zeros(2), activation=dx.exp)
    assert keyword.activation is dx.exp


def test_user_init_sets_fields():
    model = MLP([2, 3, 1], scale=2.0)
    assert len(model.layers) == 2
    assert model.scale == 2.0
    assert model.layers[0].weight.shape == (2, 3)


def test_user_init_missing_field_raises():
    class Half(dx.Module):
        a: Any
        b: Any

        def __init__(self):
            self.a = np.ones(2)

    with pytest.raises(TypeError, match="did not set the field 'b'"):
        Half()


def test_undeclared_attribute_raises():
    class Sloppy(dx.Module):
        a: Any

        def __init__(self):
            self.a = np.ones(2)
            self.extra = 3

    with pytest.raises(AttributeError, match="'extra', which is not a declared field"):
        Sloppy()


def test_subclass_inherits_user_init():
    class Scaled(MLP):
        pass

    model = Scaled([2, 2], scale=3.0)
    assert isinstance(model, MLP)
    assert model.scale == 3.0
    with pytest.raises(dx.FrozenModuleError):
        model.scale = 1.0


def test_super_init_chain_freezes_once():
    class Base(dx.Module):
        w: Any
        name: str

        def __init__(self, w):
            self.w = w
            self.name = "base"

    class Child(Base):
        offset: Any

        def __init__(self, w, offset):
            super().__init__(w)
            self.offset = offset  # still allowed: the outermost __init__ has not returned

    child = Child(np.ones(2), np.zeros(2))
    assert child.name == "base"
    assert [leaf.shape for leaf in dx.tree_leaves(child)] == [(2,), (2,)]


def test_post_init_may_set_fields():
    class Normalised(dx.Module):
        w: Any

        def __post_init__(self):
            self.w = self.w / np.sum(self.w)

    np.testing.assert_allclose(Normalised(np.array([1.0, 3.0])).w, [0.25, 0.75])


# -- immutability and replace ------------------------------------------------------------


def test_setting_field_raises_with_advice():
    layer = Dense(np.ones((3, 4)), np.zeros(4))
    with pytest.raises(dx.FrozenModuleError, match=r"dx\.replace\(module, bias=value\)"):
        layer.bias = np.ones(4)
    with pytest.raises(AttributeError):
        del layer.bias


def test_replace_returns_new_module():
    layer = Dense(np.ones((3, 4)), np.zeros(4))
    new = dx.replace(layer, bias=np.ones(4))
    assert new is not layer
    np.testing.assert_array_equal(layer.bias, np.zeros(4))
    np.testing.assert_array_equal(new.bias, np.ones(4))
    assert new.weight is layer.weight
    assert layer.replace(activation=dx.exp).activation is dx.exp


def test_replace_unknown_field_raises():
    layer = Dense(np.ones((3, 4)), np.zeros(4))
    with pytest.raises(TypeError, match="no field 'bais'"):
        dx.replace(layer, bais=np.ones(4))


def test_replace_reclassifies_changed_field():
    layer = Dense(np.ones((1, 1)), np.zeros(1))
    as_static = dx.replace(layer, bias="none")
    assert len(dx.tree_leaves(as_static)) == 1
    back = dx.replace(as_static, bias=np.zeros(1))
    assert len(dx.tree_leaves(back)) == 2


# -- structure -----------------------------------------------------------------------------


def test_leaves_are_parameters_only():
    model = MLP([2, 3, 1])
    leaves = dx.tree_leaves(model)
    assert [leaf.shape for leaf in leaves] == [(2, 3), (3,), (3, 1), (1,)]


def test_static_fields_are_in_structure():
    a = dx.tree_structure(MLP([2, 3], scale=1.0))
    b = dx.tree_structure(MLP([2, 3], scale=1.0))
    c = dx.tree_structure(MLP([2, 3], scale=2.0))
    assert a == b
    assert hash(a) == hash(b)
    assert a != c


def test_unhashable_static_compares_by_value():
    class Config(dx.Module):
        w: Any
        sizes: list

    a = dx.tree_structure(Config(np.ones(1), [3, 4]))
    b = dx.tree_structure(Config(np.ones(1), [3, 4]))
    c = dx.tree_structure(Config(np.ones(1), [3, 5]))
    assert a == b
    assert hash(a) == hash(b)
    assert a != c


def test_flatten_unflatten_roundtrip_keeps_kinds():
    model = MLP([2, 3, 1], scale=0.5)
    leaves, treedef = dx.tree_flatten(model)
    rebuilt = dx.tree_unflatten(treedef, [leaf * 2 for leaf in leaves])
    assert type(rebuilt) is MLP
    assert rebuilt.scale == 0.5
    np.testing.assert_allclose(rebuilt.layers[0].weight, 2 * model.layers[0].weight)
    with pytest.raises(dx.FrozenModuleError):
        rebuilt.scale = 1.0
    # None placeholders keep the structure, so a second flatten agrees.
    placeholders = dx.tree_unflatten(treedef, [None] * len(leaves))
    assert dx.tree_structure(placeholders, is_leaf=lambda x: x is None).num_leaves == len(leaves)


def test_field_static_override():
    class Table(dx.Module):
        lookup: Any = dx.field(static=True)
        factor: float = dx.field(static=False, default=2.0)

    table = Table(np.arange(3.0))
    leaves = dx.tree_leaves(table)
    assert leaves == [2.0]
    assert dx.tree_structure(Table(np.arange(3.0))) == dx.tree_structure(table)
    assert dx.tree_structure(Table(np.arange(4.0))) != dx.tree_structure(table)


def test_none_field_is_empty_parameter():
    layer = Dense(np.ones((2, 2)), None)
    assert len(dx.tree_leaves(layer)) == 1
    filled = dx.replace(layer, bias=np.zeros(2))
    assert len(dx.tree_leaves(filled)) == 2


def test_partition_combine_roundtrip():
    model = MLP([2, 3, 1])
    arrays, rest = dx.partition(model)
    assert all(leaf is None for leaf in dx.tree_leaves(rest))
    assert len(dx.tree_leaves(arrays)) == 4
    merged = dx.combine(arrays, rest)
    for a, b in zip(dx.tree_leaves(merged), dx.tree_leaves(model)):
        assert a is b
    assert merged.scale == model.scale


def test_combine_mismatched_structures_raises():
    with pytest.raises(ValueError, match="one structure"):
        dx.combine({"a": 1}, {"b": 1})


# -- printing ------------------------------------------------------------------------------


def test_repr_single_line():
    layer = Dense(np.ones((3, 4)), np.zeros(4))
    assert repr(layer) == "Dense(weight=f64[3,4], bias=f64[4], activation=tanh)"


def test_repr_nested_indented():
    model = MLP([2, 3, 1])
    expected = textwrap.dedent(
        """\
        MLP(
          layers=[
            Dense(weight=f64[2,3], bias=f64[3], activation=tanh),
            Dense(weight=f64[3,1], bias=f64[1], activation=tanh)
          ],
          scale=1.0
        )"""
    )
    assert repr(model) == expected


def test_repr_dtypes():
    class Mixed(dx.Module):
        a: Any
        b: Any
        c: Any

    text = repr(Mixed(np.ones(2, np.float32), np.arange(3), np.array(True)))
    assert text == "Mixed(a=f32[2], b=i64[3], c=bool[])"


# -- gradients -----------------------------------------------------------------------------


def test_grad_returns_module_of_gradients(backend):
    model = MLP([2, 3, 1], backend=backend)
    x = dx.asarray(np.array([0.5, -1.0]), backend=backend)
    g = dx.grad(_mlp_loss)(model, x)
    assert type(g) is MLP
    assert g.scale == model.scale

    # Closed form for the last layer: d/dW2 sum((tanh(h W2 + b2))^2).
    h = np.tanh(np.asarray(x) @ np.asarray(model.layers[0].weight))
    out = np.tanh(h @ np.asarray(model.layers[1].weight))
    delta = 2 * out * (1 - out**2)
    np.testing.assert_allclose(np.asarray(g.layers[1].weight), np.outer(h, delta), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(g.layers[1].bias), delta, rtol=1e-10)


def test_grad_integer_field_gets_none():
    class Counted(dx.Module):
        w: Any
        steps: Any

    g = dx.grad(lambda m: dx.sum(m.w**2))(Counted(np.array([1.0, 2.0]), np.array([3])))
    np.testing.assert_allclose(g.w, [2.0, 4.0])
    assert g.steps is None


def test_module_check_grads(backend):
    from difflux.core.testing import check_grads

    model = MLP([2, 2], backend=backend)
    x = dx.asarray(np.array([0.3, -0.7]), backend=backend)
    check_grads(lambda m: _mlp_loss(m, x), (model,), order=2)


# -- JAX -------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_jax_tree_util_sees_parameters():
    import jax

    model = MLP([2, 3, 1], backend="jax")
    assert len(jax.tree_util.tree_leaves(model)) == 4
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(model)[0]]
    assert str(paths[0][0]) == ".layers"


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_jax_grad_and_jit_accept_module():
    import jax

    model = MLP([2, 3, 1], backend="jax")
    x = dx.asarray(np.array([0.5, -1.0]), backend="jax")
    ours = dx.grad(_mlp_loss)(model, x)
    theirs = jax.jit(jax.grad(_mlp_loss))(model, x)
    for a, b in zip(dx.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_classes_defined_before_jax_import_register():
    script = textwrap.dedent(
        """
        import importlib.util
        import sys
        import numpy as np
        import difflux.core as dx

        class Layer(dx.Module):
            w: object
            name: str = "layer"

        layer = Layer(np.ones(3))
        assert "jax" not in sys.modules, "importing difflux.core imported jax"
        assert importlib.util.find_spec("jax") is not None  # a check that imports nothing
        import jax

        leaves = jax.tree_util.tree_leaves(layer)
        assert len(leaves) == 1, leaves
        assert leaves[0].shape == (3,), leaves

        class Later(dx.Module):
            v: object

        assert len(jax.tree_util.tree_leaves(Later(np.ones(2)))) == 1
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
