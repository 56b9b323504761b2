"""Fully connected layers: ``Dense``, ``Bilinear`` and ``Embedding``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import difflux.core as dx

from ._initialisers import glorot_uniform, normal, zeros
from ._layer import Layer, as_positive_int, concrete_value, identity, name_of, shape_error

Initialiser = Callable[..., Any]


def _bias_term(bias: Any) -> str:
    return "" if bias is not None else ", bias=False"


def _activation_term(activation: Any) -> str:
    return "" if activation is identity else f", {name_of(activation)}"


class Dense(Layer):
    """``y = activation(x @ weight.T + bias)``: a fully connected layer.

    Shapes: ``x`` is ``(..., in_features)`` and ``y`` is
    ``(..., out_features)``. ``weight`` is ``(out_features, in_features)`` (as
    in PyTorch and Flux) and ``bias`` is ``(out_features,)``, or ``None`` with
    ``bias=False``.

    Args:
        in_features: the size of the input's last axis.
        out_features: the size of the output's last axis.
        activation: applied element-wise to the output; identity by default.
        key: the random key for the initialisation.
        bias: whether to add a bias.
        init: the weight initialiser, ``glorot_uniform`` by default.
        bias_init: the bias initialiser, ``zeros`` by default.
        dtype: the parameters' dtype (the backend's default float when ``None``).

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> layer = nn.Dense(3, 4, nn.relu, key=dx.random.key(0, backend="numpy"))
        >>> layer
        Dense(3 => 4, relu)
        >>> layer(dx.ones((2, 3))).shape
        (2, 4)
    """

    weight: Any
    bias: Any
    activation: Callable[[Any], Any]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: Callable[[Any], Any] = identity,
        *,
        key: Any,
        bias: bool = True,
        init: Initialiser = glorot_uniform,
        bias_init: Initialiser = zeros,
        dtype: Any = None,
    ) -> None:
        in_features = as_positive_int(in_features, "in_features", "Dense")
        out_features = as_positive_int(out_features, "out_features", "Dense")
        weight_key, bias_key = dx.random.split(key)
        self.weight = init(weight_key, (out_features, in_features), dtype)
        self.bias = bias_init(bias_key, (out_features,), dtype) if bias else None
        self.activation = activation

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise shape_error(self, f"inputs with {self.in_features} features on the last axis", x)
        y = dx.linear(x, self.weight, self.bias)
        return y if self.activation is identity else self.activation(y)

    def __repr__(self) -> str:
        terms = _activation_term(self.activation) + _bias_term(self.bias)
        return f"Dense({self.in_features} => {self.out_features}{terms})"


class Bilinear(Layer):
    """``y[..., k] = activation(x1 @ weight[k] @ x2 + bias[k])``: a bilinear form per output.

    Shapes: ``x1`` is ``(..., in1)``, ``x2`` is ``(..., in2)`` and ``y`` is
    ``(..., out)``. ``weight`` is ``(out, in1, in2)`` (as in PyTorch) and
    ``bias`` is ``(out,)``. Call it as ``layer(x1, x2)`` or ``layer((x1, x2))``
    (the form a ``Parallel`` or ``Chain`` passes on); ``layer(x)`` means
    ``layer(x, x)``. The weight is initialised with ``glorot_uniform`` on the
    fans of ``(out, in1 * in2)``.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> layer = nn.Bilinear(2, 3, 4, key=dx.random.key(0, backend="numpy"))
        >>> layer
        Bilinear((2, 3) => 4)
        >>> layer(dx.ones((5, 2)), dx.ones((5, 3))).shape
        (5, 4)
    """

    weight: Any
    bias: Any
    activation: Callable[[Any], Any]

    def __init__(
        self,
        in1_features: int,
        in2_features: int,
        out_features: int,
        activation: Callable[[Any], Any] = identity,
        *,
        key: Any,
        bias: bool = True,
        init: Initialiser = glorot_uniform,
        bias_init: Initialiser = zeros,
        dtype: Any = None,
    ) -> None:
        in1_features = as_positive_int(in1_features, "in1_features", "Bilinear")
        in2_features = as_positive_int(in2_features, "in2_features", "Bilinear")
        out_features = as_positive_int(out_features, "out_features", "Bilinear")
        weight_key, bias_key = dx.random.split(key)
        flat = init(weight_key, (out_features, in1_features * in2_features), dtype)
        self.weight = dx.reshape(flat, (out_features, in1_features, in2_features))
        self.bias = bias_init(bias_key, (out_features,), dtype) if bias else None
        self.activation = activation

    def __call__(self, x1: Any, x2: Any = None, *, key: Any = None) -> Any:
        if x2 is None:
            x1, x2 = x1 if isinstance(x1, tuple | list) else (x1, x1)
        in1, in2 = self.weight.shape[1:]
        if x1.ndim == 0 or x1.shape[-1] != in1:
            raise shape_error(self, f"a first input with {in1} features on the last axis", x1)
        if x2.ndim == 0 or x2.shape[-1] != in2:
            raise shape_error(self, f"a second input with {in2} features on the last axis", x2)
        y = dx.einsum("...i,kij,...j->...k", x1, self.weight, x2)
        if self.bias is not None:
            y = y + self.bias
        return y if self.activation is identity else self.activation(y)

    def __repr__(self) -> str:
        out_features, in1, in2 = self.weight.shape
        terms = _activation_term(self.activation) + _bias_term(self.bias)
        return f"Bilinear(({in1}, {in2}) => {out_features}{terms})"


class Embedding(Layer):
    """``y = weight[indices]``: a lookup table of learned vectors.

    Shapes: integer ``indices`` of any shape ``S`` with values in
    ``[0, num_embeddings)`` give ``y`` of shape ``(*S, features)``. ``weight``
    is ``(num_embeddings, features)``, initialised from N(0, 1) as in PyTorch
    and Flux. Out-of-range indices raise ``ValueError`` where their values
    are known: NumPy arrays (also under ``dx.vmap``, which runs the lookup
    once per example) and eager JAX arrays. Under ``dx.jit`` or ``dx.vmap``
    on JAX out-of-range indices cannot be detected, and the lookup returns
    a row clamped into range (after a negative index wraps around once).

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> table = nn.Embedding(10, 3, key=dx.random.key(0, backend="numpy"))
        >>> table
        Embedding(10 => 3)
        >>> table(np.array([[1, 2], [3, 4]])).shape
        (2, 2, 3)
    """

    weight: Any

    def __init__(
        self, num_embeddings: int, features: int, *, key: Any, init: Initialiser = normal, dtype: Any = None
    ) -> None:
        num_embeddings = as_positive_int(num_embeddings, "num_embeddings", "Embedding")
        features = as_positive_int(features, "features", "Embedding")
        self.weight = init(key, (num_embeddings, features), dtype)

    def __call__(self, indices: Any, *, key: Any = None) -> Any:
        num_embeddings = self.weight.shape[0]
        if not hasattr(indices, "dtype"):
            indices = dx.asarray(indices)
        if not dx.isdtype(indices.dtype, "integral"):
            raise TypeError(
                f"{self!r} expects integer indices, got dtype {indices.dtype}. Convert class labels with "
                "dx.astype(indices, dx.int64)."
            )
        values = concrete_value(indices)
        if values is not None and values.size:
            low, high = int(values.min()), int(values.max())
            if low < 0 or high >= num_embeddings:
                raise ValueError(f"{self!r} expects indices in [0, {num_embeddings}), got indices from {low} to {high}")
        return dx.take(self.weight, indices, axis=0)

    def __repr__(self) -> str:
        num_embeddings, features = self.weight.shape
        return f"Embedding({num_embeddings} => {features})"
