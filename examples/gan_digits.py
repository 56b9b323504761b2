"""Train a generative adversarial network on 8x8 digits with a custom training loop.

This is the adversarial example of the Flux paper (Innes et al.,
"Fashionable Modelling with Flux", 2018), here on scikit-learn's bundled
digits. A generator maps 16 Gaussian noise values to an 8x8 image, and a
discriminator scores images as real or generated. The two are trained in
alternation with Adam. The discriminator minimises the binary cross-entropy of telling real
from generated images. The generator minimises the cross-entropy of its
images being called real (the non-saturating loss of Goodfellow et al.,
2014). One training step updates both networks and is a single function,
which ``dx.jit`` compiles whole on JAX and which runs eagerly on NumPy.

At the end the script writes ``samples.png`` (generated digits beside real
ones) and ``losses.png`` (both losses per epoch) under ``--out``. It also
prints two statistics of generated samples, computed on a fixed batch of
noise after each epoch:

- the mean distance from a generated image to its nearest real image,
  which falls as the samples become digit-like;
- the share of generated images that a logistic-regression digit
  classifier, trained on the real images, labels with probability above
  0.9, and how many of the 10 classes those images cover.

Run it with ``python examples/gan_digits.py --backend jax`` where
difflux-nn, difflux-optim, scikit-learn and matplotlib are installed
(``pip install -e 'packages/difflux-nn[examples]' -e packages/difflux-optim``).
On a 2-core machine the default 100 epochs take about a minute on JAX and
a few minutes on NumPy.
"""

from __future__ import annotations

import argparse
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import difflux.core as dx
from difflux import nn, optim

LATENT = 16
IMAGE_SIDE = 8
SAMPLE_COUNT = 500
CONFIDENT = 0.9

leaky_relu = functools.partial(nn.leaky_relu, negative_slope=0.2)


def build_generator(key: Any) -> nn.Chain:
    keys = dx.random.split(key, 3)
    return nn.Chain(
        nn.Dense(LATENT, 128, leaky_relu, key=keys[0], dtype=dx.float32),
        nn.Dense(128, 256, leaky_relu, key=keys[1], dtype=dx.float32),
        nn.Dense(256, IMAGE_SIDE * IMAGE_SIDE, nn.sigmoid, key=keys[2], dtype=dx.float32),
    )


def build_discriminator(key: Any) -> nn.Chain:
    keys = dx.random.split(key, 2)
    return nn.Chain(
        nn.Dense(IMAGE_SIDE * IMAGE_SIDE, 256, leaky_relu, key=keys[0], dtype=dx.float32),
        nn.Dense(256, 1, key=keys[1], dtype=dx.float32),
    )


# --------------------------------------------------------------------------
# The losses and one training step
# --------------------------------------------------------------------------


def discriminator_loss(discriminator: Any, real: Any, fake: Any) -> Any:
    real_logits, fake_logits = discriminator(real), discriminator(fake)
    return nn.logit_binary_cross_entropy(real_logits, dx.ones_like(real_logits)) + nn.logit_binary_cross_entropy(
        fake_logits, dx.zeros_like(fake_logits)
    )


def generator_loss(generator: Any, discriminator: Any, noise: Any) -> Any:
    logits = discriminator(generator(noise))
    return nn.logit_binary_cross_entropy(logits, dx.ones_like(logits))


@dx.jit
def train_step(generator: Any, discriminator: Any, g_state: Any, d_state: Any, real: Any, key: Any) -> Any:
    """Update the discriminator on one batch, then the generator against the updated discriminator."""
    d_key, g_key = dx.random.split(key)
    shape = (real.shape[0], LATENT)

    fake = generator(dx.random.normal(d_key, shape, dtype=dx.float32))
    d_loss, d_grads = dx.value_and_grad(discriminator_loss)(discriminator, real, fake)
    d_state, discriminator = optim.update(d_state, discriminator, d_grads)

    g_loss, g_grads = dx.value_and_grad(generator_loss)(
        generator, discriminator, dx.random.normal(g_key, shape, dtype=dx.float32)
    )
    g_state, generator = optim.update(g_state, generator, g_grads)
    return generator, discriminator, g_state, d_state, d_loss, g_loss


# --------------------------------------------------------------------------
# Statistics of generated samples
# --------------------------------------------------------------------------


@dataclass
class History:
    """The losses of each step, their means per epoch, and statistics of generated samples per epoch."""

    d_loss_steps: list[float] = field(default_factory=list)
    g_loss_steps: list[float] = field(default_factory=list)
    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    nearest_distance: list[float] = field(default_factory=list)
    confident_share: list[float] = field(default_factory=list)
    classes_covered: list[int] = field(default_factory=list)
    initial_nearest_distance: float = 0.0
    real_nearest_distance: float = 0.0
    samples: np.ndarray | None = None


def nearest_distances(samples: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Return the Euclidean distance from each sample to its nearest image."""
    squared = (samples**2).sum(1)[:, None] - 2.0 * samples @ images.T + (images**2).sum(1)[None, :]
    return np.sqrt(np.maximum(squared.min(axis=1), 0.0))


class SampleScore:
    """Scores generated images against the real ones: nearest-image distance and classifier confidence."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, held_out: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        self.images = images
        self.classifier = LogisticRegression(max_iter=2000).fit(images, labels)
        # The reference level: real images the distances were not measured against.
        self.real_nearest_distance = float(nearest_distances(held_out, images).mean())

    def __call__(self, samples: np.ndarray) -> tuple[float, float, int]:
        probabilities = self.classifier.predict_proba(samples)
        confident = probabilities.max(axis=1) > CONFIDENT
        classes = np.unique(probabilities.argmax(axis=1)[confident])
        return float(nearest_distances(samples, self.images).mean()), float(confident.mean()), len(classes)


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def load_images() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the training images as float32 rows in [0, 1], their labels, and 200 held-out images."""
    from sklearn.datasets import load_digits

    pixels, labels = load_digits(return_X_y=True)
    images = (np.asarray(pixels) / 16.0).astype(np.float32)
    labels = np.asarray(labels)
    order = np.random.default_rng(0).permutation(len(images))
    return images[order[200:]], labels[order[200:]], images[order[:200]]


def train(args: argparse.Namespace) -> History:
    """Train both networks for ``args.epochs`` epochs; return the history and the last samples."""
    images, labels, held_out = load_images()
    score = SampleScore(images, labels, held_out)
    g_key, d_key, data_key, step_key, sample_key = dx.random.split(dx.random.key(args.seed, backend=args.backend), 5)
    generator, discriminator = build_generator(g_key), build_discriminator(d_key)
    rule = optim.Adam(args.learning_rate, b1=0.5)
    g_state, d_state = optim.setup(rule, generator), optim.setup(rule, discriminator)
    fixed_noise = dx.random.normal(sample_key, (SAMPLE_COUNT, LATENT), dtype=dx.float32)
    loader = nn.DataLoader(images, args.batch_size, key=data_key, drop_last=True, backend=args.backend)

    history = History(
        initial_nearest_distance=score(np.asarray(generator(fixed_noise)))[0],
        real_nearest_distance=score.real_nearest_distance,
    )
    step = 0
    for epoch in range(args.epochs):
        started = time.perf_counter()
        d_losses, g_losses = [], []
        for real in loader:
            key = dx.random.fold_in(step_key, step)
            generator, discriminator, g_state, d_state, d_loss, g_loss = train_step(
                generator, discriminator, g_state, d_state, real, key
            )
            d_losses.append(d_loss)
            g_losses.append(g_loss)
            step += 1

        samples = np.asarray(generator(fixed_noise))
        distance, confident, classes = score(samples)
        # The losses become floats once per epoch: float() waits for the device.
        history.d_loss_steps += [float(value) for value in d_losses]
        history.g_loss_steps += [float(value) for value in g_losses]
        history.d_loss.append(float(np.mean(history.d_loss_steps[-len(d_losses) :])))
        history.g_loss.append(float(np.mean(history.g_loss_steps[-len(g_losses) :])))
        history.nearest_distance.append(distance)
        history.confident_share.append(confident)
        history.classes_covered.append(classes)
        history.samples = samples
        if not args.quiet:
            print(
                f"epoch {epoch + 1}/{args.epochs}: discriminator loss {history.d_loss[-1]:.3f}, "
                f"generator loss {history.g_loss[-1]:.3f}, nearest real image {distance:.2f} "
                f"(real images: {score.real_nearest_distance:.2f}), confident {confident:.0%} "
                f"over {classes} classes ({time.perf_counter() - started:.1f} s)"
            )
    return history


# --------------------------------------------------------------------------
# Plots and the command line
# --------------------------------------------------------------------------


def _image_grid(axis: Any, rows: np.ndarray, title: str) -> None:
    """Draw 64-pixel rows as an 8 by 8 grid of images on one matplotlib axis."""
    count = int(np.sqrt(len(rows)))
    tiles = rows[: count * count].reshape(count, count, IMAGE_SIDE, IMAGE_SIDE)
    # One pixel of white between tiles keeps the digits apart.
    padded = np.pad(tiles, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=0.0)
    mosaic = padded.transpose(0, 2, 1, 3).reshape(count * (IMAGE_SIDE + 1), count * (IMAGE_SIDE + 1))
    axis.imshow(mosaic, cmap="gray_r", vmin=0.0, vmax=1.0)
    axis.set_title(title)
    axis.axis("off")


def save_plots(history: History, real: np.ndarray, out: Path, backend: str) -> list[Path]:
    """Write samples.png (generated beside real digits) and losses.png under ``out``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert history.samples is not None
    out.mkdir(parents=True, exist_ok=True)
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4.8))
    _image_grid(left, history.samples[:64], f"generated ({backend}, {len(history.d_loss)} epochs)")
    _image_grid(right, real[:64], "real")
    figure.tight_layout()
    samples_path = out / "samples.png"
    figure.savefig(samples_path, dpi=100)
    plt.close(figure)

    figure, (losses, distance) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = np.arange(1, len(history.d_loss) + 1)
    losses.plot(epochs, history.d_loss, label="discriminator")
    losses.plot(epochs, history.g_loss, label="generator")
    losses.axhline(2 * np.log(2), color="grey", linestyle=":", label="discriminator at equilibrium (2 log 2)")
    losses.set_xlabel("epoch")
    losses.set_ylabel("mean loss")
    losses.legend()
    distance.plot(epochs, history.nearest_distance, label="generated images")
    distance.axhline(history.real_nearest_distance, color="grey", linestyle=":", label="held-out real images")
    distance.set_xlabel("epoch")
    distance.set_ylabel("distance to the nearest real image")
    distance.legend()
    figure.tight_layout()
    losses_path = out / "losses.png"
    figure.savefig(losses_path, dpi=100)
    plt.close(figure)
    return [samples_path, losses_path]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a generative adversarial network on 8x8 digits.")
    parser.add_argument("--backend", choices=["numpy", "jax"], default="numpy", help="array backend (default: numpy)")
    parser.add_argument("--epochs", type=int, default=100, help="passes over the training images (default: 100)")
    parser.add_argument("--batch-size", type=int, default=32, help="real images per training step (default: 32)")
    parser.add_argument("--learning-rate", type=float, default=5e-4, help="Adam's learning rate (default: 0.0005)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation, noise and shuffling")
    parser.add_argument("--out", type=Path, default=Path("out/gan_digits"), help="folder of the PNG plots")
    parser.add_argument("--no-plot", action="store_true", help="skip the plots (matplotlib is then not needed)")
    parser.add_argument("--quiet", action="store_true", help="print only the final summary")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> History:
    """Train the networks, print a summary, save the plots; return the history."""
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    args = parse_args(argv)
    started = time.perf_counter()
    # The matrices are small (at most 256 by 256), so a second BLAS thread
    # only adds synchronisation: on a busy 2-core machine it made the NumPy
    # run ten times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        history = train(args)
    print(
        f"backend {args.backend}: {args.epochs} epochs in {time.perf_counter() - started:.1f} s; "
        f"mean distance to the nearest real image {history.initial_nearest_distance:.2f} untrained, "
        f"{history.nearest_distance[-1]:.2f} after the last (held-out real images: {history.real_nearest_distance:.2f})"
    )
    if not args.no_plot:
        for path in save_plots(history, load_images()[0], args.out, args.backend):
            print(f"wrote {path}")
    return history


if __name__ == "__main__":
    main()
