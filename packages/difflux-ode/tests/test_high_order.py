"""The high-order pairs Dopri8 (DOP853) and Vern7: order conditions, convergence, accuracy, gradients."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from functools import cache
from typing import Any

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import difflux.core as dx
from difflux import ode
from difflux.ode import _solver_dopri8, _solver_vern7
from difflux.ode._extended_runge_kutta import dense_row
from difflux.ode._tableau import order_condition_residuals, rooted_trees

SOLVERS = [ode.Dopri8, ode.Vern7]
EXACT = 1e-20

# JAX runs the solver's loop eagerly, op by op, so whole solves on JAX take
# 5 to 20 seconds each with these 12- and 10-stage methods.
HAS_JAX = importlib.util.find_spec("jax") is not None
BACKENDS_JAX_SLOW = [
    "numpy",
    pytest.param("jax", marks=[pytest.mark.slow, pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")]),
]

MATRIX = np.array([[-0.5, 2.0, 0.0], [-2.0, -0.5, 0.3], [0.1, 0.0, -1.0]])
Y0 = np.array([1.0, 0.0, 0.5])


def linear(t, y, matrix):
    return matrix @ y


def logistic(t, y, rate):
    return rate * y * (1.0 - y)


def logistic_solution(t, y0, rate):
    return 1.0 / (1.0 + (1.0 / y0 - 1.0) * np.exp(-rate * t))


def riccati(t, y, args):
    # y' = 1 + y^2 with y(0) = 0 has the solution y = tan(t).
    return 1.0 + y * y


def fitted_order(step_sizes, errors):
    slope, _ = np.polyfit(np.log(step_sizes), np.log(errors), 1)
    return slope


# --------------------------------------------------------------------------
# Order conditions in exact arithmetic
# --------------------------------------------------------------------------


def tree_size_and_density(tree):
    """Return the number of nodes and the density gamma(t) of a rooted tree."""
    size, density = 1, 1
    for child in tree:
        child_size, child_density = tree_size_and_density(child)
        size += child_size
        density *= child_density
    return size, size * density


def residuals_of_order(a, weights, order, theta=Fraction(1)):
    """Return ``sum_i w_i Phi_i(t) - theta^order / gamma(t)`` for the trees with ``order`` nodes.

    ``a`` is a full square list of fractions. With ``theta`` the conditions are those of a
    continuous extension evaluated at ``t0 + theta h``.
    """
    s = len(a)

    @cache
    def phi(tree):
        values = [Fraction(1)] * s
        for child in tree:
            inner = phi(child)
            values = [values[i] * sum((a[i][j] * inner[j] for j in range(s)), Fraction(0)) for i in range(s)]
        return tuple(values)

    residuals = []
    for tree in rooted_trees(order):
        _, density = tree_size_and_density(tree)
        value = sum((w * p for w, p in zip(weights, phi(tree))), Fraction(0))
        residuals.append(float(value - theta**order / density))
    return residuals


def square(rows, size):
    return [list(row) + [Fraction(0)] * (size - len(row)) for row in rows]


def sparse_rows(rows, size):
    return [dense_row(row, size) for row in rows]


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_order_conditions_hold_exactly(solver):
    tableau = solver.tableau
    assert all(isinstance(x, Fraction) for row in tableau.a for x in row)
    residuals = order_condition_residuals(tableau, solver.order)
    assert len(residuals) == sum(len(rooted_trees(n)) for n in range(1, solver.order + 1))
    assert max(abs(r) for r in residuals.values()) < EXACT


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_order_is_not_higher(solver):
    a = square(solver.tableau.a, solver.tableau.stages)
    assert max(abs(r) for r in residuals_of_order(a, solver.tableau.b, solver.order + 1)) > 1e-6


def test_vern7_embedded_order_is_six():
    tableau = ode.Vern7.tableau
    assert tableau.b_error is not None
    b_hat = [b - e for b, e in zip(tableau.b, tableau.b_error)]
    residuals = order_condition_residuals(tableau, 6, b_hat)
    assert max(abs(r) for r in residuals.values()) < EXACT
    a = square(tableau.a, tableau.stages)
    assert max(abs(r) for r in residuals_of_order(a, b_hat, 7)) > 1e-6


def test_dopri8_embedded_orders_are_five_and_three():
    tableau = ode.Dopri8.tableau
    assert tableau.b_error is not None
    b_hat5 = [b - e for b, e in zip(tableau.b, tableau.b_error)]
    assert max(abs(r) for r in order_condition_residuals(tableau, 5, b_hat5).values()) < EXACT
    b_hat3 = _solver_dopri8._B_HAT3
    assert max(abs(r) for r in order_condition_residuals(tableau, 3, b_hat3).values()) < EXACT
    a = square(tableau.a, tableau.stages)
    assert max(abs(r) for r in residuals_of_order(a, b_hat5, 6)) > 1e-6
    assert max(abs(r) for r in residuals_of_order(a, b_hat3, 4)) > 1e-6


def dopri8_extension():
    """Return DOP853's 16-stage matrix and its continuous weights ``w(theta)``, in fractions."""
    module = _solver_dopri8
    tableau = ode.Dopri8.tableau
    a = square([*tableau.a, tableau.b, *sparse_rows(module._EXTRA_A, 16)], 16)
    b = [*tableau.b, 0, 0, 0, 0]
    unit = [[Fraction(int(i == j)) for j in range(16)] for i in (0, 12)]
    r2 = b
    r3 = [e - x for e, x in zip(unit[0], r2)]
    r4 = [x - e - y for x, e, y in zip(r2, unit[1], r3)]
    r5, r6, r7, r8 = sparse_rows(module._DENSE, 16)

    def weights(theta):
        rest = 1 - theta
        return [
            theta * (p2 + rest * (p3 + theta * (p4 + rest * (p5 + theta * (p6 + rest * (p7 + theta * p8))))))
            for p2, p3, p4, p5, p6, p7, p8 in zip(r2, r3, r4, r5, r6, r7, r8)
        ]

    return a, weights


def vern7_extension():
    """Return Verner's 16-stage matrix and his continuous weights ``w(theta)``, in fractions."""
    module = _solver_vern7
    tableau = ode.Vern7.tableau
    a = square([*tableau.a, tableau.b, *sparse_rows(module._EXTRA_A, 16)], 16)
    polynomials = {i: [Fraction(w) for w in digits] for i, digits in module._DENSE.items()}

    def weights(theta):
        return [sum(w * theta ** (j + 1) for j, w in enumerate(polynomials.get(i, []))) for i in range(16)]

    return a, weights


# b_row: the row of the extended matrix that contains the weights b (the stage f(t + h, y1)).
# exact_order: the order through which the extension's conditions hold exactly. Verner's
# published extension misses 12 of the 48 conditions of order 7 by up to 3e-7.
@pytest.mark.parametrize(
    ("extension", "b_row", "exact_order", "order_seven_defect"),
    [(dopri8_extension, 12, 7, EXACT), (vern7_extension, 10, 6, 5e-7)],
    ids=["Dopri8", "Vern7"],
)
def test_continuous_extension_order(extension, b_row, exact_order, order_seven_defect):
    a, weights = extension()
    for theta in (Fraction(1, 3), Fraction(4, 5)):
        w = weights(theta)
        for order in range(1, exact_order + 1):
            assert max(abs(r) for r in residuals_of_order(a, w, order, theta)) < EXACT, (theta, order)
        assert max(abs(r) for r in residuals_of_order(a, w, 7, theta)) < order_seven_defect
        assert max(abs(r) for r in residuals_of_order(a, w, 8, theta)) > 1e-8
    # At theta = 1 the extension reproduces the step's solution.
    end = weights(Fraction(1))
    assert max(abs(float(x - y)) for x, y in zip(end, a[b_row])) < EXACT


# --------------------------------------------------------------------------
# Convergence with constant steps
# --------------------------------------------------------------------------

# Steps small enough for the asymptotic range (Vern7's error constants
# settle later) and large enough that the error stays far above rounding.
LINEAR_STEPS = {"Dopri8": [1 / 3, 1 / 4, 1 / 6, 1 / 8], "Vern7": [1 / 6, 1 / 8, 1 / 12, 1 / 16]}
RICCATI_STEPS = {"Dopri8": [1 / 6, 1 / 8, 1 / 12, 1 / 16], "Vern7": [1 / 8, 1 / 12, 1 / 16, 1 / 24]}
INTERPOLANT_STEPS = {"Dopri8": [1 / 2, 1 / 3, 1 / 4, 1 / 6], "Vern7": [1 / 4, 1 / 6, 1 / 8, 1 / 12]}


def final_value(vector_field, y0, args, solver, dt, to_backend):
    sol = ode.solve(vector_field, to_backend(y0), (0.0, 1.0), args, solver=solver, dt0=dt, adaptive=False)
    return np.asarray(sol.ys[-1])


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_order_on_linear_system(solver, backend, to_backend):
    step_sizes = LINEAR_STEPS[solver.__name__]
    exact = scipy.linalg.expm(MATRIX) @ Y0
    errors = [
        np.max(np.abs(final_value(linear, Y0, to_backend(MATRIX), solver(dense=False), dt, to_backend) - exact))
        for dt in step_sizes
    ]
    assert min(errors) > 1e-13
    assert fitted_order(step_sizes, errors) == pytest.approx(solver.order, abs=0.4)


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_order_on_riccati_equation(solver, backend, to_backend):
    step_sizes = RICCATI_STEPS[solver.__name__]
    errors = [
        abs(final_value(riccati, np.array([0.0]), None, solver(dense=False), dt, to_backend)[0] - np.tan(1.0))
        for dt in step_sizes
    ]
    assert min(errors) > 1e-13
    assert fitted_order(step_sizes, errors) == pytest.approx(solver.order, abs=0.4)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_dense_stages_leave_the_step_unchanged(solver):
    y1_dense, error_dense, ks_dense, f1_dense = solver().step(lambda t, y: MATRIX @ y, 0.0, Y0, MATRIX @ Y0, 0.2)
    y1, error, ks, f1 = solver(dense=False).step(lambda t, y: MATRIX @ y, 0.0, Y0, MATRIX @ Y0, 0.2)
    np.testing.assert_array_equal(y1_dense, y1)
    np.testing.assert_array_equal(error_dense, error)
    np.testing.assert_array_equal(f1_dense, f1)
    assert ks_dense.shape == (solver().dense_stages, 3)
    assert ks.shape == (solver.tableau.stages, 3)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_interpolant_matches_step_ends(solver):
    y1, _, ks, f1 = solver().step(lambda t, y: MATRIX @ y, 0.0, Y0, MATRIX @ Y0, 0.1)
    start = solver().interpolate(Y0, y1, MATRIX @ Y0, f1, 0.1, np.asarray(ks), 0.0)
    end = solver().interpolate(Y0, y1, MATRIX @ Y0, f1, 0.1, np.asarray(ks), 1.0)
    np.testing.assert_allclose(start, Y0, atol=1e-15)
    np.testing.assert_allclose(end, y1, atol=1e-14)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
@pytest.mark.parametrize(("dense", "local_order"), [(True, 8), (False, 4)], ids=["own", "hermite"])
def test_interpolant_local_error_order(solver, dense, local_order, backend, to_backend):
    # One step from the exact value: the interpolant's error inside the step is O(h^(p + 1)).
    step_sizes = INTERPOLANT_STEPS[solver.__name__]
    theta = 0.37
    matrix = to_backend(MATRIX)
    errors = []
    for h in step_sizes:
        method = solver(dense=dense)
        y0, f0 = to_backend(Y0), matrix @ to_backend(Y0)
        y1, _, ks, f1 = method.step(lambda t, y: matrix @ y, 0.0, y0, f0, h)
        value = np.asarray(method.interpolate(y0, y1, f0, f1, h, ks, theta))
        errors.append(np.max(np.abs(value - scipy.linalg.expm(MATRIX * theta * h) @ Y0)))
    assert fitted_order(step_sizes, errors) == pytest.approx(local_order, abs=0.4)


# --------------------------------------------------------------------------
# Adaptive solves against SciPy
# --------------------------------------------------------------------------


def lotka_volterra(t, y, params):
    alpha, beta, delta, gamma = params[0], params[1], params[2], params[3]
    prey, predator = y[0], y[1]
    return dx.stack([alpha * prey - beta * prey * predator, delta * prey * predator - gamma * predator])


LV_PARAMS = np.array([1.5, 1.0, 1.0, 3.0])
LV_Y0 = np.array([1.0, 1.0])
LV_TS = np.linspace(0.0, 5.0, 11)


@cache
def lotka_volterra_reference():
    def rhs(t, y):
        return np.asarray(lotka_volterra(t, y, LV_PARAMS))

    result = scipy.integrate.solve_ivp(rhs, (0.0, 5.0), LV_Y0, method="DOP853", rtol=1e-13, atol=1e-14, t_eval=LV_TS)
    return result.y.T


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_adaptive_matches_scipy(solver, backend, to_backend):
    sol = ode.solve(
        lotka_volterra,
        to_backend(LV_Y0),
        (0.0, 5.0),
        to_backend(LV_PARAMS),
        solver=solver(),
        saveat=ode.SaveAt(ts=to_backend(LV_TS)),
        rtol=1e-10,
        atol=1e-12,
    )
    assert int(sol.status) == 0
    np.testing.assert_allclose(np.asarray(sol.ys), lotka_volterra_reference(), rtol=1e-9, atol=0)


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_adaptive_linear_system_matches_expm(solver, backend, to_backend):
    ts = np.linspace(0.0, 4.0, 9)
    sol = ode.solve(
        linear,
        to_backend(Y0),
        (0.0, 4.0),
        to_backend(MATRIX),
        solver=solver(),
        saveat=ode.SaveAt(ts=to_backend(ts)),
        rtol=1e-10,
        atol=1e-12,
    )
    expected = np.stack([scipy.linalg.expm(MATRIX * t) @ Y0 for t in ts])
    np.testing.assert_allclose(np.asarray(sol.ys), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_fewer_evaluations_than_tsit5(solver):
    kwargs = {"saveat": ode.SaveAt(t1=True), "rtol": 1e-10, "atol": 1e-12}
    high = ode.solve(lotka_volterra, LV_Y0, (0.0, 5.0), LV_PARAMS, solver=solver(dense=False), **kwargs)
    low = ode.solve(lotka_volterra, LV_Y0, (0.0, 5.0), LV_PARAMS, solver=ode.Tsit5(), **kwargs)
    assert int(high.stats["num_fevals"]) < int(low.stats["num_fevals"])
    assert int(high.stats["num_fevals"]) == 2 + int(high.stats["num_steps"]) * solver.tableau.stages


def test_dopri8_error_norm_combines_both_estimates():
    # With rtol = 0 the scale is atol, and the ratio is e5^2 / sqrt(e5^2 + 0.01 e3^2) in RMS norms.
    method = ode.Dopri8()
    f0 = MATRIX @ Y0
    state = method.init_state(lambda t, y: MATRIX @ y, 0.0, Y0, f0, 0.0, 1e-6)
    y1, combined, ks, _, _ = method.step_with_state(lambda t, y: MATRIX @ y, 0.0, Y0, f0, 0.3, state)
    _, error5, _, _ = method.step(lambda t, y: MATRIX @ y, 0.0, Y0, f0, 0.3)
    b_hat3 = np.array([float(w) for w in _solver_dopri8._B_HAT3])
    error3 = (y1 - Y0) - 0.3 * b_hat3 @ np.asarray(ks)[:12]
    norm5 = np.sqrt(np.mean((error5 / 1e-6) ** 2))
    norm3 = np.sqrt(np.mean((error3 / 1e-6) ** 2))
    expected = norm5**2 / np.sqrt(norm5**2 + 0.01 * norm3**2)
    assert np.sqrt(np.mean((combined / 1e-6) ** 2)) == pytest.approx(expected, rel=1e-12)
    assert expected < norm5


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_dense_output_between_steps(solver, backend, to_backend):
    sol = ode.solve(
        logistic,
        to_backend(np.array([0.1])),
        (0.0, 2.0),
        3.0,
        solver=solver(),
        saveat=ode.SaveAt(dense=True),
        rtol=1e-10,
        atol=1e-12,
    )
    ts = np.linspace(0.0, 2.0, 41) + 0.013
    ts[-1] = 2.0
    values = np.asarray(sol.evaluate(to_backend(ts)))[:, 0]
    np.testing.assert_allclose(values, logistic_solution(ts, 0.1, 3.0), rtol=0, atol=1e-9)


# --------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------


def damped(t, y, params):
    return dx.stack([y[1], -params[0] * y[0] - params[1] * y[1] + dx.sin(t) * y[0] * y[0] * 0.1])


def final_loss(solver, params, y0, **kwargs):
    sol = ode.solve(damped, y0, (0.0, 2.0), params, solver=solver, **kwargs)
    return dx.sum(sol.ys[-1] * sol.ys[-1])


@pytest.mark.parametrize("backend", BACKENDS_JAX_SLOW)
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
@pytest.mark.parametrize("adaptive", [False, True], ids=["constant", "adaptive"])
def test_gradient_matches_finite_differences(solver, adaptive, backend, to_backend):
    kwargs: dict[str, Any] = {"rtol": 1e-11, "atol": 1e-13} if adaptive else {"dt0": 0.1, "adaptive": False}
    kwargs["sensitivity"] = ode.RecursiveCheckpointAdjoint()
    params, y0 = np.array([4.0, 0.3]), np.array([1.0, 0.0])
    grad_params, grad_y0 = dx.grad(lambda p, y: final_loss(solver(dense=False), p, y, **kwargs), argnums=(0, 1))(
        to_backend(params), to_backend(y0)
    )

    def loss_at(p, y):
        return float(final_loss(solver(dense=False), p, y, **kwargs))

    step = 1e-6
    for point, gradient, other in ((params, grad_params, "p"), (y0, grad_y0, "y")):
        expected = np.zeros(2)
        for i in range(2):
            shift = np.zeros(2)
            shift[i] = step
            if other == "p":
                expected[i] = (loss_at(point + shift, y0) - loss_at(point - shift, y0)) / (2 * step)
            else:
                expected[i] = (loss_at(params, point + shift) - loss_at(params, point - shift)) / (2 * step)
        np.testing.assert_allclose(np.asarray(gradient), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_solve_under_jit_matches_numpy(solver):
    pytest.importorskip("jax")

    def final(params, y0, ts):
        saveat = ode.SaveAt(ts=ts)
        return ode.solve(
            lotka_volterra, y0, (0.0, 5.0), params, solver=solver(), saveat=saveat, rtol=1e-10, atol=1e-12
        ).ys

    on_jax = [dx.asarray(x, backend="jax") for x in (LV_PARAMS, LV_Y0, LV_TS)]
    np.testing.assert_allclose(
        np.asarray(dx.jit(final)(*on_jax)), np.asarray(final(LV_PARAMS, LV_Y0, LV_TS)), rtol=1e-12
    )


@pytest.mark.slow
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
@pytest.mark.parametrize(
    "sensitivity",
    [ode.BacksolveAdjoint(), ode.InterpolatingAdjoint(), ode.ForwardSensitivity()],
    ids=lambda s: type(s).__name__,
)
def test_sensitivities_match_checkpointed_gradient(solver, sensitivity):
    params, y0 = np.array([4.0, 0.3]), np.array([1.0, 0.0])
    kwargs = {"rtol": 1e-11, "atol": 1e-13}

    # InterpolatingAdjoint reads the forward solution from the interpolant, so it needs the method's own.
    def loss(p, sensitivity):
        return final_loss(solver(), p, y0, sensitivity=sensitivity, **kwargs)

    expected = dx.grad(lambda p: loss(p, ode.RecursiveCheckpointAdjoint()))(params)
    gradient = dx.grad(lambda p: loss(p, sensitivity))(params)
    np.testing.assert_allclose(np.asarray(gradient), np.asarray(expected), rtol=1e-7, atol=1e-9)
