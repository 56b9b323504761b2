"""The parts shared by the digits examples: data, command line and training.

``digits_mlp.py`` and ``digits_cnn.py`` differ only in the model, the image
shape it reads and two defaults. Everything else is here, so both train
and report the same way.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import difflux.core as dx
from difflux import nn, optim

TEST_FRACTION = 0.25
SPLIT_SEED = 0


def load_digits(image_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``x_train, x_test, y_train, y_test``: images of ``image_shape`` scaled to [0, 1] as float32, int32 labels.

    The split is stratified and fixed (25% for testing), so every run and
    both examples see the same test images.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    images = (digits.data / 16.0).astype(np.float32).reshape(-1, *image_shape)
    labels = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    return x_train, x_test, y_train, y_test


def parse_args(
    description: str, *, epochs: int, learning_rate: float, argv: list[str] | None = None
) -> argparse.Namespace:
    """Parse the examples' command line, with the given defaults for ``--epochs`` and ``--learning-rate``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backend", choices=["numpy", "jax"], default="numpy", help="array backend (default: numpy)")
    parser.add_argument(
        "--epochs", type=int, default=epochs, help=f"passes over the training images (default: {epochs})"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per training step (default: 32)")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=learning_rate,
        help=f"Adam's learning rate (default: {learning_rate:g})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation, shuffling and dropout")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def train_and_evaluate(
    args: argparse.Namespace, build_model: Callable[[object], nn.Chain], image_shape: tuple[int, ...]
) -> float:
    """Train ``build_model(key)`` with Adam on the training split, print the results, return the test accuracy."""
    x_train, x_test, y_train, y_test = load_digits(image_shape)
    init_key, fit_key = dx.random.split(dx.random.key(args.seed, backend=args.backend))

    with dx.backend(args.backend):
        model = build_model(init_key)
    print(f"backend {args.backend}: {len(x_train)} training and {len(x_test)} test images")
    print(model)

    started = time.perf_counter()
    model, _, history = nn.fit(
        model,
        nn.logit_cross_entropy,
        optim.Adam(args.learning_rate),
        (x_train, y_train),
        epochs=args.epochs,
        batch_size=args.batch_size,
        key=fit_key,
        metrics=["accuracy"],
        progress=not args.no_progress,
    )
    seconds = time.perf_counter() - started

    test = nn.evaluate(model, nn.logit_cross_entropy, (x_test, y_test), metrics=["accuracy"])
    print(f"trained {history.epochs} epochs in {seconds:.1f} s; final training loss {history.loss[-1]:.4f}")
    print(f"test loss {test['loss']:.4f}, test accuracy {test['accuracy']:.2%}")
    return test["accuracy"]
