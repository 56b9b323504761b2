"""``Dropout``: random zeroing in training mode, the identity in test mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import difflux.core as dx

from ._layer import Layer, format_call


def dropout(x: Any, rate: float, key: Any, *, broadcast_axes: Sequence[int] = ()) -> Any:
    """Zero each entry of ``x`` with probability ``rate`` and scale the rest by ``1 / (1 - rate)``.

    The expectation of the result is ``x``. Along ``broadcast_axes`` one
    random draw is shared, so ``broadcast_axes=(2, 3)`` on ``(N, C, H, W)``
    drops whole channels (spatial dropout). ``rate=1`` returns zeros.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"dropout: rate must lie in [0, 1], got {rate}")
    if rate == 0.0:
        return x
    if rate == 1.0:
        return x * 0.0
    keep = 1.0 - rate
    shared = {axis % x.ndim for axis in broadcast_axes}
    mask_shape = tuple(1 if axis in shared else size for axis, size in enumerate(x.shape))
    mask = dx.random.bernoulli(key, keep, mask_shape)
    return dx.where(mask, x / keep, 0.0)


class Dropout(Layer):
    """``y = mask * x / (1 - rate)`` in training mode, ``y = x`` in test mode.

    In training mode (``nn.train_mode(model)``) each entry is zeroed with
    probability ``rate`` from a mask drawn with the call's ``key``, and the
    rest are scaled so that the expectation is unchanged (inverted dropout,
    as in Flux and PyTorch). Layers are built in test mode. Shapes: ``y`` has
    the shape of ``x``.

    Args:
        rate: the probability of zeroing an entry, in ``[0, 1]``.
        broadcast_axes: axes along which one draw is shared; ``(2, 3)`` on
            ``(N, C, H, W)`` drops whole channels.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> layer = nn.train_mode(nn.Dropout(0.5))
        >>> layer
        Dropout(0.5, training=True)
        >>> y = layer(dx.ones(1000), key=dx.random.key(0, backend="numpy"))
        >>> sorted(set(y.tolist()))
        [0.0, 2.0]
    """

    rate: float
    broadcast_axes: tuple[int, ...]
    training: bool

    def __init__(self, rate: float, *, broadcast_axes: Sequence[int] = (), training: bool = False) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"Dropout: rate must lie in [0, 1], got {rate}")
        self.rate = float(rate)
        self.broadcast_axes = tuple(int(axis) for axis in broadcast_axes)
        self.training = training

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        if not self.training or self.rate == 0.0:
            return x
        if key is None:
            raise ValueError(
                f"{self!r} draws a random mask in training mode and needs a key: call the model as "
                "model(x, key=key) or nn.apply(model, x, key=key), with a fresh key from "
                "dx.random.split for every step. Use nn.test_mode(model) for inference."
            )
        return dropout(x, self.rate, key, broadcast_axes=self.broadcast_axes)

    def __repr__(self) -> str:
        keywords = {"broadcast_axes": self.broadcast_axes, "training": self.training}
        return format_call("Dropout", [repr(self.rate)], keywords, {"broadcast_axes": (), "training": False})
