"""Warm-up adaptation of the step size and the mass matrix, as in Stan.

* Step size: dual averaging (Hoffman & Gelman, "The No-U-Turn Sampler",
  JMLR 2014, section 3.2 and algorithm 5) drives the mean acceptance
  statistic to ``target_accept_prob``. The constants are the paper's:
  ``gamma = 0.05``, ``t0 = 10``, ``kappa = 0.75``, ``mu = log(10 * eps0)``.
  Warm-up ends on the averaged iterate ``exp(log_step_size_avg)``.
* Initial step size: the heuristic of the same paper (algorithm 4) doubles
  or halves the step until the acceptance ratio of one leapfrog step
  crosses 1/2.
* Mass matrix: Stan's windowed scheme (Stan Reference Manual, "HMC
  algorithm parameters", automatic parameter tuning). A fast initial
  buffer (75 iterations) adapts only the step size; then slow windows of
  25, 50, 100, ... iterations each estimate the posterior (co)variance with
  Welford's online algorithm, the last window stretching to the terminal
  buffer (50 iterations), where only the step size adapts again. At the
  end of each slow window the inverse mass matrix becomes the regularised
  estimate ``n / (n + 5) * Sigma + 1e-3 * 5 / (n + 5) * I``, the step size
  is searched again and dual averaging restarts. With fewer than 150
  warm-up iterations the buffers shrink to 15% / 75% / 10%, as in Stan.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import difflux.core as dx

from ._integrator import IntegratorState, kinetic_energy, leapfrog, sample_momentum, scale_momentum

_GAMMA, _T0, _KAPPA = 0.05, 10.0, 0.75


class DualAveragingState(NamedTuple):
    """The iterates of dual averaging on ``log(step_size)``."""

    log_step_size: Any
    log_step_size_avg: Any
    h_bar: Any
    mu: Any
    t: Any


class WelfordState(NamedTuple):
    """Running mean and sum of squared deviations (or of outer products) of the draws."""

    mean: Any
    m2: Any
    n: Any


class AdaptState(NamedTuple):
    """Everything warm-up tunes: the step size, the metric and the estimators behind them."""

    step_size: Any
    inverse_mass_matrix: Any
    mass_matrix_sqrt: Any
    dual_averaging: DualAveragingState
    welford: WelfordState


# --------------------------------------------------------------------------
# Dual averaging
# --------------------------------------------------------------------------


def dual_averaging_init(step_size: Any) -> DualAveragingState:
    """Start dual averaging around ``mu = log(10 * step_size)``."""
    log_step = dx.log(step_size)
    zero = dx.zeros_like(log_step)
    return DualAveragingState(log_step, zero, zero, dx.log(10.0 * step_size), zero)


def dual_averaging_update(state: DualAveragingState, accept_prob: Any, target: float) -> DualAveragingState:
    """Take one dual-averaging step towards the acceptance statistic ``target``."""
    t = state.t + 1.0
    weight = 1.0 / (t + _T0)
    h_bar = (1.0 - weight) * state.h_bar + weight * (target - accept_prob)
    log_step = state.mu - dx.sqrt(t) / _GAMMA * h_bar
    eta = t ** (-_KAPPA)
    log_step_avg = eta * log_step + (1.0 - eta) * state.log_step_size_avg
    return DualAveragingState(log_step, log_step_avg, h_bar, state.mu, t)


# --------------------------------------------------------------------------
# Welford (co)variance
# --------------------------------------------------------------------------


def welford_init(size: int, dense: bool, like: Any) -> WelfordState:
    """Return an empty estimator for vectors of ``size`` entries (of ``like``'s backend and dtype)."""
    mean = dx.zeros_like(like)
    m2 = dx.zeros_like(dx.zeros_like(like)[:, None] * like[None, :]) if dense else dx.zeros_like(like)
    return WelfordState(mean, m2, dx.zeros_like(like[0]))


def welford_update(state: WelfordState, x: Any) -> WelfordState:
    """Add the vector ``x`` to the estimate (Welford 1962)."""
    n = state.n + 1.0
    delta = x - state.mean
    mean = state.mean + delta / n
    if state.m2.ndim == 2:
        m2 = state.m2 + delta[:, None] * (x - mean)[None, :]
    else:
        m2 = state.m2 + delta * (x - mean)
    return WelfordState(mean, m2, n)


def welford_covariance(state: WelfordState) -> Any:
    """Return Stan's regularised (co)variance estimate of the draws added so far."""
    n = state.n
    covariance = state.m2 / dx.maximum(n - 1.0, 1.0)
    shrink = n / (n + 5.0)
    jitter = 1e-3 * 5.0 / (n + 5.0)
    if covariance.ndim == 2:
        identity = dx.eye(covariance.shape[0], dtype=covariance.dtype, backend=backend_name(covariance))
        return shrink * covariance + jitter * identity
    return shrink * covariance + jitter


def backend_name(x: Any) -> str:
    """Return ``"numpy"`` for NumPy values and ``"jax"`` for JAX arrays and tracers."""
    # dx.backend_of sees through tracers, dx.vmap's batches included.
    return dx.backend_of(x) or "numpy"


def to_backend(tree: Any, backend: str) -> Any:
    """Return ``tree`` with every array leaf on ``backend``.

    NumPy leaves move to JAX with ``jax.device_put``, which copies them and
    compiles nothing, where ``jnp.asarray`` compiles a program per shape and
    dtype (JAX 0.10).
    """
    if backend != "jax":
        return dx.tree_map(lambda leaf: dx.asarray(leaf, backend=backend), tree)
    import jax

    def move(leaf: Any) -> Any:
        if isinstance(leaf, np.ndarray | np.generic):
            return jax.device_put(leaf)
        return dx.asarray(leaf, backend="jax")

    return dx.tree_map(move, tree)


def mass_matrix_sqrt_of(inverse_mass_matrix: Any) -> Any:
    """Return the square root of ``M`` used to draw momenta: ``sqrt(1 / diag)`` or ``cholesky(inv(M^-1))``."""
    if inverse_mass_matrix.ndim == 1:
        return 1.0 / dx.sqrt(inverse_mass_matrix)
    return dx.linalg.cholesky(dx.linalg.inv(inverse_mass_matrix))


# --------------------------------------------------------------------------
# Initial step size
# --------------------------------------------------------------------------


def find_reasonable_step_size(
    key: Any,
    state: IntegratorState,
    step_size: Any,
    inverse_mass_matrix: Any,
    mass_matrix_sqrt: Any,
    potential_and_grad: Callable[[Any], tuple[Any, Any]],
    max_steps: int = 100,
    *,
    momentum: Any = None,
) -> Any:
    """Double or halve ``step_size`` until one leapfrog step's acceptance ratio crosses 1/2.

    Hoffman & Gelman (2014), algorithm 4. A step that produces a non-finite
    energy counts as rejected, so the search halves away from it. The search
    stops after ``max_steps`` changes (a flat density would double forever).
    The momentum is drawn from ``key``, unless ``momentum`` gives it (``key``
    is then unused).
    """
    r = sample_momentum(key, mass_matrix_sqrt, state.z) if momentum is None else momentum
    start = IntegratorState(state.z, r, state.potential_energy, state.z_grad)
    energy = state.potential_energy + kinetic_energy(r, inverse_mass_matrix)

    def log_ratio(eps: Any) -> Any:
        # A step far too large may overflow (exp of a constraining transform, the
        # kinetic energy), and the search counts its infinite or NaN energy as a
        # rejection, so NumPy's floating-point warnings are noise here.
        with np.errstate(all="ignore"):
            new = leapfrog(start, eps, inverse_mass_matrix, potential_and_grad)
            delta = energy - (new.potential_energy + kinetic_energy(new.r, inverse_mass_matrix))
        return dx.where(dx.isnan(delta), -dx.inf, delta)

    # The loop contains the only leapfrog call, so compiled code traces the potential once.
    # The first pass evaluates step_size and picks the direction; later passes double or halve.
    log_two = math.log(2.0)

    def keep_going(carry: tuple[Any, Any, Any, Any]) -> Any:
        _, ratio, direction, count = carry
        return (count == 0) | (direction * ratio > -direction * log_two)

    def step(carry: tuple[Any, Any, Any, Any]) -> tuple[Any, Any, Any, Any]:
        eps, _, direction, count = carry
        eps = dx.where(count == 0, eps, eps * dx.exp(direction * log_two))
        ratio = log_ratio(eps)
        direction = dx.where(count == 0, dx.where(ratio > -log_two, 1.0, -1.0), direction)
        return eps, ratio, direction, count + 1

    zero = dx.zeros_like(energy)
    start_carry = (step_size + zero, zero, zero + 1.0, dx.astype(zero, dx.int32))
    eps, _, _, _ = dx.while_loop(keep_going, step, start_carry, max_steps=max_steps + 1)
    return eps


# --------------------------------------------------------------------------
# The windowed schedule
# --------------------------------------------------------------------------


def build_adaptation_schedule(
    num_warmup: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25
) -> list[tuple[int, int]]:
    """Return Stan's slow windows as ``(start, end)`` iteration pairs, ``end`` inclusive.

    Each window doubles the previous one; the last one absorbs what is left
    before the terminal buffer. Returns ``[]`` when warm-up is too short
    (under 20 iterations) for any mass-matrix window.
    """
    if num_warmup < 20:
        return []
    if init_buffer + base_window + term_buffer > num_warmup:
        init_buffer = int(0.15 * num_warmup)
        term_buffer = int(0.1 * num_warmup)
        base_window = num_warmup - init_buffer - term_buffer
    windows = []
    start = init_buffer
    size = base_window
    last = num_warmup - term_buffer
    while start < last:
        end = start + size
        if end + 2 * size > last:
            end = last
        windows.append((start, end - 1))
        start = end
        size *= 2
    return windows


class WarmupAdapter:
    """Per-iteration warm-up updates for one sampler configuration.

    Args:
        num_warmup: the number of warm-up iterations.
        adapt_step_size: whether dual averaging tunes the step size.
        adapt_mass_matrix: whether the slow windows estimate the metric.
        dense_mass: a dense (full covariance) metric instead of a diagonal one.
        target_accept_prob: the acceptance statistic dual averaging aims at.
    """

    def __init__(
        self,
        num_warmup: int,
        *,
        adapt_step_size: bool,
        adapt_mass_matrix: bool,
        dense_mass: bool,
        target_accept_prob: float,
    ) -> None:
        self.num_warmup = num_warmup
        self.adapt_step_size = adapt_step_size
        self.adapt_mass_matrix = adapt_mass_matrix
        self.dense_mass = dense_mass
        self.target_accept_prob = target_accept_prob
        windows = build_adaptation_schedule(num_warmup) if adapt_mass_matrix else []
        # Per-iteration flags, padded with False entries: iteration num_warmup (the first draw)
        # reads entry num_warmup and every later iteration the final one.
        slow = np.zeros(num_warmup + 2, dtype=bool)
        end = np.zeros(num_warmup + 2, dtype=bool)
        refresh = np.zeros(num_warmup + 2, dtype=bool)
        refresh[0] = True
        for first, last in windows:
            slow[first : last + 1] = True
            end[last] = True
            refresh[last + 1] = adapt_step_size
        self.adapt_step_size = adapt_step_size and num_warmup > 0
        self.windows = windows
        self._slow = slow
        self._end = end
        self._refresh = refresh

    def init(self, z: Any, step_size: Any, inverse_mass_matrix: Any) -> AdaptState:
        """Return the state before the first warm-up iteration."""
        welford = welford_init(z.shape[0], self.dense_mass, z)
        return AdaptState(
            step_size,
            inverse_mass_matrix,
            mass_matrix_sqrt_of(inverse_mass_matrix),
            dual_averaging_init(step_size),
            welford,
        )

    def refresh(
        self,
        i: Any,
        state: AdaptState,
        noise: Any,
        integrator_state: IntegratorState,
        potential_and_grad: Callable[[Any], tuple[Any, Any]],
    ) -> tuple[AdaptState, IntegratorState]:
        """Before iteration ``i``: evaluate the potential where needed and search a step size where scheduled.

        ``noise`` is a standard normal vector like ``z``; the search's momentum
        is ``noise`` scaled by the current mass matrix's square root.

        The first iteration evaluates the potential and its gradient at the
        initial position (chains start without them, so that no potential is
        evaluated outside the compiled loop), and with ``adapt_step_size``
        searches the initial step size; the iteration after each slow window
        searches again for the new metric. A search restarts dual averaging
        around the step size it finds. The condition depends on ``i`` only,
        so under ``dx.vmap`` over chains (with ``i`` shared) it stays a branch
        and runs only where needed.
        """

        def search(operands: tuple[AdaptState, IntegratorState]) -> tuple[AdaptState, IntegratorState]:
            s, point = operands
            potential_energy, z_grad = potential_and_grad(point.z)
            point = IntegratorState(point.z, point.r, potential_energy, z_grad)
            if self.adapt_step_size:
                eps = find_reasonable_step_size(
                    None,
                    point,
                    s.step_size,
                    s.inverse_mass_matrix,
                    s.mass_matrix_sqrt,
                    potential_and_grad,
                    momentum=scale_momentum(noise, s.mass_matrix_sqrt),
                )
                s = s._replace(step_size=eps, dual_averaging=dual_averaging_init(eps))
            return s, point

        flag = self._lookup(self._refresh, i, integrator_state.z)
        return dx.cond(flag, search, lambda operands: operands, (state, integrator_state))

    def update(self, i: Any, state: AdaptState, z: Any, accept_prob: Any) -> AdaptState:
        """Update ``state`` after iteration ``i`` (no change once ``i >= num_warmup``) moved the chain to ``z``."""
        if self.num_warmup == 0:
            return state
        in_slow = self._lookup(self._slow, i, z)
        at_end = self._lookup(self._end, i, z)
        in_warmup = i < self.num_warmup
        is_last = i == self.num_warmup - 1

        if self.adapt_step_size:
            dual = dual_averaging_update(state.dual_averaging, accept_prob, self.target_accept_prob)
            step_size = dx.where(is_last, dx.exp(dual.log_step_size_avg), dx.exp(dual.log_step_size))
            state = state._replace(
                step_size=dx.where(in_warmup, step_size, state.step_size),
                dual_averaging=_select(in_warmup, dual, state.dual_averaging),
            )

        if not self.windows:
            return state
        welford = dx.cond(in_slow, lambda w: welford_update(w, z), lambda w: w, state.welford)
        state = state._replace(welford=welford)

        def end_window(s: AdaptState) -> AdaptState:
            inverse_mass = welford_covariance(s.welford)
            welford_reset = welford_init(z.shape[0], self.dense_mass, z)
            return s._replace(
                inverse_mass_matrix=inverse_mass,
                mass_matrix_sqrt=mass_matrix_sqrt_of(inverse_mass),
                welford=welford_reset,
            )

        return dx.cond(at_end, end_window, lambda s: s, state)

    def _lookup(self, flags: np.ndarray, i: Any, like: Any) -> Any:
        """Return ``flags[i]``, reading the final False entry for every ``i > num_warmup``."""
        if isinstance(i, int | np.integer):
            return bool(flags[min(int(i), self.num_warmup + 1)])
        return dx.asarray(flags, backend=backend_name(like))[dx.minimum(i, self.num_warmup + 1)]


def _select(pred: Any, a: Any, b: Any) -> Any:
    return dx.tree_map(lambda x, y: dx.where(pred, x, y), a, b)
