"""Learning-rate schedules: pure functions of the step count.

A schedule maps the number of updates made so far (``0`` for the first
update, as in Optax) to a value. Rules call it with their step count, an
int32 array, so a schedule is written with difflux operations and no Python
branching on the step: it runs on NumPy, on JAX and under ``dx.jit`` with a
traced step. Each schedule is a frozen dataclass, so two equal schedules
compare equal and ``dx.jit`` reuses one compiled step for both.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import difflux.core as dx


class Schedule:
    """Base of the schedules here; any callable ``step -> value`` works as a schedule too."""

    def __call__(self, step: Any) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        arguments = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return f"{_FACTORY_NAMES.get(type(self), type(self).__name__)}({arguments})"


def _as_step(step: Any) -> Any:
    """Return the step as an array of the backend's default float dtype."""
    step = step if dx.is_array(step) else dx.asarray(step)
    # Multiplying by a Python float gives the default float (float64 on NumPy
    # and on JAX with float64 enabled), whereas dividing an int32 step by an
    # int gives float32 on JAX.
    return step * 1.0


def _check_value(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{owner}: {name} must be a Python number, got {value!r}")
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{owner}: {name} must be a non-negative finite number, got {value!r}")


def _check_steps(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{owner}: {name} must be a positive integer number of steps, got {value!r}")


def _check_begin(owner: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{owner}: transition_begin must be an integer number of steps >= 0, got {value!r}")


def _fraction(step: Any, begin: int, length: int) -> Any:
    """Return ``(step - begin) / length`` clipped to [0, 1]."""
    return dx.clip((step - begin) / length, 0.0, 1.0)


def _cosine_between(start: float, end: float, fraction: Any) -> Any:
    return end + (start - end) * 0.5 * (1 + dx.cos(math.pi * fraction))


def _linear_between(start: float, end: float, fraction: Any) -> Any:
    return start + (end - start) * fraction


# --------------------------------------------------------------------------
# The schedules
# --------------------------------------------------------------------------


# repr=False keeps Schedule.__repr__, which prints the call that builds the schedule.
@dataclasses.dataclass(frozen=True, repr=False)
class _Constant(Schedule):
    value: float

    def __post_init__(self) -> None:
        _check_value("constant", value=self.value)

    def __call__(self, step: Any) -> Any:
        del step
        return self.value


# repr=False keeps Schedule.__repr__, which prints the call that builds the schedule.
@dataclasses.dataclass(frozen=True, repr=False)
class _PiecewiseConstant(Schedule):
    init_value: float
    boundaries_and_scales: tuple[tuple[int, float], ...]

    def __post_init__(self) -> None:
        _check_value("piecewise_constant", init_value=self.init_value)
        for boundary, scale in self.boundaries_and_scales:
            _check_steps("piecewise_constant", boundary=boundary)
            _check_value("piecewise_constant", scale=scale)

    def __call__(self, step: Any) -> Any:
        step = _as_step(step)
        value = self.init_value
        for boundary, scale in self.boundaries_and_scales:
            value = value * dx.where(step >= boundary, scale, 1.0)
        return value


# repr=False keeps Schedule.__repr__, which prints the call that builds the schedule.
@dataclasses.dataclass(frozen=True, repr=False)
class _ExponentialDecay(Schedule):
    init_value: float
    decay_rate: float
    transition_steps: int
    staircase: bool = False
    transition_begin: int = 0
    end_value: float | None = None

    def __post_init__(self) -> None:
        _check_value("exponential_decay", init_value=self.init_value, decay_rate=self.decay_rate)
        _check_steps("exponential_decay", transition_steps=self.transition_steps)
        _check_begin("exponential_decay", self.transition_begin)
        if self.end_value is not None:
            _check_value("exponential_decay", end_value=self.end_value)

    def __call__(self, step: Any) -> Any:
        step = _as_step(step)
        exponent = dx.maximum(step - self.transition_begin, 0) / self.transition_steps
        if self.staircase:
            exponent = dx.floor(exponent)
        value = self.init_value * self.decay_rate**exponent
        if self.end_value is not None:
            bound = dx.maximum if self.decay_rate < 1 else dx.minimum
            value = bound(value, self.end_value)
        return value


# repr=False keeps Schedule.__repr__, which prints the call that builds the schedule.
@dataclasses.dataclass(frozen=True, repr=False)
class _PolynomialDecay(Schedule):
    init_value: float
    end_value: float
    decay_steps: int
    power: float = 1.0
    transition_begin: int = 0

    def __post_init__(self) -> None:
        _check_value("polynomial_decay", init_value=self.init_value, end_value=self.end_value, power=self.power)
        _check_steps("polynomial_decay", decay_steps=self.decay_steps)
        _check_begin("polynomial_decay", self.transition_begin)

    def __call__(self, step: Any) -> Any:
        fraction = _fraction(_as_step(step), self.transition_begin, self.decay_steps)
        return (self.init_value - self.end_value) * (1 - fraction) ** self.power + self.end_value


# repr=False keeps Schedule.__repr__, which prints the call that builds the schedule.
@dataclasses.dataclass(frozen=True, repr=False)
class _CosineDecay(Schedule):
    init_value: float
    decay_steps: int
    alpha: float = 0.0

    def __post_init__(self) -> None:
        _check_value("cosine_decay", init_value=self.init_value, alpha=self.alpha)
        _check_steps("cosine_decay", decay_steps=self.decay_steps)

    def __call__(self, step: Any) -> Any:
        fraction = _fraction(_as_step(step), 0, self.decay_steps)
        return _cosine_between(self.init_value, self.alpha * self.init_value, fraction)


# repr=False keeps Schedule.__repr__, which prints the call that builds the schedule.
@dataclasses.dataclass(frozen=True, repr=False)
class _WarmupCosine(Schedule):
    peak_value: float
    warmup_steps: int
    decay_steps: int
    init_value: float = 0.0
    end_value: float = 0.0

    def __post_init__(self) -> None:
        owner = "warmup_cosine"
        _check_value(owner, peak_value=self.peak_value, init_value=self.init_value, end_value=self.end_value)
        _check_steps(owner, warmup_steps=self.warmup_steps, decay_steps=self.decay_steps)
        if self.decay_steps <= self.warmup_steps:
            raise ValueError(
                f"{owner}: decay_steps ({self.decay_steps}) counts the warm-up too, so it must exceed "
                f"warmup_steps ({self.warmup_steps})"
            )

    def __call__(self, step: Any) -> Any:
        step = _as_step(step)
        warmup = _linear_between(self.init_value, self.peak_value, _fraction(step, 0, self.warmup_steps))
        length = self.decay_steps - self.warmup_steps
        decay = _cosine_between(self.peak_value, self.end_value, _fraction(step, self.warmup_steps, length))
        return dx.where(step < self.warmup_steps, warmup, decay)


# repr=False keeps Schedule.__repr__, which prints the call that builds the schedule.
@dataclasses.dataclass(frozen=True, repr=False)
class _OneCycle(Schedule):
    max_value: float
    total_steps: int
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal: str = "cos"

    def __post_init__(self) -> None:
        _check_value("one_cycle", max_value=self.max_value)
        _check_steps("one_cycle", total_steps=self.total_steps)
        if not 0 < self.pct_start < 1:
            raise ValueError(f"one_cycle: pct_start must be in (0, 1), got {self.pct_start!r}")
        if not self.div_factor > 0 or not self.final_div_factor > 0:
            raise ValueError(
                f"one_cycle: div_factor and final_div_factor must be positive, got {self.div_factor!r} "
                f"and {self.final_div_factor!r}"
            )
        if self.anneal not in ("cos", "linear"):
            raise ValueError(f"one_cycle: anneal must be 'cos' or 'linear', got {self.anneal!r}")

    def __call__(self, step: Any) -> Any:
        step = _as_step(step)
        initial = self.max_value / self.div_factor
        final = initial / self.final_div_factor
        peak_step = max(int(self.pct_start * self.total_steps), 1)
        between = _cosine_between if self.anneal == "cos" else _linear_between
        rising = between(initial, self.max_value, _fraction(step, 0, peak_step))
        falling = between(self.max_value, final, _fraction(step, peak_step, max(self.total_steps - peak_step, 1)))
        return dx.where(step < peak_step, rising, falling)


_FACTORY_NAMES = {
    _Constant: "constant",
    _PiecewiseConstant: "piecewise_constant",
    _ExponentialDecay: "exponential_decay",
    _PolynomialDecay: "polynomial_decay",
    _CosineDecay: "cosine_decay",
    _WarmupCosine: "warmup_cosine",
    _OneCycle: "one_cycle",
}


# --------------------------------------------------------------------------
# Public constructors
# --------------------------------------------------------------------------


def constant(value: float) -> Schedule:
    """Return the schedule that is ``value`` at every step.

    Examples:
        >>> from difflux import optim
        >>> optim.constant(0.1)(100)
        0.1
    """
    return _Constant(value)


def piecewise_constant(init_value: float, boundaries_and_scales: dict[int, float]) -> Schedule:
    """Return a schedule that multiplies its value by a factor at given steps.

    .. math:: \\eta_t = \\eta_0 \\prod_{b_i \\le t} s_i

    where :math:`\\eta_0` is ``init_value`` and each pair :math:`(b_i, s_i)`
    of ``boundaries_and_scales`` scales the value from step :math:`b_i` on.

    Examples:
        >>> from difflux import optim
        >>> schedule = optim.piecewise_constant(1.0, {10: 0.1, 20: 0.5})
        >>> [float(schedule(t)) for t in (0, 10, 20)]
        [1.0, 0.1, 0.05]
    """
    return _PiecewiseConstant(init_value, tuple(sorted(boundaries_and_scales.items())))


def exponential_decay(
    init_value: float,
    decay_rate: float,
    transition_steps: int,
    *,
    staircase: bool = False,
    transition_begin: int = 0,
    end_value: float | None = None,
) -> Schedule:
    """Return a schedule that decays by ``decay_rate`` every ``transition_steps`` steps.

    .. math:: \\eta_t = \\eta_0 \\, r^{\\max(t - t_0, 0) / T}

    where :math:`\\eta_0` is ``init_value``, :math:`r` is ``decay_rate``,
    :math:`T` is ``transition_steps`` and :math:`t_0` is
    ``transition_begin``. ``staircase=True`` rounds the exponent down, which
    gives step decay (PyTorch's ``StepLR``). ``end_value`` bounds the value
    (below when decaying, above when growing).

    Examples:
        >>> from difflux import optim
        >>> schedule = optim.exponential_decay(1.0, 0.5, 10, staircase=True)
        >>> [float(schedule(t)) for t in (0, 9, 10, 25)]
        [1.0, 1.0, 0.5, 0.25]
    """
    return _ExponentialDecay(init_value, decay_rate, transition_steps, staircase, transition_begin, end_value)


def polynomial_decay(
    init_value: float, end_value: float, decay_steps: int, *, power: float = 1.0, transition_begin: int = 0
) -> Schedule:
    """Return a schedule that moves from ``init_value`` to ``end_value`` along a polynomial.

    .. math:: \\eta_t = (\\eta_0 - \\eta_T)\\,(1 - \\tau)^p + \\eta_T,
        \\qquad \\tau = \\operatorname{clip}((t - t_0) / T, 0, 1)

    where :math:`\\eta_0` is ``init_value``, :math:`\\eta_T` is ``end_value``,
    :math:`T` is ``decay_steps``, :math:`p` is ``power`` and :math:`t_0` is
    ``transition_begin``. ``power=1`` is a linear ramp, which also serves as
    a warm-up when ``end_value > init_value``.

    Examples:
        >>> from difflux import optim
        >>> schedule = optim.polynomial_decay(1.0, 0.0, 10)
        >>> [float(schedule(t)) for t in (0, 5, 10, 20)]
        [1.0, 0.5, 0.0, 0.0]
    """
    return _PolynomialDecay(init_value, end_value, decay_steps, power, transition_begin)


def cosine_decay(init_value: float, decay_steps: int, *, alpha: float = 0.0) -> Schedule:
    """Return the cosine annealing schedule of SGDR, without restarts.

    .. math:: \\eta_t = \\eta_0 \\left(\\alpha + (1 - \\alpha)\\,
        \\tfrac12 \\bigl(1 + \\cos(\\pi \\min(t, T) / T)\\bigr)\\right)

    where :math:`\\eta_0` is ``init_value``, :math:`T` is ``decay_steps`` and
    :math:`\\alpha` is ``alpha``, the final value as a fraction of the first.

    References:
        Loshchilov and Hutter, "SGDR: Stochastic Gradient Descent with Warm
        Restarts", ICLR 2017.

    Examples:
        >>> from difflux import optim
        >>> schedule = optim.cosine_decay(1.0, 100)
        >>> [round(float(schedule(t)), 6) for t in (0, 50, 100)]
        [1.0, 0.5, 0.0]
    """
    return _CosineDecay(init_value, decay_steps, alpha)


def warmup_cosine(
    peak_value: float, warmup_steps: int, decay_steps: int, *, init_value: float = 0.0, end_value: float = 0.0
) -> Schedule:
    """Return a linear warm-up to ``peak_value`` followed by cosine decay to ``end_value``.

    For :math:`t < W` the value rises linearly from ``init_value`` to
    ``peak_value`` (:math:`W` is ``warmup_steps``). From :math:`W` to
    :math:`T` (``decay_steps``, which counts the warm-up too, as in Optax)
    it falls along half a cosine to ``end_value``, and stays there.

    Examples:
        >>> from difflux import optim
        >>> schedule = optim.warmup_cosine(1.0, warmup_steps=10, decay_steps=110)
        >>> [round(float(schedule(t)), 6) for t in (0, 5, 10, 60, 110)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    return _WarmupCosine(peak_value, warmup_steps, decay_steps, init_value, end_value)


def one_cycle(
    max_value: float,
    total_steps: int,
    *,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal: str = "cos",
) -> Schedule:
    """Return the one-cycle learning-rate policy.

    The value rises from ``max_value / div_factor`` to ``max_value`` over
    the first ``pct_start`` of ``total_steps``, then falls to
    ``max_value / (div_factor * final_div_factor)`` at ``total_steps`` and
    stays there. ``anneal`` is ``"cos"`` (half cosines, as in PyTorch's
    ``OneCycleLR`` and Optax's ``cosine_onecycle_schedule``) or ``"linear"``
    (straight lines, as in Smith's paper). Defaults follow PyTorch.

    References:
        Smith, "A disciplined approach to neural network hyper-parameters:
        Part 1", arXiv:1803.09820, 2018.

    Examples:
        >>> from difflux import optim
        >>> schedule = optim.one_cycle(1.0, 100)
        >>> [round(float(schedule(t)), 6) for t in (0, 30, 100)]
        [0.04, 1.0, 4e-06]
    """
    return _OneCycle(max_value, total_steps, pct_start, div_factor, final_div_factor, anneal)
