"""``cond``: choose one of two functions by a predicate, differentiably.

A concrete predicate (NumPy, or JAX outside ``jax.jit``) selects the branch
with a Python ``if``, so only that branch runs and the tape records it. A
traced predicate (inside ``jax.jit`` or ``jax.vmap``) goes through the
``cond`` primitive, which runs ``jax.lax.switch``. Its jvp is a ``cond`` of
the branches' jvps, and its pullback is a ``cond`` of their pullbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._control import (
    ClosedFunction,
    JointPullback,
    avals_of,
    check_plain,
    expand,
    instantiate,
    is_float,
    is_jax_tracer,
    jvp_flat,
    match_dtype,
    needs_primitive,
    select,
    unflatten,
    vjp_flat,
)
from ._control_batched import batch_trace_active, batched_cond
from ._core import Primitive, value_of
from ._dispatch import shape_of
from ._tree import TreeDef, tree_flatten

Branch = Callable[[list[Any]], list[Any]]


def _cond_impl(index: Any, *ops: Any, branches: tuple[Branch, ...]) -> tuple[Any, ...]:
    if not is_jax_tracer(index):
        return tuple(branches[int(index)](list(ops)))
    from jax import lax

    def lift(branch: Branch) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
        return lambda operands: tuple(check_plain(branch(list(operands)), "cond"))

    return tuple(lax.switch(index, [lift(b) for b in branches], tuple(ops)))


def _cond_jvp(
    tangents: list[Any], outs: tuple[Any, ...], index: Any, *ops: Any, branches: tuple[Branch, ...]
) -> tuple[Any, ...]:
    op_tangents = list(tangents[1:])
    nonzero = [t is not None for t in op_tangents]
    out_float = [is_float(o) for o in outs]
    num_ops = len(ops)

    def jvp_branch(branch: Branch) -> Branch:
        def run(operands: list[Any]) -> list[Any]:
            primals = operands[:num_ops]
            values, out_tangents = jvp_flat(branch, primals, expand(operands[num_ops:], nonzero))
            return values + [instantiate(t, v) for t, v, f in zip(out_tangents, values, out_float) if f]

        return run

    results = cond_flat(index, [jvp_branch(b) for b in branches], list(ops) + select(op_tangents, nonzero))
    return tuple(expand(results[len(outs) :], out_float))


def _cond_pullback_all(
    cts: tuple[Any, ...], outs: tuple[Any, ...], index: Any, *ops: Any, branches: tuple[Branch, ...]
) -> list[Any]:
    op_float = [is_float(o) for o in ops]
    out_float = [is_float(o) for o in outs]
    num_ops = len(ops)

    def pullback_branch(branch: Branch) -> Branch:
        def run(operands: list[Any]) -> list[Any]:
            primals = operands[:num_ops]
            _, pull = vjp_flat(branch, primals, op_float)
            grads = pull(expand(operands[num_ops:], out_float))
            return [match_dtype(g, p) for g, p, f in zip(grads, primals, op_float) if f]

        return run

    results = cond_flat(index, [pullback_branch(b) for b in branches], list(ops) + select(list(cts), out_float))
    # The branch index has no cotangent.
    return [None] + expand(results, op_float)


cond_p = Primitive("cond", _cond_impl, jvp=_cond_jvp, multiple_results=True)
cond_p.pullbacks = JointPullback(_cond_pullback_all)  # type: ignore[assignment]


def cond_flat(index: Any, branches: Sequence[Branch], ops: list[Any]) -> list[Any]:
    """Run ``branches[index](ops)``: directly when ``index`` is concrete, else as a primitive.

    ``index`` is a boolean (two branches: false, true) or an integer.
    """
    value = value_of(index)
    if not is_jax_tracer(value):
        return list(branches[int(value)](ops))
    import jax.numpy as jnp

    return list(cond_p(jnp.asarray(value, dtype=jnp.int32), *ops, branches=tuple(branches)))


# --------------------------------------------------------------------------
# The public function
# --------------------------------------------------------------------------


def cond(pred: Any, true_fun: Callable[..., Any], false_fun: Callable[..., Any], *operands: Any) -> Any:
    """Return ``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, as ``jax.lax.cond``.

    With a concrete predicate (NumPy, or JAX outside ``jax.jit``) only the
    chosen branch runs, as a Python ``if``. With a traced predicate (inside
    ``jax.jit`` or ``jax.vmap``) the choice is made at run time by
    ``jax.lax.switch``, so both branches must return values of the same
    structure, shapes and dtypes. Both cases differentiate in forward and
    reverse mode, also when the branches close over differentiated values.

    Args:
        pred: a scalar boolean.
        true_fun: the branch taken when ``pred`` is true, a function of ``*operands``.
        false_fun: the branch taken otherwise, a function of ``*operands``.
        operands: the branches' arguments (any structures of arrays).

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.grad(lambda x: dx.cond(x > 0, lambda: x ** 2, lambda: -x))(3.0))
        6.0
    """
    if batch_trace_active():
        return batched_cond(pred, true_fun, false_fun, operands)
    value = value_of(pred)
    if shape_of(value) != ():
        raise TypeError(f"dx.cond: pred must be a scalar boolean, got shape {shape_of(value)}")
    dtype = getattr(value, "dtype", None)
    if dtype is not None and not (
        np.issubdtype(np.dtype(dtype), np.bool_) or np.issubdtype(np.dtype(dtype), np.integer)
    ):
        raise TypeError(f"dx.cond: pred must be a boolean, got dtype {dtype}. Compare explicitly, for example x > 0.")
    if not is_jax_tracer(value):
        return true_fun(*operands) if bool(value) else false_fun(*operands)
    return _traced_cond(value, true_fun, false_fun, operands)


def _traced_cond(
    pred: Any, true_fun: Callable[..., Any], false_fun: Callable[..., Any], operands: tuple[Any, ...]
) -> Any:
    leaves, operands_def = tree_flatten(operands)
    names = ("false_fun", "true_fun")
    closures = [ClosedFunction(false_fun), ClosedFunction(true_fun)]
    # The structure and avals each branch returned, to compare the branches.
    seen: dict[int, tuple[TreeDef, list[Any]]] = {}

    def check_branches(which: int, out_def: TreeDef, avals: list[Any]) -> None:
        seen[which] = (out_def, avals)
        other = 1 - which
        if other not in seen:
            return
        (false_def, false_avals), (true_def, true_avals) = seen[0], seen[1]
        if false_def != true_def:
            raise TypeError(
                f"dx.cond: both branches must return the same structure, but true_fun returns "
                f"{true_def!r} and false_fun returns {false_def!r}."
            )
        for i, (t, f) in enumerate(zip(true_avals, false_avals)):
            if t != f:
                raise TypeError(
                    f"dx.cond: both branches must return arrays of equal shape and dtype, but output "
                    f"leaf {i} has shape {t[0]} and dtype {t[1]} from true_fun and shape {f[0]} and "
                    f"dtype {f[1]} from false_fun."
                )

    if needs_primitive(leaves):
        plain = unflatten(operands_def, [value_of(leaf) for leaf in leaves])
        for which, closure in enumerate(closures):
            avals, out_def = closure.discover("lax", *plain)
            check_branches(which, out_def, avals)
        closures[0].share_captures(closures[1])
    consts = list(closures[0].captured)
    num_consts = len(consts)
    out_defs: list[TreeDef] = []

    def make_branch(which: int) -> Branch:
        closure = closures[which]

        def run(ops: list[Any]) -> list[Any]:
            args = unflatten(operands_def, ops[num_consts:])
            out_leaves, out_def = closure(ops[:num_consts], *args)
            check_branches(which, out_def, avals_of(out_leaves))
            out_defs.append(out_def)
            return out_leaves

        run.__name__ = names[which]
        return run

    outs = cond_flat(pred, [make_branch(0), make_branch(1)], consts + leaves)
    return unflatten(out_defs[0], outs)
