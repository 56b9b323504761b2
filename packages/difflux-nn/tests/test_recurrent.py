"""Recurrent cells and layers against hand-written loops and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

import difflux.core as dx
from conftest import NUMPY_KEY, needs_jax, needs_torch, on_backend, to_numpy
from difflux import nn
from difflux.core.testing import check_grads

RNG = np.random.default_rng(0)
N, T, F, H = 2, 5, 3, 4


def _random_parameters(layer):
    """Replace every array of a layer by a random one, so that zero biases hide nothing."""
    return dx.tree_map(lambda a: RNG.normal(scale=0.5, size=a.shape) if dx.is_array(a) else a, layer)


# -- the equations, written out step by step -----------------------------------------


def rnn_loop(cell, x, h):
    outputs = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ cell.weight_ih.T + h @ cell.weight_hh.T + cell.bias)
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def lstm_loop(cell, x, state):
    h, c = state
    outputs = []
    for t in range(x.shape[1]):
        a = x[:, t] @ cell.weight_ih.T + h @ cell.weight_hh.T + cell.bias
        i, f, g, o = np.split(a, 4, axis=-1)
        c = expit(f) * c + expit(i) * np.tanh(g)
        h = expit(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1), (h, c)


def gru_loop(cell, x, h):
    outputs = []
    for t in range(x.shape[1]):
        p = x[:, t] @ cell.weight_ih.T + cell.bias
        q = h @ cell.weight_hh.T
        p_r, p_z, p_n = np.split(p, 3, axis=-1)
        q_r, q_z, q_n = np.split(q, 3, axis=-1)
        r = expit(p_r + q_r)
        z = expit(p_z + q_z)
        n = np.tanh(p_n + r * (q_n + cell.bias_hn))
        h = (1 - z) * n + z * h
        outputs.append(h)
    return np.stack(outputs, axis=1), h


def _state(kind):
    h = RNG.normal(size=(N, H))
    return (h, RNG.normal(size=(N, H))) if kind == "lstm" else h


LAYERS = {
    "rnn": (lambda: nn.RNN(F, H, key=NUMPY_KEY), rnn_loop),
    "lstm": (lambda: nn.LSTM(F, H, key=NUMPY_KEY), lstm_loop),
    "gru": (lambda: nn.GRU(F, H, key=NUMPY_KEY), gru_loop),
}


@pytest.mark.parametrize("kind", list(LAYERS))
def test_sequence_matches_loop(backend, convert, to_backend, kind):
    make, loop = LAYERS[kind]
    layer = _random_parameters(make())
    x, state = RNG.normal(size=(N, T, F)), _state(kind)
    expected_outputs, expected_state = loop(layer.cell, x, state)
    outputs, final = convert(layer)(to_backend(x), dx.tree_map(to_backend, state))
    np.testing.assert_allclose(to_numpy(outputs), expected_outputs, rtol=1e-12)
    for got, want in zip(dx.tree_leaves(final), dx.tree_leaves(expected_state)):
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_cell_is_one_step(kind):
    make, loop = LAYERS[kind]
    cell = _random_parameters(make()).cell
    x, state = RNG.normal(size=(N, F)), _state(kind)
    output, new_state = cell(x, state)
    expected_outputs, expected_state = loop(cell, x[:, None], state)
    np.testing.assert_allclose(output, expected_outputs[:, 0], rtol=1e-12)
    for got, want in zip(dx.tree_leaves(new_state), dx.tree_leaves(expected_state)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_time_first_and_unbatched_layouts(backend, convert, to_backend):
    layer = _random_parameters(nn.GRU(F, H, key=NUMPY_KEY))
    x = RNG.normal(size=(N, T, F))
    batch_first, _ = convert(layer)(to_backend(x))
    time_first, _ = convert(dx.replace(layer, batch_first=False))(to_backend(np.swapaxes(x, 0, 1)))
    np.testing.assert_allclose(to_numpy(time_first), np.swapaxes(to_numpy(batch_first), 0, 1), rtol=1e-12)
    single, _ = convert(layer)(to_backend(x[0]))
    np.testing.assert_allclose(to_numpy(single), to_numpy(batch_first)[0], rtol=1e-12)


def test_reverse_runs_backwards(convert, to_backend):
    layer = _random_parameters(nn.LSTM(F, H, key=NUMPY_KEY))
    x = RNG.normal(size=(N, T, F))
    forward_on_flipped, state = convert(layer)(to_backend(x[:, ::-1].copy()))
    backward, backward_state = convert(dx.replace(layer, reverse=True))(to_backend(x))
    np.testing.assert_allclose(to_numpy(backward), to_numpy(forward_on_flipped)[:, ::-1], rtol=1e-12)
    np.testing.assert_allclose(to_numpy(backward_state[1]), to_numpy(state[1]), rtol=1e-12)


def test_default_state_is_zero():
    layer = _random_parameters(nn.RNN(F, H, key=NUMPY_KEY))
    x = RNG.normal(size=(N, T, F))
    np.testing.assert_allclose(layer(x)[0], layer(x, np.zeros((N, H)))[0])
    h, c = nn.LSTMCell(F, H, key=NUMPY_KEY).initial_state((N,))
    assert h.shape == c.shape == (N, H)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_sequence_gradients(backend, convert, to_backend, kind):
    make, _ = LAYERS[kind]
    layer = convert(_random_parameters(make()))
    x = to_backend(RNG.normal(size=(2, 3, F)))
    check_grads(lambda m, x: m(x)[0], (layer, x), order=1)


def test_cell_gradients_second_order(backend, convert, to_backend):
    cell = convert(_random_parameters(nn.LSTMCell(2, 2, key=NUMPY_KEY)))
    x, h, c = (to_backend(RNG.normal(size=(1, 2))) for _ in range(3))
    check_grads(lambda m, x, h, c: m(x, (h, c))[1], (cell, x, h, c), order=2)


@needs_jax
def test_lstm_under_jit():
    layer = on_backend(_random_parameters(nn.LSTM(F, H, key=NUMPY_KEY)), "jax")
    x = dx.asarray(RNG.normal(size=(N, T, F)), backend="jax")
    compiled = dx.jit(lambda m, x: m(x))
    outputs, (h, _) = compiled(layer, x)
    expected, (h_eager, _) = layer(x)
    np.testing.assert_allclose(to_numpy(outputs), to_numpy(expected), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(h), to_numpy(h_eager), rtol=1e-12)


def _from_torch(torch_layer, layer):
    """Copy a PyTorch RNN/LSTM/GRU's weights into a difflux layer with the same sizes."""
    w_ih = torch_layer.weight_ih_l0.detach().numpy().astype(np.float64)
    w_hh = torch_layer.weight_hh_l0.detach().numpy().astype(np.float64)
    b_ih = torch_layer.bias_ih_l0.detach().numpy().astype(np.float64)
    b_hh = torch_layer.bias_hh_l0.detach().numpy().astype(np.float64)
    cell = layer.cell
    if isinstance(cell, nn.GRUCell):
        # Only the candidate block of bias_hh sits inside the reset product.
        merged = b_ih + np.concatenate([b_hh[: 2 * H], np.zeros(H)])
        cell = dx.replace(cell, weight_ih=w_ih, weight_hh=w_hh, bias=merged, bias_hn=b_hh[2 * H :])
    else:
        cell = dx.replace(cell, weight_ih=w_ih, weight_hh=w_hh, bias=b_ih + b_hh)
    return dx.replace(layer, cell=cell)


@needs_torch
@pytest.mark.parametrize("kind", list(LAYERS))
def test_matches_torch(kind):
    import torch

    torch.manual_seed(0)
    torch_class = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    reference = torch_class(F, H, batch_first=True, dtype=torch.float64)
    layer = _from_torch(reference, LAYERS[kind][0]())
    x = RNG.normal(size=(N, T, F))
    expected, expected_state = reference(torch.from_numpy(x))
    outputs, state = layer(x)
    np.testing.assert_allclose(outputs, expected.detach().numpy(), rtol=1e-10)
    h = state[0] if kind == "lstm" else state
    torch_h = expected_state[0] if kind == "lstm" else expected_state
    np.testing.assert_allclose(h, torch_h.detach().numpy()[0], rtol=1e-10)


def test_shape_errors():
    layer = nn.LSTM(F, H, key=NUMPY_KEY)
    with pytest.raises(
        ValueError,
        match=r"LSTM\(3 => 4\) expects an input of shape \(N, T, features\) or \(T, features\) with features = 3",
    ):
        layer(np.ones((2, 5, 4)))
    with pytest.raises(ValueError, match=r"RNNCell\(3 => 4\) expects inputs with 3 features"):
        nn.RNNCell(F, H, key=NUMPY_KEY)(np.ones((2, 2)))


def test_cell_invalid_sizes():
    with pytest.raises(ValueError, match=r"^RNNCell: hidden_features must be a positive integer, got 0$"):
        nn.RNNCell(3, 0, key=NUMPY_KEY)
    with pytest.raises(TypeError, match=r"^GRUCell: in_features must be a positive integer, got 3\.0 of type float$"):
        nn.GRUCell(3.0, 4, key=NUMPY_KEY)
    with pytest.raises(ValueError, match=r"^LSTMCell: hidden_features must be a positive integer, got -4$"):
        nn.LSTM(3, -4, key=NUMPY_KEY)
    assert repr(nn.GRU(np.int64(3), np.int32(4), key=NUMPY_KEY)) == "GRU(3 => 4)"


def test_reprs():
    assert repr(nn.RNNCell(3, 4, nn.relu, key=NUMPY_KEY)) == "RNNCell(3 => 4, relu)"
    assert repr(nn.GRUCell(3, 4, key=NUMPY_KEY, bias=False)) == "GRUCell(3 => 4, bias=False)"
    assert repr(nn.LSTM(3, 4, key=NUMPY_KEY, batch_first=False)) == "LSTM(3 => 4, batch_first=False)"
    assert repr(nn.RNN(3, 4, key=NUMPY_KEY, reverse=True)) == "RNN(3 => 4, reverse=True)"


def test_weight_shapes_and_initialisation():
    cell = nn.LSTMCell(3, 4, key=NUMPY_KEY)
    assert cell.weight_ih.shape == (16, 3)
    assert cell.weight_hh.shape == (16, 4)
    assert cell.bias.shape == (16,)
    np.testing.assert_allclose(cell.weight_hh.T @ cell.weight_hh, np.eye(4), atol=1e-12)
    gru = nn.GRUCell(3, 4, key=NUMPY_KEY)
    assert gru.bias_hn.shape == (4,)
