"""solve(progress=True): the bar's positions, eagerly and under jit, and results unchanged."""

from __future__ import annotations

import importlib.util
import sys
from typing import ClassVar

import numpy as np
import pytest

import difflux.core as dx
from difflux import ode
from difflux.ode import _progress

HAS_JAX = importlib.util.find_spec("jax") is not None
TSIT5 = ode.Tsit5()


class RecordingBar:
    """A stand-in for tqdm that records the positions it is moved to."""

    instances: ClassVar[list[RecordingBar]] = []

    def __init__(self, total, **kwargs):
        self.total = total
        self.n = 0
        self.positions: list[int] = []
        self.closed = False
        RecordingBar.instances.append(self)

    def set_postfix_str(self, text, refresh=True):
        self.postfix = text

    def refresh(self):
        self.positions.append(self.n)

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    import tqdm.auto

    RecordingBar.instances = []
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    return RecordingBar.instances


def decay(t, y, args):
    return -y


def test_bar_moves_forward_to_the_end(backend, to_backend, bars):
    sol = ode.solve(decay, to_backend([1.0]), (0.0, 2.0), solver=TSIT5, progress=True)
    (bar,) = bars
    assert bar.positions == sorted(bar.positions)
    assert len(bar.positions) == int(sol.stats["num_accepted"])
    assert bar.positions[-1] == bar.total
    assert bar.closed
    assert bar.postfix == "t=2"


def test_progress_leaves_results_unchanged(backend, to_backend, bars):
    plain = ode.solve(decay, to_backend([1.0]), (0.0, 2.0), solver=TSIT5)
    with_bar = ode.solve(decay, to_backend([1.0]), (0.0, 2.0), solver=TSIT5, progress=True)
    np.testing.assert_array_equal(np.asarray(plain.ys), np.asarray(with_bar.ys))


def test_bar_stops_at_terminal_event(bars):
    event = ode.Event(lambda t, y, args: y[0] - 0.5)
    sol = ode.solve(decay, np.array([1.0]), (0.0, 4.0), solver=TSIT5, events=event, progress=True)
    (bar,) = bars
    # The event at log 2 covers about 17% of [0, 4]; the bar closes there.
    assert bar.positions[-1] == round(1000 * float(sol.event_time) / 4.0)
    assert bar.closed


def test_bar_under_gradient_never_moves_back(bars):
    def loss(y0):
        return dx.sum(ode.solve(decay, y0, (0.0, 1.0), solver=TSIT5, progress=True, max_steps=16).ys)

    gradient = dx.grad(loss)(np.array([2.0]))
    assert float(gradient[0]) == pytest.approx(np.exp(-1.0), rel=1e-6)
    for bar in bars:
        assert bar.positions == sorted(bar.positions)
    assert bars[0].positions[-1] == 1000


@pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")
def test_bar_moves_inside_jit(bars):
    import jax

    def final(y0):
        return ode.solve(decay, y0, (0.0, 2.0), solver=TSIT5, progress=True).ys

    compiled = dx.jit(final)
    y0 = dx.asarray(np.array([1.0]), backend="jax")
    ys = compiled(y0)
    jax.effects_barrier()
    np.testing.assert_allclose(np.asarray(ys), [[np.exp(-2.0)]], rtol=1e-6)
    assert bars[-1].positions[-1] == 1000
    assert bars[-1].closed
    # A second call of the compiled function opens a new bar.
    compiled(y0)
    jax.effects_barrier()
    assert len(bars) == 2
    assert bars[-1].positions[-1] == 1000


def test_missing_tqdm_warns_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setattr(_progress, "_warned_about_tqdm", False)
    with pytest.warns(UserWarning, match="tqdm, which is not installed"):
        sol = ode.solve(decay, np.array([1.0]), (0.0, 1.0), solver=TSIT5, progress=True)
    assert float(sol.ys[0, 0]) == pytest.approx(np.exp(-1.0), rel=1e-6)
