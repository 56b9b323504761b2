"""SDEs: strong and weak convergence on geometric Brownian motion, Brownian paths and gradients."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import difflux.core as dx
import difflux.core.testing
from difflux import ode

HAS_JAX = importlib.util.find_spec("jax") is not None

# Geometric Brownian motion dy = mu y dt + sigma y dW has the exact solution
# y(t) = y0 exp((mu - sigma^2 / 2) t + sigma W(t)) on the same path W.
MU, SIGMA, T = 0.5, 0.8, 1.0


def gbm_drift(t, y, params):
    return params[0] * y


def gbm_diffusion(t, y, params):
    return params[1] * y


def gbm_exact(y0, w, mu, sigma, t):
    return y0 * np.exp((mu - 0.5 * sigma**2) * t + sigma * w)


def fitted_order(step_sizes, errors):
    slope, _ = np.polyfit(np.log(step_sizes), np.log(errors), 1)
    return slope


def strong_order(solver, backend, num_paths=2000):
    # Each entry of y0 is an independent path (diagonal noise), so one solve
    # runs a whole Monte Carlo sample. Halving dt refines the same paths.
    key = dx.random.key(7, backend=backend)
    y0 = dx.asarray(np.ones(num_paths), backend=backend)
    params = (dx.asarray(MU, backend=backend), dx.asarray(SIGMA, backend=backend))
    w_end = np.asarray(ode.BrownianPath(key, 0.0, T, (num_paths,)).grid(0)[-1])
    exact = gbm_exact(1.0, w_end, MU, SIGMA, T)
    step_sizes = [2.0**-k for k in range(4, 9)]
    errors = []
    for dt in step_sizes:
        sol = ode.solve_sde(gbm_drift, gbm_diffusion, y0, (0.0, T), params, key=key, dt=dt, solver=solver)
        errors.append(np.mean(np.abs(np.asarray(sol.ys[-1]) - exact)))
    return fitted_order(step_sizes, errors)


@pytest.mark.parametrize(("solver", "order"), [(ode.EulerMaruyama(), 0.5), (ode.Milstein(), 1.0)])
def test_strong_order_on_gbm(solver, order):
    assert strong_order(solver, "numpy") == pytest.approx(order, abs=0.1)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
@pytest.mark.parametrize(("solver", "order"), [(ode.EulerMaruyama(), 0.5), (ode.Milstein(), 1.0)])
def test_strong_order_on_gbm_jax(solver, order):
    assert strong_order(solver, "jax") == pytest.approx(order, abs=0.1)


def test_milstein_error_on_one_grid():
    # At dt = 1/256 Milstein's mean pathwise error is about 0.2 * dt * E|y|
    # for these parameters, far below Euler-Maruyama's.
    num_paths, dt = 500, 2.0**-8
    key = dx.random.key(3, backend="numpy")
    y0, params = np.ones(num_paths), (MU, SIGMA)
    w_end = np.asarray(ode.BrownianPath(key, 0.0, T, (num_paths,)).grid(0)[-1])
    exact = gbm_exact(1.0, w_end, MU, SIGMA, T)
    errors = {}
    for solver in (ode.EulerMaruyama(), ode.Milstein()):
        sol = ode.solve_sde(gbm_drift, gbm_diffusion, y0, (0.0, T), params, key=key, dt=dt, solver=solver)
        errors[type(solver).__name__] = np.mean(np.abs(np.asarray(sol.ys[-1]) - exact))
    assert errors["Milstein"] < 0.01
    assert errors["Milstein"] < errors["EulerMaruyama"] / 5


WEAK_CASES = [
    (ode.EulerMaruyama(), "numpy"),
    (ode.Milstein(), "numpy"),
    pytest.param(ode.EulerMaruyama(), "jax", marks=pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")),
]


@pytest.mark.parametrize(
    ("solver", "backend"), WEAK_CASES, ids=["EulerMaruyama-numpy", "Milstein-numpy", "EulerMaruyama-jax"]
)
def test_weak_moments_of_gbm(solver, backend):
    # E y(T) = y0 exp(mu T), Var y(T) = y0^2 exp(2 mu T) (exp(sigma^2 T) - 1).
    # The tolerance is five Monte Carlo standard errors plus the O(dt) bias
    # bound of both weak-order-1 schemes (about mu^2 T dt and its square).
    mu, sigma, dt, num_paths = 0.5, 0.4, 2.0**-6, 20000
    key = dx.random.key(11, backend=backend)
    y0 = dx.asarray(np.ones(num_paths), backend=backend)
    params = (dx.asarray(mu, backend=backend), dx.asarray(sigma, backend=backend))
    sol = ode.solve_sde(gbm_drift, gbm_diffusion, y0, (0.0, T), params, key=key, dt=dt, solver=solver)
    samples = np.asarray(sol.ys[-1])
    mean, variance = samples.mean(), samples.var()
    centred = samples - mean
    mean_error = samples.std() / np.sqrt(num_paths)
    variance_error = np.sqrt(np.mean(centred**4) - variance**2) / np.sqrt(num_paths)
    exact_mean = np.exp(mu * T)
    exact_variance = np.exp(2 * mu * T) * (np.exp(sigma**2 * T) - 1.0)
    bias = 2 * mu**2 * T * dt * exact_mean
    assert abs(mean - exact_mean) < 5 * mean_error + bias
    assert abs(variance - exact_variance) < 5 * variance_error + 2 * bias * exact_mean


def test_same_key_same_path_and_other_key_differs(backend):
    y0 = dx.asarray(np.ones(4), backend=backend)
    params = (MU, SIGMA)

    def final(seed):
        key = dx.random.key(seed, backend=backend)
        return np.asarray(ode.solve_sde(gbm_drift, gbm_diffusion, y0, (0.0, 1.0), params, key=key, dt=0.125).ys[-1])

    np.testing.assert_array_equal(final(0), final(0))
    assert not np.allclose(final(0), final(1))


def test_brownian_path_refines_and_has_brownian_increments(backend):
    key = dx.random.key(5, backend=backend)
    path = ode.BrownianPath(key, 0.0, 2.0, (4000,))
    coarse, fine = np.asarray(path.grid(3)), np.asarray(path.grid(7))
    np.testing.assert_array_equal(coarse, fine[::16])
    assert np.all(coarse[0] == 0.0)
    # Increments over 2 / 2^7: mean 0, variance dt, uncorrelated in time.
    increments = np.diff(fine, axis=0)
    dt = 2.0 / 2**7
    num = increments.size
    assert abs(increments.mean()) < 5 * np.sqrt(dt / num)
    assert increments.var() == pytest.approx(dt, rel=5 * np.sqrt(2.0 / num))
    correlation = np.mean(increments[:-1] * increments[1:]) / dt
    assert abs(correlation) < 5 / np.sqrt(num)


def test_refined_solve_uses_same_path():
    # With dt and dt / 2, W(T) is the same, so the Milstein solutions agree to O(dt).
    key = dx.random.key(2, backend="numpy")
    finals = [
        np.asarray(
            ode.solve_sde(
                gbm_drift, gbm_diffusion, np.ones(200), (0.0, T), (MU, SIGMA), key=key, dt=dt, solver=ode.Milstein()
            ).ys[-1]
        )
        for dt in (2.0**-8, 2.0**-9)
    ]
    assert np.mean(np.abs(finals[0] - finals[1])) < 0.01


def test_gradients_match_finite_differences(backend, to_backend):
    key = dx.random.key(4, backend=backend)

    def loss(y0, params):
        sol = ode.solve_sde(
            gbm_drift, gbm_diffusion, y0, (0.0, 0.5), params, key=key, dt=1.0 / 16, solver=ode.Milstein()
        )
        return dx.sum(sol.ys[-1] ** 2)

    args = (to_backend([1.0, 0.5, 2.0]), (to_backend(MU), to_backend(SIGMA)))
    difflux.core.testing.check_grads(loss, args, order=1, rtol=1e-5, atol=1e-8)


def test_gradient_with_respect_to_y0_is_linear_scaling(backend, to_backend):
    # GBM is linear in y0, and so is every Euler-Maruyama step: dY_N/dy0 = Y_N / y0.
    key = dx.random.key(8, backend=backend)

    def final(y0):
        return ode.solve_sde(gbm_drift, gbm_diffusion, y0, (0.0, 1.0), (MU, SIGMA), key=key, dt=0.25).ys[-1, 0]

    y0 = to_backend([1.5])
    gradient = dx.grad(final)(y0)
    assert float(gradient[0]) == pytest.approx(float(final(y0)) / 1.5, rel=1e-12)


def test_general_noise_matches_diagonal_when_diagonal():
    # A diagonal matrix g with noise_shape=(d,) is the diagonal case.
    key = dx.random.key(9, backend="numpy")
    y0 = np.array([1.0, 2.0])

    def matrix_diffusion(t, y, params):
        return dx.stack([dx.stack([params[1] * y[0], 0.0 * y[0]]), dx.stack([0.0 * y[1], params[1] * y[1]])])

    common = {"key": key, "dt": 0.125}
    diagonal = ode.solve_sde(gbm_drift, gbm_diffusion, y0, (0.0, 1.0), (MU, SIGMA), **common)
    general = ode.solve_sde(gbm_drift, matrix_diffusion, y0, (0.0, 1.0), (MU, SIGMA), noise_shape=(2,), **common)
    np.testing.assert_allclose(np.asarray(general.ys), np.asarray(diagonal.ys), rtol=1e-14)


def test_additive_noise_mean_and_variance():
    # Ornstein-Uhlenbeck dy = -theta y dt + s dW from y0: E y(T) = y0 exp(-theta T),
    # Var y(T) = s^2 (1 - exp(-2 theta T)) / (2 theta).
    theta, s, num_paths = 1.5, 0.7, 20000
    key = dx.random.key(12, backend="numpy")
    sol = ode.solve_sde(
        lambda t, y, args: -theta * y,
        lambda t, y, args: s + 0.0 * y,
        np.full(num_paths, 2.0),
        (0.0, 1.0),
        key=key,
        dt=2.0**-7,
    )
    samples = np.asarray(sol.ys[-1])
    variance = s**2 * (1 - np.exp(-2 * theta)) / (2 * theta)
    assert samples.mean() == pytest.approx(2.0 * np.exp(-theta), abs=5 * np.sqrt(variance / num_paths) + 0.01)
    assert samples.var() == pytest.approx(variance, rel=5 * np.sqrt(2.0 / num_paths) + 0.02)


def test_saveat_steps_ts_and_structures():
    key = dx.random.key(1, backend="numpy")
    y0 = {"a": np.array(1.0), "b": np.ones(2)}
    field = lambda t, y, args: {"a": -y["a"], "b": 0.5 * y["b"]}  # noqa: E731
    saveat = ode.SaveAt(t0=True, ts=[0.25, 0.5], steps=True, t1=True)
    sol = ode.solve_sde(field, field, y0, (0.0, 1.0), key=key, dt=0.25, saveat=saveat)
    np.testing.assert_allclose(np.asarray(sol.ts), [0.0, 0.25, 0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    assert sol.ys["a"].shape == (9,)
    assert sol.ys["b"].shape == (9, 2)
    np.testing.assert_array_equal(np.asarray(sol.ys["b"])[1], np.asarray(sol.ys["b"])[4])
    assert sol.stats["num_steps"] == 4


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_jit_matches_eager():
    key = dx.random.key(6, backend="jax")
    y0 = dx.asarray(np.ones(8), backend="jax")

    def final(y0, mu):
        sol = ode.solve_sde(gbm_drift, gbm_diffusion, y0, (0.0, 1.0), (mu, SIGMA), key=key, dt=1 / 16)
        return dx.sum(sol.ys[-1])

    # 16 steps: differentiated eagerly, the scan runs in Python, so only
    # the jit call compiles.
    mu = dx.asarray(MU, backend="jax")
    value_and_grad = dx.value_and_grad(final, argnums=1)
    (eager_value, eager_grad), (value, gradient) = value_and_grad(y0, mu), dx.jit(value_and_grad)(y0, mu)
    assert float(value) == pytest.approx(float(eager_value), rel=1e-12)
    assert float(gradient) == pytest.approx(float(eager_grad), rel=1e-12)


def test_invalid_settings_raise():
    key = dx.random.key(0, backend="numpy")
    y0 = np.ones(2)
    with pytest.raises(ValueError, match=r"dt = 0.3 does not divide t1 - t0 = 1.0 into whole steps"):
        ode.solve_sde(gbm_drift, gbm_diffusion, y0, (0.0, 1.0), (MU, SIGMA), key=key, dt=0.3)
    with pytest.raises(ValueError, match="dt must be positive"):
        ode.solve_sde(gbm_drift, gbm_diffusion, y0, (0.0, 1.0), (MU, SIGMA), key=key, dt=-0.1)
    with pytest.raises(ValueError, match="need t1 > t0"):
        ode.solve_sde(gbm_drift, gbm_diffusion, y0, (1.0, 0.0), (MU, SIGMA), key=key, dt=0.1)
    with pytest.raises(NotImplementedError, match="Milstein supports diagonal noise only"):
        ode.solve_sde(
            gbm_drift,
            gbm_diffusion,
            y0,
            (0.0, 1.0),
            (MU, SIGMA),
            key=key,
            dt=0.5,
            solver=ode.Milstein(),
            noise_shape=(3,),
        )
    with pytest.raises(ValueError, match=r"diffusion returned shape \(2,\), but y0 of shape \(2,\) with noise_shape"):
        ode.solve_sde(gbm_drift, gbm_diffusion, y0, (0.0, 1.0), (MU, SIGMA), key=key, dt=0.5, noise_shape=(3,))
    with pytest.raises(ValueError, match=r"the drift returned shapes \[\(3,\)\].*y0 has shapes \[\(2,\)\]"):
        ode.solve_sde(lambda t, y, a: dx.ones(3), gbm_diffusion, y0, (0.0, 1.0), (MU, SIGMA), key=key, dt=0.5)
    with pytest.raises(ValueError, match=r"SaveAt\.ts must be times on the step grid"):
        ode.solve_sde(
            gbm_drift, gbm_diffusion, y0, (0.0, 1.0), (MU, SIGMA), key=key, dt=0.5, saveat=ode.SaveAt(ts=[0.3])
        )
    with pytest.raises(NotImplementedError, match="dense=True"):
        ode.solve_sde(
            gbm_drift, gbm_diffusion, y0, (0.0, 1.0), (MU, SIGMA), key=key, dt=0.5, saveat=ode.SaveAt(dense=True)
        )


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_key_on_other_backend_raises():
    with pytest.raises(ValueError, match="the key is a jax key but y0 is on numpy"):
        ode.solve_sde(
            gbm_drift, gbm_diffusion, np.ones(2), (0.0, 1.0), (MU, SIGMA), key=dx.random.key(0, backend="jax"), dt=0.5
        )
