"""Tests of the engine itself: nesting, structures, error messages."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from difflux.core.testing import check_grads


def test_grad_polynomial(backend, to_backend):
    x = to_backend([0.5, 1.0, 2.0])
    g = dx.grad(lambda x: dx.sum(x**3))(x)
    np.testing.assert_allclose(np.asarray(g), 3 * np.asarray(x) ** 2)


def test_check_grads_second_order(backend, to_backend):
    x = to_backend([0.3, -1.2, 2.0])
    y = to_backend([1.5, 0.7, -0.4])
    check_grads(lambda a, b: dx.sin(a) * dx.exp(b) / (1.0 + a * a), (x, y), order=2)


def test_reverse_over_reverse_scalar():
    assert float(dx.grad(dx.grad(lambda x: x**3))(2.0)) == pytest.approx(12.0)


def test_hessian_matches_closed_form(backend, to_backend):
    x = to_backend([0.5, 1.0, 2.0])
    h = dx.hessian(lambda x: dx.sum(dx.sin(x) * x**2))(x)
    xs = np.asarray(x)
    expected = np.diag(2 * np.sin(xs) + 4 * xs * np.cos(xs) - xs**2 * np.sin(xs))
    np.testing.assert_allclose(np.asarray(h), expected, rtol=1e-12)


def test_perturbation_confusion_avoided():
    # d/dx [x * d/dy (x + y)] at any x is 1; a confused implementation gives 2.
    def outer(x):
        return x * dx.grad(lambda y: x + y)(1.0)

    assert float(dx.grad(outer)(3.0)) == pytest.approx(1.0)


def test_gradient_structure_with_non_float_leaf():
    params = {"w": np.array([1.0, 2.0]), "n": 3, "name": "layer"}
    g = dx.grad(lambda p: dx.sum(p["w"] ** 2) * p["n"])(params)
    np.testing.assert_allclose(g["w"], [6.0, 12.0])
    assert g["n"] is None
    assert g["name"] is None


def test_gradient_zygote_style_tuple():
    gx, gy = dx.gradient(lambda x, y: x * y, 2.0, 3.0)
    assert float(gx) == 3.0
    assert float(gy) == 2.0


def test_integer_input_to_grad_raises():
    with pytest.raises(TypeError, match="integer"):
        dx.grad(lambda x: x * 2.0)(np.array([1, 2]))


def test_mixed_backends_error_names_both():
    pytest.importorskip("jax")
    import jax.numpy as jnp

    with pytest.raises(TypeError, match="NumPy array and a JAX array"):
        dx.add(np.ones(2), jnp.ones(2))


def test_non_scalar_grad_output_raises():
    with pytest.raises(TypeError, match="scalar output"):
        dx.grad(lambda x: x * 2.0)(np.ones(3))


def test_sqrt_of_sum_of_squares_finite_at_zero(backend, to_backend):
    g = dx.grad(lambda v: dx.sqrt(v[0] ** 2 + v[1] ** 2))(to_backend([0.0, 0.0]))
    assert np.all(np.isfinite(np.asarray(g)))


def test_abs_gradient_at_zero_is_zero(backend, to_backend):
    assert float(dx.grad(lambda x: dx.abs(x))(to_backend(0.0))) == 0.0


def test_value_and_grad_has_aux():
    (value, aux), g = dx.value_and_grad(lambda x: (x**2, {"x": x}), has_aux=True)(3.0)
    assert float(value) == 9.0
    assert float(aux["x"]) == 3.0
    assert float(g) == 6.0


def test_jacobian_forward_equals_reverse(backend, to_backend):
    x = to_backend([0.5, 1.0, 2.0])

    def f(x):
        return dx.stack([dx.sum(x**2), x[0] * x[1], dx.sin(x[2])])

    np.testing.assert_allclose(
        np.asarray(dx.jacobian(f, mode="forward")(x)), np.asarray(dx.jacobian(f, mode="reverse")(x))
    )


def test_tracer_to_numpy_conversion_raises():
    with pytest.raises(TypeError, match="silently"):
        dx.grad(lambda x: float(np.sum(np.asarray(x))))(np.ones(2))


def test_float_of_differentiated_value_raises():
    with pytest.raises(dx.TracerConversionError, match="stop_gradient"):
        dx.grad(lambda x: x * float(x))(2.0)


def test_float_of_stopped_value_allowed():
    g = dx.grad(lambda x: x * float(dx.stop_gradient(x)))(2.0)
    assert float(g) == 2.0


def test_numpy_gradient_under_jax_default_backend():
    pytest.importorskip("jax")
    with dx.backend("jax"):
        g = dx.grad(lambda x: dx.sum(dx.tanh(x) ** 2))(np.array([0.5, -1.0]))
    assert isinstance(g, np.ndarray)
    np.testing.assert_allclose(g, 2 * np.tanh([0.5, -1.0]) / np.cosh([0.5, -1.0]) ** 2)


@pytest.mark.parametrize("shape", [(1,), (), (2,)])
def test_vjp_rejects_cotangent_shape(to_backend, shape):
    _, back = dx.vjp(dx.sin, to_backend(np.ones(3)))
    with pytest.raises(ValueError, match=r"output of shape \(3,\) got a cotangent of shape"):
        back(to_backend(np.ones(shape)))
