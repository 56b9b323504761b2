"""``dx.apply_updates``: values, dtypes and the checks on the updates' structure and shapes."""

import numpy as np
import pytest

import difflux.core as dx


def _params(to_backend):
    return {"w": to_backend(np.zeros(3, dtype=np.float32)), "b": to_backend(np.ones(2, dtype=np.float32))}


def test_apply_updates_adds_and_keeps_dtype(to_backend):
    params = _params(to_backend)
    new = dx.apply_updates(params, {"w": to_backend(np.full(3, 0.5)), "b": None})
    np.testing.assert_allclose(np.asarray(new["w"]), [0.5, 0.5, 0.5])
    assert new["w"].dtype == np.float32
    assert new["b"] is params["b"]


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"x": np.ones(3), "y": np.ones(2)}, r"a dict with keys \['x', 'y'\] at the root"),
        ([np.ones(3), np.ones(2)], "a list of 2 items at the root"),
        ({"w": np.ones(3)}, r"a dict with keys \['w'\] at the root"),
    ],
    ids=["other keys", "a list", "missing key"],
)
def test_apply_updates_rejects_other_structure(to_backend, updates, message):
    with pytest.raises(ValueError, match=message):
        dx.apply_updates(_params(to_backend), dx.tree_map(to_backend, updates))


@pytest.mark.parametrize("shape", [(2, 3), (4,), ()])
def test_apply_updates_rejects_other_shape(to_backend, shape):
    updates = {"w": to_backend(np.ones(shape)), "b": to_backend(np.ones(2))}
    with pytest.raises(ValueError, match=rf"update at \['w'\] has shape {_escaped(shape)} but the parameter"):
        dx.apply_updates(_params(to_backend), updates)


def test_apply_updates_names_module_path():
    class Pair(dx.Module):
        first: np.ndarray
        second: np.ndarray

    params = Pair(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match=r"update at \.second has shape \(2,\)"):
        dx.apply_updates(params, Pair(np.zeros(2), np.zeros(2)))


def _escaped(shape: tuple[int, ...]) -> str:
    return str(shape).replace("(", r"\(").replace(")", r"\)")
