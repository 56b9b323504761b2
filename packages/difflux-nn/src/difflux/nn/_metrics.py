"""Metrics for ``nn.fit`` and ``nn.evaluate``: functions of predictions and targets.

A metric is any function ``metric(prediction, target)`` returning the mean
over the batch as a scalar, written with difflux operations so that it runs
inside the compiled training step. ``fit`` averages it over an epoch,
weighting each batch by its size, which gives the exact mean over the
examples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import difflux.core as dx

from ._losses import mae, mse

Metric = Callable[[Any, Any], Any]


def _float_mean(matches: Any, like: Any) -> Any:
    dtype = like.dtype if dx.isdtype(like.dtype, "real floating") else dx.float64
    return dx.mean(dx.astype(matches, dtype))


def accuracy(prediction: Any, target: Any) -> Any:
    """Return the fraction of examples whose highest score is the target class.

    ``prediction`` contains scores (logits or probabilities) of shape
    ``(..., classes)``. ``target`` contains integer class labels of shape
    ``(...)``, or one-hot rows (or probabilities) of the prediction's shape,
    whose largest entry is the class.

    Examples:
        >>> import numpy as np
        >>> from difflux import nn
        >>> float(nn.accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([0, 0])))
        0.5
    """
    predicted = dx.argmax(prediction, axis=-1)
    if tuple(target.shape) == tuple(prediction.shape):
        target = dx.argmax(target, axis=-1)
    elif tuple(target.shape) != tuple(prediction.shape[:-1]):
        raise ValueError(
            f"accuracy: the prediction has shape {tuple(prediction.shape)}, so the target must be class labels of "
            f"shape {tuple(prediction.shape[:-1])} or one-hot rows of shape {tuple(prediction.shape)}; got "
            f"{tuple(target.shape)}"
        )
    return _float_mean(predicted == dx.astype(target, predicted.dtype), prediction)


def binary_accuracy(prediction: Any, target: Any, *, threshold: float = 0.5) -> Any:
    """Return the fraction of examples where ``prediction > threshold`` equals the 0/1 ``target``.

    The default threshold suits probabilities; use ``threshold=0.0`` for
    logits, e.g. ``functools.partial(nn.binary_accuracy, threshold=0.0)``.
    """
    if tuple(target.shape) != tuple(prediction.shape):
        raise ValueError(
            f"binary_accuracy: the target has shape {tuple(target.shape)} but the prediction has "
            f"{tuple(prediction.shape)}; they must match"
        )
    return _float_mean((prediction > threshold) == (target > 0.5), prediction)


_BUILT_IN: dict[str, Metric] = {
    "accuracy": accuracy,
    "binary_accuracy": binary_accuracy,
    "mse": mse,
    "mae": mae,
}


def resolve_metrics(metrics: Sequence[str | Metric] | Mapping[str, Metric]) -> dict[str, Metric]:
    """Return ``{name: function}`` from names of built-in metrics, functions, or a dict of both."""
    if isinstance(metrics, Mapping):
        items = list(metrics.items())
    elif isinstance(metrics, str):
        items = [(metrics, metrics)]
    else:
        items = [
            (metric if isinstance(metric, str) else getattr(metric, "__name__", repr(metric)), metric)
            for metric in metrics
        ]
    resolved: dict[str, Metric] = {}
    for name, metric in items:
        if isinstance(metric, str):
            if metric not in _BUILT_IN:
                raise ValueError(
                    f"unknown metric {metric!r}; the built-in metrics are {', '.join(map(repr, _BUILT_IN))}, "
                    "or pass a function metric(prediction, target)"
                )
            metric = _BUILT_IN[metric]
        if not callable(metric):
            raise TypeError(f"the metric {name!r} is a {type(metric).__name__}, not a function of (prediction, target)")
        if name in ("loss",) or name.startswith("val_"):
            raise ValueError(f"the metric name {name!r} is reserved for the losses in the history; rename the metric")
        if name in resolved:
            raise ValueError(f"two metrics are named {name!r}; pass a dict to name them apart")
        resolved[name] = metric
    return resolved
