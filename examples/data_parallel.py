"""Train the digits MLP data-parallel on several devices with JAX sharding.

Each batch is split along its first axis across the devices of a mesh
(``nn.shard_batch``), and the model and the optimiser state are copied to
every device (``nn.replicate``). The training step is the ordinary one,
compiled by ``dx.jit``. XLA partitions it by the arrays' shardings: each
device computes the loss and gradients of its part of the batch, and the
gradient sums over the batch become all-reduces across devices. The script
trains the same model from the same initial weights on the same batches
twice, once with plain arrays on one device and once sharded, and prints
both loss curves and their largest difference. They agree to float32
rounding, because only the order of the sums differs.

Without GPUs or TPUs, XLA can split the host CPU into several devices:
the script sets ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
(``--devices``, 4 by default) before it imports JAX, which is the only
point where the flag takes effect.

Run it with ``python examples/data_parallel.py`` where difflux-nn,
difflux-optim, JAX and scikit-learn are installed
(``pip install -e 'packages/difflux-nn[examples,jax]' -e packages/difflux-optim``).
``--json PATH`` also writes the curves and the shardings to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DEVICE_FLAG = "--xla_force_host_platform_device_count"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the digits MLP data-parallel with JAX sharding.")
    parser.add_argument("--devices", type=int, default=4, help="simulated CPU devices to split the batch across")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training images (default: 3)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step, a multiple of --devices")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate (default: 0.001)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation, shuffling and dropout")
    parser.add_argument("--json", type=Path, help="also write the loss curves and the shardings to this file")
    return parser.parse_args(argv)


def set_device_count(count: int) -> None:
    """Ask XLA for ``count`` host CPU devices; raise when JAX was imported before, since the flag is then ignored."""
    if "jax" in sys.modules:
        raise RuntimeError(
            f"data_parallel: JAX was imported before {DEVICE_FLAG} could be set; run this file as a script "
            f"or set XLA_FLAGS={DEVICE_FLAG}={count} in the environment before Python starts"
        )
    flags = [flag for flag in os.environ.get("XLA_FLAGS", "").split() if not flag.startswith(DEVICE_FLAG)]
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{DEVICE_FLAG}={count}"])
    # The simulated devices are CPU devices; on a machine with a GPU, JAX
    # would otherwise make the GPU the default. Set JAX_PLATFORMS to override.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def train(args: argparse.Namespace, mesh: Any) -> tuple[list[float], dict[str, Any]]:
    """Train the MLP; with a ``mesh`` the batches are sharded across it. Return the loss of each step and the shardings."""
    import digits_common
    from digits_mlp import build_model

    import difflux.core as dx
    from difflux import nn, optim

    x_train, _, y_train, _ = digits_common.load_digits((64,))
    init_key, data_key, dropout_key = dx.random.split(dx.random.key(args.seed, backend="jax"), 3)
    model = nn.train_mode(build_model(init_key))
    rule = optim.Adam(args.learning_rate)
    opt_state = optim.setup(rule, model)
    if mesh is not None:
        model, opt_state = nn.replicate((model, opt_state), mesh)

    def loss_fn(model: Any, x: Any, y: Any, key: Any) -> Any:
        return nn.logit_cross_entropy(model(x, key=key), y)

    @dx.jit
    def step(model: Any, opt_state: Any, x: Any, y: Any, key: Any) -> Any:
        loss, grads = dx.value_and_grad(loss_fn)(model, x, y, key)
        opt_state, model = optim.update(opt_state, model, grads)
        return model, opt_state, loss

    loader = nn.DataLoader((x_train, y_train), args.batch_size, key=data_key, drop_last=True, backend="jax")
    losses = []
    x = y = None
    for epoch in range(args.epochs):
        for i, (x, y) in enumerate(loader):
            if mesh is not None:
                x, y = nn.shard_batch((x, y), mesh)
            key = dx.random.fold_in(dropout_key, epoch * len(loader) + i)
            model, opt_state, loss = step(model, opt_state, x, y, key)
            losses.append(loss)
    assert x is not None, "the loader yielded no batch"
    placement = {
        "batch_devices": len(x.sharding.device_set),
        "batch_shard_shape": list(x.sharding.shard_shape(x.shape)),
        "weight_devices": len(model.layers[0].weight.sharding.device_set),
        "weight_replicated": bool(model.layers[0].weight.sharding.is_fully_replicated),
    }
    return [float(loss) for loss in losses], placement


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train on one device and on ``--devices`` devices; print and return both loss curves."""
    args = parse_args(argv)
    if args.batch_size % args.devices:
        raise SystemExit(f"--batch-size {args.batch_size} must be a multiple of --devices {args.devices}")
    set_device_count(args.devices)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # digits_common and digits_mlp
    import jax

    from difflux import nn

    print(f"JAX devices: {jax.devices()}")
    single, single_placement = train(args, None)
    sharded, sharded_placement = train(args, nn.data_mesh(jax.devices()[: args.devices]))
    difference = max(abs(a - b) for a, b in zip(single, sharded))
    print(f"{len(single)} steps; loss on one device {single[0]:.4f} -> {single[-1]:.4f}")
    print(f"sharded over {args.devices} devices {sharded[0]:.4f} -> {sharded[-1]:.4f}")
    print(
        f"batch shard {sharded_placement['batch_shard_shape']} on each of {sharded_placement['batch_devices']} devices"
    )
    print(f"largest difference between the curves: {difference:.2e}")
    result = {
        "devices": args.devices,
        "single": single,
        "sharded": sharded,
        "single_placement": single_placement,
        "sharded_placement": sharded_placement,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
