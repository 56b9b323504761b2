"""500 chained element-wise operations on a length-10 vector, then the gradient.

This measures per-operation overhead of the reverse-mode engine: the arrays
are tiny, so the time is almost all bookkeeping (recording and walking the
tape). The chain repeats sin, multiply by a constant, tanh, exp and add a constant,
which keeps the values bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

LENGTH = 500


def _chain(ops: Any, x: Any) -> Any:
    sin, tanh, exp = ops
    for i in range(LENGTH):
        kind = i % 5
        if kind == 0:
            x = sin(x)
        elif kind == 1:
            x = x * 1.01
        elif kind == 2:
            x = tanh(x)
        elif kind == 3:
            x = exp(x)
        else:
            x = x + 0.1
    return x


def make_difflux() -> Callable[[], Any]:
    import difflux.core as dx

    v = np.linspace(-1.0, 1.0, 10)
    grad = dx.grad(lambda x: dx.sum(_chain((dx.sin, dx.tanh, dx.exp), x)))
    return lambda: grad(v)


def make_torch() -> Callable[[], Any]:
    import torch

    torch.set_num_threads(1)
    v = torch.linspace(-1.0, 1.0, 10, dtype=torch.float64)

    def step() -> Any:
        x = v.clone().requires_grad_(True)
        out = _chain((torch.sin, torch.tanh, torch.exp), x).sum()
        return torch.autograd.grad(out, x)

    return step


def make_autograd() -> Callable[[], Any]:
    import autograd
    import autograd.numpy as anp

    v = np.linspace(-1.0, 1.0, 10)
    grad = autograd.grad(lambda x: anp.sum(_chain((anp.sin, anp.tanh, anp.exp), x)))
    return lambda: grad(v)
