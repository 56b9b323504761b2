"""``while_loop``: a loop with a run-time trip count, differentiable in both modes.

Without an active transformation the loop is a Python ``while`` on NumPy and
``jax.lax.while_loop`` on JAX. Under ``dx.grad`` or ``dx.jvp`` it is the
``while`` primitive, whose implementation is one of those two loops (see
``choose_mode`` in ``_control.py``):

* jvp: one while loop of the body's jvp, carrying primal and tangent;
* pullback: reverse mode needs the carries of every step, but their number is
  known only at run time, so the loop must be bounded by ``max_steps``. The
  pullback uses two-level (square-root) checkpointing: it splits the
  ``max_steps`` iterations into ``S`` segments of ``k`` steps, with ``S`` and
  ``k`` about ``sqrt(max_steps)``. A forward sweep stores the carry at the
  start of each segment. The backward sweep visits the segments in reverse,
  recomputes and stores the ``k`` carries of one segment from its
  checkpoint, and pulls the cotangent back through them. At most ``S + k``
  carries are stored at once, against ``max_steps`` for a plain reverse
  sweep, for about one extra forward pass of compute.

When reverse mode is the innermost transformation, the forward sweep is the
loop itself: it computes the outputs and stores the checkpoints, and the
recorded node's pullback only runs the backward sweep (``_record_checkpointed``).
Where the lowered operands are tracers still (an enclosing transformation,
or the discovery run of an enclosing loop's body), the loop is the ``while``
primitive instead, whose pullback runs both sweeps, so that trace records them.

Both sweeps are scans of a fixed number of iterations with each step guarded
by a ``cond``, so steps past the true trip count cost a skipped branch, and
whole segments past it are skipped at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    expand,
    instantiate,
    is_float,
    is_jax_tracer,
    jvp_flat,
    match_dtype,
    needs_primitive,
    run_lax,
    select,
    unflatten,
    vjp_flat,
)
from ._control_batched import batch_trace_active, batched_while
from ._control_cond import cond_flat
from ._control_scan import scan_flat
from ._core import Primitive, ReverseTrace, ReverseTracer, value_of
from ._custom import Outputs, apply_bind_hook, has_tracer, lower, record_node, top_trace
from ._dispatch import shape_of
from ._ops_creation import arange, asarray
from ._tree import tree_flatten

# Flat loop functions: cond (consts, carry) -> predicate, body (consts, carry) -> carry.
CondFn = Callable[[list[Any], list[Any]], Any]
BodyFn = Callable[[list[Any], list[Any]], list[Any]]

_COUNTER_DTYPE = np.int32

# --------------------------------------------------------------------------
# The while primitive
# --------------------------------------------------------------------------


def _truth(pred: Any) -> bool:
    return bool(value_of(pred))


def _while_impl(
    *args: Any,
    cond_fn: CondFn,
    body_fn: BodyFn,
    num_consts: int,
    max_steps: int | None,
    checkpoints: int | None,
    mode: str,
) -> tuple[Any, ...]:
    consts, carry = list(args[:num_consts]), list(args[num_consts:])
    if mode == "python":
        steps = 0
        while (max_steps is None or steps < max_steps) and _truth(cond_fn(consts, carry)):
            carry = body_fn(consts, carry)
            steps += 1
        return tuple(carry)
    return run_lax(
        lambda *values: _lax_while(list(values[:num_consts]), list(values[num_consts:]), cond_fn, body_fn, max_steps),
        args,
    )


def _lax_while(
    consts: list[Any], carry: list[Any], cond_fn: CondFn, body_fn: BodyFn, max_steps: int | None
) -> tuple[Any, ...]:
    import jax.numpy as jnp
    from jax import lax

    def body(state: tuple[Any, ...]) -> tuple[Any, ...]:
        new = body_fn(consts, list(state))
        return tuple(check_plain([match_dtype(n, s) for n, s in zip(new, state)], "while_loop"))

    def cond(state: tuple[Any, ...]) -> Any:
        return check_plain([cond_fn(consts, list(state))], "while_loop")[0]

    if max_steps is None:
        return tuple(lax.while_loop(cond, body, tuple(carry)))

    def bounded_cond(state: tuple[Any, ...]) -> Any:
        return jnp.logical_and(state[0] < max_steps, cond(state[1:]))

    def bounded_body(state: tuple[Any, ...]) -> tuple[Any, ...]:
        return (state[0] + 1, *body(state[1:]))

    final = lax.while_loop(bounded_cond, bounded_body, (jnp.asarray(0, dtype=_COUNTER_DTYPE), *carry))
    return tuple(final[1:])


def _while_jvp(
    tangents: list[Any],
    outs: tuple[Any, ...],
    *args: Any,
    cond_fn: CondFn,
    body_fn: BodyFn,
    num_consts: int,
    max_steps: int | None,
    checkpoints: int | None,
    mode: str,
) -> tuple[Any, ...]:
    consts, init = list(args[:num_consts]), list(args[num_consts:])
    const_t, init_t = list(tangents[:num_consts]), list(tangents[num_consts:])
    const_nz = [t is not None for t in const_t]
    carry_float = [is_float(c) for c in init]
    num_carry = len(init)

    def cond_primal(consts_all: list[Any], carry_all: list[Any]) -> Any:
        return cond_fn(consts_all[:num_consts], carry_all[:num_carry])

    def body_jvp(consts_all: list[Any], carry_all: list[Any]) -> list[Any]:
        primals = consts_all[:num_consts] + carry_all[:num_carry]
        tangents_in = expand(consts_all[num_consts:], const_nz) + expand(carry_all[num_carry:], carry_float)
        values, out_t = jvp_flat(lambda leaves: body_fn(leaves[:num_consts], leaves[num_consts:]), primals, tangents_in)
        return values + [instantiate(t, v) for t, v, f in zip(out_t, values, carry_float) if f]

    final = while_flat(
        cond_primal,
        body_jvp,
        consts + select(const_t, const_nz),
        init + [instantiate(t, c) for t, c, f in zip(init_t, init, carry_float) if f],
        max_steps=max_steps,
        checkpoints=checkpoints,
        mode=mode,
    )
    return tuple(expand(final[num_carry:], carry_float))


class MissingMaxStepsError(ValueError):
    """Raised when reverse mode meets a ``while_loop`` without ``max_steps``."""


def _needs_max_steps_error() -> MissingMaxStepsError:
    return MissingMaxStepsError(
        "dx.while_loop: reverse-mode differentiation needs max_steps, a bound on the number of "
        "iterations, because the number of carries to store is otherwise unknown until run time. "
        "Pass max_steps=N (memory then grows as about 2*sqrt(N) carries), or use dx.fori_loop or "
        "dx.scan when the trip count is fixed."
    )


class _CheckpointedLoop:
    """Reverse mode through a bounded loop on flat values: the two sweeps of the module docstring.

    :meth:`forward` runs the loop and stores the carry at the start of each
    segment. :meth:`backward` pulls the final carry's cotangents back
    through the steps, segment by segment from the last.
    """

    def __init__(
        self,
        cond_fn: CondFn,
        body_fn: BodyFn,
        consts: list[Any],
        init: list[Any],
        max_steps: int,
        checkpoints: int | None,
        mode: str,
    ) -> None:
        self.cond_fn = cond_fn
        self.body_fn = body_fn
        self.num_consts = len(consts)
        self.num_carry = len(init)
        self.const_float = [is_float(c) for c in consts]
        self.carry_float = [is_float(c) for c in init]
        self.float_init = select(init, self.carry_float)
        self.max_steps = max_steps
        self.segments, self.segment_length = sqrt_schedule(max_steps, checkpoints)
        self.mode = mode
        self.backend = choose_backend(init)
        self.stats = CheckpointStats(max_steps)

    # Step counters and flags are Python ints and bools in "python" mode and
    # int32 / bool JAX arrays carried by jax.lax in "lax" mode. Python's
    # operators (+, <, &) work on both.
    def counter(self, value: int) -> Any:
        if self.mode == "python":
            return value
        return asarray(value, dtype=_COUNTER_DTYPE, backend=self.backend)

    def flag(self, value: Any) -> Any:
        return bool(value) if self.mode == "python" else value

    def indices(self, n: int) -> Any:
        if self.mode == "python":
            return np.arange(n, dtype=_COUNTER_DTYPE)
        return arange(n, dtype=_COUNTER_DTYPE, backend=self.backend)

    def keep_carry(self, ops: list[Any]) -> list[Any]:
        return ops[self.num_consts :]

    def apply_body(self, ops: list[Any]) -> list[Any]:
        return self.body_fn(ops[: self.num_consts], ops[self.num_consts :])

    def forward(self, consts: list[Any], init: list[Any]) -> tuple[list[Any], list[Any], Any]:
        """Run the loop; return the final carry, the checkpoints and the number of steps taken.

        The checkpoints are one array per carry leaf, stacked over segments.
        """
        num_carry, max_steps, mode = self.num_carry, self.max_steps, self.mode

        def forward_step(c: list[Any], carry: list[Any], _: list[Any]) -> tuple[list[Any], list[Any]]:
            state, step, running = carry[:num_carry], carry[num_carry], carry[num_carry + 1]
            go = running & (step < max_steps) & self.flag(self.cond_fn(c, state))
            new_state = cond_flat(go, [self.keep_carry, self.apply_body], c + state)
            return new_state + [step + go, go], []

        def run_segment(ops: list[Any]) -> list[Any]:
            final, _ = scan_flat(
                forward_step,
                ops[: self.num_consts],
                ops[self.num_consts :],
                [],
                length=self.segment_length,
                reverse=False,
                mode=mode,
            )
            return final

        def forward_segment(c: list[Any], carry: list[Any], _: list[Any]) -> tuple[list[Any], list[Any]]:
            new = cond_flat(carry[num_carry + 1], [self.keep_carry, run_segment], c + carry)
            return new, carry[:num_carry]

        running = self.flag(asarray(True, backend=self.backend))
        final, saved = scan_flat(
            forward_segment,
            consts,
            init + [self.counter(0), running],
            [],
            length=self.segments,
            reverse=False,
            mode=mode,
        )
        self.stats.record_checkpoints(saved)
        return final[:num_carry], saved, final[num_carry]

    def backward(self, consts: list[Any], saved: list[Any], num_steps: Any, cts: Sequence[Any]) -> list[Any]:
        """Return the cotangents of ``consts`` and of the initial carry, ``None`` where not float.

        ``cts`` contains one cotangent per float leaf of the final carry.
        """
        num_consts, num_carry, mode = self.num_consts, self.num_carry, self.mode
        const_float, carry_float = self.const_float, self.carry_float
        num_float_carry = len(self.float_init)
        segment_length = self.segment_length

        def backward_segment(c_all: list[Any], state: list[Any], x: list[Any]) -> tuple[list[Any], list[Any]]:
            c, steps_taken = c_all[:num_consts], c_all[num_consts]
            checkpoint, segment = x[:num_carry], x[num_carry]
            start = segment * segment_length

            def recompute_step(c2: list[Any], carry: list[Any], _: list[Any]) -> tuple[list[Any], list[Any]]:
                current, j = carry[:num_carry], carry[num_carry]
                new_state = cond_flat(start + j < steps_taken, [self.keep_carry, self.apply_body], c2 + current)
                return new_state + [j + 1], current

            def pull_step(c2: list[Any], carry: list[Any], x2: list[Any]) -> tuple[list[Any], list[Any]]:
                current, j = x2[:num_carry], x2[num_carry]

                def pull_through_body(ops: list[Any]) -> list[Any]:
                    c3 = ops[:num_consts]
                    at = ops[num_consts : num_consts + num_carry]
                    ct_state = ops[num_consts + num_carry : num_consts + num_carry + num_float_carry]
                    ct_consts = ops[num_consts + num_carry + num_float_carry :]
                    _, pull = vjp_flat(
                        lambda leaves: self.body_fn(leaves[:num_consts], leaves[num_consts:]),
                        c3 + at,
                        const_float + carry_float,
                    )
                    grads = pull(expand(ct_state, carry_float))
                    d_consts = select(grads[:num_consts], const_float)
                    d_state = select(grads[num_consts:], carry_float)
                    return d_state + [match_dtype(a + d, a) for a, d in zip(ct_consts, d_consts)]

                def skip(ops: list[Any]) -> list[Any]:
                    return ops[num_consts + num_carry :]

                return cond_flat(start + j < steps_taken, [skip, pull_through_body], c2 + current + carry), []

            def pull_segment(ops: list[Any]) -> list[Any]:
                c2 = ops[:num_consts]
                ct = ops[num_consts : len(ops) - num_carry]
                start_state = ops[len(ops) - num_carry :]
                _, states = scan_flat(
                    recompute_step,
                    c2,
                    start_state + [self.counter(0)],
                    [],
                    length=segment_length,
                    reverse=False,
                    mode=mode,
                )
                self.stats.record_segment(states)
                final_ct, _ = scan_flat(
                    pull_step,
                    c2,
                    ct,
                    states + [self.indices(segment_length)],
                    length=segment_length,
                    reverse=True,
                    mode=mode,
                )
                return final_ct

            def skip_segment(ops: list[Any]) -> list[Any]:
                return ops[num_consts : len(ops) - num_carry]

            return cond_flat(start < steps_taken, [skip_segment, pull_segment], c + state + checkpoint), []

        ct_state0 = [match_dtype(ct, like) for ct, like in zip(cts, self.float_init)]
        ct_consts0 = [instantiate(None, c) for c in select(consts, const_float)]
        final_ct, _ = scan_flat(
            backward_segment,
            consts + [num_steps],
            ct_state0 + ct_consts0,
            saved + [self.indices(self.segments)],
            length=self.segments,
            reverse=True,
            mode=mode,
        )
        self.stats.publish()
        d_init = final_ct[:num_float_carry]
        d_consts = final_ct[num_float_carry:]
        return expand(d_consts, const_float) + expand(d_init, carry_float)


def _while_pullback_all(
    cts: tuple[Any, ...],
    outs: tuple[Any, ...],
    *args: Any,
    cond_fn: CondFn,
    body_fn: BodyFn,
    num_consts: int,
    max_steps: int | None,
    checkpoints: int | None,
    mode: str,
) -> list[Any]:
    if max_steps is None:
        raise _needs_max_steps_error()
    consts, init = list(args[:num_consts]), list(args[num_consts:])
    carry_float = [is_float(c) for c in init]
    if max_steps == 0:
        ct_state0 = [match_dtype(ct, c) for ct, c in zip(select(list(cts), carry_float), select(init, carry_float))]
        return [instantiate(None, c) if is_float(c) else None for c in consts] + expand(ct_state0, carry_float)
    # The primitive records the loop only where _record_checkpointed cannot,
    # because the lowered operands are tracers. The forward sweep runs here,
    # in the pullback, so that the enclosing trace records it.
    loop = _CheckpointedLoop(cond_fn, body_fn, consts, init, max_steps, checkpoints, mode)
    _, saved, num_steps = loop.forward(consts, init)
    return loop.backward(consts, saved, num_steps, select(list(cts), carry_float))


while_p = Primitive("while_loop", _while_impl, jvp=_while_jvp, multiple_results=True)
while_p.pullbacks = JointPullback(_while_pullback_all)  # type: ignore[assignment]


def _record_checkpointed(
    cond_fn: CondFn,
    body_fn: BodyFn,
    consts: list[Any],
    init: list[Any],
    max_steps: int,
    checkpoints: int | None,
    mode: str,
) -> list[Any] | None:
    """Run a loop that reverse mode records, storing the checkpoints on the way.

    The loop's outputs come from the checkpointing forward sweep, so the
    pullback needs no second pass over the steps. Returns ``None`` (record
    the primitive instead) unless the innermost transformation is reverse
    mode and the lowered values are plain arrays: an enclosing
    transformation (or a loop body being traced) has to see the ``while``
    primitive, whose own rules it applies.
    """
    leaves = apply_bind_hook(consts + init)
    trace = top_trace(leaves)
    if type(trace) is not ReverseTrace:
        return None
    lowered = lower(leaves, trace)
    if has_tracer(lowered):
        return None
    num_consts = len(consts)
    lower_consts, lower_init = lowered[:num_consts], lowered[num_consts:]
    loop = _CheckpointedLoop(cond_fn, body_fn, lower_consts, lower_init, max_steps, checkpoints, mode)
    final, saved, num_steps = loop.forward(lower_consts, lower_init)
    outputs = Outputs(final)
    float_positions = set(outputs.float_positions)
    parents = [leaf if type(leaf) is ReverseTracer and leaf._trace is trace else None for leaf in leaves]

    def compute(g: tuple[Any, ...]) -> list[Any]:
        cts = iter(g)
        final_cts = [next(cts) if i in float_positions else None for i in range(len(final))]
        floats = select(list(zip(final_cts, final)), loop.carry_float)
        return loop.backward(lower_consts, saved, num_steps, [instantiate(ct, like) for ct, like in floats])

    return list(record_node(trace, "while_loop", outputs, parents, compute))


def while_flat(
    cond_fn: CondFn,
    body_fn: BodyFn,
    consts: list[Any],
    init: list[Any],
    *,
    max_steps: int | None,
    checkpoints: int | None,
    mode: str,
) -> list[Any]:
    if max_steps:
        recorded = _record_checkpointed(cond_fn, body_fn, consts, init, max_steps, checkpoints, mode)
        if recorded is not None:
            return recorded
    return list(
        while_p(
            *consts,
            *init,
            cond_fn=cond_fn,
            body_fn=body_fn,
            num_consts=len(consts),
            max_steps=max_steps,
            checkpoints=checkpoints,
            mode=mode,
        )
    )


# --------------------------------------------------------------------------
# The public function
# --------------------------------------------------------------------------


def _check_bound(name: str, value: int | None, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"dx.while_loop: {name} must be an integer >= {minimum} or None, got {value!r}")
    return int(value)


def while_loop(
    cond_fun: Callable[[Any], Any],
    body_fun: Callable[[Any], Any],
    init_val: Any,
    *,
    max_steps: int | None = None,
    checkpoints: int | None = None,
) -> Any:
    """Apply ``val = body_fun(val)`` while ``cond_fun(val)`` holds, as ``jax.lax.while_loop``.

    ``cond_fun`` returns a scalar boolean; ``body_fun`` returns a value with
    the structure, shapes and dtypes of ``init_val``.

    With ``max_steps`` the loop stops after at most ``max_steps`` iterations
    even if ``cond_fun`` still holds, and returns the value reached then,
    with no error or warning: check ``cond_fun`` on the result when reaching
    the bound matters.

    On NumPy the loop runs in Python. On JAX it is ``jax.lax.while_loop``,
    except that a loop with ``max_steps <= 32`` differentiated eagerly runs in
    Python, which saves compiling it.

    Forward mode (``dx.jvp``) works with or without ``max_steps``. Reverse
    mode (``dx.grad``) needs ``max_steps``, and its pullback stores about
    ``2 * sqrt(max_steps)`` carries: the carry at the start of each of
    ``checkpoints`` segments (default ``ceil(sqrt(max_steps))``), plus the
    carries of one segment while it is pulled back through. It computes
    about one extra forward pass. :func:`checkpoint_stats` reports the
    numbers. Gradients include values that the functions close over; the
    predicate has no derivative.

    Examples:
        >>> import difflux.core as dx
        >>> def halvings(x):
        ...     return dx.while_loop(lambda v: v > 1.0, lambda v: v / 2.0, x, max_steps=100)
        >>> float(halvings(10.0)), float(dx.grad(halvings)(10.0))
        (0.625, 0.0625)
    """
    max_steps = _check_bound("max_steps", max_steps, 0)
    checkpoints = _check_bound("checkpoints", checkpoints, 1)
    if batch_trace_active():
        return batched_while(cond_fun, body_fun, init_val, max_steps)
    init_leaves, init_def = tree_flatten(init_val)
    backend = choose_backend(init_leaves)
    init_leaves = [as_array(leaf, backend) for leaf in init_leaves]
    init_avals = avals_of(init_leaves)

    def checked_cond(closure: Callable[..., Any], consts: list[Any], carry: list[Any]) -> Any:
        leaves, _ = closure(consts, unflatten(init_def, carry))
        if len(leaves) != 1 or shape_of(value_of(leaves[0])) != ():
            shapes = [shape_of(value_of(leaf)) for leaf in leaves]
            raise TypeError(f"dx.while_loop: cond_fun must return a scalar boolean, got leaves of shapes {shapes}")
        return value_of(leaves[0])

    def checked_body(closure: Callable[..., Any], consts: list[Any], carry: list[Any]) -> list[Any]:
        leaves, out_def = closure(consts, unflatten(init_def, carry))
        return check_carry("while_loop", "body_fun", "init_val", init_def, init_avals, out_def, leaves, backend)

    mode = choose_mode(backend, init_leaves, max_steps)
    if not needs_primitive(init_leaves) and mode == "python":
        result = _python_while(cond_fun, body_fun, init_leaves, init_def, max_steps, checked_cond, checked_body)
        if result is not None:
            return result
        mode = "lax"  # cond_fun returned a JAX-traced value: a closure over jax.jit inputs

    cond_closure, body_closure = ClosedFunction(cond_fun), ClosedFunction(body_fun)
    if needs_primitive(init_leaves):
        example = unflatten(init_def, [value_of(leaf) for leaf in init_leaves])
        cond_closure.discover(mode, example)
        body_closure.discover(mode, example)
        cond_closure.share_captures(body_closure)
        if cond_closure.returned_jax_tracer or body_closure.returned_jax_tracer:
            mode = "lax"  # as above: Python cannot test a traced predicate
        consts = list(cond_closure.captured)
        if max_steps is None and any(type(v) is ReverseTracer for v in consts + init_leaves):
            raise _needs_max_steps_error()
    outs = while_flat(
        lambda c, carry: checked_cond(cond_closure, c, carry),
        lambda c, carry: checked_body(body_closure, c, carry),
        list(cond_closure.captured),
        init_leaves,
        max_steps=max_steps,
        checkpoints=checkpoints,
        mode=mode,
    )
    return unflatten(init_def, outs)


def _python_while(
    cond_fun: Callable[[Any], Any],
    body_fun: Callable[[Any], Any],
    init_leaves: list[Any],
    init_def: Any,
    max_steps: int | None,
    checked_cond: Callable[..., Any],
    checked_body: Callable[..., Any],
) -> Any:
    """Run the loop in Python; return ``None`` if the predicate turns out traced by JAX."""

    def call(fn: Callable[[Any], Any]) -> Callable[..., tuple[list[Any], Any]]:
        return lambda consts, val: tree_flatten(fn(val))

    carry = init_leaves
    steps = 0
    while max_steps is None or steps < max_steps:
        pred = checked_cond(call(cond_fun), [], carry)
        if is_jax_tracer(pred):
            return None
        if not bool(pred):
            break
        carry = checked_body(call(body_fun), [], carry)
        steps += 1
    return unflatten(init_def, carry)
