"""Tests of nn.DataLoader: batching, shuffling with explicit keys, backends and errors."""

from __future__ import annotations

import numpy as np
import pytest

import difflux.core as dx
from conftest import needs_jax
from difflux import nn


def _data(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    # The first column of x and y both hold the example index, so a batch
    # shows which examples it contains.
    x = np.stack([np.arange(n, dtype=float), -np.arange(n, dtype=float)], axis=1)
    return x, np.arange(n)


def _backend_name(x: object) -> str:
    return "numpy" if isinstance(x, np.ndarray) else "jax"


def _epoch_indices(loader: nn.DataLoader) -> list[int]:
    return [int(i) for _, y in loader for i in y]


def test_loader_visits_every_example_once(key):
    loader = nn.DataLoader(_data(), batch_size=3, key=key)
    indices = _epoch_indices(loader)
    assert sorted(indices) == list(range(10))


def test_loader_keeps_rows_together(key):
    for x, y in nn.DataLoader(_data(), batch_size=4, key=key):
        np.testing.assert_array_equal(np.asarray(x)[:, 0], np.asarray(y))
        np.testing.assert_array_equal(np.asarray(x)[:, 1], -np.asarray(y))


def test_loader_partial_last_batch():
    loader = nn.DataLoader(_data(10), batch_size=4, shuffle=False)
    sizes = [len(y) for _, y in loader]
    assert len(loader) == 3
    assert sizes == [4, 4, 2]


def test_loader_drop_last():
    loader = nn.DataLoader(_data(10), batch_size=4, shuffle=False, drop_last=True)
    sizes = [len(y) for _, y in loader]
    assert len(loader) == 2
    assert sizes == [4, 4]


def test_loader_without_shuffle_keeps_order():
    loader = nn.DataLoader(_data(7), batch_size=3, shuffle=False)
    assert _epoch_indices(loader) == list(range(7))
    assert _epoch_indices(loader) == list(range(7))


def test_shuffle_same_key_same_order(key):
    first = nn.DataLoader(_data(), batch_size=3, key=key)
    second = nn.DataLoader(_data(), batch_size=3, key=key)
    assert _epoch_indices(first) == _epoch_indices(second)
    assert _epoch_indices(first) == _epoch_indices(second)


def test_shuffle_epochs_differ(key):
    loader = nn.DataLoader(_data(50), batch_size=8, key=key)
    epochs = [_epoch_indices(loader) for _ in range(3)]
    assert epochs[0] != epochs[1]
    assert epochs[1] != epochs[2]
    assert loader.epoch == 3


def test_shuffle_epoch_from_fold_in(key):
    loader = nn.DataLoader(_data(20), batch_size=5, key=key)
    expected = np.asarray(dx.random.permutation(dx.random.fold_in(key, 2), 20))
    np.testing.assert_array_equal(loader.order(2), expected)


def test_shuffle_other_key_other_order(backend):
    first = nn.DataLoader(_data(50), batch_size=8, key=dx.random.key(0, backend=backend))
    second = nn.DataLoader(_data(50), batch_size=8, key=dx.random.key(1, backend=backend))
    assert _epoch_indices(first) != _epoch_indices(second)


def test_set_epoch_replays_an_epoch(key):
    loader = nn.DataLoader(_data(), batch_size=3, key=key)
    first, second = _epoch_indices(loader), _epoch_indices(loader)
    loader.set_epoch(1)
    assert _epoch_indices(loader) == second
    assert [int(i) for _, y in loader.batches(0) for i in y] == first


def test_loader_dict_batches():
    x, y = _data(5)
    batches = list(nn.DataLoader({"image": x, "label": y}, batch_size=2, shuffle=False))
    assert set(batches[0]) == {"image", "label"}
    assert batches[-1]["image"].shape == (1, 2)


def test_loader_single_array():
    batches = list(nn.DataLoader(np.arange(5.0), batch_size=2, shuffle=False))
    np.testing.assert_array_equal(batches[1], [2.0, 3.0])


def test_loader_yields_backend_arrays(backend):
    x, y = _data()
    for x_batch, y_batch in nn.DataLoader((x, y), batch_size=4, shuffle=False, backend=backend):
        assert _backend_name(x_batch) == backend
        assert x_batch.dtype == np.float64
        assert y_batch.shape[0] == x_batch.shape[0]


@needs_jax
def test_loader_accepts_jax_arrays():
    x = dx.asarray(np.arange(6.0), backend="jax")
    batches = list(nn.DataLoader(x, batch_size=4, shuffle=False, backend="numpy"))
    assert isinstance(batches[0], np.ndarray)
    np.testing.assert_array_equal(batches[1], [4.0, 5.0])


def test_loader_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"different numbers of examples.*arrays\[0\]: 4, arrays\[1\]: 3"):
        nn.DataLoader((np.zeros((4, 2)), np.zeros(3)), batch_size=2, shuffle=False)


def test_loader_shuffle_needs_key():
    with pytest.raises(TypeError, match="needs a random key"):
        nn.DataLoader(np.zeros(4), batch_size=2)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_loader_rejects_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        nn.DataLoader(np.zeros(4), batch_size=batch_size, shuffle=False)


def test_loader_drop_last_without_full_batch():
    with pytest.raises(ValueError, match="would yield no batch"):
        nn.DataLoader(np.zeros(3), batch_size=4, shuffle=False, drop_last=True)


def test_loader_rejects_scalar():
    with pytest.raises(ValueError, match="is a scalar"):
        nn.DataLoader((np.zeros(3), np.float64(1.0)), batch_size=2, shuffle=False)


def test_loader_rejects_empty_arrays():
    with pytest.raises(ValueError, match="no examples"):
        nn.DataLoader((np.zeros((0, 2)), np.zeros(0)), batch_size=2, shuffle=False)
