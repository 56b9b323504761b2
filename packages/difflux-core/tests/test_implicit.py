"""Tests of implicit differentiation: dx.root, dx.fixed_point, dx.custom_root."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from difflux.core.testing import check_grads


def newton_sqrt(a, **options):
    return dx.root(lambda x, a: x * x - a, dx.ones_like(a), a, **options)


def cos_fixed_point(a, **options):
    return dx.fixed_point(lambda x, a: dx.cos(a * x), dx.full_like(a, 0.5), a, **options)


def _cos_fixed_point_reference(a):
    """The fixed point of x = cos(a x) by iteration, and dx/da by the implicit
    function theorem: dx/da = -x sin(a x) / (1 + a sin(a x))."""
    x = np.full_like(a, 0.5)
    for _ in range(2000):
        x = np.cos(a * x)
    s = np.sin(a * x)
    return x, -x * s / (1 + a * s)


# --------------------------------------------------------------------------
# Square roots by Newton's method: x^2 - a = 0
# --------------------------------------------------------------------------


def test_root_sqrt_value(backend, to_backend):
    a = to_backend([4.0, 2.0, 0.25])
    np.testing.assert_allclose(np.asarray(newton_sqrt(a)), np.sqrt([4.0, 2.0, 0.25]), rtol=1e-14)


def test_root_sqrt_gradient(backend, to_backend):
    a = to_backend([4.0, 2.0, 0.25])
    g = dx.grad(lambda a: dx.sum(newton_sqrt(a)))(a)
    np.testing.assert_allclose(np.asarray(g), 0.5 / np.sqrt([4.0, 2.0, 0.25]), rtol=1e-12)


def test_root_sqrt_second_derivative(backend, to_backend):
    a = to_backend([4.0, 2.0])
    second = dx.grad(lambda a: dx.sum(dx.grad(lambda b: dx.sum(newton_sqrt(b)))(a)))(a)
    np.testing.assert_allclose(np.asarray(second), -0.25 * np.array([4.0, 2.0]) ** -1.5, rtol=1e-12)
    hessian = dx.hessian(lambda a: dx.sum(newton_sqrt(a)))(a)
    np.testing.assert_allclose(np.asarray(hessian), np.diag(-0.25 * np.array([4.0, 2.0]) ** -1.5), rtol=1e-12)


def test_root_sqrt_forward_mode(backend, to_backend):
    a = to_backend([4.0, 9.0])
    out, tangent = dx.jvp(newton_sqrt, (a,), (to_backend([1.0, 2.0]),))
    np.testing.assert_allclose(np.asarray(out), [2.0, 3.0], rtol=1e-14)
    np.testing.assert_allclose(np.asarray(tangent), [0.25, 2.0 / 6.0], rtol=1e-12)


def test_root_sqrt_check_grads(backend, to_backend):
    check_grads(newton_sqrt, (to_backend([4.0, 2.0, 0.7]),), order=2)


def test_root_initial_guess_has_zero_gradient(backend, to_backend):
    a = to_backend(2.0)
    g = dx.grad(lambda x0: dx.root(lambda x, a: x * x - a, x0, a))(to_backend(1.0))
    assert float(g) == 0.0
    g_both = dx.grad(lambda x0, a: dx.root(lambda x, a: x * x - a, x0, a), argnums=(0, 1))(to_backend(1.0), a)
    assert float(g_both[0]) == 0.0
    assert float(g_both[1]) == pytest.approx(0.5 / np.sqrt(2.0))


# --------------------------------------------------------------------------
# Fixed points of x = cos(a x)
# --------------------------------------------------------------------------


def test_fixed_point_cos_value_and_gradient(backend, to_backend):
    a = np.array([1.0, 0.7, 0.4])
    expected_x, expected_dx = _cos_fixed_point_reference(a)
    x = cos_fixed_point(to_backend(a))
    g = dx.grad(lambda a: dx.sum(cos_fixed_point(a)))(to_backend(a))
    np.testing.assert_allclose(np.asarray(x), expected_x, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g), expected_dx, rtol=1e-10)


def test_fixed_point_cos_check_grads(backend, to_backend):
    check_grads(cos_fixed_point, (to_backend([1.0, 0.7]),), order=2)


def test_fixed_point_newton_solver(backend, to_backend):
    a = np.array([1.0, 0.7])
    expected_x, expected_dx = _cos_fixed_point_reference(a)
    x = cos_fixed_point(to_backend(a), solver="newton")
    g = dx.grad(lambda a: dx.sum(cos_fixed_point(a, solver="newton")))(to_backend(a))
    np.testing.assert_allclose(np.asarray(x), expected_x, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g), expected_dx, rtol=1e-10)


def test_fixed_point_bicgstab_matches_dense(backend, to_backend):
    a = to_backend([1.0, 0.7, 0.4])
    dense = dx.grad(lambda a: dx.sum(cos_fixed_point(a)))(a)
    iterative = dx.grad(lambda a: dx.sum(cos_fixed_point(a, linear_solve="bicgstab")))(a)
    np.testing.assert_allclose(np.asarray(iterative), np.asarray(dense), rtol=1e-10)
    check_grads(lambda a: cos_fixed_point(a, linear_solve="bicgstab"), (a,), order=2)


def test_fixed_point_custom_solver(backend, to_backend):
    def damped_iteration(fun, x0):
        x = x0
        for _ in range(200):
            x = 0.5 * x + 0.5 * fun(x)
        return x

    a = np.array([1.0, 0.7])
    _, expected_dx = _cos_fixed_point_reference(a)
    g = dx.grad(lambda a: dx.sum(cos_fixed_point(a, solver=damped_iteration)))(to_backend(a))
    np.testing.assert_allclose(np.asarray(g), expected_dx, rtol=1e-10)


def test_fixed_point_not_converging_raises(backend, to_backend):
    with pytest.raises(RuntimeError, match="did not converge in 20 iterations"):
        dx.fixed_point(lambda x, r: r * x * (1 - x), to_backend([0.3]), to_backend([3.9]), maxiter=20)


# --------------------------------------------------------------------------
# Linear systems A x = b, with theta a structure
# --------------------------------------------------------------------------


def _linear_solution(theta, **options):
    return dx.root(lambda x, th: th["A"] @ x - th["b"], dx.zeros_like(theta["b"]), theta, **options)


A = np.array([[3.0, 1.0, 0.2], [0.5, 2.0, -0.3], [0.1, 0.4, 4.0]])
B = np.array([1.0, 2.0, -1.0])


def test_linear_system_gradient_closed_form(backend, to_backend):
    theta = {"A": to_backend(A), "b": to_backend(B), "label": "system"}
    w = np.array([1.0, -2.0, 0.5])
    g = dx.grad(lambda th: dx.sum(_linear_solution(th) * to_backend(w)))(theta)

    # x = A^{-1} b, so b_bar = A^{-T} w and A_bar = -b_bar x^T.
    x = np.linalg.solve(A, B)
    b_bar = np.linalg.solve(A.T, w)
    np.testing.assert_allclose(np.asarray(g["b"]), b_bar, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g["A"]), -np.outer(b_bar, x), rtol=1e-12)
    assert g["label"] is None


def test_linear_system_check_grads(backend, to_backend):
    check_grads(lambda A, b: _linear_solution({"A": A, "b": b}), (to_backend(A), to_backend(B)), order=2)


def test_linear_system_custom_linear_solve(backend, to_backend):
    calls = []

    def dense(matvec, b):
        calls.append(1)
        columns = [matvec(e) for e in dx.eye(3, backend=backend)]
        return dx.linalg.solve(dx.stack(columns, axis=1), b)

    theta = {"A": to_backend(A), "b": to_backend(B)}
    g = dx.grad(lambda th: dx.sum(_linear_solution(th, linear_solve=dense)))(theta)
    np.testing.assert_allclose(np.asarray(g["b"]), np.linalg.solve(A.T, np.ones(3)), rtol=1e-12)
    assert len(calls) == 1


# --------------------------------------------------------------------------
# Structured unknowns
# --------------------------------------------------------------------------


def test_root_structured_unknowns(backend, to_backend):
    # u^2 + v = a, u - v = b: with u > 0 the root is unique near the start.
    def equations(x, theta):
        u, v = x["u"], x["v"]
        return (u * u + v - theta[0], u - v - theta[1])

    def solution(a, b):
        x = dx.root(equations, {"u": to_backend(1.0), "v": to_backend(0.0)}, (a, b))
        return dx.stack([x["u"], x["v"]])

    a, b = 3.0, 1.0
    u = (-1 + np.sqrt(1 + 4 * (a + b))) / 2
    np.testing.assert_allclose(np.asarray(solution(to_backend(a), to_backend(b))), [u, u - b], rtol=1e-12)
    # Differentiating u^2 + u - b = a: du/da = 1 / (2u + 1), du/db = 1 / (2u + 1).
    g = dx.grad(lambda a, b: solution(a, b)[0], argnums=(0, 1))(to_backend(a), to_backend(b))
    assert float(g[0]) == pytest.approx(1 / (2 * u + 1), rel=1e-12)
    assert float(g[1]) == pytest.approx(1 / (2 * u + 1), rel=1e-12)
    check_grads(solution, (to_backend(a), to_backend(b)), order=2)


# --------------------------------------------------------------------------
# custom_root with a user solver
# --------------------------------------------------------------------------


def test_custom_root_bisection_solver():
    # The solver runs on plain Python floats and is never differentiated.
    def F(x, a):
        return x**3 - a

    @dx.custom_root(F)
    def cube_root(x0, a):
        lo, hi = 0.0, max(1.0, float(a))
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if mid**3 < float(a) else (lo, mid)
        return dx.asarray(0.5 * (lo + hi))

    a = np.asarray(8.0)
    assert float(cube_root(1.0, a)) == pytest.approx(2.0, rel=1e-14)
    assert float(dx.grad(lambda a: cube_root(1.0, a))(a)) == pytest.approx(1 / 12, rel=1e-12)
    _, tangent = dx.jvp(lambda a: cube_root(1.0, a), (a,), (np.asarray(1.0),))
    assert float(tangent) == pytest.approx(1 / 12, rel=1e-12)


# --------------------------------------------------------------------------
# JAX: jit
# --------------------------------------------------------------------------


def test_root_under_jit():
    jax = pytest.importorskip("jax")
    a = dx.asarray([4.0, 2.0], backend="jax")
    g = jax.jit(dx.grad(lambda a: dx.sum(newton_sqrt(a))))(a)
    np.testing.assert_allclose(np.asarray(g), 0.5 / np.sqrt([4.0, 2.0]), rtol=1e-12)


def test_fixed_point_hessian_under_jit():
    jax = pytest.importorskip("jax")
    a = np.array([1.0, 0.7])
    jitted = jax.jit(dx.hessian(lambda a: dx.sum(cos_fixed_point(a))))(dx.asarray(a, backend="jax"))
    eager = dx.hessian(lambda a: dx.sum(cos_fixed_point(a)))(a)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-10, atol=1e-14)


def test_fixed_point_not_converging_under_jit_gives_nan():
    jax = pytest.importorskip("jax")

    @jax.jit
    def logistic_fixed_point(r):
        return dx.fixed_point(lambda x, r: r * x * (1 - x), dx.full_like(r, 0.3), r, maxiter=20)

    assert np.isnan(np.asarray(logistic_fixed_point(dx.asarray([3.9], backend="jax")))).all()


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_root_non_square_system_raises(to_backend):
    with pytest.raises(ValueError, match="returns 2 values for 1 unknowns"):
        dx.root(lambda x, a: x * x - a, to_backend(1.0), to_backend([4.0, 2.0]))


def test_root_closure_over_traced_value_raises(to_backend):
    def loss(w):
        return dx.root(lambda x, a: x * x - a * w, to_backend(1.0), to_backend(2.0))

    with pytest.raises(dx.CustomRuleError, match="Pass that value inside theta"):
        dx.grad(loss)(to_backend(3.0))


def test_root_invalid_solver_raises(to_backend):
    with pytest.raises(ValueError, match="solver must be 'newton'"):
        dx.root(lambda x, a: x - a, to_backend(1.0), to_backend(2.0), solver="bisection")
    with pytest.raises(ValueError, match="solver must be 'iterate', 'newton'"):
        dx.fixed_point(lambda x, a: x - a, to_backend(1.0), to_backend(2.0), solver="anderson")


def test_root_invalid_linear_solve_raises(to_backend):
    with pytest.raises(ValueError, match="linear_solve must be one of"):
        dx.root(lambda x, a: x - a, to_backend(1.0), to_backend(2.0), linear_solve="lu")


def test_root_integer_unknowns_raise():
    with pytest.raises(TypeError, match="must be a float array"):
        dx.root(lambda x, a: x - a, np.asarray(1), np.asarray(2.0))
