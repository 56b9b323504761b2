"""difflux.ode SDE steps against Diffrax's on the same Brownian path, in float64.

difflux samples the Brownian path (``ode.BrownianPath``). Diffrax (0.7.2)
reads the same grid values through a small ``AbstractBrownianPath`` that
interpolates them. The steps land on the grid, so the increments are equal.
Euler-Maruyama (``diffrax.Euler`` on a ``MultiTerm``) and Itô Milstein
(``diffrax.ItoMilstein`` with a diagonal ``lineax`` operator) must then give
the same solution and the same gradient to rounding.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import lineax
import numpy as np
import pytest

import difflux.core as dx
from difflux import ode

SIGMA, DT, LEVELS, NUM_PATHS = 0.8, 1.0 / 32, 5, 3


class GridPath(diffrax.AbstractBrownianPath):
    """Brownian values on a grid, linearly interpolated (exact at the grid's times)."""

    times: jax.Array
    values: jax.Array
    t0: float
    t1: float
    levy_area: type = diffrax.BrownianIncrement

    def evaluate(self, t0, t1=None, left=True, use_levy=False):
        def at(t):
            return jax.vmap(lambda column: jnp.interp(t, self.times, column), in_axes=1)(self.values)

        return at(t0) if t1 is None else at(t1) - at(t0)


def diffrax_final(mu, solver, path):
    if isinstance(solver, diffrax.ItoMilstein):
        diffusion = lambda t, y, args: lineax.DiagonalLinearOperator(SIGMA * y)  # noqa: E731
    else:
        diffusion = lambda t, y, args: jnp.diag(SIGMA * y)  # noqa: E731
    terms = diffrax.MultiTerm(diffrax.ODETerm(lambda t, y, args: mu * y), diffrax.ControlTerm(diffusion, path))
    sol = diffrax.diffeqsolve(terms, solver, 0.0, 1.0, DT, jnp.ones(NUM_PATHS), saveat=diffrax.SaveAt(t1=True))
    return sol.ys[-1]


def difflux_final(mu, solver, key):
    y0 = dx.asarray(np.ones(NUM_PATHS), backend="jax")
    sol = ode.solve_sde(
        lambda t, y, m: m * y, lambda t, y, m: SIGMA * y, y0, (0.0, 1.0), mu, key=key, dt=DT, solver=solver
    )
    return sol.ys[-1]


@pytest.mark.parametrize(
    ("solver", "reference"),
    [(ode.EulerMaruyama(), diffrax.Euler()), (ode.Milstein(), diffrax.ItoMilstein())],
    ids=["EulerMaruyama", "Milstein"],
)
def test_sde_solution_and_gradient_match_diffrax(solver, reference):
    key = dx.random.key(3, backend="jax")
    values = ode.BrownianPath(key, 0.0, 1.0, (NUM_PATHS,)).grid(LEVELS)
    path = GridPath(jnp.linspace(0.0, 1.0, 2**LEVELS + 1), jnp.asarray(values), 0.0, 1.0)
    mu = 0.5
    np.testing.assert_allclose(
        np.asarray(difflux_final(dx.asarray(mu, backend="jax"), solver, key)),
        np.asarray(diffrax_final(mu, reference, path)),
        rtol=1e-12,
    )
    gradient = dx.grad(lambda m: dx.sum(difflux_final(m, solver, key)))(dx.asarray(mu, backend="jax"))
    expected = jax.grad(lambda m: jnp.sum(diffrax_final(m, reference, path)))(mu)
    assert float(gradient) == pytest.approx(float(expected), rel=1e-12)
