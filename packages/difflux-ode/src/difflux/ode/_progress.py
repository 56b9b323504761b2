"""A tqdm progress bar over ``t`` for ``solve(..., progress=True)``.

The loop body reports the time after every step. On NumPy (and JAX outside
``jit``) the values are concrete and the bar moves directly. Inside
``jax.jit`` the time is a tracer, so the body sends it to the host with
``jax.debug.callback`` and the bar moves while the compiled loop runs.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

import difflux.core as dx
from difflux.core._core import value_of

_warned_about_tqdm = False

# The bar shows the fraction of [t0, t1] covered, in this many units.
_TOTAL = 1000


class ProgressBar:
    """Show how far the solve has come from ``t0`` to ``t1``.

    The bar only moves forwards: the backward pass of reverse-mode
    differentiation recomputes earlier steps, and those times do not move
    it back. A solve that starts again after the bar finished (another call
    of a compiled function) opens a new bar.
    """

    def __init__(self, t0: Any, t1: Any) -> None:
        global _warned_about_tqdm
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
            if not _warned_about_tqdm:
                _warned_about_tqdm = True
                warnings.warn(
                    "solve(progress=True) shows a bar with tqdm, which is not installed; install tqdm "
                    "(pip install tqdm) or pass progress=False",
                    stacklevel=3,
                )
        self._tqdm: Any = tqdm
        self._t0, self._t1 = t0, t1
        self._bar: Any = None
        self._fraction = 0.0

    def update(self, t: Any) -> None:
        """Report the time ``t`` reached; inside ``jit`` the bar moves when the compiled code runs."""
        if self._tqdm is None:
            return
        values = [value_of(dx.stop_gradient(v)) for v in (t, self._t0, self._t1)]
        if any(_is_jax_tracer(v) for v in values):
            import jax

            jax.debug.callback(self._move, *values)
        else:
            self._move(*values)

    def close(self, t: Any) -> None:
        """Move an open bar to ``t`` and close it; inside ``jit`` this happens when the compiled code runs."""
        if self._tqdm is None:
            return
        values = [value_of(dx.stop_gradient(v)) for v in (t, self._t0, self._t1)]
        if any(_is_jax_tracer(v) for v in values):
            import jax

            jax.debug.callback(self._finish, *values)
        else:
            self._finish(*values)

    def _finish(self, t: Any, t0: Any, t1: Any) -> None:
        if self._bar is None:  # never opened, or closed when it reached t1
            return
        self._move(t, t0, t1)
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _move(self, t: Any, t0: Any, t1: Any) -> None:
        t, t0, t1 = (float(np.asarray(v)) for v in (t, t0, t1))
        span = t1 - t0
        fraction = 1.0 if span == 0 or not math.isfinite(t) else min(max((t - t0) / span, 0.0), 1.0)
        if self._bar is None:
            self._bar = self._tqdm(total=_TOTAL, desc="solve", unit="‰", leave=False)
            self._fraction = 0.0
        if fraction > self._fraction:
            self._fraction = fraction
            self._bar.n = round(_TOTAL * fraction)
            self._bar.set_postfix_str(f"t={t:.6g}", refresh=False)
            self._bar.refresh()
        if fraction >= 1.0:
            self._bar.close()
            self._bar = None


def _is_jax_tracer(value: Any) -> bool:
    return type(value).__name__.endswith("Tracer")
