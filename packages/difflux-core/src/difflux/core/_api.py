"""The differentiation API: ``grad``, ``value_and_grad``, ``gradient``,
``pullback``, ``jvp``, ``jacobian``, ``hessian`` and ``stop_gradient``.

Each call opens a fresh trace (see ``_core``), wraps the float leaves of the
differentiated arguments in tracers, runs the function and reads the
derivatives off the outputs. Non-float leaves (integers, booleans, strings,
functions) are passed through unchanged and receive ``None`` as gradient.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._core import (
    JVPTrace,
    JVPTracer,
    ReverseTrace,
    ReverseTracer,
    Tracer,
    backward,
    value_of,
)
from ._dispatch import shape_of
from ._ops_creation import asarray, ones_like, zeros_like
from ._tree import tree_flatten, tree_unflatten


def _is_float_leaf(x: Any) -> bool:
    if (type(x) is np.ndarray or isinstance(x, np.generic)) and x.dtype.kind in "fc":
        return True  # the common case, without np.issubdtype's cost
    if isinstance(x, Tracer):
        return np.issubdtype(x.dtype, np.inexact)
    if isinstance(x, float):
        return True
    dtype = getattr(x, "dtype", None)
    if dtype is None or not hasattr(x, "shape"):
        return False
    return np.issubdtype(np.dtype(dtype), np.inexact)


def _check_differentiable(x: Any, where: str) -> None:
    dtype = getattr(x, "dtype", None)
    is_integer_array = dtype is not None and np.dtype(dtype).kind in "biu"
    if isinstance(x, bool | int | np.integer | np.bool_) or is_integer_array:
        raise TypeError(
            f"{where} has integer or boolean dtype ({getattr(x, 'dtype', type(x).__name__)}), "
            "which has no gradient. Pass a float array, e.g. dx.asarray(x, dtype=float)."
        )


def _normalize_argnums(argnums: int | Sequence[int], num_args: int) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not -num_args <= n < num_args:
            raise ValueError(f"argnums={argnums} is out of range for a call with {num_args} positional arguments")
    return tuple(n % num_args for n in nums)


# --------------------------------------------------------------------------
# Reverse mode
# --------------------------------------------------------------------------


class _Recorded:
    """The outputs of a recorded call and what is needed to pull back."""

    def __init__(self, trace: ReverseTrace, out: Any, inputs: list[Any]) -> None:
        self.trace = trace
        # The nodes in creation order: the backward pass walks them instead
        # of sorting the nodes reachable from the outputs.
        self.tape = trace.take_tape()
        self.out_leaves, self.out_def = tree_flatten(out)
        self.inputs = inputs  # input tracers (or None for non-float leaves)

    def primal_out(self) -> Any:
        return tree_unflatten(self.out_def, [_lower(x, self.trace) for x in self.out_leaves])

    def pull(self, cotangent: Any) -> list[Any]:
        ct_leaves, ct_def = tree_flatten(cotangent)
        if ct_def != self.out_def:
            raise ValueError(
                f"the cotangent's structure {ct_def!r} does not match the output's structure {self.out_def!r}"
            )
        for out, ct in zip(self.out_leaves, ct_leaves):
            # shape_of reads tracers' shapes without their arrays, as in jvp.
            out_shape, ct_shape = shape_of(out), shape_of(ct)
            if ct is not None and out_shape != ct_shape:
                raise ValueError(
                    f"an output of shape {out_shape} got a cotangent of shape {ct_shape}; each cotangent "
                    "must have the shape of its output"
                )
        return self.pull_leaves(ct_leaves)

    def pull_leaves(self, ct_leaves: list[Any]) -> list[Any]:
        """Pull back one cotangent per output leaf (``None`` for zero)."""
        roots, cts = [], []
        for out, ct in zip(self.out_leaves, ct_leaves):
            if type(out) is ReverseTracer and out._trace is self.trace and ct is not None:
                roots.append(out)
                cts.append(ct)
        grads = backward(roots, cts, self.tape) if roots else {}
        result = []
        for leaf in self.inputs:
            if leaf is None:
                result.append(None)
                continue
            g = grads.get(id(leaf))
            result.append(zeros_like(leaf.value) if g is None else g)
        return result


def _lower(x: Any, trace: ReverseTrace) -> Any:
    if type(x) is ReverseTracer and x._trace is trace:
        return x.value
    return x


def _record(
    f: Callable[..., Any], args: tuple[Any, ...], diff_positions: tuple[int, ...]
) -> tuple[_Recorded, list[Any]]:
    """Run ``f(*args)`` with the float leaves of ``args[diff_positions]`` traced."""
    trace = ReverseTrace(keep_tape=True)
    traced_args = list(args)
    input_tracers: list[Any] = []
    input_defs = []
    for position in diff_positions:
        leaves, treedef = tree_flatten(args[position])
        new_leaves = []
        for leaf in leaves:
            if _is_float_leaf(leaf):
                if isinstance(leaf, float):
                    leaf = asarray(leaf)
                tracer = trace.leaf(leaf)
                new_leaves.append(tracer)
                input_tracers.append(tracer)
            else:
                if not isinstance(args[position], list | tuple | dict) and leaves == [args[position]]:
                    _check_differentiable(leaf, f"argument {position}")
                new_leaves.append(leaf)
                input_tracers.append(None)
        input_defs.append((treedef, len(leaves)))
        traced_args[position] = tree_unflatten(treedef, new_leaves)
    with trace:
        out = f(*traced_args)
    return _Recorded(trace, out, input_tracers), input_defs


def _split_grads(grads: list[Any], input_defs: list[Any]) -> list[Any]:
    result, start = [], 0
    for treedef, count in input_defs:
        result.append(tree_unflatten(treedef, grads[start : start + count]))
        start += count
    return result


def _scalar_output_check(out: Any) -> None:
    shape = getattr(out, "shape", ())
    if tuple(shape) != ():
        raise TypeError(
            f"grad requires a function with a scalar output, got shape {tuple(shape)}. "
            "Reduce it (e.g. dx.sum) or use dx.jacobian / dx.pullback for vector outputs."
        )
    if not _is_float_leaf(out):
        raise TypeError(f"grad requires a float output, got {type(value_of(out)).__name__} {out!r}")


def value_and_grad(
    f: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """Return a function computing ``f(*args)`` and its gradient, as in JAX.

    Args:
        f: a function with a scalar float output (or ``(output, aux)`` when
            ``has_aux``).
        argnums: the positional argument(s) to differentiate. With a tuple the
            gradient is a tuple.
        has_aux: whether ``f`` returns ``(output, aux)``; ``aux`` is returned
            alongside the value and not differentiated.

    Examples:
        >>> import difflux.core as dx
        >>> value, g = dx.value_and_grad(lambda x: dx.sum(x ** 2))(dx.asarray([1.0, 2.0]))
        >>> float(value), g.tolist()
        (5.0, [2.0, 4.0])
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        positions = _normalize_argnums(argnums, len(args))
        fun = functools.partial(f, **kwargs) if kwargs else f
        recorded, input_defs = _record(fun, args, positions)
        out = recorded.primal_out()
        aux = None
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError("with has_aux=True the function must return a pair (output, aux)")
            value, aux = out
            _scalar_output_check(value)
            # The value is the first leaf of (value, aux); aux gets no cotangent.
            ct_leaves = [ones_like(value)] + [None] * (len(recorded.out_leaves) - 1)
        else:
            value = out
            _scalar_output_check(value)
            ct_leaves = [ones_like(value)]
        grads = _split_grads(recorded.pull_leaves(ct_leaves), input_defs)
        grad_out = grads[0] if isinstance(argnums, int) else tuple(grads)
        if has_aux:
            return (value, aux), grad_out
        return value, grad_out

    return wrapper


def grad(f: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable[..., Any]:
    """Return a function computing the gradient of scalar ``f``, as ``jax.grad``.

    Gradients with respect to a structure (a ``dx.Module``, dict, list or
    tuple) come back as the same structure, with ``None`` at non-float leaves.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.grad(lambda x: x ** 3)(2.0))
        12.0
    """
    value_and_grad_f = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        (value_or_pair), g = value_and_grad_f(*args, **kwargs)
        if has_aux:
            return g, value_or_pair[1]
        return g

    return wrapper


def gradient(f: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """Return the gradient of scalar ``f`` at ``args``, one entry per argument (Zygote style).

    Examples:
        >>> import difflux.core as dx
        >>> [float(g) for g in dx.gradient(lambda x, y: x * y, 2.0, 3.0)]
        [3.0, 2.0]
    """
    if not args:
        raise TypeError("gradient(f, *args) needs at least one argument to differentiate")
    _, grads = value_and_grad(f, argnums=tuple(range(len(args))))(*args)
    return grads


def pullback(f: Callable[..., Any], *args: Any) -> tuple[Any, Callable[[Any], tuple[Any, ...]]]:
    """Return ``f(*args)`` and a function mapping an output cotangent to input cotangents.

    The pullback may be called any number of times (for example once per
    row of a Jacobian); each call runs the recorded backward pass again.
    """
    recorded, input_defs = _record(f, args, tuple(range(len(args))))
    out = recorded.primal_out()

    def back(cotangent: Any) -> tuple[Any, ...]:
        return tuple(_split_grads(recorded.pull(cotangent), input_defs))

    return out, back


def vjp(f: Callable[..., Any], *args: Any) -> tuple[Any, Callable[[Any], tuple[Any, ...]]]:
    """Alias of :func:`pullback` under JAX's name."""
    return pullback(f, *args)


# --------------------------------------------------------------------------
# Forward mode
# --------------------------------------------------------------------------


def jvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """Return ``f(*primals)`` and its directional derivative along ``tangents``.

    ``primals`` and ``tangents`` are sequences with matching structures, as in
    ``jax.jvp``. Output leaves that do not depend on the inputs get zero
    tangents.
    """
    if len(primals) != len(tangents):
        raise ValueError(f"jvp got {len(primals)} primals but {len(tangents)} tangents")
    trace = JVPTrace()
    args = []
    for i, (primal, tangent) in enumerate(zip(primals, tangents)):
        p_leaves, p_def = tree_flatten(primal)
        t_leaves, t_def = tree_flatten(tangent)
        if p_def != t_def:
            raise ValueError(f"primal {i} has structure {p_def!r} but its tangent has {t_def!r}")
        leaves = []
        for p, t in zip(p_leaves, t_leaves):
            if t is None or not _is_float_leaf(p):
                leaves.append(p)
                continue
            # shape_of reads tracers' shapes without their arrays, so dx.vmap can batch a jvp.
            p_shape, t_shape = shape_of(p), shape_of(t)
            if p_shape != t_shape:
                raise ValueError(f"a primal of shape {p_shape} got a tangent of shape {t_shape}")
            leaves.append(JVPTracer(trace, p, t))
        args.append(tree_unflatten(p_def, leaves))
    with trace:
        out = f(*args)
    out_leaves, out_def = tree_flatten(out)
    primal_out, tangent_out = [], []
    for leaf in out_leaves:
        if type(leaf) is JVPTracer and leaf._trace is trace:
            primal_out.append(leaf.value)
            tangent_out.append(leaf.tangent)
        else:
            primal_out.append(leaf)
            tangent_out.append(zeros_like(leaf) if _is_float_leaf(leaf) else None)
    return tree_unflatten(out_def, primal_out), tree_unflatten(out_def, tangent_out)


# --------------------------------------------------------------------------
# Jacobians and Hessians
# --------------------------------------------------------------------------


def _basis(x: Any) -> list[Any]:
    """The standard basis of ``x``'s space, as arrays of ``x``'s shape."""
    from ._ops_index import index_update
    from ._ops_shape import reshape

    value = value_of(x)
    size = int(np.prod(np.shape(value)))
    flat = reshape(zeros_like(value), (size,))
    return [reshape(index_update(flat, i, 1.0), np.shape(value)) for i in range(size)]


def _stack_jacobian(columns: list[Any], out_shape: tuple[int, ...], in_shape: tuple[int, ...], axis_last: bool) -> Any:
    from ._ops_manipulation import stack
    from ._ops_shape import reshape

    stacked = stack(columns, axis=-1 if axis_last else 0)
    if axis_last:
        return reshape(stacked, out_shape + in_shape)
    return reshape(stacked, out_shape + in_shape)


def jacobian(f: Callable[..., Any], argnums: int = 0, mode: str = "reverse") -> Callable[..., Any]:
    """Return a function computing the Jacobian of array-valued ``f``.

    The result has shape ``out.shape + x.shape``. ``mode="reverse"`` pulls back
    one basis cotangent per output element (good for few outputs);
    ``mode="forward"`` pushes one basis tangent per input element (good for
    few inputs).
    """
    if mode not in ("reverse", "forward"):
        raise ValueError(f"jacobian mode must be 'reverse' or 'forward', got {mode!r}")

    @functools.wraps(f)
    def wrapper(*args: Any) -> Any:
        position = _normalize_argnums(argnums, len(args))[0]
        x = args[position]
        _check_differentiable(x, f"argument {position}")
        in_shape = tuple(np.shape(value_of(x)))

        def g(xi: Any) -> Any:
            return f(*args[:position], xi, *args[position + 1 :])

        if mode == "reverse":
            out, back = pullback(g, x)
            out_shape = tuple(np.shape(value_of(out)))
            rows = [back(e)[0] for e in _basis(out)]
            return _stack_jacobian(rows, out_shape, in_shape, axis_last=False)
        columns = []
        out_shape: tuple[int, ...] = ()
        for e in _basis(x):
            out, tangent = jvp(g, (x,), (e,))
            out_shape = tuple(np.shape(value_of(out)))
            columns.append(tangent)
        from ._ops_manipulation import stack
        from ._ops_shape import permute_dims, reshape

        stacked = stack(columns, axis=0)  # (in_size, *out_shape)
        nd = len(out_shape)
        moved = permute_dims(stacked, tuple(range(1, nd + 1)) + (0,))
        return reshape(moved, out_shape + in_shape)

    return wrapper


def jacfwd(f: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """Forward-mode Jacobian (``jacobian(f, argnums, mode="forward")``)."""
    return jacobian(f, argnums, mode="forward")


def jacrev(f: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """Reverse-mode Jacobian (``jacobian(f, argnums, mode="reverse")``)."""
    return jacobian(f, argnums, mode="reverse")


def hessian(f: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
    """Return a function computing the Hessian of scalar ``f`` (forward over reverse)."""
    return jacobian(grad(f, argnums), argnums, mode="forward")


# --------------------------------------------------------------------------
# stop_gradient
# --------------------------------------------------------------------------


def stop_gradient(x: Any) -> Any:
    """Return the value of ``x`` (every leaf of a structure) with no derivative."""
    from ._tree import tree_map

    return tree_map(_stopped, x)


def _stopped(x: Any) -> Any:
    # Derivative tracers are stripped; a dx.vmap batch tracer is kept, with
    # the derivative tracers under it stripped in turn.
    from ._batching import BatchTrace, BatchTracer
    from ._record import RecordTracer

    while isinstance(x, Tracer):
        if type(x) is BatchTracer:
            trace = x._trace
            assert isinstance(trace, BatchTrace)
            return BatchTracer(trace, _stopped(x.value))
        if type(x) is RecordTracer:
            return x  # a recorded value carries no derivative
        x = x.primal
    return x
