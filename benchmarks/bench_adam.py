"""One Adam training step of the digits MLP: 64-128-128-10, batch 128, float32.

A step computes the mean softmax cross-entropy of a batch and its gradient
with respect to every weight and bias, then applies one Adam update
(learning rate 1e-3; b1 = 0.9, b2 = 0.999 and eps = 1e-8, the defaults of
Kingma and Ba's Algorithm 1). Each library is written
the way its users would write it:

- difflux: an ``nn.Chain`` of ``nn.Dense`` layers, ``nn.logit_cross_entropy``,
  ``dx.value_and_grad`` and ``optim.setup``/``optim.update``, eager on NumPy
  and compiled whole by ``dx.jit`` on JAX;
- PyTorch eager: ``torch.nn.Sequential``, ``F.cross_entropy``,
  ``loss.backward()`` and ``torch.optim.Adam`` (its default implementation
  on CPU);
- HIPS autograd: ``autograd.grad`` of a NumPy loss and Adam written by hand
  on NumPy arrays;
- JAX: ``jax.value_and_grad`` and Adam written by hand with
  ``jax.tree_util.tree_map``, the whole step under ``jax.jit``;
- Equinox and Optax: ``eqx.nn.MLP``, ``optax.adam`` and ``eqx.filter_jit``.

Every step feeds its new parameters and optimiser state to the next call,
as a training loop does. Thread pinning is the caller's job (``run.py``,
or :func:`main` when this file runs on its own).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from _timing import time_once

SIZES = (64, 128, 128, 10)
BATCH = 128
LEARNING_RATE = 1e-3
B1, B2, EPS = 0.9, 0.999, 1e-8


def make_data(seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Return float32 weights ``(in, out)`` and biases, a batch of inputs and int64 labels."""
    rng = np.random.default_rng(seed)
    params = [
        (
            (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32),
            (0.1 * rng.standard_normal(n_out)).astype(np.float32),
        )
        for n_in, n_out in itertools.pairwise(SIZES)
    ]
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    labels = rng.integers(0, SIZES[-1], BATCH)
    return params, x, labels


# --------------------------------------------------------------------------
# difflux
# --------------------------------------------------------------------------


def _difflux_model(params: list[tuple[Any, Any]], backend: str) -> Any:
    import difflux.core as dx
    from difflux import nn

    keys = dx.random.split(dx.random.key(0, backend="numpy"), len(params))
    layers = []
    for i, ((w, b), key) in enumerate(zip(params, keys)):
        activation = nn.relu if i < len(params) - 1 else nn.identity
        layer = nn.Dense(w.shape[0], w.shape[1], activation, key=key, dtype=dx.float32)
        layers.append(dx.replace(layer, weight=np.ascontiguousarray(w.T), bias=b))
    model = nn.Chain(*layers)
    return dx.tree_map(lambda leaf: dx.asarray(leaf, backend=backend), model) if backend == "jax" else model


def _difflux_step() -> Callable[..., Any]:
    import difflux.core as dx
    from difflux import nn, optim

    def loss_fn(model: Any, x: Any, y: Any) -> Any:
        return nn.logit_cross_entropy(model(x), y)

    def step(model: Any, state: Any, x: Any, y: Any) -> Any:
        loss, grads = dx.value_and_grad(loss_fn)(model, x, y)
        state, model = optim.update(state, model, grads)
        return model, state, loss

    return step


def _difflux_setup(backend: str) -> tuple[Any, Any, Any, Any]:
    import difflux.core as dx
    from difflux import optim

    params, x, labels = make_data()
    model = _difflux_model(params, backend)
    state = optim.setup(optim.Adam(LEARNING_RATE, B1, B2, EPS), model)
    return model, state, dx.asarray(x, backend=backend), dx.asarray(labels.astype(np.int32), backend=backend)


def make_difflux_numpy() -> Callable[[], Any]:
    """Return an eager Adam step of difflux on NumPy."""
    step = _difflux_step()
    carry = list(_difflux_setup("numpy"))

    def run() -> Any:
        carry[0], carry[1], loss = step(*carry)
        return loss

    return run


def make_difflux_jit() -> Callable[[], Any]:
    """Return a ``dx.jit``-compiled Adam step of difflux on JAX."""
    import jax

    import difflux.core as dx

    step = dx.jit(_difflux_step())
    carry = list(_difflux_setup("jax"))

    def run() -> Any:
        carry[0], carry[1], loss = step(*carry)
        return jax.block_until_ready(loss)

    run()
    return run


def first_step_difflux() -> float:
    """Return the seconds of the first call of a fresh ``dx.jit`` step: tracing, compiling and one run."""
    import jax

    import difflux.core as dx

    step = dx.jit(_difflux_step())
    model, state, x, y = _difflux_setup("jax")
    return time_once(lambda: jax.block_until_ready(step(model, state, x, y)))


# --------------------------------------------------------------------------
# PyTorch and HIPS autograd
# --------------------------------------------------------------------------


def make_torch() -> Callable[[], Any]:
    """Return an eager Adam step of PyTorch."""
    import torch

    torch.set_num_threads(1)
    params, x, labels = make_data()
    linears = []
    for w, b in params:
        linear = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        linears.append(linear)
    model = torch.nn.Sequential(linears[0], torch.nn.ReLU(), linears[1], torch.nn.ReLU(), linears[2])
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=(B1, B2), eps=EPS)
    tx, ty = torch.from_numpy(x), torch.from_numpy(labels)

    def run() -> Any:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(tx), ty)
        loss.backward()
        optimiser.step()
        return loss

    return run


def make_autograd() -> Callable[[], Any]:
    """Return an Adam step of HIPS autograd, with Adam written by hand on NumPy arrays."""
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp

    params, x, labels = make_data()
    onehot = np.eye(SIZES[-1], dtype=np.float32)[labels]
    flat = [array.copy() for pair in params for array in pair]
    mu = [np.zeros_like(p) for p in flat]
    nu = [np.zeros_like(p) for p in flat]
    count = [0]

    def loss(flat: list[Any]) -> Any:
        h = x
        for i in range(0, len(flat), 2):
            h = anp.dot(h, flat[i]) + flat[i + 1]
            if i < len(flat) - 2:
                h = anp.maximum(h, 0.0)
        log_probs = h - logsumexp(h, axis=1, keepdims=True)
        return -anp.mean(anp.sum(onehot * log_probs, axis=1))

    value_and_grad = autograd.value_and_grad(loss)

    def run() -> Any:
        value, grads = value_and_grad(flat)
        count[0] += 1
        t = count[0]
        for i, g in enumerate(grads):
            mu[i] = B1 * mu[i] + (1 - B1) * g
            nu[i] = B2 * nu[i] + (1 - B2) * g * g
            mu_hat = mu[i] / (1 - B1**t)
            nu_hat = nu[i] / (1 - B2**t)
            flat[i] = flat[i] - LEARNING_RATE * mu_hat / (np.sqrt(nu_hat) + EPS)
        return value

    return run


# --------------------------------------------------------------------------
# JAX by hand, and Equinox with Optax
# --------------------------------------------------------------------------


def _jax_step() -> Callable[..., Any]:
    import jax
    import jax.numpy as jnp

    def loss_fn(params: Any, x: Any, y: Any) -> Any:
        h = x
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        log_probs = jax.nn.log_softmax(h, axis=-1)
        return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=-1))

    @jax.jit
    def step(params: Any, mu: Any, nu: Any, count: Any, x: Any, y: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        count = count + 1
        mu = jax.tree_util.tree_map(lambda m, g: B1 * m + (1 - B1) * g, mu, grads)
        nu = jax.tree_util.tree_map(lambda v, g: B2 * v + (1 - B2) * g * g, nu, grads)
        t = count.astype(jnp.float32)
        scale_mu, scale_nu = 1 / (1 - B1**t), 1 / (1 - B2**t)
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - LEARNING_RATE * (m * scale_mu) / (jnp.sqrt(v * scale_nu) + EPS), params, mu, nu
        )
        return params, mu, nu, count, loss

    return step


def _jax_setup() -> list[Any]:
    import jax.numpy as jnp

    params, x, labels = make_data()
    jparams = [(jnp.asarray(w), jnp.asarray(b)) for w, b in params]
    zeros = [(jnp.zeros_like(w), jnp.zeros_like(b)) for w, b in jparams]
    return [jparams, zeros, zeros, jnp.zeros((), jnp.int32), jnp.asarray(x), jnp.asarray(labels.astype(np.int32))]


def make_jax() -> Callable[[], Any]:
    """Return a hand-written Adam step under ``jax.jit``."""
    import jax

    step = _jax_step()
    carry = _jax_setup()

    def run() -> Any:
        carry[0], carry[1], carry[2], carry[3], loss = step(*carry)
        return jax.block_until_ready(loss)

    run()
    return run


def first_step_jax() -> float:
    """Return the seconds of the first call of a fresh ``jax.jit`` step: tracing, compiling and one run."""
    import jax

    step = _jax_step()
    carry = _jax_setup()
    return time_once(lambda: jax.block_until_ready(step(*carry)))


def _equinox_setup() -> tuple[Callable[..., Any], list[Any]]:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    params, x, labels = make_data()
    model = eqx.nn.MLP(
        SIZES[0], SIZES[-1], SIZES[1], depth=len(SIZES) - 2, activation=jax.nn.relu, key=jax.random.key(0)
    )
    for i, (w, b) in enumerate(params):
        model = eqx.tree_at(
            lambda m, i=i: (m.layers[i].weight, m.layers[i].bias), model, (jnp.asarray(w.T), jnp.asarray(b))
        )
    optimiser = optax.adam(LEARNING_RATE, b1=B1, b2=B2, eps=EPS)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))

    def loss_fn(model: Any, x: Any, y: Any) -> Any:
        logits = jax.vmap(model)(x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    @eqx.filter_jit
    def step(model: Any, opt_state: Any, x: Any, y: Any) -> Any:
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        updates, opt_state = optimiser.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    return step, [model, opt_state, jnp.asarray(x), jnp.asarray(labels.astype(np.int32))]


def make_equinox() -> Callable[[], Any]:
    """Return an Equinox and Optax Adam step under ``eqx.filter_jit``."""
    import jax

    step, carry = _equinox_setup()

    def run() -> Any:
        carry[0], carry[1], loss = step(*carry)
        return jax.block_until_ready(loss)

    run()
    return run


def first_step_equinox() -> float:
    """Return the seconds of the first call of a fresh ``eqx.filter_jit`` step: tracing, compiling and one run."""
    import jax

    step, carry = _equinox_setup()
    return time_once(lambda: jax.block_until_ready(step(*carry)))


def first_steps(repeats: int = 5) -> dict[str, float]:
    """Return the median first-call seconds of fresh difflux, JAX and Equinox steps, measured in alternation."""
    measures = {
        "adam_difflux_first": first_step_difflux,
        "adam_jax_first": first_step_jax,
        "adam_equinox_first": first_step_equinox,
    }
    times: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, measure in measures.items():
            times[name].append(measure())
    return {name: float(np.median(values)) for name, values in times.items()}
