"""``MultiHeadAttention`` and the scaled dot-product attention it is built on."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import difflux.core as dx

from ._dense import Dense
from ._dropout import dropout
from ._initialisers import glorot_uniform, zeros
from ._layer import Layer, as_positive_int, backend_of, format_call, shape_error

Initialiser = Callable[..., Any]


def _is_bool(x: Any) -> bool:
    return bool(dx.isdtype(x.dtype, "bool"))


def _as_mask_array(mask: Any, reference: Any) -> Any:
    return mask if hasattr(mask, "dtype") else dx.asarray(mask, backend=backend_of(reference))


def dot_product_attention(
    q: Any,
    k: Any,
    v: Any,
    *,
    mask: Any = None,
    key_mask: Any = None,
    causal: bool = False,
    dropout_rate: float = 0.0,
    key: Any = None,
) -> tuple[Any, Any]:
    """Return ``(softmax(q @ k.T / sqrt(d) + masks) @ v, weights)``, attention over the last two axes.

    Shapes: ``q`` is ``(..., Lq, d)``, ``k`` is ``(..., Lk, d)``, ``v`` is
    ``(..., Lk, dv)``; the output is ``(..., Lq, dv)`` and the weights are
    ``(..., Lq, Lk)``. The leading axes broadcast.

    Args:
        mask: a boolean mask, ``True`` where a query may attend to a key, or
            a float mask added to the logits. It broadcasts against
            ``(..., Lq, Lk)``. The boolean convention is that of
            ``jax.nn.dot_product_attention`` and Flux, the opposite of
            PyTorch's boolean ``attn_mask``.
        key_mask: a boolean ``(..., Lk)``, ``False`` at padding keys that no
            query may attend to.
        causal: whether query ``i`` attends only to keys ``j <= i``.
        dropout_rate: the probability of dropping an attention weight; needs
            ``key`` when positive.
        key: the random key for dropout.

    A query whose keys are all masked out by the boolean masks gets zero
    weights and a zero output, not NaN. A float mask of ``-inf`` everywhere
    in a row still gives NaN, as a softmax over no keys must.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    logits = dx.matmul(q, dx.matrix_transpose(k)) * scale
    allowed = None
    if mask is not None:
        mask = _as_mask_array(mask, logits)
        if _is_bool(mask):
            allowed = mask
        else:
            logits = logits + mask
    if key_mask is not None:
        key_mask = _as_mask_array(key_mask, logits)
        if not _is_bool(key_mask):
            raise TypeError(f"key_mask must be boolean (False at padding keys), got dtype {key_mask.dtype}")
        padding = dx.expand_dims(key_mask, axis=-2)
        allowed = padding if allowed is None else dx.logical_and(allowed, padding)
    if causal:
        lq, lk = logits.shape[-2], logits.shape[-1]
        lower = dx.tril(dx.ones((lq, lk), dtype=dx.bool, backend=backend_of(logits)))
        allowed = lower if allowed is None else dx.logical_and(allowed, lower)

    if allowed is None:
        weights = dx.softmax(logits, axis=-1)
    else:
        # The lowest finite value rather than -inf keeps a fully masked row
        # finite; its weights are then zeroed by the second where.
        lowest = float(dx.finfo(logits.dtype).min)
        weights = dx.softmax(dx.where(allowed, logits, lowest), axis=-1)
        weights = dx.where(allowed, weights, 0.0)
    if dropout_rate > 0.0:
        weights = dropout(weights, dropout_rate, key)
    return dx.matmul(weights, v), weights


class MultiHeadAttention(Layer):
    """``y = concat(head_1, ..., head_h) @ W_o.T``, ``head_i = attention(q W_q_i, k W_k_i, v W_v_i)`` (Vaswani et al., 2017).

    ``y = mha(q, k=None, v=None, *, mask=None, key_mask=None, causal=False)``;
    ``k`` defaults to ``q`` and ``v`` to ``k`` (self-attention). Shapes:
    ``q`` is ``(N, Lq, embed_dim)``, ``k`` is ``(N, Lk, key_dim)``, ``v`` is
    ``(N, Lk, value_dim)`` (batch first; the batch axis may be absent), and
    ``y`` is ``(N, Lq, out_dim)``. Each of the ``num_heads`` heads attends
    with ``embed_dim // num_heads`` features, scaled by one over its square
    root. With ``return_weights=True`` the call returns ``(y, weights)`` with
    weights ``(N, num_heads, Lq, Lk)``.

    Masks (see :func:`dot_product_attention`): a boolean ``mask`` is ``True``
    where a query may attend (the opposite of PyTorch's boolean
    ``attn_mask``), a float mask is added to the logits, and either
    broadcasts against ``(N, num_heads, Lq, Lk)``, so ``(Lq, Lk)`` and
    ``(N, 1, Lq, Lk)`` both work. ``key_mask`` ``(N, Lk)`` is ``False`` at
    padding keys (the opposite of PyTorch's ``key_padding_mask``). In
    training mode the attention weights are dropped with probability
    ``dropout``, using the call's ``key``.

    The four projections are :class:`Dense` layers (``query_proj``,
    ``key_proj``, ``value_proj``, ``out_proj``) with ``glorot_uniform``
    weights and zero biases.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> mha = nn.MultiHeadAttention(16, 4, key=dx.random.key(0, backend="numpy"))
        >>> mha
        MultiHeadAttention(16, num_heads=4)
        >>> mha(dx.ones((2, 5, 16)), causal=True).shape
        (2, 5, 16)
    """

    query_proj: Dense
    key_proj: Dense
    value_proj: Dense
    out_proj: Dense
    num_heads: int
    dropout: float
    training: bool

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        key: Any,
        key_dim: int | None = None,
        value_dim: int | None = None,
        out_dim: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        init: Initialiser = glorot_uniform,
        bias_init: Initialiser = zeros,
        training: bool = False,
        dtype: Any = None,
    ) -> None:
        embed_dim = as_positive_int(embed_dim, "embed_dim", "MultiHeadAttention")
        num_heads = as_positive_int(num_heads, "num_heads", "MultiHeadAttention")
        if embed_dim % num_heads:
            raise ValueError(f"MultiHeadAttention: num_heads={num_heads} must divide embed_dim={embed_dim}")
        key_dim = embed_dim if key_dim is None else as_positive_int(key_dim, "key_dim", "MultiHeadAttention")
        value_dim = embed_dim if value_dim is None else as_positive_int(value_dim, "value_dim", "MultiHeadAttention")
        out_dim = embed_dim if out_dim is None else as_positive_int(out_dim, "out_dim", "MultiHeadAttention")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must lie in [0, 1), got {dropout}")
        keys = dx.random.split(key, 4)
        options = {"bias": bias, "init": init, "bias_init": bias_init, "dtype": dtype}
        self.query_proj = Dense(embed_dim, embed_dim, key=keys[0], **options)
        self.key_proj = Dense(key_dim, embed_dim, key=keys[1], **options)
        self.value_proj = Dense(value_dim, embed_dim, key=keys[2], **options)
        self.out_proj = Dense(embed_dim, out_dim, key=keys[3], **options)
        self.num_heads = num_heads
        self.dropout = float(dropout)
        self.training = training

    @property
    def embed_dim(self) -> int:
        return self.query_proj.in_features

    def _split_heads(self, x: Any) -> Any:
        """``(..., L, E)`` -> ``(..., heads, L, E // heads)``."""
        shape = tuple(x.shape)
        split = dx.reshape(x, shape[:-1] + (self.num_heads, shape[-1] // self.num_heads))
        return dx.moveaxis(split, -2, -3)

    def __call__(
        self,
        q: Any,
        k: Any = None,
        v: Any = None,
        *,
        mask: Any = None,
        key_mask: Any = None,
        causal: bool = False,
        return_weights: bool = False,
        key: Any = None,
    ) -> Any:
        k = q if k is None else k
        v = k if v is None else v
        inputs = (("query", q, self.query_proj), ("key", k, self.key_proj), ("value", v, self.value_proj))
        for name, x, projection in inputs:
            if x.ndim < 2 or x.shape[-1] != projection.in_features:
                raise shape_error(
                    self,
                    f"a {name} input of shape (N, L, {projection.in_features}) or (L, {projection.in_features})",
                    x,
                )
        if k.shape[-2] != v.shape[-2]:
            raise ValueError(f"{self!r}: keys and values need the same length, got {k.shape[-2]} and {v.shape[-2]}")

        heads_q = self._split_heads(self.query_proj(q))
        heads_k = self._split_heads(self.key_proj(k))
        heads_v = self._split_heads(self.value_proj(v))
        if mask is not None:
            mask = _as_mask_array(mask, heads_q)
            if mask.ndim == 3 and heads_q.ndim == 4:
                # A (N, Lq, Lk) mask is shared by the heads.
                mask = dx.expand_dims(mask, axis=-3)
        if key_mask is not None:
            key_mask = _as_mask_array(key_mask, heads_q)
            if heads_q.ndim == key_mask.ndim + 2:
                # (N, Lk) -> (N, 1, Lk): a head axis, so that it lines up with (N, heads, Lq, Lk).
                key_mask = dx.expand_dims(key_mask, axis=-2)

        rate = self.dropout if self.training else 0.0
        if rate > 0.0 and key is None:
            raise ValueError(
                f"{self!r} applies dropout to its attention weights in training mode and needs a key: "
                "call it with key=... or use nn.test_mode(model)"
            )
        attended, weights = dot_product_attention(
            heads_q, heads_k, heads_v, mask=mask, key_mask=key_mask, causal=causal, dropout_rate=rate, key=key
        )
        merged = dx.moveaxis(attended, -3, -2)
        merged = dx.reshape(merged, tuple(merged.shape[:-2]) + (self.embed_dim,))
        y = self.out_proj(merged)
        return (y, weights) if return_weights else y

    def __repr__(self) -> str:
        keywords = {
            "key_dim": self.key_proj.in_features,
            "value_dim": self.value_proj.in_features,
            "out_dim": self.out_proj.out_features,
            "dropout": self.dropout,
            "training": self.training,
        }
        defaults = {
            "key_dim": self.embed_dim,
            "value_dim": self.embed_dim,
            "out_dim": self.embed_dim,
            "dropout": 0.0,
            "training": False,
        }
        return format_call(
            "MultiHeadAttention", [str(self.embed_dim), f"num_heads={self.num_heads}"], keywords, defaults
        )
