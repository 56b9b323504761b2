"""The format of the registry that drives the gradient sweep.

Each ``cases_<area>.py`` module in this folder defines ``CASES``, a list of
:class:`Case`. ``test_sweep.py`` checks every case with
``difflux.core.testing.check_grads`` (forward and reverse mode, to second
order, float64) on every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Case:
    """One differentiable function and how to draw its arguments.

    Attributes:
        name: the test id, usually the operation's name plus a variant.
        fn: the function under test; it takes the drawn arrays positionally.
        args: draws the float64 NumPy arguments from a generator; the sweep
            converts them to the backend under test.
        order: the highest derivative order checked.
        modes: which of "fwd" and "rev" are checked.
        rtol, atol, eps: passed to ``check_grads``.
        backends: the backends the case runs on.
    """

    name: str
    fn: Callable[..., Any]
    args: Callable[[np.random.Generator], Sequence[np.ndarray]]
    order: int = 2
    modes: tuple[str, ...] = ("fwd", "rev")
    rtol: float = 1e-5
    atol: float = 1e-6
    eps: float = 1e-5
    backends: tuple[str, ...] = ("numpy", "jax")
    static: dict[str, Any] = field(default_factory=dict)


def uniform(
    *shapes: tuple[int, ...], low: float = -2.0, high: float = 2.0
) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """An ``args`` drawer of independent uniform arrays with the given shapes."""

    def draw(rng: np.random.Generator) -> list[np.ndarray]:
        return [rng.uniform(low, high, size=shape) for shape in shapes]

    return draw
