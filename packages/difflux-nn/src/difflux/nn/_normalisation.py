"""Normalisation layers: ``BatchNorm``, ``LayerNorm``, ``GroupNorm``, ``InstanceNorm``, ``RMSNorm``.

Each computes ``(x - mean) / sqrt(var + eps)`` over its own set of axes,
with the biased variance, and then applies a learned per-feature ``scale``
and ``bias`` when ``affine=True``. Only ``BatchNorm`` has state: running
statistics for test mode, updated through ``nn.apply`` in training mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import difflux.core as dx

from ._layer import Layer, as_positive_int, backend_of, format_call, identity, name_of, positive_ints, shape_error
from ._state import state_field, update_state


def _normalise(x: Any, mean: Any, var: Any, eps: float) -> Any:
    return (x - mean) / dx.sqrt(var + eps)


def _normalise_over(x: Any, axes: tuple[int, ...], eps: float) -> Any:
    """Normalise ``x`` by its own mean and biased variance over ``axes``."""
    return _normalise(x, dx.mean(x, axis=axes, keepdims=True), dx.var(x, axis=axes, keepdims=True), eps)


def _trailing_shape(shape: int | Sequence[int], owner: str) -> tuple[int, ...]:
    """Return the normalised trailing shape as a tuple of positive ints."""
    sizes = positive_ints(shape, "shape", owner)
    return (sizes,) if isinstance(sizes, int) else sizes


def _checked_eps(eps: Any, owner: str) -> Any:
    """Return ``eps`` when it is a finite number of at least 0, raising otherwise."""
    if isinstance(eps, bool) or not isinstance(eps, int | float | np.floating | np.integer):
        raise TypeError(f"{owner}: eps must be a Python number, got {eps!r}")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"{owner}: eps must be a finite number of at least 0, got {eps!r}")
    return eps


def _trailing_axes(layer: Any, x: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Return the axes of ``x`` that ``shape`` covers, raising when its trailing axes are not ``shape``."""
    n = len(shape)
    if x.ndim < n or tuple(x.shape[x.ndim - n :]) != shape:
        raise shape_error(layer, f"an input whose trailing axes are {shape}", x)
    return tuple(range(x.ndim - n, x.ndim))


def _channel_affine(y: Any, scale: Any, bias: Any) -> Any:
    """Apply a per-channel ``scale`` and ``bias`` along axis 1 of ``y``, or return ``y`` when ``scale`` is ``None``."""
    if scale is None:
        return y
    broadcast = (1, scale.shape[0]) + (1,) * (y.ndim - 2)
    return y * dx.reshape(scale, broadcast) + dx.reshape(bias, broadcast)


def _affine_parameters(shape: tuple[int, ...], affine: bool, dtype: Any, backend: str) -> tuple[Any, Any]:
    if not affine:
        return None, None
    return dx.ones(shape, dtype=dtype, backend=backend), dx.zeros(shape, dtype=dtype, backend=backend)


def _backend(backend: str | None) -> str:
    return backend if backend is not None else dx.default_backend()


def _check_backend(layer: Any, x: Any, parameter: Any) -> None:
    """Raise a clear error when a layer's arrays and its input live on different backends.

    Normalisation layers take no random key, so their arrays follow the
    default backend, which can differ from that of the rest of a model.
    """
    if parameter is None:
        return
    expected, found = backend_of(parameter), backend_of(x)
    if expected != found:
        raise TypeError(
            f"{layer!r} has {expected} arrays but received a {found} input. Build it with backend={found!r} "
            f"(or inside `with dx.backend({found!r}):`), like the rest of the model."
        )


class BatchNorm(Layer):
    """``y = activation(scale * (x - mean) / sqrt(var + eps) + bias)`` per channel, over the batch.

    Shapes: ``x`` is ``(N, C)`` or ``(N, C, *spatial)`` and ``y`` has its shape;
    the statistics are taken over every axis but the channel axis 1.
    ``scale`` and ``bias`` are ``(C,)``, initialised to ones and zeros.

    In training mode (``nn.train_mode``) ``mean`` and ``var`` are the batch's
    (biased variance), and the running statistics move towards them:
    ``running = (1 - momentum) * running + momentum * batch`` with the
    unbiased batch variance, as in PyTorch and Flux. The new values only
    come back through ``y, model = nn.apply(model, x)``; calling a training
    BatchNorm directly raises an error rather than drop them. In test mode
    (the default) the running statistics are used. With
    ``track_stats=False`` the batch statistics are used in both modes and no
    state is kept.

    Args:
        num_features: the number of channels ``C``.
        activation: applied element-wise to the output.
        eps: added to the variance.
        momentum: the weight of the batch in the running statistics.
        affine: whether to learn ``scale`` and ``bias``.
        track_stats: whether to keep running statistics.
        dtype: the dtype of parameters and statistics.
        backend: the backend of parameters and statistics; the default
            backend when ``None``. A model built with JAX keys needs
            ``backend="jax"`` here (or ``with dx.backend("jax"):``).

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> bn = nn.BatchNorm(3)
        >>> bn
        BatchNorm(3)
        >>> bn(dx.ones((4, 3, 5, 5))).shape
        (4, 3, 5, 5)
    """

    scale: Any
    bias: Any
    activation: Callable[[Any], Any]
    num_features: int
    eps: float
    momentum: float
    training: bool
    # Last, because type checkers read a field specifier they do not know as a default.
    running_mean: Any = state_field()
    running_var: Any = state_field()

    def __init__(
        self,
        num_features: int,
        activation: Callable[[Any], Any] = identity,
        *,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_stats: bool = True,
        training: bool = False,
        dtype: Any = None,
        backend: str | None = None,
    ) -> None:
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm: momentum must lie in [0, 1], got {momentum}")
        num_features = as_positive_int(num_features, "num_features", "BatchNorm")
        backend = _backend(backend)
        self.scale, self.bias = _affine_parameters((num_features,), affine, dtype, backend)
        if track_stats:
            self.running_mean = dx.zeros((num_features,), dtype=dtype, backend=backend)
            self.running_var = dx.ones((num_features,), dtype=dtype, backend=backend)
        else:
            self.running_mean = self.running_var = None
        self.activation = activation
        self.num_features = num_features
        self.eps = _checked_eps(eps, "BatchNorm")
        self.momentum = momentum
        self.training = training

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        channels = self.num_features
        _check_backend(self, x, self.scale if self.scale is not None else self.running_mean)
        if x.ndim < 2 or x.shape[1] != channels:
            raise shape_error(self, f"an input of shape (N, {channels}) or (N, {channels}, *spatial)", x)
        axes = (0,) + tuple(range(2, x.ndim))
        broadcast = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        tracking = self.running_mean is not None

        if self.training or not tracking:
            mean = dx.mean(x, axis=axes)
            var = dx.var(x, axis=axes)
            if self.training and tracking:
                self._update_running_statistics(mean, var, math.prod(x.shape[a] for a in axes))
        else:
            mean = dx.stop_gradient(self.running_mean)
            var = dx.stop_gradient(self.running_var)

        y = _normalise(x, dx.reshape(mean, broadcast), dx.reshape(var, broadcast), self.eps)
        y = _channel_affine(y, self.scale, self.bias)
        return y if self.activation is identity else self.activation(y)

    def _update_running_statistics(self, mean: Any, var: Any, count: int) -> None:
        if count < 2:
            raise ValueError(
                f"{self!r} in training mode needs more than one value per channel to estimate a variance, "
                f"got {count}. Use a larger batch, or nn.test_mode for single examples."
            )
        m = self.momentum
        mean, var = dx.stop_gradient(mean), dx.stop_gradient(var)
        running_mean, running_var = dx.stop_gradient(self.running_mean), dx.stop_gradient(self.running_var)
        new_mean = (1.0 - m) * running_mean + m * mean
        new_var = (1.0 - m) * running_var + m * var * (count / (count - 1))
        update_state(
            self,
            running_mean=dx.astype(new_mean, running_mean.dtype),
            running_var=dx.astype(new_var, running_var.dtype),
        )

    def __repr__(self) -> str:
        positional = [str(self.num_features)]
        if self.activation is not identity:
            positional.append(name_of(self.activation))
        keywords = {
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.scale is not None,
            "track_stats": self.running_mean is not None,
            "training": self.training,
        }
        defaults = {"eps": 1e-5, "momentum": 0.1, "affine": True, "track_stats": True, "training": False}
        return format_call("BatchNorm", positional, keywords, defaults)


class LayerNorm(Layer):
    """``y = scale * (x - mean) / sqrt(var + eps) + bias`` over the trailing ``shape`` axes.

    Shapes: ``x`` is ``(..., *shape)`` and ``y`` has its shape; each slice
    over the trailing ``len(shape)`` axes is normalised on its own (PyTorch's
    ``normalized_shape``). ``scale`` and ``bias`` have shape ``shape``,
    initialised to ones and zeros.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> norm = nn.LayerNorm(8)
        >>> norm
        LayerNorm((8,))
        >>> norm(dx.ones((2, 5, 8))).shape
        (2, 5, 8)
    """

    scale: Any
    bias: Any
    shape: tuple[int, ...]
    eps: float

    def __init__(
        self,
        shape: int | Sequence[int],
        *,
        eps: float = 1e-5,
        affine: bool = True,
        dtype: Any = None,
        backend: str | None = None,
    ) -> None:
        self.shape = _trailing_shape(shape, "LayerNorm")
        self.scale, self.bias = _affine_parameters(self.shape, affine, dtype, _backend(backend))
        self.eps = _checked_eps(eps, "LayerNorm")

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        _check_backend(self, x, self.scale)
        axes = _trailing_axes(self, x, self.shape)
        y = _normalise_over(x, axes, self.eps)
        if self.scale is not None:
            y = y * self.scale + self.bias
        return y

    def __repr__(self) -> str:
        keywords = {"eps": self.eps, "affine": self.scale is not None}
        return format_call("LayerNorm", [repr(self.shape)], keywords, {"eps": 1e-5, "affine": True})


class GroupNorm(Layer):
    """``y = scale * (x - mean) / sqrt(var + eps) + bias`` over each group of channels (Wu and He, 2018).

    Shapes: ``x`` is ``(N, C, *spatial)`` and ``y`` has its shape. The ``C``
    channels are split into ``num_groups`` groups of consecutive channels;
    the statistics are taken over each group's channels and all spatial
    axes, per example. ``scale`` and ``bias`` are ``(C,)``, ones and zeros.
    ``num_groups=C`` is instance normalisation and ``num_groups=1``
    normalises each example over all its channels.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> norm = nn.GroupNorm(2, 6)
        >>> norm
        GroupNorm(2, 6)
        >>> norm(dx.ones((3, 6, 4, 4))).shape
        (3, 6, 4, 4)
    """

    scale: Any
    bias: Any
    num_groups: int
    num_channels: int
    eps: float

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        *,
        eps: float = 1e-5,
        affine: bool = True,
        dtype: Any = None,
        backend: str | None = None,
    ) -> None:
        num_groups = as_positive_int(num_groups, "num_groups", "GroupNorm")
        num_channels = as_positive_int(num_channels, "num_channels", "GroupNorm")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_groups={num_groups} must divide num_channels={num_channels}")
        self.scale, self.bias = _affine_parameters((num_channels,), affine, dtype, _backend(backend))
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = _checked_eps(eps, "GroupNorm")

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        _check_backend(self, x, self.scale)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise shape_error(self, f"an input of shape (N, {self.num_channels}, *spatial)", x)
        grouped_shape = (x.shape[0], self.num_groups, self.num_channels // self.num_groups) + tuple(x.shape[2:])
        grouped = dx.reshape(x, grouped_shape)
        normalised = _normalise_over(grouped, tuple(range(2, grouped.ndim)), self.eps)
        y = dx.reshape(normalised, tuple(x.shape))
        return _channel_affine(y, self.scale, self.bias)

    def __repr__(self) -> str:
        keywords = {"eps": self.eps, "affine": self.scale is not None}
        return format_call(
            "GroupNorm", [str(self.num_groups), str(self.num_channels)], keywords, {"eps": 1e-5, "affine": True}
        )


class InstanceNorm(Layer):
    """``y = scale * (x - mean) / sqrt(var + eps) + bias`` over the spatial axes of each example and channel.

    Shapes: ``x`` is ``(N, C, *spatial)`` with at least one spatial axis and
    ``y`` has its shape (Ulyanov et al., 2016). ``affine=False`` by default,
    as in PyTorch and Flux; with ``affine=True`` ``scale`` and ``bias`` are
    ``(C,)``. There are no running statistics: training and test mode agree.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> norm = nn.InstanceNorm(3)
        >>> norm
        InstanceNorm(3)
        >>> norm(dx.ones((2, 3, 8, 8))).shape
        (2, 3, 8, 8)
    """

    scale: Any
    bias: Any
    num_features: int
    eps: float

    def __init__(
        self,
        num_features: int,
        *,
        eps: float = 1e-5,
        affine: bool = False,
        dtype: Any = None,
        backend: str | None = None,
    ) -> None:
        num_features = as_positive_int(num_features, "num_features", "InstanceNorm")
        self.scale, self.bias = _affine_parameters((num_features,), affine, dtype, _backend(backend))
        self.num_features = num_features
        self.eps = _checked_eps(eps, "InstanceNorm")

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        _check_backend(self, x, self.scale)
        if x.ndim < 3 or x.shape[1] != self.num_features:
            raise shape_error(self, f"an input of shape (N, {self.num_features}, *spatial) with a spatial axis", x)
        y = _normalise_over(x, tuple(range(2, x.ndim)), self.eps)
        return _channel_affine(y, self.scale, self.bias)

    def __repr__(self) -> str:
        keywords = {"eps": self.eps, "affine": self.scale is not None}
        return format_call("InstanceNorm", [str(self.num_features)], keywords, {"eps": 1e-5, "affine": False})


class RMSNorm(Layer):
    """``y = scale * x / sqrt(mean(x**2) + eps)`` over the trailing ``shape`` axes (Zhang and Sennrich, 2019).

    Shapes are those of :class:`LayerNorm`; there is no centring and no bias.
    ``scale`` has shape ``shape``, initialised to ones.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> norm = nn.RMSNorm(4)
        >>> norm
        RMSNorm((4,))
        >>> norm(dx.full((2, 4), 3.0)).round(6).tolist()[0]
        [1.0, 1.0, 1.0, 1.0]
    """

    scale: Any
    shape: tuple[int, ...]
    eps: float

    def __init__(
        self,
        shape: int | Sequence[int],
        *,
        eps: float = 1e-6,
        affine: bool = True,
        dtype: Any = None,
        backend: str | None = None,
    ) -> None:
        self.shape = _trailing_shape(shape, "RMSNorm")
        self.scale = dx.ones(self.shape, dtype=dtype, backend=_backend(backend)) if affine else None
        self.eps = _checked_eps(eps, "RMSNorm")

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        _check_backend(self, x, self.scale)
        axes = _trailing_axes(self, x, self.shape)
        y = x / dx.sqrt(dx.mean(x * x, axis=axes, keepdims=True) + self.eps)
        return y * self.scale if self.scale is not None else y

    def __repr__(self) -> str:
        keywords = {"eps": self.eps, "affine": self.scale is not None}
        return format_call("RMSNorm", [repr(self.shape)], keywords, {"eps": 1e-6, "affine": True})
