"""Tests of nn.save and nn.load: round trips, mismatches, corrupt files and atomic writes."""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from conftest import needs_jax, to_numpy
from difflux import nn
from difflux.nn import _serialization


class Block(dx.Module):
    weight: Any
    bias: Any
    scale: float = 1.0


class Net(dx.Module):
    blocks: list[Block]
    table: dict[str, Any]
    steps: Any


def _net(seed: float = 1.0, width: int = 3, dtype: Any = np.float64) -> Net:
    def array(shape: tuple[int, ...]) -> np.ndarray:
        return (seed + np.arange(np.prod(shape))).reshape(shape).astype(dtype)

    return Net(
        blocks=[Block(array((2, width)), array((width,))), Block(array((width, 1)), None, scale=2.0)],
        table={"embedding": array((4, 2))},
        steps=np.array(7, dtype=np.int32),
    )


def _on(backend: str, model: Any) -> Any:
    return dx.tree_map(lambda leaf: dx.asarray(leaf, backend=backend), model)


def _assert_same_values(a: Any, b: Any) -> None:
    for left, right in zip(dx.tree_leaves(a), dx.tree_leaves(b)):
        np.testing.assert_array_equal(to_numpy(left), to_numpy(right))


@pytest.fixture
def path(tmp_path):
    return os.fspath(tmp_path / "weights.npz")


def test_save_load_round_trip(backend, path):
    model = _on(backend, _net(1.0))
    nn.save(path, model)
    loaded = nn.load(path, _on(backend, _net(0.0)))
    _assert_same_values(loaded, model)
    assert loaded.blocks[1].scale == 2.0
    assert loaded.blocks[1].bias is None


def test_load_follows_template_backend(backend, path):
    nn.save(path, _net(1.0))
    loaded = nn.load(path, _on(backend, _net(0.0)))
    expected_type = np.ndarray if backend == "numpy" else type(dx.asarray(np.ones(1), backend=backend))
    for leaf in dx.tree_leaves(loaded):
        assert isinstance(leaf, expected_type)


def test_load_casts_to_template_dtype(path):
    nn.save(path, _net(1.5, dtype=np.float64))
    loaded = nn.load(path, _net(0.0, dtype=np.float32))
    assert loaded.blocks[0].weight.dtype == np.float32
    assert loaded.steps.dtype == np.int32
    np.testing.assert_array_equal(loaded.blocks[0].weight, _net(1.5, dtype=np.float32).blocks[0].weight)


def test_file_keys_are_tree_paths(path):
    nn.save(path, _net())
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
    assert keys == {
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.weight",
        "table.embedding",
        "steps",
        _serialization.MANIFEST_MEMBER,
    }


def test_manifest_lists_shapes_and_dtypes(path):
    nn.save(path, _net(dtype=np.float32))
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(_serialization.MANIFEST_MEMBER))
    entries = {entry["path"]: entry for entry in manifest["leaves"]}
    assert manifest["format"] == "difflux-weights"
    assert manifest["version"] == _serialization.FORMAT_VERSION
    assert entries["blocks.0.weight"]["shape"] == [2, 3]
    assert entries["blocks.0.weight"]["dtype"] == "float32"
    assert entries["steps"]["dtype"] == "int32"


def test_save_keeps_path_suffix(tmp_path):
    path = tmp_path / "model.weights"
    nn.save(path, _net())
    assert os.listdir(tmp_path) == ["model.weights"]
    _assert_same_values(nn.load(path, _net(0.0)), _net())


def test_save_to_missing_folder_names_path(tmp_path):
    target = tmp_path / "missing" / "model.npz"
    with pytest.raises(FileNotFoundError, match=r"cannot write .*model\.npz'?: the folder .*missing'? does not exist"):
        nn.save(target, _net())
    with pytest.raises(IsADirectoryError, match=r"it is a folder"):
        nn.save(tmp_path, _net())
    assert os.listdir(tmp_path) == []


def test_save_compressed_round_trip(path):
    nn.save(path, _net(), compress=True)
    _assert_same_values(nn.load(path, _net(0.0)), _net())


def test_save_nn_layers_round_trip(backend, path):
    keys = dx.random.split(dx.random.key(0, backend=backend), 3)
    with dx.backend(backend):
        model = nn.Chain(nn.Dense(3, 4, nn.relu, key=keys[0]), nn.BatchNorm(4), nn.Dense(4, 2, key=keys[1]))
        template = nn.Chain(nn.Dense(3, 4, nn.relu, key=keys[2]), nn.BatchNorm(4), nn.Dense(4, 2, key=keys[2]))
    nn.save(path, model)
    loaded = nn.load(path, template)
    _assert_same_values(loaded, model)
    x = dx.ones((5, 3), backend=backend)
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)))


def test_safetensors_round_trip(backend, tmp_path):
    pytest.importorskip("safetensors")
    path = tmp_path / "weights.safetensors"
    model = _on(backend, _net(2.0))
    nn.save(path, model)
    _assert_same_values(nn.load(path, _on(backend, _net(0.0))), model)


@needs_jax
def test_bfloat16_round_trip(path):
    import jax.numpy as jnp

    model = {"w": jnp.arange(6.0, dtype=jnp.bfloat16).reshape(2, 3)}
    nn.save(path, model)
    loaded = nn.load(path, {"w": jnp.zeros((2, 3), dtype=jnp.bfloat16)})
    assert loaded["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(loaded["w"], dtype=np.float32), np.arange(6.0).reshape(2, 3))


# --------------------------------------------------------------------------
# Mismatches
# --------------------------------------------------------------------------


def test_load_shape_mismatch_names_path(path):
    nn.save(path, _net(width=3))
    with pytest.raises(nn.WeightsMismatchError) as error:
        nn.load(path, _net(width=5))
    message = str(error.value)
    assert "'blocks.0.weight' has shape (2, 3) in the file but (2, 5) in the template" in message
    assert "'blocks.1.weight' has shape (3, 1) in the file but (5, 1) in the template" in message
    assert path in message


def test_load_missing_and_unexpected_keys(path):
    nn.save(path, {"encoder": np.ones(2), "head": np.ones(3)})
    with pytest.raises(nn.WeightsMismatchError) as error:
        nn.load(path, {"encoder": np.ones(2), "decoder": np.ones(3)})
    message = str(error.value)
    assert "missing from the file: 'decoder'" in message
    assert "not in the template: 'head'" in message


def test_load_dtype_kind_mismatch(path):
    nn.save(path, {"w": np.ones(2)})
    with pytest.raises(nn.WeightsMismatchError, match="'w' has dtype float64 in the file but int64"):
        nn.load(path, {"w": np.ones(2, dtype=np.int64)})


def test_load_lists_at_most_ten_problems(path):
    nn.save(path, {f"w{i:02d}": np.ones(1) for i in range(15)})
    with pytest.raises(nn.WeightsMismatchError, match=r"\(30 differences\)[\s\S]*and 20 more"):
        nn.load(path, {f"v{i:02d}": np.ones(1) for i in range(15)})


def test_save_rejects_duplicate_paths(path):
    with pytest.raises(ValueError, match="two leaves share the path '1'"):
        nn.save(path, {1: np.ones(1), "1": np.ones(1)})


# --------------------------------------------------------------------------
# Corrupt files
# --------------------------------------------------------------------------


def test_load_truncated_file(path):
    nn.save(path, _net())
    with open(path, "rb") as file:
        data = file.read()
    with open(path, "wb") as file:
        file.write(data[: len(data) // 2])
    with pytest.raises(nn.CorruptWeightsError, match="truncated or corrupted") as error:
        nn.load(path, _net())
    assert path in str(error.value)
    assert "Save the model again" in str(error.value)


def test_load_flipped_byte(path):
    nn.save(path, {"w": np.zeros(1000)})
    with open(path, "r+b") as file:
        file.seek(2000)
        byte = file.read(1)
        file.seek(2000)
        file.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(nn.CorruptWeightsError, match="truncated or corrupted"):
        nn.load(path, {"w": np.zeros(1000)})


def test_load_safetensors_truncated(tmp_path):
    pytest.importorskip("safetensors")
    path = tmp_path / "weights.safetensors"
    nn.save(path, {"w": np.zeros(100)})
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(nn.CorruptWeightsError, match="truncated or corrupted"):
        nn.load(path, {"w": np.zeros(100)})


def test_load_garbage_file(path):
    with open(path, "wb") as file:
        file.write(b"not a weights file at all")
    with pytest.raises(nn.CorruptWeightsError, match="neither a zip nor a safetensors header"):
        nn.load(path, {"w": np.zeros(1)})


def test_load_empty_file(path):
    open(path, "wb").close()
    with pytest.raises(nn.CorruptWeightsError, match="neither a zip nor a safetensors header"):
        nn.load(path, {"w": np.zeros(1)})


def test_load_plain_savez_file(path):
    np.savez(path, w=np.zeros(1))
    with pytest.raises(nn.CorruptWeightsError, match=r"not written by nn\.save"):
        nn.load(path, {"w": np.zeros(1)})


def test_load_newer_format_version(path):
    nn.save(path, {"w": np.zeros(1)})
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members[_serialization.MANIFEST_MEMBER])
    manifest["version"] = _serialization.FORMAT_VERSION + 1
    members[_serialization.MANIFEST_MEMBER] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(nn.CorruptWeightsError, match="upgrade difflux-nn"):
        nn.load(path, {"w": np.zeros(1)})


def test_load_rejects_pickled_member(path):
    # An object array can only be stored pickled; loading must not unpickle it.
    manifest = {"format": "difflux-weights", "version": 1, "leaves": [{"path": "w", "shape": [1], "dtype": "object"}]}
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("w.npy", "w") as member:
            np.lib.format.write_array(member, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        archive.writestr(_serialization.MANIFEST_MEMBER, json.dumps(manifest))
    with pytest.raises(nn.CorruptWeightsError, match="allow_pickle=False"):
        nn.load(path, {"w": np.zeros(1)})


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        nn.load(tmp_path / "absent.npz", {"w": np.zeros(1)})


# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


def test_crash_mid_write_keeps_old_file(path, monkeypatch, tmp_path):
    nn.save(path, {"w": np.ones(3), "v": np.ones(2)})
    write_array = np.lib.format.write_array
    calls = []

    def write_then_crash(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash")
        write_array(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        nn.save(path, {"w": np.zeros(3), "v": np.zeros(2)})
    monkeypatch.undo()

    loaded = nn.load(path, {"w": np.zeros(3), "v": np.zeros(2)})
    np.testing.assert_array_equal(loaded["w"], np.ones(3))
    assert os.listdir(tmp_path) == ["weights.npz"]


def test_failed_rename_keeps_old_file(path, monkeypatch, tmp_path):
    nn.save(path, {"w": np.ones(3)})

    def fail(*args: Any) -> None:
        raise OSError("simulated failure of the rename")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="simulated"):
        nn.save(path, {"w": np.zeros(3)})
    monkeypatch.undo()

    np.testing.assert_array_equal(nn.load(path, {"w": np.zeros(3)})["w"], np.ones(3))
    assert os.listdir(tmp_path) == ["weights.npz"]


def test_save_replaces_existing_file(path):
    nn.save(path, {"w": np.ones(3)})
    nn.save(path, {"w": np.full(3, 2.0)})
    np.testing.assert_array_equal(nn.load(path, {"w": np.zeros(3)})["w"], np.full(3, 2.0))
