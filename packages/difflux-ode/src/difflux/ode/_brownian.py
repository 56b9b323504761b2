"""Brownian motion from an explicit key, refined by Brownian bridges.

Lévy's construction samples ``W`` on the dyadic grid
``t0 + span * j / 2^L`` level by level: ``W(t0 + span) = sqrt(span) Z_0``,
and each new midpoint of an interval of length ``h`` is the mean of its
ends plus ``sqrt(h / 4) Z``, the Brownian bridge's conditional law. Level
``l`` draws its ``Z`` from ``dx.random.fold_in(key, l)``, so the values on
a coarse grid never change when finer levels are added: halving the step
size refines the same Brownian path.
"""

from __future__ import annotations

import math
from typing import Any

import difflux.core as dx
from difflux.core._backend import backend_of_value
from difflux.core._core import value_of


class BrownianPath:
    """A Brownian motion on ``[t0, t0 + span]``, sampled on dyadic grids.

    ``W(t0) = 0`` and the increments are independent normal with variance
    equal to the time elapsed, one independent motion per entry of
    ``shape``. The path is a function of ``key``: :meth:`grid` with more
    levels returns the same values at the coarse times, plus the Brownian
    bridge between them.

    Args:
        key: a ``dx.random`` key; its backend is that of the samples.
        t0: the start time.
        span: the length of the interval (positive).
        shape: the shape of ``W(t)``.
        dtype: a float dtype (default float64).

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import ode
        >>> path = ode.BrownianPath(dx.random.key(0, backend="numpy"), 0.0, 1.0, (3,))
        >>> coarse, fine = path.grid(2), path.grid(5)
        >>> bool((coarse == fine[::8]).all())
        True
    """

    def __init__(self, key: Any, t0: float, span: float, shape: tuple[int, ...] = (), dtype: Any = None) -> None:
        if not span > 0:
            raise ValueError(f"BrownianPath: span must be positive, got {span!r}")
        self.key = key
        self.t0 = t0
        self.span = float(span)
        self.shape = tuple(shape)
        self.dtype = dx.float64 if dtype is None else dtype

    def grid(self, levels: int) -> Any:
        """Return ``W`` at ``t0 + span * j / 2**levels`` for ``j = 0, ..., 2**levels``; shape ``(2**levels + 1, *shape)``."""
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
            raise ValueError(f"BrownianPath.grid: levels must be a non-negative integer, got {levels!r}")
        end = math.sqrt(self.span) * self._normal(0, self.shape)
        values = dx.stack([dx.zeros_like(end), end])
        for level in range(1, levels + 1):
            # The parent intervals have length span / 2**(level - 1); a
            # bridge midpoint has variance a quarter of that.
            scale = math.sqrt(self.span / 2 ** (level + 1))
            noise = self._normal(level, (2 ** (level - 1), *self.shape))
            midpoints = 0.5 * (values[:-1] + values[1:]) + scale * noise
            interleaved = dx.reshape(dx.stack([values[:-1], midpoints], axis=1), (2**level, *self.shape))
            values = dx.concat([interleaved, values[-1:]])
        return values

    def increments(self, levels: int, num_steps: int) -> Any:
        """Return the first ``num_steps`` increments on the grid of ``2**levels`` intervals."""
        values = self.grid(levels)
        return values[1 : num_steps + 1] - values[:num_steps]

    def _normal(self, level: int, shape: tuple[int, ...]) -> Any:
        return dx.random.normal(dx.random.fold_in(self.key, level), shape, dtype=self.dtype)


def key_backend(key: Any) -> str:
    """Return the backend of a ``dx.random`` key."""
    return backend_of_value(value_of(key)) or "numpy"
