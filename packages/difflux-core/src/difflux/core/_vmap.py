"""``dx.vmap``: map a function over a batch axis of its arguments.

Strategy. Three implementations give the same results, tried in this order:

* ``jax.vmap``, used on JAX when no difflux transformation is active (the
  trace stack is empty) and no difflux tracer is among the arguments. JAX
  batches every operation, including difflux's own derivative rules, so
  ``dx.vmap(dx.grad(loss))`` gives vectorised per-example gradients.
* Batching rules (``_batching.BatchTrace``), used otherwise: on NumPy, and
  inside a difflux transformation such as ``dx.grad`` of a loss that maps
  over examples. Each primitive runs once on the whole batch, so the outer
  transformation records batched operations.
* A loop, used when the batching rules do not cover the function (a
  primitive without a rule, Python control flow on a mapped value, code that
  reads a mapped value's array). It calls the function once per example, on
  slices taken with difflux operations, and joins the results with
  ``dx.stack``. Slicing and stacking are differentiable, so gradients flow
  through it in reverse and forward mode. Its cost grows linearly with the
  batch size in Python calls (and, under ``dx.jit``, in tracing time). When
  the batching rules give up part-way, the function has run once already, so
  its Python side effects happen again.

``jax.vmap`` cannot take over inside a difflux transformation because the
function may close over difflux tracers, which JAX cannot batch.

Semantics follow ``jax.vmap``. ``in_axes`` is an int, ``None`` or a tuple
with one entry per positional argument, each entry a prefix of that
argument's structure. Keyword arguments are mapped along axis 0. ``out_axes``
is a prefix of the output's structure. Non-array leaves (Python numbers,
strings) must be unmapped (``None``) in ``in_axes``. Non-array leaves of
the output are returned unchanged and must not vary across the batch.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _backend, _core
from ._batching import BatchTrace, BatchTracer, UnbatchableError
from ._core import Tracer, TracerConversionError, value_of
from ._dispatch import shape_of
from ._module import is_array
from ._tree import _node_type, tree_flatten, tree_leaves, tree_structure, tree_unflatten

_ADVICE = (
    "Python `if`, `while`, bool(), int() and float() need concrete values, but inside "
    "dx.vmap on JAX the mapped values are batched arrays. Use dx.where or dx.cond for "
    "branches on them. (The NumPy loop runs such code per example, so it only fails on JAX.)"
)


# --------------------------------------------------------------------------
# Axis specifications
# --------------------------------------------------------------------------


def _is_axis(x: Any) -> bool:
    return x is None or (isinstance(x, int | np.integer) and not isinstance(x, bool))


def _expand_axes(prefix: Any, tree: Any, argument_name: str) -> list[Any]:
    """Broadcast an axis prefix (``in_axes`` or ``out_axes``) to one entry per leaf of ``tree``."""
    if _is_axis(prefix):
        return [None if prefix is None else int(prefix)] * len(tree_leaves(tree))
    node, prefix_node = _node_type(tree), _node_type(prefix)
    same_kind = type(prefix) is type(tree) or (isinstance(prefix, list | tuple) and isinstance(tree, list | tuple))
    if node is None or prefix_node is None or not same_kind:
        raise ValueError(
            f"{argument_name} {prefix!r} does not match the structure {tree_structure(tree)!r}: each "
            "entry must be an int, None, or a container of the same kind as the value it maps."
        )
    children, aux = node.flatten(tree)
    prefix_children, prefix_aux = prefix_node.flatten(prefix)
    children, prefix_children = list(children), list(prefix_children)
    if len(children) != len(prefix_children) or (isinstance(tree, dict) and aux != prefix_aux):
        raise ValueError(
            f"{argument_name} {prefix!r} does not match the structure {tree_structure(tree)!r}: they have different entries."
        )
    axes: list[Any] = []
    for sub_prefix, child in zip(prefix_children, children):
        axes.extend(_expand_axes(sub_prefix, child, argument_name))
    return axes


def _normalize_in_axes(in_axes: Any, num_args: int) -> Any:
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if _is_axis(in_axes):
        return in_axes
    if not isinstance(in_axes, tuple):
        raise TypeError(
            f"vmap in_axes must be an int, None or a tuple with one entry per positional "
            f"argument, got {type(in_axes).__name__} {in_axes!r}"
        )
    if len(in_axes) != num_args:
        raise ValueError(
            f"vmap in_axes has {len(in_axes)} entries but the function was called with "
            f"{num_args} positional arguments; give one entry per argument (None for unmapped ones)."
        )
    return in_axes


def _check_mapped_leaves(leaves: list[Any], axes: list[Any], axis_size: int | None) -> tuple[list[Any], int]:
    """Validate the mapped leaves; return normalised axes and the batch size."""
    sizes: dict[int, tuple[int, Any]] = {}
    normalized = []
    for position, (leaf, axis) in enumerate(zip(leaves, axes)):
        if axis is None:
            normalized.append(None)
            continue
        if not is_array(leaf):
            raise ValueError(
                f"vmap in_axes maps a {type(leaf).__name__} leaf ({leaf!r}) along axis {axis}, "
                "but only arrays can be mapped. Pass None for that argument in in_axes, or "
                "convert it with dx.asarray."
            )
        # A tracer's shape is that of one example, also for a batch of an outer dx.vmap.
        shape = shape_of(leaf)
        if not -len(shape) <= axis < len(shape):
            raise ValueError(f"vmap in_axes maps axis {axis} of an array of shape {shape}, which has no such axis.")
        axis %= len(shape)
        normalized.append(axis)
        sizes.setdefault(shape[axis], (position, shape))
    if axis_size is not None:
        sizes.setdefault(int(axis_size), (-1, None))
    if len(sizes) > 1:
        described = ", ".join(
            f"{size} (axis_size)" if position < 0 else f"{size} (argument leaf {position}, shape {shape})"
            for size, (position, shape) in sizes.items()
        )
        raise ValueError(f"vmap got mapped axes of different sizes: {described}. All mapped axes must have one size.")
    if not sizes:
        raise ValueError(
            "vmap needs at least one mapped array argument to know the batch size; "
            "map an argument with in_axes or pass axis_size."
        )
    return normalized, next(iter(sizes))


# --------------------------------------------------------------------------
# The two implementations
# --------------------------------------------------------------------------


def _use_jax(leaves: list[Any]) -> bool:
    if _core.trace_stack:
        return False
    has_array = False
    for leaf in leaves:
        if isinstance(leaf, Tracer):
            return False
        if is_array(leaf):
            if _backend.backend_of_value(leaf) == "jax":
                return True
            has_array = True
    return not has_array and _backend.default_backend() == "jax"


def _vmap_jax(f: Callable[..., Any], leaves: list[Any], treedef: Any, axes: list[Any], size: int, out_axes: Any) -> Any:
    import jax

    from ._jit import _jax_conversion_errors

    positions = [j for j, leaf in enumerate(leaves) if is_array(leaf)]
    arrays = [leaves[j] for j in positions]
    array_axes = [axes[j] for j in positions]
    stash: dict[str, Any] = {}

    def per_example(example_arrays: list[Any]) -> Any:
        example_leaves = list(leaves)
        for j, array in zip(positions, example_arrays):
            example_leaves[j] = array
        args, kwargs = tree_unflatten(treedef, example_leaves)
        out_leaves, out_def = tree_flatten(f(*args, **kwargs))
        mask = [is_array(leaf) for leaf in out_leaves]
        stash["def"], stash["mask"] = out_def, mask
        stash["static"] = [leaf for leaf, keep in zip(out_leaves, mask) if not keep]
        # Non-array leaves become None, an empty subtree for JAX, and are put
        # back afterwards.
        return tree_unflatten(out_def, [leaf if keep else None for leaf, keep in zip(out_leaves, mask)])

    try:
        batched = jax.vmap(per_example, in_axes=(array_axes,), out_axes=out_axes, axis_size=size)(arrays)
    except _jax_conversion_errors() as error:
        raise TracerConversionError(f"{type(error).__name__} inside dx.vmap. {_ADVICE}") from error
    array_iter, static_iter = iter(tree_leaves(batched)), iter(stash["static"])
    out_leaves = [next(array_iter) if keep else next(static_iter) for keep in stash["mask"]]
    return tree_unflatten(stash["def"], out_leaves)


def _vmap_batched(
    f: Callable[..., Any], leaves: list[Any], treedef: Any, axes: list[Any], size: int, out_axes: Any
) -> Any:
    from ._ops_manipulation import moveaxis
    from ._ops_shape import broadcast_to, reshape

    trace = BatchTrace(size)
    example = []
    for leaf, axis in zip(leaves, axes):
        if axis is None:
            example.append(leaf)
        else:
            example.append(trace.wrap(moveaxis(leaf, axis, 0) if axis else leaf))
    args, kwargs = tree_unflatten(treedef, example)
    with trace:
        out = f(*args, **kwargs)

    out_leaves, out_def = tree_flatten(out)
    leaf_axes = _expand_axes(out_axes, out, "vmap out_axes")
    results = []
    for leaf, axis in zip(out_leaves, leaf_axes):
        if type(leaf) is BatchTracer and leaf._trace is trace:
            if axis is None:
                # The loop checks whether the values really vary.
                raise UnbatchableError("out_axes is None for a batched output")
            value = leaf.value
        elif isinstance(leaf, BatchTracer):
            raise UnbatchableError("an output belongs to another dx.vmap")
        elif axis is None or not is_array(leaf):
            results.append(leaf)
            continue
        else:
            shape = shape_of(leaf)
            value = broadcast_to(reshape(leaf, (1, *shape)), (size, *shape))
        ndim = len(shape_of(value))
        if not -ndim <= axis < ndim:
            raise ValueError(f"vmap out_axes {axis} is out of range for an output of rank {ndim}")
        results.append(moveaxis(value, 0, axis % ndim) if axis % ndim else value)
    return tree_unflatten(out_def, results)


def _same_static(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except (TypeError, ValueError):
        return False


def _vmap_loop(
    f: Callable[..., Any], leaves: list[Any], treedef: Any, axes: list[Any], size: int, out_axes: Any
) -> Any:
    from ._ops_manipulation import stack, unstack

    if size == 0:
        raise NotImplementedError(
            "dx.vmap over an empty batch is not supported on the loop implementation (NumPy, or "
            "inside a difflux transformation), because the output's structure is unknown without "
            "calling the function once."
        )
    slices = [None if axis is None else unstack(leaf, axis=axis) for leaf, axis in zip(leaves, axes)]
    outputs = []
    for i in range(size):
        example = [leaf if parts is None else parts[i] for leaf, parts in zip(leaves, slices)]
        args, kwargs = tree_unflatten(treedef, example)
        outputs.append(f(*args, **kwargs))

    out_leaves, out_def = tree_flatten(outputs[0])
    per_example_leaves = [out_leaves]
    for i, out in enumerate(outputs[1:], start=1):
        leaves_i, def_i = tree_flatten(out)
        if def_i != out_def:
            raise ValueError(
                f"the function mapped by dx.vmap returned structure {out_def!r} for example 0 "
                f"but {def_i!r} for example {i}; every example must give the same structure."
            )
        per_example_leaves.append(leaves_i)

    leaf_axes = _expand_axes(out_axes, outputs[0], "vmap out_axes")
    results = []
    for j, axis in enumerate(leaf_axes):
        values = [leaves_i[j] for leaves_i in per_example_leaves]
        first = values[0]
        if not is_array(first):
            if not all(_same_static(first, v) for v in values[1:]):
                raise ValueError(
                    f"the function mapped by dx.vmap returned a non-array leaf ({type(first).__name__}) "
                    "that differs between examples; return arrays (dx.asarray(...)) for values that "
                    "depend on the example."
                )
            results.append(first)
        elif axis is None:
            _check_unmapped(values)
            results.append(first)
        else:
            ndim = len(np.shape(value_of(first))) + 1
            if not -ndim <= axis < ndim:
                raise ValueError(f"vmap out_axes {axis} is out of range for an output of rank {ndim}")
            results.append(stack(values, axis=axis % ndim))
    return tree_unflatten(out_def, results)


def _check_unmapped(values: list[Any]) -> None:
    """With ``out_axes=None`` the output must not vary across the batch."""
    concrete = [value_of(v) for v in values]
    jax = sys.modules.get("jax")
    if jax is not None and any(isinstance(v, jax.core.Tracer) for v in concrete):
        return  # values known only at run time: nothing to compare
    first = np.asarray(concrete[0])
    for v in concrete[1:]:
        if not np.array_equal(first, np.asarray(v), equal_nan=np.issubdtype(first.dtype, np.inexact)):
            raise ValueError(
                "vmap out_axes is None for an output that varies across the batch; give it an "
                "axis (e.g. 0) or make it independent of the mapped arguments."
            )


# --------------------------------------------------------------------------
# Public function
# --------------------------------------------------------------------------


def vmap(
    f: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0, axis_size: int | None = None
) -> Callable[..., Any]:
    """Vectorise ``f`` over a batch axis of its arguments, as ``jax.vmap``.

    On JAX this is ``jax.vmap`` whenever no difflux transformation is active.
    Otherwise, and always on NumPy, difflux's batching rules run each
    operation once on the whole batch, and where they do not apply a loop
    over the examples stacks the results with the differentiable
    ``dx.stack`` (see the module docstring). All give the same values, so
    per-example gradients and ensembles work on every backend. Code with
    Python ``if`` on mapped values runs in the loop
    but fails on JAX; use ``dx.where`` for portable code.

    Args:
        f: the function to map.
        in_axes: the batch axis of each positional argument: an int, ``None``
            (not mapped), or a tuple with one entry per argument, each an int,
            ``None`` or a container prefix of that argument.
        out_axes: where the batch axis goes in each output (same forms,
            against the output's structure), or ``None`` for an output that
            does not depend on the mapped arguments.
        axis_size: the batch size, needed only when no argument is mapped.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> loss = lambda w, x: dx.sum(w * x) ** 2
        >>> per_example = dx.vmap(dx.grad(loss), in_axes=(None, 0))
        >>> per_example(np.ones(2), np.array([[1.0, 0.0], [1.0, 1.0]])).tolist()
        [[2.0, 0.0], [4.0, 4.0]]
    """

    @functools.wraps(f)
    def batched(*args: Any, **kwargs: Any) -> Any:
        axes_prefix = _normalize_in_axes(in_axes, len(args))
        leaves, treedef = tree_flatten((args, kwargs))
        axes = _expand_axes(axes_prefix, args, "vmap in_axes") + _expand_axes(0, kwargs, "vmap in_axes")
        axes, size = _check_mapped_leaves(leaves, axes, axis_size)
        if _use_jax(leaves):
            return _vmap_jax(f, leaves, treedef, axes, size, out_axes)
        try:
            return _vmap_batched(f, leaves, treedef, axes, size, out_axes)
        except UnbatchableError:
            return _vmap_loop(f, leaves, treedef, axes, size, out_axes)

    return batched
