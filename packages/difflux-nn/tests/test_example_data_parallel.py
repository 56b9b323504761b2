"""Data-parallel training across 4 simulated CPU devices: examples/data_parallel.py and nn.shard_batch.

XLA reads ``--xla_force_host_platform_device_count`` only when JAX starts
its CPU backend, which has happened long before these tests run, so each
test runs its code in a fresh Python process with the flag set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DEVICES = 4

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")


def _run(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    environment["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={DEVICES}"
    environment["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, env=environment, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


@needs_jax
@pytest.mark.slow
def test_sharded_curve_equals_single_device(tmp_path):
    pytest.importorskip("sklearn")
    output = tmp_path / "curves.json"
    _run([str(EXAMPLES / "data_parallel.py"), "--devices", str(DEVICES), "--epochs", "2", "--json", str(output)])
    result = json.loads(output.read_text())
    single, sharded = np.array(result["single"]), np.array(result["sharded"])

    # Two epochs of 1347 training images in batches of 64, the last partial batch dropped.
    assert len(single) == 2 * (1347 // 64)
    assert len(sharded) == len(single)
    # Only the order of the float32 sums differs between the two runs.
    np.testing.assert_allclose(sharded, single, rtol=1e-5, atol=1e-6)
    assert single[-1] < 0.7 * single[0]

    placement = result["sharded_placement"]
    assert placement["batch_devices"] == DEVICES
    assert placement["batch_shard_shape"] == [64 // DEVICES, 64]
    assert placement["weight_devices"] == DEVICES
    assert placement["weight_replicated"]
    assert result["single_placement"]["batch_devices"] == 1


HELPER_CHECKS = """
import jax
import numpy as np
import difflux.core as dx
from difflux import nn

assert len(jax.devices()) == {devices}
mesh = nn.data_mesh()
assert dict(mesh.shape) == {{"batch": {devices}}}

x, y = nn.shard_batch((np.arange(24.0).reshape(8, 3), np.arange(8)), mesh)
assert x.sharding.shard_shape(x.shape) == (2, 3)
assert len(x.sharding.device_set) == {devices}
assert y.sharding.shard_shape(y.shape) == (2,)
np.testing.assert_array_equal(np.asarray(x), np.arange(24.0).reshape(8, 3))
assert [shard.data.shape for shard in x.addressable_shards] == [(2, 3)] * {devices}

batch = nn.shard_batch({{"x": np.ones((4, 2)), "name": "digits"}}, mesh)
assert batch["name"] == "digits"

model = nn.Dense(3, 2, key=dx.random.key(0), dtype=dx.float32)
copy = nn.replicate(model, mesh)
assert copy.weight.sharding.is_fully_replicated
assert len(copy.weight.sharding.device_set) == {devices}
np.testing.assert_array_equal(np.asarray(copy.weight), model.weight)

try:
    nn.shard_batch(np.ones((6, 3)), mesh)
except ValueError as error:
    assert "6 rows" in str(error), error
    assert "drop_last=True" in str(error), error
else:
    raise AssertionError("6 rows on 4 devices did not raise")
try:
    nn.shard_batch(np.float64(1.0) + np.zeros(()), mesh)
except ValueError as error:
    assert "0-d" in str(error), error
else:
    raise AssertionError("a 0-d array did not raise")

two = nn.data_mesh(jax.devices()[:2], axis_name="data")
z = nn.shard_batch(np.ones((4, 1)), two)
assert z.sharding.shard_shape(z.shape) == (2, 1)
print("ok")
"""


@needs_jax
def test_shard_batch_and_replicate():
    result = _run(["-c", textwrap.dedent(HELPER_CHECKS.format(devices=DEVICES))])
    assert result.stdout.strip() == "ok"
