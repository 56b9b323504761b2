"""Tableaux: consistency, order conditions and the interpolants' end points."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from difflux import ode
from difflux.ode._solver_tsit5 import _interpolant_weights
from difflux.ode._tableau import ButcherTableau, order_condition_residuals, rooted_trees

SOLVERS = [ode.Euler, ode.Heun, ode.Midpoint, ode.Ralston, ode.RK4, ode.Bosh3, ode.Dopri5, ode.Tsit5]
ADAPTIVE = [ode.Bosh3, ode.Dopri5, ode.Tsit5]


def test_rooted_tree_counts():
    assert [len(rooted_trees(n)) for n in range(1, 7)] == [1, 1, 2, 4, 9, 20]


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_order_conditions_hold(solver):
    tableau = solver.tableau
    residuals = order_condition_residuals(tableau, solver.order)
    assert max(abs(r) for r in residuals.values()) <= max(tableau.tolerance, 0.0) * 10


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_order_is_not_higher(solver):
    residuals = order_condition_residuals(solver.tableau, solver.order + 1)
    assert max(abs(r) for r in residuals.values()) > 1e-6


@pytest.mark.parametrize("solver", ADAPTIVE, ids=lambda s: s.__name__)
def test_embedded_order_conditions_hold(solver):
    tableau = solver.tableau
    b_hat = [b - e for b, e in zip(tableau.b, tableau.b_error)]
    residuals = order_condition_residuals(tableau, solver.embedded_order, b_hat)
    assert max(abs(r) for r in residuals.values()) <= max(tableau.tolerance, 0.0) * 10
    assert solver.tableau.fsal


def test_tableau_rejects_wrong_row_sum():
    with pytest.raises(ValueError, match=r"row 1 of a sums to 0\.25"):
        ButcherTableau.build(c=[0, "1/2"], a=[[], ["1/4"]], b=["1/2", "1/2"])


def test_tableau_rejects_wrong_weights():
    with pytest.raises(ValueError, match=r"weights b sum to 0\.75"):
        ButcherTableau.build(c=[0, 1], a=[[], [1]], b=["1/4", "1/2"])


def test_tableau_rejects_wrong_error_weights():
    with pytest.raises(ValueError, match="error weights sum"):
        ButcherTableau.build(c=[0, 1], a=[[], [1]], b=["1/2", "1/2"], b_error=["1/2", 0])


def test_tableau_is_exact():
    assert all(isinstance(x, Fraction) for x in ode.Dopri5.tableau.b)


def test_tsit5_interpolant_ends_at_weights():
    at_one = _interpolant_weights(1.0)
    np.testing.assert_allclose(at_one, [float(b) for b in ode.Tsit5.tableau.b], atol=1e-13)
    for theta in (0.0, 0.3, 0.8):
        assert sum(_interpolant_weights(theta)) == pytest.approx(theta, abs=1e-14)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.__name__)
def test_interpolant_matches_step_ends(solver):
    rng = np.random.default_rng(0)
    y0 = rng.normal(size=3)
    matrix = rng.normal(size=(3, 3))
    y1, _, ks, f1 = solver().step(lambda t, y: matrix @ y, 0.0, y0, matrix @ y0, 0.1)
    start = solver().interpolate(y0, y1, matrix @ y0, f1, 0.1, np.asarray(ks), 0.0)
    end = solver().interpolate(y0, y1, matrix @ y0, f1, 0.1, np.asarray(ks), 1.0)
    np.testing.assert_allclose(start, y0, atol=1e-14)
    np.testing.assert_allclose(end, y1, atol=1e-13)
