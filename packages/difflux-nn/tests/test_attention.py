"""MultiHeadAttention and dot_product_attention against the formula and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

import difflux.core as dx
from conftest import NUMPY_KEY, needs_torch, to_numpy
from difflux import nn
from difflux.core.testing import check_grads

RNG = np.random.default_rng(0)
N, LQ, LK, E, HEADS = 2, 3, 4, 8, 2


def _layer(**options):
    return nn.MultiHeadAttention(E, HEADS, key=NUMPY_KEY, bias_init=nn.normal, **options)


def _dense(layer, x):
    return x @ np.asarray(layer.weight).T + np.asarray(layer.bias)


def reference(layer, q, k, v, allowed=None, additive=None):
    """Multi-head attention written out head by head in NumPy."""
    d = E // HEADS
    qp, kp, vp = _dense(layer.query_proj, q), _dense(layer.key_proj, k), _dense(layer.value_proj, v)
    heads, all_weights = [], []
    for head in range(HEADS):
        part = slice(head * d, (head + 1) * d)
        logits = qp[..., part] @ np.swapaxes(kp[..., part], -1, -2) / np.sqrt(d)
        if additive is not None:
            logits = logits + additive
        if allowed is not None:
            # A large finite value rather than -inf keeps fully masked rows free of NaN warnings.
            logits = np.where(allowed, logits, -1e300)
        weights = softmax(logits, axis=-1)
        if allowed is not None:
            weights = np.where(allowed.any(axis=-1, keepdims=True), weights, 0.0)
        all_weights.append(weights)
        heads.append(weights @ vp[..., part])
    return _dense(layer.out_proj, np.concatenate(heads, axis=-1)), np.stack(all_weights, axis=-3)


def test_self_attention_matches_formula(convert, to_backend):
    layer = _layer()
    x = RNG.normal(size=(N, LQ, E))
    expected, expected_weights = reference(layer, x, x, x)
    y, weights = convert(layer)(to_backend(x), return_weights=True)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10)
    np.testing.assert_allclose(to_numpy(weights), expected_weights, rtol=1e-10)


def test_cross_attention_with_other_dimensions(convert, to_backend):
    layer = _layer(key_dim=5, value_dim=6, out_dim=3)
    q, k, v = RNG.normal(size=(N, LQ, E)), RNG.normal(size=(N, LK, 5)), RNG.normal(size=(N, LK, 6))
    expected, _ = reference(layer, q, k, v)
    y = convert(layer)(to_backend(q), to_backend(k), to_backend(v))
    assert tuple(y.shape) == (N, LQ, 3)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10)


def test_boolean_mask_key_mask_and_causal(backend, convert, to_backend):
    layer = _layer()
    q, k = RNG.normal(size=(N, LQ, E)), RNG.normal(size=(N, LK, E))
    mask = RNG.uniform(size=(N, LQ, LK)) > 0.3
    key_mask = np.array([[True, True, True, False], [True, False, True, True]])
    causal = np.tril(np.ones((LQ, LK), dtype=bool))
    allowed = mask & key_mask[:, None, :] & causal
    expected, expected_weights = reference(layer, q, k, k, allowed=allowed)
    y, weights = convert(layer)(
        to_backend(q),
        to_backend(k),
        mask=dx.asarray(mask, backend=backend),
        key_mask=dx.asarray(key_mask, backend=backend),
        causal=True,
        return_weights=True,
    )
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10)
    np.testing.assert_allclose(to_numpy(weights), expected_weights, rtol=1e-10, atol=1e-300)
    assert np.all(to_numpy(weights)[~np.broadcast_to(allowed[:, None], expected_weights.shape)] == 0)


def test_additive_mask(convert, to_backend):
    layer = _layer()
    x = RNG.normal(size=(N, LQ, E))
    additive = RNG.normal(size=(LQ, LQ))
    expected, _ = reference(layer, x, x, x, additive=additive)
    np.testing.assert_allclose(to_numpy(convert(layer)(to_backend(x), mask=to_backend(additive))), expected, rtol=1e-10)


def test_fully_masked_query_gives_zero_weights(backend, convert, to_backend):
    layer = convert(_layer(bias=False))
    x = to_backend(RNG.normal(size=(1, LQ, E)))
    mask = np.ones((LQ, LQ), dtype=bool)
    mask[1] = False
    y, weights = layer(x, mask=dx.asarray(mask, backend=backend), return_weights=True)
    assert np.all(to_numpy(weights)[:, :, 1] == 0)
    np.testing.assert_allclose(to_numpy(y)[:, 1], 0.0)
    grads = dx.grad(lambda m: dx.sum(m(x, mask=dx.asarray(mask, backend=backend))))(layer)
    assert all(np.all(np.isfinite(to_numpy(g))) for g in dx.tree_leaves(grads))


def test_unbatched_input():
    layer = _layer()
    x = RNG.normal(size=(LQ, E))
    np.testing.assert_allclose(layer(x, causal=True), layer(x[None], causal=True)[0], rtol=1e-12)


def test_attention_gradients(backend, convert, to_backend):
    layer = convert(nn.MultiHeadAttention(4, 2, key=NUMPY_KEY, bias_init=nn.normal))
    x = to_backend(RNG.normal(size=(1, 3, 4)))
    check_grads(lambda m, x: m(x, causal=True), (layer, x), order=1)


def test_dot_product_attention_second_order(backend, to_backend):
    q, k, v = (to_backend(RNG.normal(size=(2, 3))) for _ in range(3))
    check_grads(lambda q, k, v: nn.dot_product_attention(q, k, v)[0], (q, k, v), order=2)


def test_dropout_on_weights(key, convert, to_backend):
    layer = nn.train_mode(convert(_layer(dropout=0.5)))
    x = to_backend(RNG.normal(size=(N, LQ, E)))
    with pytest.raises(ValueError, match="needs a key"):
        layer(x)
    _, weights = layer(x, key=key, return_weights=True)
    values = np.unique(np.round(to_numpy(weights), 12))
    assert 0.0 in values
    _, test_weights = nn.test_mode(layer)(x, return_weights=True)
    np.testing.assert_allclose(to_numpy(test_weights).sum(-1), 1.0)


@needs_torch
def test_matches_torch():
    import torch

    torch.manual_seed(0)
    reference_layer = torch.nn.MultiheadAttention(E, HEADS, batch_first=True, dtype=torch.float64)
    in_weight = reference_layer.in_proj_weight.detach().numpy()
    in_bias = reference_layer.in_proj_bias.detach().numpy()
    layer = _layer()
    layer = dx.replace(
        layer,
        query_proj=dx.replace(layer.query_proj, weight=in_weight[:E], bias=in_bias[:E]),
        key_proj=dx.replace(layer.key_proj, weight=in_weight[E : 2 * E], bias=in_bias[E : 2 * E]),
        value_proj=dx.replace(layer.value_proj, weight=in_weight[2 * E :], bias=in_bias[2 * E :]),
        out_proj=dx.replace(
            layer.out_proj,
            weight=reference_layer.out_proj.weight.detach().numpy(),
            bias=reference_layer.out_proj.bias.detach().numpy(),
        ),
    )
    q, k = RNG.normal(size=(N, LQ, E)), RNG.normal(size=(N, LK, E))
    padding = np.array([[False, False, True, True], [False, False, False, False]])
    expected, expected_weights = reference_layer(
        torch.from_numpy(q),
        torch.from_numpy(k),
        torch.from_numpy(k),
        key_padding_mask=torch.from_numpy(padding),
        average_attn_weights=False,
    )
    y, weights = layer(q, k, key_mask=~padding, return_weights=True)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(weights, expected_weights.detach().numpy(), rtol=1e-10, atol=1e-15)


def test_errors():
    with pytest.raises(ValueError, match="num_heads=3 must divide embed_dim=8"):
        nn.MultiHeadAttention(8, 3, key=NUMPY_KEY)
    layer = _layer()
    with pytest.raises(
        ValueError, match=r"MultiHeadAttention\(8, num_heads=2\) expects a key input of shape \(N, L, 8\)"
    ):
        layer(np.ones((1, 2, 8)), np.ones((1, 2, 5)))
    with pytest.raises(TypeError, match="key_mask must be boolean"):
        layer(np.ones((1, 2, 8)), key_mask=np.ones((1, 2)))


def test_attention_invalid_sizes():
    with pytest.raises(ValueError, match=r"^MultiHeadAttention: num_heads must be a positive integer, got 0$"):
        nn.MultiHeadAttention(8, 0, key=NUMPY_KEY)
    with pytest.raises(
        TypeError, match=r"^MultiHeadAttention: embed_dim must be a positive integer, got 8\.0 of type float$"
    ):
        nn.MultiHeadAttention(8.0, 2, key=NUMPY_KEY)
    with pytest.raises(ValueError, match=r"^MultiHeadAttention: key_dim must be a positive integer, got -4$"):
        nn.MultiHeadAttention(8, 2, key=NUMPY_KEY, key_dim=-4)
    with pytest.raises(ValueError, match=r"^MultiHeadAttention: out_dim must be a positive integer, got 0$"):
        nn.MultiHeadAttention(8, 2, key=NUMPY_KEY, out_dim=0)


def test_repr():
    assert repr(_layer()) == "MultiHeadAttention(8, num_heads=2)"
    assert repr(_layer(key_dim=4, dropout=0.1)) == "MultiHeadAttention(8, num_heads=2, key_dim=4, dropout=0.1)"
