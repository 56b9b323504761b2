"""500 chained element-wise operations on a length-10 vector, then the gradient.

This measures per-operation overhead of the reverse-mode engine: the arrays
are tiny, so the time is almost all bookkeeping (recording and walking the
tape). The chain alternates sin, multiply by a constant, tanh, exp and add.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from _timing import time_call

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
            x = exp(x) * 0.5
        else:
            x = x + 0.1
    return x


def bench_difflux(number: int) -> float:
    import difflux.core as dx

    v = np.linspace(-1.0, 1.0, 10)
    grad = dx.grad(lambda x: dx.sum(_chain((dx.sin, dx.tanh, dx.exp), x)))
    return time_call(lambda: grad(v), number=number)


def bench_torch(number: int) -> float:
    import torch

    torch.set_num_threads(1)
    v = torch.linspace(-1.0, 1.0, 10, dtype=torch.float64)

    def step() -> Any:
        x = v.clone().requires_grad_(True)
        out = _chain((torch.sin, torch.tanh, torch.exp), x).sum()
        return torch.autograd.grad(out, x)

    return time_call(step, number=number)


def bench_autograd(number: int) -> float:
    import autograd
    import autograd.numpy as anp

    v = np.linspace(-1.0, 1.0, 10)
    grad = autograd.grad(lambda x: anp.sum(_chain((anp.sin, anp.tanh, anp.exp), x)))
    return time_call(lambda: grad(v), number=number)
