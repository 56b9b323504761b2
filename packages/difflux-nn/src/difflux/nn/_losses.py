"""Loss functions ``loss(prediction, target, *, reduction="mean", ...)``.

Shapes must match exactly, because a broadcast between a ``(N, 1)``
prediction and an ``(N,)`` target would silently give an ``(N, N)`` loss.
The categorical losses also take class indices: an integer target whose
shape is the prediction's without the class axis.

``reduction`` is ``"mean"`` (default), ``"sum"`` or ``"none"``. Element-wise
losses (``mse``, ``mae``, ``huber``, the binary cross-entropies) reduce over
every element. Categorical losses (``cross_entropy``,
``logit_cross_entropy``, ``nll``, ``kl_divergence``) first sum over the class
``axis`` and then reduce over the remaining axes, so ``"mean"`` is the mean
over examples and ``"none"`` returns one loss per example.

Class indices outside ``[0, num_classes)`` and binary targets outside
``[0, 1]`` raise ``ValueError`` where their values are known: NumPy arrays,
Python numbers and lists, and eager JAX arrays. Under ``dx.jit`` on JAX,
and for targets batched by ``dx.vmap``, the values are traced, so
out-of-range labels cannot be detected. There a class index outside the
range matches no class, so its example adds only its label-smoothing term
to the loss (0 without smoothing). ``nn.fit`` compiles its step with
``dx.jit`` unless given ``jit=False``, so on JAX it trains on such labels
without an error.

Every loss is finite at extreme inputs: logits of ``±1e4``, probabilities of
exactly 0 and 1 (which are offset by ``eps``, the dtype's machine epsilon
unless given, as in Flux), and ``-inf`` log-probabilities of classes with
zero target weight.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import difflux.core as dx

from ._layer import backend_of, concrete_value

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Any, reduction: str, name: str) -> Any:
    if reduction == "mean":
        return dx.mean(loss)
    if reduction == "sum":
        return dx.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction={reduction!r} is not one of {_REDUCTIONS}")


def _check_same_shape(prediction: Any, target: Any, name: str) -> None:
    if tuple(prediction.shape) != tuple(target.shape):
        raise ValueError(
            f"{name}: the prediction has shape {tuple(prediction.shape)} but the target has shape "
            f"{tuple(target.shape)}; they must be equal. Reshape one of them (a broadcast would give a "
            "loss of the wrong shape)."
        )


def _as_array_like(target: Any, prediction: Any) -> Any:
    """Return ``target`` as an array (from a list, say); booleans become the prediction's dtype."""
    if not hasattr(target, "shape"):
        target = dx.asarray(target, backend=backend_of(prediction))
    if dx.isdtype(target.dtype, "bool"):
        target = dx.astype(target, prediction.dtype)
    return target


def _eps(prediction: Any, eps: float | None) -> float:
    if eps is not None:
        return eps
    dtype = prediction.dtype
    return float(dx.finfo(dtype if dx.isdtype(dtype, "real floating") else dx.float64).eps)


def _is_integer(x: Any) -> bool:
    return bool(dx.isdtype(x.dtype, "integral"))


def _class_targets(prediction: Any, target: Any, axis: int, label_smoothing: float, name: str) -> Any:
    """Return float target weights of the prediction's shape (one-hot for index targets), smoothed."""
    _check_class_axis(prediction, name)
    target = _as_array_like(target, prediction)
    if _is_integer(target):
        target = dx.astype(_index_mask(prediction, target, axis, name), prediction.dtype)
    else:
        _check_index_dtype(prediction, target, axis, name)
        _check_same_shape(prediction, target, name)
    if label_smoothing:
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"{name}: label_smoothing must lie in [0, 1], got {label_smoothing}")
        num_classes = tuple(prediction.shape)[axis % len(prediction.shape)]
        target = (1.0 - label_smoothing) * target + label_smoothing / num_classes
    return target


def _check_class_axis(prediction: Any, name: str) -> None:
    if not tuple(prediction.shape):
        raise ValueError(f"{name}: the prediction needs a class axis, got a scalar")


def _check_index_dtype(prediction: Any, target: Any, axis: int, name: str) -> None:
    """Raise ``TypeError`` for non-integer ``target`` of the shape that class indices have."""
    shape = tuple(prediction.shape)
    axis = axis % len(shape)
    if tuple(target.shape) != shape and tuple(target.shape) == shape[:axis] + shape[axis + 1 :]:
        raise TypeError(
            f"{name}: class indices must have an integer dtype, got dtype {target.dtype}. Convert them with "
            f"dx.astype(target, dx.int64), or pass class weights of the prediction's shape {shape}."
        )


def _check_index_target(prediction: Any, target: Any, axis: int, name: str) -> tuple[tuple[int, ...], int, int]:
    """Check that class-index ``target`` has the prediction's shape without ``axis``, and its range.

    Returns the prediction's shape, the non-negative axis and the number of classes.

    Raises:
        ValueError: for a target shape other than the prediction's without
            ``axis``, or for a class index outside ``[0, num_classes)``
            where the indices are concrete (see :func:`_concrete_extremes`).
    """
    shape = tuple(prediction.shape)
    axis = axis % len(shape)
    num_classes = shape[axis]
    expected = shape[:axis] + shape[axis + 1 :]
    if tuple(target.shape) != expected:
        raise ValueError(
            f"{name}: class-index targets must have the prediction's shape {shape} without the class "
            f"axis {axis}, that is {expected}, got {tuple(target.shape)}. For one-hot targets pass floats "
            "of the prediction's shape."
        )
    extremes = _concrete_extremes(target)
    if extremes is not None:
        low, high = int(extremes[0]), int(extremes[1])
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{name}: class indices must lie in [0, {num_classes}), got indices from {low} to {high}. "
                f"The prediction has {num_classes} classes on axis {axis}."
            )
    return shape, axis, num_classes


def _concrete_extremes(target: Any) -> tuple[Any, Any] | None:
    """Return the min and max of ``target``, or ``None`` where it is empty or its values are traced.

    A NumPy array costs one ``min`` and one ``max``. Converting the JAX
    results to Python numbers waits for the device, which happens only for
    concrete JAX arrays, never under ``dx.jit``.
    """
    if type(target) is not np.ndarray:
        target = concrete_value(target)
        if target is None:
            return None
    if not target.size:
        return None
    return target.min(), target.max()


def _index_mask(prediction: Any, target: Any, axis: int, name: str) -> Any:
    """Return a boolean array of the prediction's shape, true at each example's class index in ``target``."""
    shape, axis, num_classes = _check_index_target(prediction, target, axis, name)
    classes = dx.arange(num_classes, backend=backend_of(target))
    classes = dx.reshape(classes, (num_classes,) + (1,) * (len(shape) - 1 - axis))
    return dx.expand_dims(target, axis=axis) == classes


def _class_index(prediction: Any, target: np.ndarray, axis: int, name: str) -> tuple[Any, ...]:
    """Return the index that picks each example's class ``target`` from ``prediction`` along ``axis``.

    Raises:
        ValueError: for a target shape other than the prediction's without
            ``axis``, or for a class index outside ``[0, num_classes)``.
    """
    shape, axis, _ = _check_index_target(prediction, target, axis, name)
    # One integer array per axis. Those of the other axes count along them
    # and broadcast against the target, so the result has the target's shape.
    index = []
    for dim, size in enumerate(shape):
        if dim == axis:
            index.append(target)
            continue
        position = dim if dim < axis else dim - 1
        index.append(np.arange(size).reshape((1,) * position + (size,) + (1,) * (len(shape) - 1 - position - 1)))
    return tuple(index)


def _negative_log_likelihood(log_p: Any, target: Any, axis: int, label_smoothing: float, name: str) -> Any:
    """Return ``-sum(target * log_p)`` over ``axis`` for class-index or class-weight targets."""
    _check_class_axis(log_p, name)
    target = _as_array_like(target, log_p)
    if _is_integer(target) and not label_smoothing:
        # One term per example: selecting it gives the same values as the
        # weighted sum below, bit for bit (a perfect prediction gives +0.0),
        # with one fewer multiplication and where.
        return dx.sum(dx.where(_index_mask(log_p, target, axis, name), -log_p, 0.0), axis=axis)
    target = _class_targets(log_p, target, axis, label_smoothing, name)
    return _negative_weighted_log_sum(target, log_p, axis)


def _negative_weighted_log_sum(target: Any, log_p: Any, axis: int) -> Any:
    """Return ``-sum(target * log_p)`` over ``axis``, with terms of zero weight exactly 0.

    Masking the zero-weight terms keeps ``0 * -inf`` from turning into NaN
    when a log-probability is ``-inf``. The mask is applied to ``log_p`` as
    well as to the product, so that neither the value nor the gradient meets
    the NaN.
    """
    weighted = target != 0
    safe_log_p = dx.where(weighted, log_p, 0.0)
    return dx.sum(dx.where(weighted, -(target * safe_log_p), 0.0), axis=axis)


# --------------------------------------------------------------------------
# Regression
# --------------------------------------------------------------------------


def mse(prediction: Any, target: Any, *, reduction: str = "mean") -> Any:
    """Return the squared error ``(prediction - target)**2``, reduced.

    Examples:
        >>> import numpy as np
        >>> from difflux import nn
        >>> float(nn.mse(np.array([1.0, 2.0]), np.array([1.0, 4.0])))
        2.0
    """
    target = _as_array_like(target, prediction)
    _check_same_shape(prediction, target, "mse")
    return _reduce(dx.square(prediction - target), reduction, "mse")


def mae(prediction: Any, target: Any, *, reduction: str = "mean") -> Any:
    """Return the absolute error ``|prediction - target|``, reduced."""
    target = _as_array_like(target, prediction)
    _check_same_shape(prediction, target, "mae")
    return _reduce(dx.abs(prediction - target), reduction, "mae")


def huber(prediction: Any, target: Any, *, delta: float = 1.0, reduction: str = "mean") -> Any:
    """Return the Huber loss: ``r**2 / 2`` for ``r = |prediction - target| <= delta``, else ``delta * (r - delta / 2)``.

    Quadratic near zero and linear in the tails, so outliers pull less than
    in ``mse``. This is PyTorch's ``huber_loss`` and Flux's ``huber_loss``.
    """
    if delta <= 0:
        raise ValueError(f"huber: delta must be positive, got {delta}")
    target = _as_array_like(target, prediction)
    _check_same_shape(prediction, target, "huber")
    r = dx.abs(prediction - target)
    loss = dx.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta))
    return _reduce(loss, reduction, "huber")


# --------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------


def cross_entropy(
    probabilities: Any,
    target: Any,
    *,
    axis: int = -1,
    label_smoothing: float = 0.0,
    eps: float | None = None,
    reduction: str = "mean",
) -> Any:
    """Return the cross-entropy ``-sum(target * log(probabilities + eps))`` over ``axis``, reduced.

    ``probabilities`` sum to one along ``axis`` (a softmax output). Prefer
    :func:`logit_cross_entropy` on the logits, which is exact where
    probabilities underflow.

    Args:
        probabilities: predicted class probabilities.
        target: class indices (integers, without the class axis) or class
            weights of ``probabilities``' shape (one-hot or soft labels).
        axis: the class axis.
        label_smoothing: ``a`` in ``target * (1 - a) + a / num_classes``.
        eps: added to the probabilities inside the logarithm; machine
            epsilon of their dtype by default.
        reduction: ``"mean"`` over examples, ``"sum"`` or ``"none"``.

    Raises:
        ValueError: for a class index outside ``[0, num_classes)``. Under
            ``dx.jit`` on JAX out-of-range labels cannot be detected, and
            such a label matches no class.
        TypeError: for non-integer targets of the class indices' shape.
    """
    target = _class_targets(probabilities, target, axis, label_smoothing, "cross_entropy")
    loss = -dx.sum(dx.xlogy(target, probabilities + _eps(probabilities, eps)), axis=axis)
    return _reduce(loss, reduction, "cross_entropy")


def logit_cross_entropy(
    logits: Any, target: Any, *, axis: int = -1, label_smoothing: float = 0.0, reduction: str = "mean"
) -> Any:
    """Return ``-sum(target * log_softmax(logits))`` over ``axis``, reduced.

    Equal to ``cross_entropy(softmax(logits), target)`` but computed through
    ``log_softmax``, so it stays exact and finite for logits of any size.
    Its gradient with respect to the logits is ``softmax(logits) - target``.
    PyTorch calls it ``cross_entropy``, Flux ``logitcrossentropy``.

    Raises:
        ValueError: for a class index outside ``[0, num_classes)``. Under
            ``dx.jit`` on JAX out-of-range labels cannot be detected, and
            such a label matches no class.
        TypeError: for non-integer targets of the class indices' shape.

    Examples:
        >>> import numpy as np
        >>> from difflux import nn
        >>> logits = np.array([[1e4, -1e4], [0.0, 0.0]])
        >>> nn.logit_cross_entropy(logits, np.array([0, 1]), reduction="none").round(4).tolist()
        [0.0, 0.6931]
    """
    _check_class_axis(logits, "logit_cross_entropy")
    target = _as_array_like(target, logits)
    if type(target) is np.ndarray and _is_integer(target) and not label_smoothing:
        # logsumexp(logits) - logits[target] per example: the values and
        # gradients of the general path below, bit for bit, in fewer NumPy
        # operations. JAX and batched targets take the general path, because
        # XLA fuses its masked sum (picking the entries would cost a gather
        # and a scatter) and its comparison has a batching rule for dx.vmap.
        index = _class_index(logits, target, axis, "logit_cross_entropy")
        loss = dx.logsumexp(logits, axis=axis) - logits[index]
    else:
        loss = _negative_log_likelihood(
            dx.log_softmax(logits, axis=axis), target, axis, label_smoothing, "logit_cross_entropy"
        )
    return _reduce(loss, reduction, "logit_cross_entropy")


def nll(
    log_probabilities: Any, target: Any, *, axis: int = -1, label_smoothing: float = 0.0, reduction: str = "mean"
) -> Any:
    """Return the negative log-likelihood ``-sum(target * log_probabilities)`` over ``axis``, reduced.

    ``log_probabilities`` are normalised log-probabilities (a
    ``log_softmax`` output); with class-index targets this picks
    ``-log_probabilities[..., target]``, as PyTorch's ``nll_loss`` does.
    Classes of zero target weight contribute 0 even where their
    log-probability is ``-inf``.

    Raises:
        ValueError: for a class index outside ``[0, num_classes)``. Under
            ``dx.jit`` on JAX out-of-range labels cannot be detected, and
            such a label matches no class.
        TypeError: for non-integer targets of the class indices' shape.
    """
    loss = _negative_log_likelihood(log_probabilities, target, axis, label_smoothing, "nll")
    return _reduce(loss, reduction, "nll")


def kl_divergence(
    probabilities: Any, target: Any, *, axis: int = -1, eps: float | None = None, reduction: str = "mean"
) -> Any:
    """Return ``KL(target || probabilities) = sum(target * log(target / probabilities))`` over ``axis``, reduced.

    Both arguments are probability vectors along ``axis`` (argument order as
    in Flux's ``kldivergence(prediction, target)``). Terms with
    ``target = 0`` are 0, and ``eps`` (machine epsilon by default) is added
    to ``probabilities`` inside the logarithm.
    """
    target = _as_array_like(target, probabilities)
    _check_same_shape(probabilities, target, "kl_divergence")
    entropy_term = dx.xlogy(target, target)
    cross_term = dx.xlogy(target, probabilities + _eps(probabilities, eps))
    return _reduce(dx.sum(entropy_term - cross_term, axis=axis), reduction, "kl_divergence")


def binary_cross_entropy(
    probabilities: Any,
    target: Any,
    *,
    label_smoothing: float = 0.0,
    eps: float | None = None,
    reduction: str = "mean",
) -> Any:
    """Return ``-(y * log(p + eps) + (1 - y) * log(1 - p + eps))`` element-wise, reduced.

    ``p`` is a probability (a sigmoid output) and ``y`` the target in
    ``[0, 1]``; the loss is finite at ``p = 0`` and ``p = 1``. Prefer
    :func:`logit_binary_cross_entropy` on the logits. ``label_smoothing``
    ``a`` replaces ``y`` by ``y * (1 - a) + a / 2``.

    Raises:
        ValueError: for a target or a probability outside ``[0, 1]``. Under
            ``dx.jit`` on JAX out-of-range values cannot be detected.
    """
    target = _as_array_like(target, probabilities)
    _check_same_shape(probabilities, target, "binary_cross_entropy")
    _check_binary_target(target, "binary_cross_entropy")
    _check_unit_interval(
        probabilities, "binary_cross_entropy", "probabilities", "Pass logits to logit_binary_cross_entropy instead."
    )
    target = _smooth_binary(target, label_smoothing, "binary_cross_entropy")
    e = _eps(probabilities, eps)
    loss = -(dx.xlogy(target, probabilities + e) + dx.xlogy(1.0 - target, 1.0 - probabilities + e))
    return _reduce(loss, reduction, "binary_cross_entropy")


def logit_binary_cross_entropy(
    logits: Any, target: Any, *, label_smoothing: float = 0.0, reduction: str = "mean"
) -> Any:
    """Return ``binary_cross_entropy(sigmoid(logits), target)``, computed as ``softplus(x) - y * x``.

    The form is exact for logits of any size; its gradient is
    ``sigmoid(x) - y``. PyTorch calls it ``binary_cross_entropy_with_logits``.

    Raises:
        ValueError: for a target outside ``[0, 1]``. Under ``dx.jit`` on
            JAX out-of-range targets cannot be detected.

    Examples:
        >>> import numpy as np
        >>> from difflux import nn
        >>> float(nn.logit_binary_cross_entropy(np.array([1e4, -1e4]), np.array([1.0, 0.0])))
        0.0
    """
    target = _as_array_like(target, logits)
    _check_same_shape(logits, target, "logit_binary_cross_entropy")
    _check_binary_target(target, "logit_binary_cross_entropy")
    target = _smooth_binary(target, label_smoothing, "logit_binary_cross_entropy")
    loss = dx.softplus(logits) - target * logits
    return _reduce(loss, reduction, "logit_binary_cross_entropy")


def _check_binary_target(target: Any, name: str) -> None:
    """Raise ``ValueError`` for a binary target outside ``[0, 1]`` where the targets are concrete."""
    _check_unit_interval(target, name, "targets", "Map labels such as -1 and 1 to 0 and 1.")


def _check_unit_interval(values: Any, name: str, quantity: str, advice: str) -> None:
    """Raise ``ValueError`` for ``values`` outside ``[0, 1]`` where they are concrete."""
    extremes = _concrete_extremes(values)
    if extremes is None:
        return
    low, high = float(extremes[0]), float(extremes[1])
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{name}: {quantity} must lie in [0, 1], got {quantity} from {low} to {high}. {advice}")


def _smooth_binary(target: Any, label_smoothing: float, name: str) -> Any:
    if not label_smoothing:
        return target
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must lie in [0, 1], got {label_smoothing}")
    return target * (1.0 - label_smoothing) + 0.5 * label_smoothing
