"""ESDIRK tableaux: order conditions, L-stability and validation; the Rosenbrock23 interpolant."""

from __future__ import annotations

import numpy as np
import pytest

from difflux import ode
from difflux.ode._implicit_rk import ESDIRKTableau, tableau_arrays
from difflux.ode._tableau import order_condition_residuals

ESDIRK = [ode.ImplicitEuler, ode.Kvaerno3, ode.Kvaerno4, ode.Kvaerno5]
IDS = [solver.__name__ for solver in ESDIRK]


def largest(residuals):
    return max(abs(r) for r in residuals.values())


@pytest.mark.parametrize("solver", ESDIRK, ids=IDS)
def test_order_conditions_hold(solver):
    residuals = order_condition_residuals(solver.tableau, solver.order)
    assert largest(residuals) <= 1e-13


@pytest.mark.parametrize("solver", ESDIRK, ids=IDS)
def test_order_is_not_higher(solver):
    assert largest(order_condition_residuals(solver.tableau, solver.order + 1)) > 1e-4


@pytest.mark.parametrize("solver", ESDIRK, ids=IDS)
def test_embedded_order_conditions_hold(solver):
    tableau = solver.tableau
    b_hat = [b - e for b, e in zip(tableau.b, tableau.b_error)]
    assert largest(order_condition_residuals(tableau, solver.embedded_order, b_hat)) <= 1e-13
    assert largest(order_condition_residuals(tableau, solver.embedded_order + 1, b_hat)) > 1e-4


@pytest.mark.parametrize("solver", ESDIRK, ids=IDS)
def test_embedded_solution_is_a_stage(solver):
    # Kvaerno's embedded solutions are the stage before the last, at c = 1.
    tableau = solver.tableau
    assert tableau.stiffly_accurate
    b_hat = [b - e for b, e in zip(tableau.b, tableau.b_error)]
    row = [*tableau.a[-2], 0] if len(tableau.a) > 2 else [1, 0]
    np.testing.assert_allclose([float(x) for x in b_hat], [float(x) for x in row], atol=1e-15)


def stability_function(tableau: ESDIRKTableau, z: complex) -> complex:
    """Return R(z) = 1 + z b^T (I - z A)^{-1} 1, the step's growth factor on y' = lambda y."""
    _, a, b = tableau_arrays(tableau)
    ones = np.ones(len(b))
    return complex(1.0 + z * b @ np.linalg.solve(np.eye(len(b)) - z * a, ones))


@pytest.mark.parametrize("solver", ESDIRK, ids=IDS)
def test_methods_are_l_stable(solver):
    tableau = solver.tableau
    # A-stable: |R| <= 1 on the imaginary axis (and R is analytic in the left half-plane).
    for y in np.geomspace(1e-3, 1e4, 200):
        assert abs(stability_function(tableau, 1j * y)) <= 1.0 + 1e-12
    # L-stable: R(z) -> 0 as z -> -infinity.
    assert abs(stability_function(tableau, -1e9)) < 1e-6


def test_kvaerno3_gamma_is_the_l_stable_root():
    gamma = float(ode.Kvaerno3.tableau.gamma)
    assert 6 * gamma**3 - 18 * gamma**2 + 9 * gamma - 1 == pytest.approx(0.0, abs=1e-14)
    assert gamma == pytest.approx(0.4358665215, abs=1e-10)


def test_tableau_rejects_wrong_row_sum():
    with pytest.raises(ValueError, match=r"row 1 of a sums to 0\.75"):
        ESDIRKTableau.build(c=[0, 1], a=[[0], ["1/4", "1/2"]], b=["1/2", "1/2"], b_error=[1, -1], predictor=[[1]])


def test_tableau_rejects_differing_diagonal():
    with pytest.raises(ValueError, match="diagonal gamma"):
        ESDIRKTableau.build(
            c=[0, 1, 1],
            a=[[0], ["1/2", "1/2"], ["1/4", "1/2", "1/4"]],
            b=["1/4", "1/2", "1/4"],
            b_error=[0, 0, 0],
            predictor=[[1], [0, 1]],
        )


def test_tableau_rejects_implicit_first_stage():
    with pytest.raises(ValueError, match="first stage must be explicit"):
        ESDIRKTableau.build(c=["1/2", 1], a=[["1/2"], [0, 1]], b=[0, 1], b_error=[1, -1], predictor=[[1]])


def test_tableau_rejects_wrong_error_weights():
    with pytest.raises(ValueError, match="error weights sum"):
        ESDIRKTableau.build(c=[0, 1], a=[[0], [0, 1]], b=[0, 1], b_error=[1, 1], predictor=[[1]])


@pytest.mark.parametrize("solver", [*ESDIRK, ode.Rosenbrock23, ode.Rodas5P], ids=[*IDS, "Rosenbrock23", "Rodas5P"])
def test_interpolant_matches_step_ends(solver):
    rng = np.random.default_rng(0)
    y0 = rng.normal(size=3)
    matrix = rng.normal(size=(3, 3)) - 3.0 * np.eye(3)
    instance = solver()

    def f(t, y):
        return matrix @ y

    f0 = f(0.0, y0)
    state = instance.init_state(f, np.asarray(0.0), y0, f0, 1e-8, 1e-10)
    y1, _, ks, f1, _ = instance.step_with_state(f, np.asarray(0.0), y0, f0, np.asarray(0.1), state)
    start = instance.interpolate(y0, y1, f0, f1, 0.1, np.asarray(ks), 0.0)
    end = instance.interpolate(y0, y1, f0, f1, 0.1, np.asarray(ks), 1.0)
    np.testing.assert_allclose(start, y0, atol=1e-14)
    np.testing.assert_allclose(end, y1, atol=1e-13)


def test_bosh3_matches_the_published_pair():
    # The pair's embedded second-order weights are b_hat = (7/24, 1/4, 1/3, 1/8).
    tableau = ode.Bosh3.tableau
    b_hat = [b - e for b, e in zip(tableau.b, tableau.b_error)]
    assert [str(x) for x in b_hat] == ["7/24", "1/4", "1/3", "1/8"]


def rosenbrock_growth(solver, z: complex) -> complex:
    """Return y1 / y0 for one step of size 1 of a Rosenbrock solver on y' = z y."""

    def f(t, y):
        return z * y

    y0 = np.array([1.0 + 0.0j])
    state = solver.init_state(f, 0.0, y0, f(0.0, y0), 1e-6, 1e-9)
    y1, *_ = solver.step_with_state(f, np.asarray(0.0), y0, f(0.0, y0), np.asarray(1.0), state)
    return complex(y1[0])


@pytest.mark.parametrize("solver", [ode.Rosenbrock23(), ode.Rodas5P()], ids=["Rosenbrock23", "Rodas5P"])
def test_rosenbrock_methods_are_l_stable(solver):
    for y in np.geomspace(1e-3, 1e4, 50):
        assert abs(rosenbrock_growth(solver, 1j * y)) <= 1.0 + 1e-12
    assert abs(rosenbrock_growth(solver, -1e9)) < 1e-6
