"""MLP gradient: 64-128-128-10, batch 128, float32, softmax cross-entropy.

The same network and data in difflux (NumPy eager; JAX compiled), PyTorch
eager, HIPS autograd and JAX (``jax.jit(jax.grad)``). Each library computes
the gradient of the mean cross-entropy with respect to every weight and bias,
written the way its users would write it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from _timing import time_once

SIZES = (64, 128, 128, 10)
BATCH = 128


def make_data(seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = [
        (
            (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32),
            np.zeros(n_out, np.float32),
        )
        for n_in, n_out in itertools.pairwise(SIZES)
    ]
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    labels = rng.integers(0, SIZES[-1], BATCH)
    onehot = np.eye(SIZES[-1], dtype=np.float32)[labels]
    return params, x, onehot


def difflux_loss(dx: Any) -> Any:
    def loss(params: Any, x: Any, onehot: Any) -> Any:
        h = x
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i < len(params) - 1:
                h = dx.maximum(h, 0.0)
        log_probs = h - dx.logsumexp(h, axis=1, keepdims=True)
        return -dx.mean(dx.sum(onehot * log_probs, axis=1))

    return loss


def make_difflux_numpy() -> Callable[[], Any]:
    import difflux.core as dx

    params, x, onehot = make_data()
    grad = dx.grad(difflux_loss(dx))
    return lambda: grad(params, x, onehot)


def make_torch() -> Callable[[], Any]:
    import torch

    torch.set_num_threads(1)
    params, x, onehot = make_data()
    tparams = [(torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)) for w, b in params]
    tx = torch.tensor(x)
    labels = torch.tensor(onehot.argmax(axis=1))
    flat = [p for pair in tparams for p in pair]

    def step() -> Any:
        h = tx
        for i, (w, b) in enumerate(tparams):
            h = h @ w + b
            if i < len(tparams) - 1:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, labels)
        return torch.autograd.grad(loss, flat)

    return step


def make_autograd() -> Callable[[], Any]:
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp

    params, x, onehot = make_data()

    def loss(params: Any) -> Any:
        h = x
        for i, (w, b) in enumerate(params):
            h = anp.dot(h, w) + b
            if i < len(params) - 1:
                h = anp.maximum(h, 0.0)
        log_probs = h - logsumexp(h, axis=1, keepdims=True)
        return -anp.mean(anp.sum(onehot * log_probs, axis=1))

    grad = autograd.grad(loss)
    return lambda: grad(params)


def _jax_inputs() -> tuple[Any, Any, Any]:
    import jax.numpy as jnp

    params, x, onehot = make_data()
    jparams = [(jnp.asarray(w), jnp.asarray(b)) for w, b in params]
    return jparams, jnp.asarray(x), jnp.asarray(onehot)


def _jax_loss() -> Any:
    import jax
    import jax.numpy as jnp

    def loss(params: Any, x: Any, onehot: Any) -> Any:
        h = x
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i < len(params) - 1:
                h = jnp.maximum(h, 0.0)
        log_probs = jax.nn.log_softmax(h, axis=1)
        return -jnp.mean(jnp.sum(onehot * log_probs, axis=1))

    return loss


def make_jax_run(which: str) -> Callable[[], Any]:
    """A compiled gradient step: ``which`` is "jax" (jax.jit(jax.grad)) or "difflux"."""
    import jax

    args = _jax_inputs()
    fn = _compiled(which)
    jax.block_until_ready(fn(*args))
    return lambda: jax.block_until_ready(fn(*args))


def _compiled(which: str) -> Any:
    import jax

    if which == "jax":
        return jax.jit(jax.grad(_jax_loss()))
    import difflux.core as dx

    return dx.jit(dx.grad(difflux_loss(dx)))


def bench_jax_compile(which: str, run_time: float, repeats: int = 5) -> float:
    """Median time of the first call of a fresh function (trace + compile), less one run."""
    import jax

    args = _jax_inputs()
    times = []
    for _ in range(repeats):
        fn = _compiled(which)
        times.append(time_once(lambda fn=fn: jax.block_until_ready(fn(*args))) - run_time)
    return float(np.median(times))
