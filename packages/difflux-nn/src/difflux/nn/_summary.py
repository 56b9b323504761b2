"""``summary``: a table of a model's layers, output shapes and parameter counts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

import difflux.core as dx

from . import _layer
from ._layer import Layer, backend_of
from ._state import apply, named_modules, trainable


def _format_shape(value: Any) -> str:
    """Return the shapes of an output: ``(2, 3)`` for an array, ``[(2, 3), (2, 5)]`` for a tuple."""
    if dx.is_array(value) or (hasattr(value, "shape") and hasattr(value, "dtype")):
        return str(tuple(int(s) for s in value.shape))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_format_shape(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_format_shape(v)}" for k, v in value.items()) + "}"
    return type(value).__name__


def _label(module: Any) -> str:
    if isinstance(module, Layer):
        return module._label()
    return type(module).__name__


def _counts(module: Any, mask: Any) -> tuple[int, int, int]:
    """Return (trainable parameters, all parameters, bytes) of the arrays under ``module``."""
    leaves = dx.tree_leaves(module)
    flags = dx.tree_leaves(mask)
    trained = total = size_bytes = 0
    for leaf, flag in zip(leaves, flags):
        if not dx.is_array(leaf):
            continue
        count = math.prod(leaf.shape)
        total += count
        size_bytes += count * np.dtype(leaf.dtype).itemsize
        if flag:
            trained += count
    return trained, total, size_bytes


def _format_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _example_input(model: Any, input_shape_or_example: Any) -> Any:
    value = input_shape_or_example
    if isinstance(value, tuple | list) and all(isinstance(s, int | np.integer) for s in value):
        arrays = [
            leaf for leaf in dx.tree_leaves(model) if dx.is_array(leaf) and dx.isdtype(leaf.dtype, "real floating")
        ]
        if arrays:
            return dx.zeros(tuple(value), dtype=arrays[0].dtype, backend=backend_of(arrays[0]))
        return dx.zeros(tuple(value))
    return value


def _record_outputs(model: Any, x: Any, key: Any) -> dict[str, str]:
    """Run ``model`` once and return the formatted output shape of every layer call, by path."""
    shapes: dict[str, str] = {}

    def run(model: Any, x: Any, key: Any) -> Any:
        paths = {id(module): path for path, _, module in named_modules(model)}

        def record(layer: Any, out: Any) -> None:
            path = paths.get(id(layer))
            if path is not None and path not in shapes:
                shapes[path] = _format_shape(out)

        previous = _layer._output_hook
        _layer._output_hook = record
        try:
            out, _ = apply(model, x, key=key)
        finally:
            _layer._output_hook = previous
        return out

    leaves = [leaf for leaf in dx.tree_leaves((model, x)) if dx.is_array(leaf)]
    if any(backend_of(leaf) == "jax" for leaf in leaves):
        import jax

        # Shapes only: JAX traces the model without computing anything. Only
        # arrays may pass through eval_shape, so the rest of the model (functions,
        # say) is closed over.
        arrays, rest = dx.partition(model)
        jax.eval_shape(lambda arrays, x, key: run(dx.combine(arrays, rest), x, key), arrays, x, key)
    else:
        run(model, x, key)
    return shapes


def summary(model: Any, input_shape_or_example: Sequence[int] | Any, *, key: Any = None) -> str:
    """Return a table of the model's layers, their output shapes and parameter counts.

    Each module of the model gets a row: its path (``layers.0`` is
    ``model.layers[0]``), indented by nesting depth, its description, the
    shape of its output and the number of array elements it contains
    (including those of its sub-layers). The last lines give the totals,
    split into trainable parameters and state such as running statistics,
    and the memory they take.

    The output shapes come from one run of the model on
    ``input_shape_or_example``: a tuple of ints makes zeros of that shape
    (with the dtype and backend of the model's parameters), anything else is
    used as the input itself. On JAX the run is ``jax.eval_shape``, which
    computes nothing; on NumPy the model really runs once. Only calls of
    ``nn.Layer`` subclasses are recorded, so the row of another module shows
    ``-``, as does a module that is never called as a whole (the cell of an
    ``LSTM``, which runs step by step). ``key`` is passed to the model (a fixed key when ``None``), for
    dropout layers in training mode.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> k1, k2 = dx.random.split(dx.random.key(0, backend="numpy"))
        >>> model = nn.Chain(nn.Dense(4, 8, nn.relu, key=k1), nn.BatchNorm(8), nn.Dense(8, 2, key=k2))
        >>> print(nn.summary(model, (3, 4)))
        Layer                            Output shape  Parameters
        ---------------------------------------------------------
        Chain                            (3, 2)                90
          layers.0  Dense(4 => 8, relu)  (3, 8)                40
          layers.1  BatchNorm(8)         (3, 8)                32
          layers.2  Dense(8 => 2)        (3, 2)                18
        ---------------------------------------------------------
        Total: 90 parameters (74 trainable, 16 non-trainable), 720 B
    """
    x = _example_input(model, input_shape_or_example)
    if key is None:
        arrays = [leaf for leaf in dx.tree_leaves((model, x)) if dx.is_array(leaf)]
        key = dx.random.key(0, backend=backend_of(arrays[0]) if arrays else None)
    shapes = _record_outputs(model, x, key)
    mask = trainable(model)
    masks = {path: module for path, _, module in named_modules(mask)}

    rows = []
    for path, depth, module in named_modules(model):
        name = _label(module) if not path else f"{path}  {_label(module)}"
        trained, total, _ = _counts(module, masks[path])
        rows.append(("  " * depth + name, shapes.get(path, "-"), f"{total:,}"))
    trained, total, size_bytes = _counts(model, mask)

    header = ("Layer", "Output shape", "Parameters")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = [f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]:>{widths[2]}}"]
    rule = "-" * len(lines[0])
    lines.append(rule)
    lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}" for a, b, c in rows]
    lines.append(rule)
    lines.append(
        f"Total: {total:,} parameters ({trained:,} trainable, {total - trained:,} non-trainable), "
        f"{_format_bytes(size_bytes)}"
    )
    return "\n".join(lines)
