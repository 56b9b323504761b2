"""choose_sensitivity: the automatic choice of solve(..., sensitivity=None)."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from difflux import ode


def decay(t, y, args):
    return -args[0] * y


def choice_under_grad(y0, args, **settings):
    """Return the method chosen for a solve whose ``args`` are being differentiated."""
    chosen = []
    options = {"saveat": ode.SaveAt(t1=True), "solver": ode.Tsit5(), "adaptive": True}
    options.update(settings)
    field = options.pop("field", decay)

    def loss(args):
        chosen.append(choose(field, y0, args, **options))
        return dx.sum(args[0])

    dx.grad(loss)(args)
    return chosen[0]


def choose(field, y0, args, *, saveat, solver, adaptive):
    return ode.choose_sensitivity(field, y0, (0.0, 1.0), args, saveat, solver, adaptive)


def test_nothing_differentiated_keeps_checkpoints():
    method = choose(
        decay, np.ones(2), (np.array([0.5]),), saveat=ode.SaveAt(t1=True), solver=ode.Tsit5(), adaptive=True
    )
    assert isinstance(method, ode.RecursiveCheckpointAdjoint)


def test_few_columns_use_forward_sensitivity():
    method = choice_under_grad(np.ones(2), (np.array([0.5]), np.ones(3)))
    assert isinstance(method, ode.ForwardSensitivity)


def test_undifferentiated_parameters_count_as_columns():
    method = choice_under_grad(np.ones(2), (np.array([0.5]), np.ones(30)))
    assert isinstance(method, ode.RecursiveCheckpointAdjoint)


@pytest.mark.parametrize(
    "settings",
    [
        {"saveat": ode.SaveAt(dense=True)},
        {"saveat": ode.SaveAt(steps=True)},
        {"adaptive": False},
        {"solver": ode.Kvaerno5()},
        {"solver": ode.AutoSwitch()},
    ],
    ids=["dense", "steps", "constant-steps", "implicit", "auto-switch"],
)
def test_exact_cases_keep_checkpoints(settings):
    method = choice_under_grad(np.ones(2), (np.array([0.5]),), **settings)
    assert isinstance(method, ode.RecursiveCheckpointAdjoint)


def test_closure_over_traced_value_keeps_checkpoints():
    chosen = []

    def loss(rate, scale):
        def field(t, y, args):
            return -rate * args[0] * y

        settings = {"saveat": ode.SaveAt(t1=True), "solver": ode.Tsit5(), "adaptive": True}
        chosen.append(choose(field, np.ones(2), (scale,), **settings))
        return dx.sum(ode.solve(field, np.ones(2), (0.0, 1.0), (scale,), solver=ode.Tsit5()).ys)

    grad_rate, grad_scale = dx.grad(loss, argnums=(0, 1))(np.array([0.5]), np.array([2.0]))
    assert isinstance(chosen[0], ode.RecursiveCheckpointAdjoint)
    # The sum is 2 exp(-rate * scale).
    assert float(grad_rate[0]) == pytest.approx(-2.0 * 2.0 * np.exp(-1.0), rel=1e-5)
    assert float(grad_scale[0]) == pytest.approx(-2.0 * 0.5 * np.exp(-1.0), rel=1e-5)
