"""The leapfrog integrator and the fixed-length HMC kernel."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from difflux import ppl
from difflux.ppl.infer._integrator import (
    IntegratorState,
    kinetic_energy,
    leapfrog,
    make_potential_and_grad,
    ravel_pytree,
)

SCALES = np.array([1.0, 3.0])


def gaussian_potential(backend: str):
    inverse_variance = dx.asarray(1.0 / SCALES**2, backend=backend)
    return lambda z: 0.5 * dx.sum(z**2 * inverse_variance)


def integrate(state: IntegratorState, step_size: float, num_steps: int, inverse_mass, potential_and_grad):
    for _ in range(num_steps):
        state = leapfrog(state, step_size, inverse_mass, potential_and_grad)
    return state


def test_leapfrog_reversible_on_pytree(backend: str) -> None:
    def potential(z):
        return 0.5 * dx.sum(z["a"] ** 2) + 0.25 * dx.sum(z["b"] ** 4)

    potential_and_grad = make_potential_and_grad(potential)
    z = {"a": dx.asarray(np.array([0.3, -1.2]), backend=backend), "b": dx.asarray(np.array([[0.7]]), backend=backend)}
    r = {"a": dx.asarray(np.array([1.0, 0.5]), backend=backend), "b": dx.asarray(np.array([[-0.4]]), backend=backend)}
    pe, grad = potential_and_grad(z)
    start = IntegratorState(z, r, pe, grad)
    inverse_mass = dx.asarray(np.array(0.7), backend=backend)

    end = integrate(start, 0.1, 25, inverse_mass, potential_and_grad)
    flipped = IntegratorState(end.z, dx.tree_map(lambda v: -v, end.r), end.potential_energy, end.z_grad)
    back = integrate(flipped, 0.1, 25, inverse_mass, potential_and_grad)

    for name in ("a", "b"):
        np.testing.assert_allclose(np.asarray(back.z[name]), np.asarray(z[name]), atol=1e-10)
        np.testing.assert_allclose(-np.asarray(back.r[name]), np.asarray(r[name]), atol=1e-10)


@pytest.mark.parametrize("dense", [False, True])
def test_leapfrog_energy_error_second_order(backend: str, dense: bool) -> None:
    potential_and_grad = make_potential_and_grad(gaussian_potential(backend))
    z = dx.asarray(np.array([1.0, -2.0]), backend=backend)
    r = dx.asarray(np.array([0.5, 0.8]), backend=backend)
    inverse_mass = np.array([[1.0, 0.3], [0.3, 2.0]]) if dense else np.array([1.0, 2.0])
    inverse_mass = dx.asarray(inverse_mass, backend=backend)
    pe, grad = potential_and_grad(z)
    start = IntegratorState(z, r, pe, grad)
    energy = float(pe + kinetic_energy(r, inverse_mass))

    errors = []
    step_sizes = [0.2, 0.1, 0.05]
    for step_size in step_sizes:
        end = integrate(start, step_size, round(2.0 / step_size), inverse_mass, potential_and_grad)
        errors.append(abs(float(end.potential_energy + kinetic_energy(end.r, inverse_mass)) - energy))
    order = np.polyfit(np.log(step_sizes), np.log(errors), 1)[0]
    assert abs(order - 2.0) < 0.2, f"fitted energy-error order {order}, errors {errors}"


def test_ravel_pytree_round_trip(backend: str) -> None:
    tree = {
        "x": dx.asarray(np.arange(6.0).reshape(2, 3), backend=backend),
        "y": dx.asarray(np.array(7.0), backend=backend),
    }
    flat, unravel = ravel_pytree(tree)
    assert tuple(flat.shape) == (7,)
    back = unravel(flat)
    np.testing.assert_array_equal(np.asarray(back["x"]), np.asarray(tree["x"]))
    np.testing.assert_array_equal(np.asarray(back["y"]), 7.0)


def test_hmc_gaussian_moments(backend: str) -> None:
    kernel = ppl.HMC(potential_fn=gaussian_potential(backend), trajectory_length=1.5)
    mcmc = ppl.MCMC(kernel, num_warmup=300, num_samples=1000, progress_bar=False)
    mcmc.run(dx.random.key(3, backend=backend), init_params=dx.asarray(np.array([0.5, 0.5]), backend=backend))
    draws = np.asarray(mcmc.get_samples(group_by_chain=True))
    pooled = draws.reshape(-1, 2)
    ess = ppl.diagnostics.ess(draws, "mean")
    mean_error = SCALES / np.sqrt(ess)
    assert np.all(np.abs(pooled.mean(0)) < 4 * mean_error), (pooled.mean(0), mean_error)
    # The standard error of a variance estimate is about var * sqrt(2 / ess).
    variance_error = SCALES**2 * np.sqrt(2.0 / ess)
    assert np.all(np.abs(pooled.var(0) - SCALES**2) < 4 * variance_error), (pooled.var(0), variance_error)


def test_hmc_requires_one_target() -> None:
    with pytest.raises(ValueError, match="exactly one of model= or potential_fn="):
        ppl.HMC()
    with pytest.raises(ValueError, match="got both"):
        ppl.HMC(model=lambda: None, potential_fn=lambda z: z)


def test_hmc_rejects_invalid_settings() -> None:
    with pytest.raises(ValueError, match="step_size must be positive"):
        ppl.HMC(potential_fn=lambda z: z, step_size=0.0)
    with pytest.raises(ValueError, match="target_accept_prob"):
        ppl.HMC(potential_fn=lambda z: z, target_accept_prob=1.5)
    with pytest.raises(ValueError, match="trajectory_length"):
        ppl.HMC(potential_fn=lambda z: z, trajectory_length=-1.0)


def test_potential_fn_needs_init_params() -> None:
    mcmc = ppl.MCMC(ppl.HMC(potential_fn=lambda z: dx.sum(z**2)), num_warmup=5, num_samples=5, progress_bar=False)
    with pytest.raises(ValueError, match="needs init_params"):
        mcmc.run(dx.random.key(0, backend="numpy"))


def test_inverse_mass_matrix_shape_checked() -> None:
    kernel = ppl.HMC(potential_fn=lambda z: dx.sum(z**2), inverse_mass_matrix=np.ones(3))
    mcmc = ppl.MCMC(kernel, num_warmup=5, num_samples=5, progress_bar=False)
    with pytest.raises(ValueError, match=r"needs shape \(2,\)"):
        mcmc.run(dx.random.key(0, backend="numpy"), init_params=np.zeros(2))


def test_fixed_metric_without_adaptation(backend: str) -> None:
    kernel = ppl.HMC(
        potential_fn=gaussian_potential(backend),
        step_size=0.3,
        trajectory_length=1.2,
        adapt_step_size=False,
        adapt_mass_matrix=False,
    )
    mcmc = ppl.MCMC(kernel, num_warmup=10, num_samples=20, progress_bar=False)
    mcmc.run(
        dx.random.key(0, backend=backend),
        init_params=dx.zeros(2, backend=backend),
        extra_fields=("step_size", "num_steps"),
    )
    fields = mcmc.get_extra_fields()
    np.testing.assert_allclose(np.asarray(fields["step_size"]), 0.3)
    np.testing.assert_array_equal(np.asarray(fields["num_steps"]), 4)


def _bumpy_potential(z):
    return 0.5 * dx.sum(z**2 / SCALES**2) + dx.sum(dx.log1p(z**2))


def test_numpy_potential_and_grad_replays_a_recording() -> None:
    # On NumPy the potential and its gradient are recorded on the first call
    # of each shape (one chain, or the chains under dx.vmap) and replayed,
    # with the bits of an eager evaluation.
    potential_and_grad = make_potential_and_grad(_bumpy_potential)
    eager = dx.value_and_grad(_bumpy_potential)
    points = [np.array([1.0, -2.0]), np.array([0.3, 0.1]), np.array([-4.0, 2.5])]
    for z in points:
        for value, reference in zip(potential_and_grad(z), eager(z)):
            np.testing.assert_array_equal(value, reference)
    batch = np.stack(points)
    for value, reference in zip(dx.vmap(potential_and_grad)(batch), dx.vmap(eager)(batch)):
        np.testing.assert_array_equal(np.asarray(value), np.asarray(reference))
    assert set(potential_and_grad.programs) == {
        (False, (2,), np.dtype(np.float64)),
        (True, (3, 2), np.dtype(np.float64)),
    }
    assert all(program is not None for program in potential_and_grad.programs.values())


def test_numpy_potential_that_branches_on_values_runs_eagerly() -> None:
    def branching(z):
        return dx.sum(z**2) if float(dx.stop_gradient(z[0])) > 0 else dx.sum(z**4)

    potential_and_grad = make_potential_and_grad(branching)
    for z, expected in [(np.array([1.5, 2.0]), 6.25), (np.array([-1.5, 2.0]), 21.0625)]:
        value, grad = potential_and_grad(z)
        assert float(value) == expected
        np.testing.assert_array_equal(grad, 2 * z if z[0] > 0 else 4 * z**3)
    assert list(potential_and_grad.programs.values()) == [None]
