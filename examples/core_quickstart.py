"""Fit a three-parameter curve by gradient descent with difflux.core.

The model is ``y = a * tanh(b * x) + c``. The script fits it to noisy data
with ``dx.value_and_grad``, prints the loss curve, and prints the Hessian of
the loss at the fitted parameters (``dx.hessian``, forward over reverse),
whose positive eigenvalues show that the fit is a minimum. The same code runs
on NumPy and, when JAX is installed, on JAX.

Run it with ``python3 -m nox -s quickstart``, or ``python examples/core_quickstart.py``
where difflux-core is installed.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

import difflux.core as dx

TRUE_PARAMS = (1.5, 2.0, 0.5)  # a, b, c of the data
STEPS = 300
LEARNING_RATE = 0.5
REPORT_EVERY = 30
BAR_WIDTH = 40


def make_data(num_points: int = 50, noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.linspace(-2.0, 2.0, num_points)
    a, b, c = TRUE_PARAMS
    y = a * np.tanh(b * x) + c + noise * rng.standard_normal(num_points)
    return x, y


def loss(params, x, y):
    """Mean squared error of the model with ``params = [a, b, c]``."""
    prediction = params[0] * dx.tanh(params[1] * x) + params[2]
    return dx.mean(dx.square(prediction - y))


def print_loss_curve(history: list[tuple[int, float]]) -> None:
    """Print one line per recorded step, with a bar on a logarithmic scale."""
    high = math.log10(history[0][1])
    low = math.log10(history[-1][1])
    span = max(high - low, 1e-12)
    print(f"{'step':>6}  {'loss':>10}")
    for step, value in history:
        width = 1 + round((BAR_WIDTH - 1) * (math.log10(value) - low) / span)
        print(f"{step:>6}  {value:>10.3e}  {'#' * width}")


def fit(backend: str) -> None:
    x_data, y_data = make_data()
    x = dx.asarray(x_data, backend=backend)
    y = dx.asarray(y_data, backend=backend)
    params = dx.asarray([1.0, 1.0, 0.0], backend=backend)

    loss_and_grad = dx.value_and_grad(loss)
    history = []
    for step in range(STEPS + 1):
        value, gradient = loss_and_grad(params, x, y)
        if step % REPORT_EVERY == 0:
            history.append((step, float(value)))
        params = params - LEARNING_RATE * gradient

    print(f"\n== backend: {backend} (dtype {params.dtype}) ==")
    print_loss_curve(history)
    fitted = ", ".join(f"{name}={float(p):.3f}" for name, p in zip("abc", params))
    truth = ", ".join(f"{name}={p}" for name, p in zip("abc", TRUE_PARAMS))
    print(f"fitted: {fitted}   (data drawn with {truth})")

    hessian = np.asarray(dx.hessian(loss)(params, x, y), dtype=np.float64)
    eigenvalues = np.linalg.eigvalsh(hessian)
    print("Hessian of the loss at the fit:")
    # Rounding, then adding 0.0, prints tiny entries as 0 rather than -0.
    print(np.round(hessian, 4) + 0.0)
    print("eigenvalues:", np.round(eigenvalues, 4) + 0.0)
    print(f"condition number {eigenvalues[-1] / eigenvalues[0]:.1f}: the smallest eigenvalue sets how slowly")
    print("gradient descent converges along its eigenvector.")


def main() -> None:
    fit("numpy")
    if importlib.util.find_spec("jax") is None:
        print("\nJAX is not installed, so the JAX run is skipped (pip install 'difflux-core[jax]').")
        return
    # JAX computes in float32 unless float64 is switched on, so its numbers
    # agree with NumPy's to about six digits.
    fit("jax")


if __name__ == "__main__":
    main()
