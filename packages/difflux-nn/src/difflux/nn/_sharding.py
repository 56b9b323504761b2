"""Data-parallel placement of batches and models on several JAX devices.

Data parallelism splits each batch along its first axis across the devices
and keeps a full copy of the parameters and the optimiser state on every
device. Placing the arrays is all that difflux has to do: ``dx.jit`` hands
them to ``jax.jit``, and XLA's sharding propagation (GSPMD) partitions the
whole training step. Each device computes the forward and backward pass of
its part of the batch. Reductions over the batch (the mean loss, the
gradient sums) become all-reduces, so every device ends the step with the
same gradients and applies the same update. There is no difflux layer
between the user and JAX: the functions here only build
``jax.sharding.Mesh`` and ``NamedSharding`` objects and call
``jax.device_put``, so they work on one host with several devices and on
several hosts alike.

JAX is imported inside the functions, so ``import difflux.nn`` does not
import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import difflux.core as dx

_DEFAULT_AXIS = "batch"


def _jax() -> Any:
    try:
        import jax
    except ImportError as error:
        raise ImportError(
            "data-parallel placement uses JAX's sharding, and JAX is not installed; install it with "
            "`pip install 'difflux-nn[jax]'`"
        ) from error
    return jax


def data_mesh(devices: Sequence[Any] | None = None, *, axis_name: str = _DEFAULT_AXIS) -> Any:
    """Return a one-axis ``jax.sharding.Mesh`` over ``devices`` for data parallelism.

    Args:
        devices: the JAX devices to use; all devices of the default platform
            (``jax.devices()``) when ``None``.
        axis_name: the name of the mesh axis that the batch is split along.

    Returns:
        A ``jax.sharding.Mesh`` of shape ``(len(devices),)``.

    Examples:
        >>> from difflux import nn
        >>> mesh = nn.data_mesh()  # doctest: +SKIP
        >>> mesh.shape  # doctest: +SKIP
        OrderedDict([('batch', 4)])
    """
    jax = _jax()
    import numpy as np

    chosen = list(jax.devices() if devices is None else devices)
    if not chosen:
        raise ValueError("data_mesh: the list of devices is empty; pass at least one JAX device")
    return jax.sharding.Mesh(np.array(chosen, dtype=object), (axis_name,))


def _mesh_or_default(mesh: Any) -> Any:
    return data_mesh() if mesh is None else mesh


def shard_batch(batch: Any, mesh: Any = None, *, axis_name: str | None = None) -> Any:
    """Return ``batch`` with every array split along its first axis across the devices of ``mesh``.

    ``batch`` is an array or any structure of arrays (a tuple ``(x, y)``, a
    dict); NumPy arrays become JAX arrays. Each array is placed with
    ``NamedSharding(mesh, PartitionSpec(axis_name))``, so device ``i`` gets
    rows ``i * n / d`` to ``(i + 1) * n / d`` of ``n`` rows on ``d`` devices.
    Leaves that are not arrays are left as they are.

    Args:
        batch: the arrays of one training step, with the examples on the
            first axis.
        mesh: a ``jax.sharding.Mesh``, from :func:`data_mesh` (all devices
            when ``None``).
        axis_name: the mesh axis to split along; the first axis of ``mesh``
            when ``None``.

    Raises:
        ValueError: when an array's first axis does not divide evenly among
            the devices (drop the last, smaller batch with
            ``nn.DataLoader(..., drop_last=True)``), or when an array is 0-d.
    """
    jax = _jax()
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = _mesh_or_default(mesh)
    name = mesh.axis_names[0] if axis_name is None else axis_name
    devices = mesh.shape[name]
    sharding = NamedSharding(mesh, PartitionSpec(name))

    def place(leaf: Any) -> Any:
        if not dx.is_array(leaf):
            return leaf
        shape = tuple(leaf.shape)
        if not shape:
            raise ValueError(
                "shard_batch: a 0-d array has no batch axis to split; pass scalars with nn.replicate instead"
            )
        if shape[0] % devices:
            raise ValueError(
                f"shard_batch: an array of shape {shape} has {shape[0]} rows, which do not divide evenly among "
                f"{devices} devices on mesh axis {name!r}. Use a batch size that is a multiple of {devices}, "
                "and drop the last, smaller batch with nn.DataLoader(..., drop_last=True)."
            )
        return jax.device_put(leaf, sharding)

    return dx.tree_map(place, batch)


def replicate(tree: Any, mesh: Any = None) -> Any:
    """Return ``tree`` with a full copy of every array on each device of ``mesh``.

    Use it for the model and the optimiser state of data-parallel training:
    ``NamedSharding(mesh, PartitionSpec())`` places the whole array on every
    device. Static fields and leaves that are not arrays are left as they
    are; NumPy arrays become JAX arrays.

    Args:
        tree: any structure of arrays: a model, an optimiser state.
        mesh: a ``jax.sharding.Mesh``, from :func:`data_mesh` (all devices
            when ``None``).
    """
    jax = _jax()
    from jax.sharding import NamedSharding, PartitionSpec

    sharding = NamedSharding(_mesh_or_default(mesh), PartitionSpec())
    return dx.tree_map(lambda leaf: jax.device_put(leaf, sharding) if dx.is_array(leaf) else leaf, tree)
