"""Warm-up adaptation: the window schedule, dual averaging, Welford estimates and the step-size search."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

import difflux.core as dx
from difflux.ppl.infer._adaptation import (
    WarmupAdapter,
    build_adaptation_schedule,
    dual_averaging_init,
    dual_averaging_update,
    find_reasonable_step_size,
    mass_matrix_sqrt_of,
    welford_covariance,
    welford_init,
    welford_update,
)
from difflux.ppl.infer._integrator import IntegratorState, kinetic_energy, leapfrog, make_potential_and_grad


def test_schedule_matches_stan_defaults() -> None:
    # 75 fast iterations, slow windows of 25, 50, 100, 200 and the rest, 50 terminal iterations.
    assert build_adaptation_schedule(1000) == [(75, 99), (100, 149), (150, 249), (250, 449), (450, 949)]


def test_schedule_short_warmup() -> None:
    # Under 150 iterations Stan uses 15% / 75% / 10% buffers: one window here.
    assert build_adaptation_schedule(100) == [(15, 89)]
    assert build_adaptation_schedule(19) == []


def test_schedule_last_window_absorbs_rest() -> None:
    windows = build_adaptation_schedule(500)
    assert windows[0][0] == 75
    assert windows[-1][1] == 500 - 50 - 1
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start == end + 1


def test_dual_averaging_converges(backend: str) -> None:
    # A synthetic acceptance statistic exp(-step_size) hits 0.8 at step_size = -log(0.8).
    state = dual_averaging_init(dx.asarray(1.0, backend=backend))
    for _ in range(2000):
        accept = dx.exp(-dx.exp(state.log_step_size))
        state = dual_averaging_update(state, accept, 0.8)
    np.testing.assert_allclose(float(dx.exp(state.log_step_size_avg)), -math.log(0.8), rtol=0.02)


@pytest.mark.parametrize("dense", [False, True])
def test_welford_matches_numpy(backend: str, dense: bool) -> None:
    draws = np.random.default_rng(0).normal(size=(40, 3)) @ np.array(
        [[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [0.1, 0.2, 0.3]]
    )
    state = welford_init(3, dense, dx.asarray(draws[0], backend=backend))
    for row in draws:
        state = welford_update(state, dx.asarray(row, backend=backend))
    np.testing.assert_allclose(np.asarray(state.mean), draws.mean(0), rtol=1e-12)
    sample = np.cov(draws.T) if dense else draws.var(0, ddof=1)
    regularised = 40 / 45 * sample + 1e-3 * 5 / 45 * (np.eye(3) if dense else 1.0)
    np.testing.assert_allclose(np.asarray(welford_covariance(state)), regularised, rtol=1e-10)


def test_mass_matrix_sqrt(backend: str) -> None:
    inverse_mass = np.array([[2.0, 0.3], [0.3, 0.5]])
    root = np.asarray(mass_matrix_sqrt_of(dx.asarray(inverse_mass, backend=backend)))
    np.testing.assert_allclose(root @ root.T, np.linalg.inv(inverse_mass), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(mass_matrix_sqrt_of(dx.asarray(np.array([4.0]), backend=backend))), [0.5])


def test_step_size_search_crosses_half(backend: str) -> None:
    # After the search, one leapfrog step at the returned size and at the previous one
    # lie on opposite sides of acceptance ratio 1/2 (Hoffman & Gelman, algorithm 4).
    scale = dx.asarray(np.array([0.01, 0.02]), backend=backend)
    potential_and_grad = make_potential_and_grad(lambda z: 0.5 * dx.sum((z / scale) ** 2))
    z = dx.asarray(np.array([0.01, -0.01]), backend=backend)
    pe, grad = potential_and_grad(z)
    inverse_mass = dx.ones_like(z)
    key = dx.random.key(0, backend=backend)
    state = IntegratorState(z, z, pe, grad)
    eps = float(find_reasonable_step_size(key, state, 1.0, inverse_mass, inverse_mass, potential_and_grad))
    assert eps < 0.05

    # With a unit metric the search's momentum is dx.random.normal(key, ...): recompute it.
    r = dx.random.normal(key, (2,), dtype=z.dtype)

    def log_ratio(step: float) -> float:
        end = leapfrog(IntegratorState(z, r, pe, grad), step, inverse_mass, potential_and_grad)
        start_energy = pe + kinetic_energy(r, inverse_mass)
        return float(start_energy - end.potential_energy - kinetic_energy(end.r, inverse_mass))

    # Starting from 1.0 the ratio is tiny, so the search halves until the ratio reaches 1/2.
    assert log_ratio(eps) >= math.log(0.5)
    assert log_ratio(2.0 * eps) < math.log(0.5)


def test_step_size_search_halves_from_nan(backend: str) -> None:
    # A potential that is NaN away from the origin makes large steps fail: the search halves.
    def potential(z):
        return dx.where(dx.sum(z**2) < 1.0, 0.5 * dx.sum(z**2), dx.nan)

    potential_and_grad = make_potential_and_grad(potential)
    z = dx.asarray(np.array([0.1, 0.1]), backend=backend)
    pe, grad = potential_and_grad(z)
    ones = dx.ones_like(z)
    eps = find_reasonable_step_size(
        dx.random.key(1, backend=backend), IntegratorState(z, z, pe, grad), 8.0, ones, ones, potential_and_grad
    )
    assert float(eps) < 8.0


def test_step_size_search_overflow_is_silent(backend: str) -> None:
    # A trial step of 1000 throws z to about -1e5, where exp(-z) overflows. The
    # search rejects that step without a RuntimeWarning and halves from it.
    def potential(z):
        return dx.sum(dx.exp(z) + dx.exp(-z))

    potential_and_grad = make_potential_and_grad(potential)
    z = dx.asarray(np.array([0.1, 0.1]), backend=backend)
    pe, grad = potential_and_grad(z)
    ones = dx.ones_like(z)
    state = IntegratorState(z, z, pe, grad)
    if backend == "numpy":
        # The oracle for the trigger: the same leapfrog step warns when nothing silences it.
        with pytest.warns(RuntimeWarning, match="overflow"):
            leapfrog(state, 1000.0, ones, potential_and_grad)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        eps = find_reasonable_step_size(
            dx.random.key(2, backend=backend), state, 1000.0, ones, ones, potential_and_grad
        )
    assert math.isfinite(float(eps))
    assert float(eps) < 1.0


def test_adapter_updates_metric_at_window_end() -> None:
    adapter = WarmupAdapter(
        100, adapt_step_size=False, adapt_mass_matrix=True, dense_mass=False, target_accept_prob=0.8
    )
    assert adapter.windows == [(15, 89)]
    z = np.zeros(2)
    state = adapter.init(z, np.asarray(0.5), np.ones(2))
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(100, 2)) * np.array([3.0, 0.5])
    for i in range(100):
        state = adapter.update(i, state, draws[i], 0.8)
        if i == 88:
            np.testing.assert_array_equal(state.inverse_mass_matrix, np.ones(2))
    window = draws[15:90]
    expected = 75 / 80 * window.var(0, ddof=1) + 1e-3 * 5 / 80
    np.testing.assert_allclose(np.asarray(state.inverse_mass_matrix), expected, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(state.step_size), 0.5)
