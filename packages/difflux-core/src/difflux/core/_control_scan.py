"""``scan`` and ``fori_loop``: loops with a carry, differentiable in both modes.

On NumPy, and for short loops differentiated eagerly on JAX, the loop is a
Python loop that the tape records. Otherwise, on JAX, it is the ``scan``
primitive, implemented with ``jax.lax.scan``, so a long loop is one XLA loop
rather than an unrolled program. Its rules are scans again:

* jvp: one scan of the body's jvp, carrying primal and tangent together;
* pullback: a scan that recomputes the carry before every step, then a
  reverse scan that pulls the cotangents back through each step with
  ``vjp_flat`` and sums the cotangents of the captured values.

The pullback therefore stores one carry per step, like ``jax.lax.scan``'s.
With ``checkpoints=`` it follows ``while_loop``'s two-level schedule instead
and stores about ``2 * sqrt(length)`` carries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._checkpoint_schedule import CheckpointStats, sqrt_schedule
from ._control import (
    ClosedFunction,
    JointPullback,
    as_array,
    avals_of,
    check_carry,
    check_plain,
    choose_backend,
    choose_mode,
    dtype_of,
    expand,
    instantiate,
    is_float,
    is_jax_tracer,
    jvp_flat,
    match_dtype,
    needs_primitive,
    run_lax,
    select,
    split_pair,
    unflatten,
    vjp_flat,
)
from ._control_batched import batch_trace_active, batched_scan
from ._control_cond import cond_flat
from ._core import Primitive, Tracer, value_of
from ._dispatch import shape_of
from ._ops_creation import arange, asarray, zeros
from ._ops_manipulation import concat, flip, stack
from ._ops_shape import getitem, reshape
from ._tree import TreeDef, tree_flatten

# A flat scan body: (consts, carry, x) -> (new carry, y), all lists of leaves.
ScanBody = Callable[[list[Any], list[Any], list[Any]], tuple[list[Any], list[Any]]]

# --------------------------------------------------------------------------
# Slicing and stacking for Python loops
# --------------------------------------------------------------------------


def _unstack_impl(x: Any) -> tuple[Any, ...]:
    return tuple(x[i] for i in range(x.shape[0]))


# One primitive for all slices keeps the pullback linear in the length: the
# cotangents are stacked once instead of scattered into zeros per slice.
unstack_leading_p = Primitive(
    "unstack_leading",
    _unstack_impl,
    pullbacks=(lambda g, out, x: stack(list(g)),),
    jvp=lambda tangents, out, x: unstack_leading_p(tangents[0]),
    multiple_results=True,
)


def _slices(leaf: Any, length: int) -> tuple[Any, ...]:
    if length == 0:
        return ()
    return unstack_leading_p(leaf)


def _stack_ys(per_step: list[list[Any]], num_leaves: int) -> list[Any]:
    return [stack([as_array(step[i], _backend_of_step(step[i])) for step in per_step]) for i in range(num_leaves)]


def _backend_of_step(leaf: Any) -> str:
    from ._backend import backend_of_value

    return backend_of_value(value_of(leaf)) or "numpy"


def _empty_like_stack(leaf: Any) -> Any:
    value = value_of(leaf)
    from ._backend import backend_of_value

    return zeros(
        (0,) + shape_of(value), dtype=getattr(value, "dtype", np.float64), backend=backend_of_value(value) or "numpy"
    )


def scan_python(
    body: ScanBody, consts: list[Any], init: list[Any], xs: list[Any], length: int, reverse: bool
) -> tuple[list[Any], list[Any]]:
    """Run a flat scan as a Python loop (values may be traced)."""
    columns = [_slices(x, length) for x in xs]
    carry = list(init)
    per_step: list[list[Any]] = []
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for i in steps:
        carry, y = body(consts, carry, [column[i] for column in columns])
        per_step.append(y)
    if length == 0:
        # Run the body once on zeros to learn the shapes of the (empty) ys.
        x_zeros = [zeros(shape_of(value_of(x))[1:], dtype=value_of(x).dtype, backend=_backend_of_step(x)) for x in xs]
        _, y = body(consts, list(init), x_zeros)
        return carry, [_empty_like_stack(leaf) for leaf in y]
    if reverse:
        per_step.reverse()
    num_ys = len(per_step[0])
    return carry, _stack_ys(per_step, num_ys)


# --------------------------------------------------------------------------
# The scan primitive
# --------------------------------------------------------------------------


def _split(
    args: tuple[Any, ...] | list[Any], num_consts: int, num_carry: int
) -> tuple[list[Any], list[Any], list[Any]]:
    args = list(args)
    return args[:num_consts], args[num_consts : num_consts + num_carry], args[num_consts + num_carry :]


def _scan_impl(
    *args: Any,
    body: ScanBody,
    num_consts: int,
    num_carry: int,
    length: int,
    reverse: bool,
    mode: str,
    checkpoints: int | None,
) -> tuple[Any, ...]:
    consts, init, xs = _split(args, num_consts, num_carry)
    if mode == "python":
        carry, ys = scan_python(body, consts, init, xs, length, reverse)
        return (*carry, *ys)
    from jax import lax

    def run(*values: Any) -> tuple[Any, ...]:
        run_consts, run_init, run_xs = _split(values, num_consts, num_carry)

        def step(carry: tuple[Any, ...], x: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
            new_carry, y = body(run_consts, list(carry), list(x))
            new_carry = [match_dtype(c, c0) for c, c0 in zip(new_carry, carry)]
            return tuple(check_plain(new_carry, "scan")), tuple(check_plain(y, "scan"))

        carry, ys = lax.scan(step, tuple(run_init), tuple(run_xs), length=length, reverse=reverse)
        return (*carry, *ys)

    return run_lax(run, args)


def _scan_jvp(
    tangents: list[Any],
    outs: tuple[Any, ...],
    *args: Any,
    body: ScanBody,
    num_consts: int,
    num_carry: int,
    length: int,
    reverse: bool,
    mode: str,
    checkpoints: int | None,
) -> tuple[Any, ...]:
    consts, init, xs = _split(args, num_consts, num_carry)
    const_t, init_t, xs_t = _split(tangents, num_consts, num_carry)
    const_nz = [t is not None for t in const_t]
    xs_nz = [t is not None for t in xs_t]
    carry_float = [is_float(c) for c in init]
    y_float = [is_float(y) for y in outs[num_carry:]]
    num_xs = len(xs)

    def jvp_body(consts_all: list[Any], carry_all: list[Any], x_all: list[Any]) -> tuple[list[Any], list[Any]]:
        primals = consts_all[:num_consts] + carry_all[:num_carry] + x_all[:num_xs]
        tangents_in = (
            expand(consts_all[num_consts:], const_nz)
            + expand(carry_all[num_carry:], carry_float)
            + expand(x_all[num_xs:], xs_nz)
        )

        def step(leaves: list[Any]) -> list[Any]:
            new_carry, y = body(
                leaves[:num_consts], leaves[num_consts : num_consts + num_carry], leaves[num_consts + num_carry :]
            )
            return new_carry + y

        values, out_t = jvp_flat(step, primals, tangents_in)
        new_carry, y = values[:num_carry], values[num_carry:]
        carry_t = [instantiate(t, v) for t, v, f in zip(out_t[:num_carry], new_carry, carry_float) if f]
        y_t = [instantiate(t, v) for t, v, f in zip(out_t[num_carry:], y, y_float) if f]
        return new_carry + carry_t, y + y_t

    init_tangents = [instantiate(t, c) for t, c, f in zip(init_t, init, carry_float) if f]
    carry_out, ys_out = scan_flat(
        jvp_body,
        consts + select(const_t, const_nz),
        init + init_tangents,
        xs + select(xs_t, xs_nz),
        length=length,
        reverse=reverse,
        mode=mode,
        checkpoints=checkpoints,
    )
    num_ys = len(outs) - num_carry
    return tuple(expand(carry_out[num_carry:], carry_float) + expand(ys_out[num_ys:], y_float))


def _step_of(body: ScanBody, num_consts: int, num_carry: int) -> Callable[[list[Any]], list[Any]]:
    """Return one step of ``body`` as a function of ``consts + carry + x`` giving ``carry + y``."""

    def step(leaves: list[Any]) -> list[Any]:
        new_carry, y = body(
            leaves[:num_consts], leaves[num_consts : num_consts + num_carry], leaves[num_consts + num_carry :]
        )
        return new_carry + y

    return step


def _scan_pullback_all(
    cts: tuple[Any, ...],
    outs: tuple[Any, ...],
    *args: Any,
    body: ScanBody,
    num_consts: int,
    num_carry: int,
    length: int,
    reverse: bool,
    mode: str,
    checkpoints: int | None,
) -> list[Any]:
    consts, init, xs = _split(args, num_consts, num_carry)
    if checkpoints is not None and length > 0:
        return _scan_pullback_checkpointed(cts, outs, consts, init, xs, body, length, reverse, mode, checkpoints)
    const_float = [is_float(c) for c in consts]
    carry_float = [is_float(c) for c in init]
    x_float = [is_float(x) for x in xs]
    y_float = [is_float(y) for y in outs[num_carry:]]
    num_xs = len(xs)
    num_float_carry = sum(carry_float)
    step = _step_of(body, num_consts, num_carry)

    # Recompute the carry before every step (one stored carry per step).
    def carry_body(c: list[Any], carry: list[Any], x: list[Any]) -> tuple[list[Any], list[Any]]:
        new_carry, _ = body(c, carry, x)
        return new_carry, list(carry)

    _, carries = scan_flat(carry_body, consts, init, xs, length=length, reverse=reverse, mode=mode)

    def back_body(c: list[Any], state: list[Any], x_all: list[Any]) -> tuple[list[Any], list[Any]]:
        ct_carry, ct_consts = state[:num_float_carry], state[num_float_carry:]
        carry = x_all[:num_carry]
        x = x_all[num_carry : num_carry + num_xs]
        ct_y = x_all[num_carry + num_xs :]
        _, pull = vjp_flat(step, c + carry + x, const_float + carry_float + x_float)
        grads = pull(expand(ct_carry, carry_float) + expand(ct_y, y_float))
        d_consts = select(grads[:num_consts], const_float)
        d_carry = select(grads[num_consts : num_consts + num_carry], carry_float)
        d_x = select(grads[num_consts + num_carry :], x_float)
        summed = [match_dtype(a + d, a) for a, d in zip(ct_consts, d_consts)]
        return d_carry + summed, d_x

    ct_carry_out = select(list(cts[:num_carry]), carry_float)
    ct_ys = select(list(cts[num_carry:]), y_float)
    ct_consts0 = [instantiate(None, c) for c in select(consts, const_float)]
    final, d_xs = scan_flat(
        back_body,
        consts,
        [match_dtype(ct, c) for ct, c in zip(ct_carry_out, select(init, carry_float))] + ct_consts0,
        carries + xs + ct_ys,
        length=length,
        reverse=not reverse,
        mode=mode,
    )
    d_init = final[:num_float_carry]
    d_consts = final[num_float_carry:]
    return expand(d_consts, const_float) + expand(d_init, carry_float) + expand(d_xs, x_float)


def _scan_pullback_checkpointed(
    cts: tuple[Any, ...],
    outs: tuple[Any, ...],
    consts: list[Any],
    init: list[Any],
    xs: list[Any],
    body: ScanBody,
    length: int,
    reverse: bool,
    mode: str,
    checkpoints: int,
) -> list[Any]:
    """Pull back through a scan, storing a carry only at the start of each segment.

    The schedule is ``while_loop``'s (see ``_checkpoint_schedule.py``). The
    steps are taken in the order the scan ran them (``xs`` and the ys'
    cotangents are flipped for a reverse scan) and grouped into
    ``segments`` blocks of ``segment_length`` steps. The last block is padded
    with zeros, and its steps past ``length`` are skipped.
    """
    num_consts, num_carry, num_xs = len(consts), len(init), len(xs)
    const_float = [is_float(c) for c in consts]
    carry_float = [is_float(c) for c in init]
    x_float = [is_float(x) for x in xs]
    y_float = [is_float(y) for y in outs[num_carry:]]
    num_float_carry = sum(carry_float)
    num_state = num_float_carry + sum(const_float)
    step = _step_of(body, num_consts, num_carry)
    segments, segment_length = sqrt_schedule(length, checkpoints)
    padded = segments * segment_length
    stats = CheckpointStats(length)
    backend = choose_backend(consts + init + xs)

    def indices(n: int) -> Any:
        if mode == "python":
            return np.arange(n, dtype=np.int32)
        return arange(n, dtype=np.int32, backend=backend)

    def in_order(leaf: Any) -> Any:
        return flip(leaf, axis=0) if reverse else leaf

    def to_blocks(leaf: Any) -> Any:
        leaf = in_order(leaf)
        rest = shape_of(leaf)[1:]
        if padded > length:
            padding = zeros((padded - length, *rest), dtype=dtype_of(leaf), backend=_backend_of_step(leaf))
            leaf = concat([leaf, padding])
        return reshape(leaf, (segments, segment_length, *rest))

    def from_blocks(leaf: Any) -> Any:
        rest = shape_of(leaf)[2:]
        return in_order(getitem(reshape(leaf, (padded, *rest)), slice(0, length)))

    def keep_carry(ops: list[Any]) -> list[Any]:
        return ops[num_consts : num_consts + num_carry]

    def apply_body(ops: list[Any]) -> list[Any]:
        return body(ops[:num_consts], ops[num_consts : num_consts + num_carry], ops[num_consts + num_carry :])[0]

    def advance(c: list[Any], carry: list[Any], x: list[Any], index: Any) -> list[Any]:
        return cond_flat(index < length, [keep_carry, apply_body], c + carry + x)

    # Forward sweep: the carry at the start of each segment.
    def forward_segment(c: list[Any], carry: list[Any], x_all: list[Any]) -> tuple[list[Any], list[Any]]:
        start = x_all[num_xs] * segment_length

        def inner(c2: list[Any], carry2: list[Any], x2: list[Any]) -> tuple[list[Any], list[Any]]:
            return advance(c2, carry2, x2[:num_xs], start + x2[num_xs]), []

        final, _ = scan_flat(
            inner, c, carry, x_all[:num_xs] + [indices(segment_length)], length=segment_length, reverse=False, mode=mode
        )
        return final, list(carry)

    x_blocks = [to_blocks(x) for x in xs]
    _, saved = scan_flat(
        forward_segment, consts, init, x_blocks + [indices(segments)], length=segments, reverse=False, mode=mode
    )
    stats.record_checkpoints(saved)

    # Backward sweep, one segment at a time from the last.
    def backward_segment(c: list[Any], state: list[Any], x_all: list[Any]) -> tuple[list[Any], list[Any]]:
        checkpoint = x_all[:num_carry]
        block = x_all[num_carry : num_carry + num_xs]
        ct_block = x_all[num_carry + num_xs : -1]
        start = x_all[-1] * segment_length

        def recompute(c2: list[Any], carry2: list[Any], x2: list[Any]) -> tuple[list[Any], list[Any]]:
            return advance(c2, carry2, x2[:num_xs], start + x2[num_xs]), list(carry2)

        _, states = scan_flat(
            recompute, c, checkpoint, block + [indices(segment_length)], length=segment_length, reverse=False, mode=mode
        )
        stats.record_segment(states)

        def pull_step(c2: list[Any], st: list[Any], x2: list[Any]) -> tuple[list[Any], list[Any]]:
            operands = c2 + x2[:-1] + st
            at_x = num_consts + num_carry

            def pull_through_body(ops: list[Any]) -> list[Any]:
                primals = ops[: at_x + num_xs]
                ct_y = ops[at_x + num_xs : len(ops) - num_state]
                ct_carry = ops[len(ops) - num_state : len(ops) - num_state + num_float_carry]
                ct_consts = ops[len(ops) - num_state + num_float_carry :]
                _, pull = vjp_flat(step, primals, const_float + carry_float + x_float)
                grads = pull(expand(ct_carry, carry_float) + expand(ct_y, y_float))
                d_consts = select(grads[:num_consts], const_float)
                d_carry = select(grads[num_consts:at_x], carry_float)
                d_x = [
                    match_dtype(d, x) for d, x in zip(select(grads[at_x:], x_float), select(primals[at_x:], x_float))
                ]
                return d_carry + [match_dtype(a + d, a) for a, d in zip(ct_consts, d_consts)] + d_x

            def skip(ops: list[Any]) -> list[Any]:
                zero_x = [instantiate(None, x) for x in select(ops[at_x : at_x + num_xs], x_float)]
                return ops[len(ops) - num_state :] + zero_x

            out = cond_flat(start + x2[-1] < length, [skip, pull_through_body], operands)
            return out[:num_state], out[num_state:]

        return scan_flat(
            pull_step,
            c,
            state,
            states + block + ct_block + [indices(segment_length)],
            length=segment_length,
            reverse=True,
            mode=mode,
        )

    ct_state0 = [
        match_dtype(ct, c) for ct, c in zip(select(list(cts[:num_carry]), carry_float), select(init, carry_float))
    ]
    ct_consts0 = [instantiate(None, c) for c in select(consts, const_float)]
    ct_blocks = [to_blocks(ct) for ct in select(list(cts[num_carry:]), y_float)]
    final, d_x_blocks = scan_flat(
        backward_segment,
        consts,
        ct_state0 + ct_consts0,
        saved + x_blocks + ct_blocks + [indices(segments)],
        length=segments,
        reverse=True,
        mode=mode,
    )
    stats.publish()
    d_init, d_consts = final[:num_float_carry], final[num_float_carry:]
    d_xs = [from_blocks(d) for d in d_x_blocks]
    return expand(d_consts, const_float) + expand(d_init, carry_float) + expand(d_xs, x_float)


scan_p = Primitive("scan", _scan_impl, jvp=_scan_jvp, multiple_results=True)
scan_p.pullbacks = JointPullback(_scan_pullback_all)  # type: ignore[assignment]


def scan_flat(
    body: ScanBody,
    consts: list[Any],
    init: list[Any],
    xs: list[Any],
    *,
    length: int,
    reverse: bool,
    mode: str,
    checkpoints: int | None = None,
) -> tuple[list[Any], list[Any]]:
    """Scan a flat body: a Python loop (recorded by the tape) or the ``scan`` primitive.

    With ``checkpoints`` the primitive is used in either mode, because its
    pullback stores fewer carries than the tape.
    """
    if mode == "python" and checkpoints is None:
        return scan_python(body, consts, init, xs, length, reverse)
    outs = scan_p(
        *consts,
        *init,
        *xs,
        body=body,
        num_consts=len(consts),
        num_carry=len(init),
        length=length,
        reverse=reverse,
        mode=mode,
        checkpoints=checkpoints,
    )
    return list(outs[: len(init)]), list(outs[len(init) :])


# --------------------------------------------------------------------------
# The public functions
# --------------------------------------------------------------------------


def _scan_length(xs_leaves: list[Any], length: int | None) -> int:
    lengths = set()
    for i, leaf in enumerate(xs_leaves):
        shape = shape_of(value_of(leaf))
        if not shape:
            raise ValueError(
                f"dx.scan: every leaf of xs needs a leading axis to scan over, but leaf {i} is a scalar. "
                "Stack the per-step inputs along a new first axis, for example with dx.stack."
            )
        lengths.add(shape[0])
    if len(lengths) > 1:
        raise ValueError(
            f"dx.scan: the leaves of xs have different leading lengths {sorted(lengths)}; they must be equal."
        )
    if length is not None:
        length = int(length)
        if lengths and lengths != {length}:
            raise ValueError(f"dx.scan: length={length} but xs has leading length {lengths.pop()}.")
        return length
    if not lengths:
        raise ValueError(
            "dx.scan: give length= when xs is None (or has no leaves): there is nothing to take the length from."
        )
    return lengths.pop()


def scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any = None,
    length: int | None = None,
    reverse: bool = False,
    *,
    checkpoints: int | None = None,
) -> tuple[Any, Any]:
    """Loop ``f`` over the leading axis of ``xs`` with a carry, as ``jax.lax.scan``.

    In Python terms::

        carry = init
        for x in xs:               # reversed(xs) when reverse=True
            carry, y = f(carry, x)
            ys.append(y)
        return carry, stack(ys)    # ys keep the order of xs

    ``init``, ``xs`` and the ``y`` returned by ``f`` may be structures (tuples,
    lists, dicts, ``dx.Module``) of arrays; ``xs`` may be ``None`` when
    ``length`` is given. ``f`` must return a carry of the structure, shapes
    and dtypes of ``init``.

    On NumPy this is a Python loop. On JAX it is one ``jax.lax.scan`` inside
    ``jax.jit``, when nothing is differentiated, and for loops of more than
    32 steps. A shorter loop differentiated eagerly runs as a Python loop,
    which saves compiling it. Gradients in both modes, to any order, include
    values that ``f`` closes over.

    Reverse mode stores one carry per step. With ``checkpoints=S`` it stores
    the carry at the start of each of ``S`` segments and recomputes the
    carries of one segment at a time, so about ``S + length / S`` carries
    (``2 * sqrt(length)`` for ``S = sqrt(length)``) for about one extra
    forward pass. :func:`checkpoint_stats` reports the numbers.

    Examples:
        >>> import difflux.core as dx
        >>> xs = dx.asarray([1.0, 2.0, 3.0])
        >>> carry, ys = dx.scan(lambda c, x: (c + x, c * x), 0.0, xs)
        >>> float(carry), ys.tolist()
        (6.0, [0.0, 2.0, 9.0])
    """
    if checkpoints is not None and (
        isinstance(checkpoints, bool) or not isinstance(checkpoints, int) or checkpoints < 1
    ):
        raise ValueError(f"dx.scan: checkpoints must be an integer >= 1 or None, got {checkpoints!r}")
    return _scan(f, init, xs, length, reverse, "f", "init", checkpoints)


def _scan(
    f: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any,
    length: int | None,
    reverse: bool,
    fn_name: str,
    init_name: str,
    checkpoints: int | None = None,
) -> tuple[Any, Any]:
    init_leaves, init_def = tree_flatten(init)
    xs_leaves, xs_def = tree_flatten(xs)
    length = _scan_length(xs_leaves, length)
    if batch_trace_active():
        return batched_scan(f, init, xs, length, reverse)
    backend = choose_backend(init_leaves + xs_leaves)
    init_leaves = [as_array(leaf, backend) for leaf in init_leaves]
    xs_leaves = [as_array(leaf, backend) for leaf in xs_leaves]
    init_avals = avals_of(init_leaves)
    y_defs: list[TreeDef] = []

    def call(
        closure: Callable[..., tuple[list[Any], TreeDef]], consts: list[Any], carry: list[Any], x: list[Any]
    ) -> tuple[list[Any], list[Any]]:
        out_leaves, out_def = closure(consts, unflatten(init_def, carry), unflatten(xs_def, x))
        carry_def, carry_leaves, y_def, y_leaves = split_pair("scan", fn_name, out_def, out_leaves)
        carry_leaves = check_carry("scan", fn_name, init_name, init_def, init_avals, carry_def, carry_leaves, backend)
        if y_defs and y_defs[0] != y_def:
            raise TypeError(
                f"dx.scan: {fn_name} must return y of one structure on every step, got {y_defs[0]!r} and {y_def!r}."
            )
        y_defs.append(y_def)
        return carry_leaves, [as_array(y, backend) for y in y_leaves]

    mode = choose_mode(backend, init_leaves + xs_leaves, length)
    traced = needs_primitive(init_leaves + xs_leaves)
    if mode == "python" and (checkpoints is None or not traced):

        def direct(consts: list[Any], *args: Any) -> tuple[list[Any], TreeDef]:
            leaves, treedef = tree_flatten(f(*args))
            return leaves, treedef

        carry, ys = scan_python(
            lambda c, carry, x: call(direct, c, carry, x), [], init_leaves, xs_leaves, length, reverse
        )
        return unflatten(init_def, carry), unflatten(y_defs[-1], ys)

    closure = ClosedFunction(f)
    if traced:
        example_x = [_first_slice(leaf, length) for leaf in xs_leaves]
        closure.discover(mode, unflatten(init_def, [value_of(v) for v in init_leaves]), unflatten(xs_def, example_x))
        if closure.returned_jax_tracer:
            mode = "lax"  # f closes over values traced by jax.jit

    carry, ys = scan_flat(
        lambda c, carry, x: call(closure, c, carry, x),
        list(closure.captured),
        init_leaves,
        xs_leaves,
        length=length,
        reverse=reverse,
        mode=mode,
        checkpoints=checkpoints,
    )
    return unflatten(init_def, carry), unflatten(y_defs[-1], ys)


def _first_slice(leaf: Any, length: int) -> Any:
    value = value_of(leaf)
    if length > 0:
        return value[0]
    return zeros(shape_of(value)[1:], dtype=value.dtype, backend=_backend_of_step(value))


def fori_loop(lower: Any, upper: Any, body_fun: Callable[[Any, Any], Any], init_val: Any) -> Any:
    """Apply ``val = body_fun(i, val)`` for ``i`` in ``range(lower, upper)``, as ``jax.lax.fori_loop``.

    With concrete bounds (Python ints, or concrete arrays) the loop is a
    :func:`scan` of ``upper - lower`` steps, so it differentiates in both
    modes. ``i`` is a Python int when the loop runs in Python (see
    :func:`scan`) and an int32 scalar array under ``jax.lax``. Traced bounds
    (inside ``jax.jit``) make it a :func:`while_loop`, which differentiates in
    forward mode only: make the bounds static for reverse mode.

    Examples:
        >>> import difflux.core as dx
        >>> float(dx.fori_loop(0, 4, lambda i, x: x * 2.0, 1.0))
        16.0
    """
    low, high = _concrete_int(lower), _concrete_int(upper)
    if low is None or high is None:
        return _traced_fori_loop(lower, upper, body_fun, init_val)
    if batch_trace_active():
        val = init_val
        for i in range(low, high):
            val = body_fun(i, val)
        return val
    init_leaves, init_def = tree_flatten(init_val)
    backend = choose_backend(init_leaves)
    init_leaves = [as_array(leaf, backend) for leaf in init_leaves]
    init_avals = avals_of(init_leaves)

    def checked_body(i: Any, val: Any) -> Any:
        out_leaves, out_def = tree_flatten(body_fun(i, val))
        return unflatten(
            out_def,
            check_carry("fori_loop", "body_fun", "init_val", init_def, init_avals, out_def, out_leaves, backend),
        )

    val = unflatten(init_def, init_leaves)
    if choose_mode(backend, init_leaves, high - low) == "python":
        for i in range(low, high):
            val = checked_body(i, val)
        return val

    def step(carry: tuple[Any, Any], _: Any) -> tuple[tuple[Any, Any], None]:
        i, val = carry
        return (i + 1, checked_body(i, val)), None

    start = asarray(low, dtype=np.int32, backend="jax")
    (_, val), _ = _scan(step, (start, val), None, max(high - low, 0), False, "body_fun", "init_val")
    return val


def _concrete_int(bound: Any) -> int | None:
    value = value_of(bound)
    if is_jax_tracer(value):
        return None
    if isinstance(bound, Tracer) or np.ndim(value) != 0:
        raise TypeError(f"dx.fori_loop: loop bounds must be integer scalars, got {bound!r}")
    return int(value)


def _traced_fori_loop(lower: Any, upper: Any, body_fun: Callable[[Any, Any], Any], init_val: Any) -> Any:
    from ._control_while import MissingMaxStepsError, while_loop

    def body(carry: tuple[Any, Any]) -> tuple[Any, Any]:
        i, val = carry
        return i + 1, body_fun(i, val)

    try:
        _, val = while_loop(lambda carry: carry[0] < upper, body, (asarray(lower, backend="jax"), init_val))
    except MissingMaxStepsError:
        raise ValueError(
            "dx.fori_loop: the loop bounds are traced by jax.jit, so the loop is a while loop of unknown "
            "length, which reverse mode cannot differentiate. Pass the bounds as Python ints (static "
            "arguments of jax.jit or dx.jit) to get a scan."
        ) from None
    return val
