"""Classify handwritten digits with a small convolutional network trained by ``nn.fit``.

The data and the split are those of ``digits_mlp.py``: scikit-learn's
bundled 8x8 digits, 25% kept for testing, here as images of shape
``(1, 8, 8)``. The network has two 3x3 convolutions with ``SAME`` padding,
a 2x2 max pooling and two dense layers:

    Conv(1 => 16) -> Conv(16 => 32) -> MaxPool(2x2) -> Flatten
    -> Dense(512 => 64) -> Dropout(0.25) -> Dense(64 => 10)

It is trained with Adam on the logit cross-entropy, in float32 on either
backend, and the script prints the test accuracy at the end (about 98-99%
after the default 30 epochs).

Run it with ``python examples/digits_cnn.py --backend jax`` where
difflux-nn, difflux-optim and scikit-learn are installed
(``pip install -e 'packages/difflux-nn[examples]' -e packages/difflux-optim``),
or all examples briefly with ``python3 -m nox -s examples``.
"""

from __future__ import annotations

from digits_common import parse_args, train_and_evaluate

import difflux.core as dx
from difflux import nn

IMAGE_SHAPE = (1, 8, 8)


def build_model(key: object) -> nn.Chain:
    keys = dx.random.split(key, 4)
    return nn.Chain(
        nn.Conv(1, 16, (3, 3), nn.relu, key=keys[0], padding="SAME", dtype=dx.float32),
        nn.Conv(16, 32, (3, 3), nn.relu, key=keys[1], padding="SAME", dtype=dx.float32),
        nn.MaxPool((2, 2)),
        nn.Flatten(),
        nn.Dense(32 * 4 * 4, 64, nn.relu, key=keys[2], dtype=dx.float32),
        nn.Dropout(0.25),
        nn.Dense(64, 10, key=keys[3], dtype=dx.float32),
    )


def main(argv: list[str] | None = None) -> float:
    """Train and evaluate the model; return the test accuracy."""
    args = parse_args(__doc__.splitlines()[0], epochs=30, learning_rate=2e-3, argv=argv)
    return train_and_evaluate(args, build_model, IMAGE_SHAPE)


if __name__ == "__main__":
    main()
