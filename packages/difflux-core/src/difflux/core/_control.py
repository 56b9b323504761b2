"""Shared machinery of the control-flow constructs: closure conversion,
flat-list differentiation helpers and carry checks.

``cond``, ``scan``, ``fori_loop`` and ``while_loop`` (in ``_control_cond.py``,
``_control_scan.py`` and ``_control_while.py``) take two routes:

* Python control flow, when values are concrete (``choose_mode`` picks
  ``"python"``): ``scan`` and ``fori_loop`` on NumPy and short loops
  differentiated eagerly on JAX, and ``cond`` whose predicate is concrete.
  The tape records the unrolled operations, so every mode of
  differentiation works unchanged.
* A primitive whose implementation runs ``jax.lax`` (mode ``"lax"``) or a
  Python loop on plain values (mode ``"python"``), and whose pullback and
  jvp rules are again expressed with these primitives, so they nest.
  ``while_loop`` under a transformation always takes this route, because its
  pullback rule bounds memory by checkpointing.

A primitive's implementation receives only plain arrays, but user bodies close
over traced values (the parameters of a model being differentiated, say), and
a difflux tracer cannot enter ``jax.lax.scan``. :class:`ClosedFunction`
therefore converts the body into a function of explicit operands:

1. Discovery runs the body once (abstractly, under ``jax.eval_shape``, on
   JAX) inside a :class:`_CaptureTrace`. A hook in ``_core.bind`` wraps every
   traced value from outside the body that reaches a primitive into a capture
   tracer and records it, so values the body derives from captured ones are
   recognised as its own.
2. The primitive takes the recorded values as extra operands. Each later run
   of the body installs a hook that substitutes, in every primitive call, the
   operand passed for each recorded value.

Hooks compose: a body defined inside another body first applies the
enclosing body's substitution, then its own, which is how nested loops share
the values they close over.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _core
from ._backend import backend_of_value, default_backend
from ._core import (
    JVPTrace,
    JVPTracer,
    ReverseTrace,
    ReverseTracer,
    Trace,
    Tracer,
    backward,
    trace_stack,
    value_of,
)
from ._dispatch import shape_of
from ._ops_creation import asarray, zeros_like
from ._tree import TreeDef, tree_flatten, tree_unflatten

Hook = Callable[[tuple[Any, ...]], tuple[Any, ...]]

# --------------------------------------------------------------------------
# Backends and values
# --------------------------------------------------------------------------


def is_jax_tracer(value: Any) -> bool:
    """Return whether ``value`` (already unwrapped) is traced by ``jax.jit`` or ``jax.lax``."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(value, jax.core.Tracer)


def choose_backend(leaves: Sequence[Any]) -> str:
    """Return the backend of a construct's operands: JAX wins, then NumPy, then the default."""
    found = None
    for leaf in leaves:
        name = backend_of_value(value_of(leaf))
        if name == "jax":
            return "jax"
        if name == "numpy":
            found = "numpy"
    return found if found is not None else default_backend()


def needs_primitive(leaves: Sequence[Any]) -> bool:
    """Return whether a transformation may record the construct: a trace is active or an operand is traced.

    Without either, no difflux tracer can be reached from the body, so it can
    run under ``jax.lax`` as it is, with no closure discovery.
    """
    if trace_stack:
        return True
    return any(isinstance(leaf, Tracer) for leaf in leaves)


# While a difflux transformation records, eager JAX loops of at most this many
# steps run as Python loops. Compiling a jax.lax loop took about 0.15 s per
# program (2-core x86 CPU, jax 0.10), and a short Python loop dispatches a few
# hundred operations at about 10 us each. Longer loops compile once per
# distinct program (see run_lax) and then run at XLA speed.
EAGER_PYTHON_MAX_STEPS = 32


def choose_mode(backend: str, leaves: Sequence[Any], steps: int | None) -> str:
    """Return how a loop runs: ``"python"`` (a Python loop) or ``"lax"`` (``jax.lax``).

    NumPy always loops in Python. JAX uses ``jax.lax`` inside ``jax.jit``
    (operands are JAX tracers), when no transformation records (one compiled
    loop), and for loops longer than ``EAGER_PYTHON_MAX_STEPS`` steps.
    """
    if backend == "numpy":
        return "python"
    if any(is_jax_tracer(value_of(leaf)) for leaf in leaves):
        return "lax"
    if needs_primitive(leaves) and steps is not None and steps <= EAGER_PYTHON_MAX_STEPS:
        return "python"
    return "lax"


def as_array(leaf: Any, backend: str) -> Any:
    """Turn a Python or NumPy scalar operand into an array of ``backend``."""
    if isinstance(leaf, Tracer) or backend_of_value(leaf) is not None:
        return leaf
    return asarray(leaf, backend=backend)


def is_float(x: Any) -> bool:
    """Return whether ``x`` has a floating (or complex) dtype, so it can carry a derivative."""
    value = value_of(x)
    if isinstance(value, float):
        return True
    dtype = getattr(value, "dtype", None)
    return dtype is not None and np.issubdtype(np.dtype(dtype), np.inexact)


def dtype_of(x: Any) -> np.dtype:
    value = value_of(x)
    dtype = getattr(value, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.result_type(value)


def match_dtype(x: Any, like: Any) -> Any:
    """Cast ``x`` to the dtype of ``like`` when they differ (loop carries need equal types)."""
    target = dtype_of(like)
    if dtype_of(x) == target:
        return x
    from ._ops_dtype import astype

    return astype(x, target)


def check_plain(leaves: Sequence[Any], construct: str) -> list[Any]:
    """Raise when a difflux tracer is about to enter ``jax.lax``."""
    for leaf in leaves:
        if isinstance(leaf, Tracer):
            raise RuntimeError(
                f"dx.{construct}: a traced value reached jax.lax inside the body. This happens "
                "when the body's Python code takes a different path on each call (for example "
                "it branches on a global flag), so the values it closes over could not all be "
                "found. Make the body a pure function of its arguments and the values it closes over."
            )
    return list(leaves)


_compiled_programs: OrderedDict[str, Callable[..., Any]] = OrderedDict()
_MAX_COMPILED_PROGRAMS = 256


def run_lax(fn: Callable[..., tuple[Any, ...]], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Run ``fn(*args)``, a function calling ``jax.lax``, compiling each distinct program once.

    Inside ``jax.jit`` this is ``fn(*args)``. Called eagerly, ``jax.lax``
    would compile the loop again on every call, because every call brings a
    new body closure. Here the text of the traced program keys a cache of
    compiled functions, so repeated calls of one loop compile once. The text
    contains every shape, dtype and parameter but no array values, which are
    passed as arguments.
    """
    if any(is_jax_tracer(a) for a in args):
        return fn(*args)
    import jax
    import jax.core

    closed = jax.make_jaxpr(fn)(*args)
    if any(is_jax_tracer(c) for c in closed.consts):
        # The body closes over values traced by an enclosing jax.jit.
        return tuple(jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *args))
    key = str(closed.jaxpr)
    compiled = _compiled_programs.get(key)
    if compiled is None:
        jaxpr = closed.jaxpr
        compiled = jax.jit(lambda consts, *values: jax.core.eval_jaxpr(jaxpr, consts, *values))
        _compiled_programs[key] = compiled
        if len(_compiled_programs) > _MAX_COMPILED_PROGRAMS:
            _compiled_programs.popitem(last=False)
    else:
        _compiled_programs.move_to_end(key)
    return tuple(compiled(closed.consts, *args))


# --------------------------------------------------------------------------
# Closure conversion
# --------------------------------------------------------------------------


def _substitution_hook(parent: Hook | None, mapping: dict[int, Any]) -> Hook:
    def substitute(args: tuple[Any, ...]) -> tuple[Any, ...]:
        if parent is not None:
            args = parent(args)
        replaced = None
        for i, arg in enumerate(args):
            if isinstance(arg, Tracer):
                new = mapping.get(id(arg), arg)
                if new is not arg:
                    if replaced is None:
                        replaced = list(args)
                    replaced[i] = new
        return args if replaced is None else tuple(replaced)

    return substitute


class _CaptureTracer(Tracer):
    """A value computed inside a body during discovery, or a captured value wrapped on entry."""

    __slots__ = ("value",)

    def __init__(self, trace: Trace, value: Any) -> None:
        self._trace = trace
        self.value = value

    @property
    def primal(self) -> Any:
        return self.value


class _CaptureTrace(Trace):
    """The discovery run of a body: records the traced values it closes over.

    Traced values from outside the body have a lower level than this trace
    (traces created inside the body have higher ones). The bind hook wraps
    each such value, once, in a capture tracer, so this trace processes every
    operation that touches it and results stay recognisable as the body's own.
    """

    __slots__ = ("parent_hook", "captured", "wrappers")
    # Process primitives without derivatives too, as a batching trace does:
    # process() unwraps captured values once, where stripping every
    # derivative level and binding again would meet the hook and wrap them
    # again.
    batching = True

    def __init__(self, parent_hook: Hook | None) -> None:
        super().__init__()
        self.parent_hook = parent_hook
        self.captured: list[Tracer] = []
        self.wrappers: dict[int, _CaptureTracer] = {}

    def rewrite(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        if self.parent_hook is not None:
            args = self.parent_hook(args)
        replaced = None
        for i, arg in enumerate(args):
            if isinstance(arg, Tracer) and arg._trace.level < self.level:
                wrapper = self.wrappers.get(id(arg))
                if wrapper is None:
                    wrapper = _CaptureTracer(self, arg)
                    self.wrappers[id(arg)] = wrapper
                    self.captured.append(arg)
                if replaced is None:
                    replaced = list(args)
                replaced[i] = wrapper
        return args if replaced is None else tuple(replaced)

    def process(self, prim: _core.Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        values = tuple(a.value if type(a) is _CaptureTracer and a._trace is self else a for a in args)
        # The unwrapped values go to the enclosing traces; only the enclosing
        # bodies' substitutions apply to them, not this body's wrapping.
        saved = _core.bind_hook
        _core.bind_hook = self.parent_hook
        try:
            out = _core.bind(prim, values, params)
        finally:
            _core.bind_hook = saved
        if prim.multiple_results:
            return tuple(_CaptureTracer(self, o) for o in out)
        return _CaptureTracer(self, out)


class ClosedFunction:
    """A user function whose closed-over traced values are explicit operands.

    Call :meth:`discover` once with example arguments to find the traced
    values the function closes over (``captured``). Afterwards
    ``self(consts, *args)`` runs the function with ``consts[i]`` standing for
    ``captured[i]`` and returns the flat output leaves and their structure.
    Without discovery ``captured`` is empty, which is right when no
    transformation is active.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        # The hook active where the construct is called: the substitutions of
        # the bodies this one is nested in.
        self.parent_hook = _core.bind_hook
        self.captured: list[Tracer] = []
        # Whether an eager discovery run returned values traced by jax.jit
        # (the function closes over jit inputs although its operands are concrete).
        self.returned_jax_tracer = False

    def discover(self, mode: str, *args: Any) -> tuple[list[tuple[tuple[int, ...], np.dtype]], TreeDef]:
        """Run the function once on ``args`` (plain values) to find what it closes over.

        Returns the shapes and dtypes of the output leaves and the output
        structure. In ``"lax"`` mode the run is abstract (``jax.eval_shape``),
        so it costs no arithmetic; in ``"python"`` mode it runs eagerly.
        """
        trace = _CaptureTrace(self.parent_hook)
        structure: list[TreeDef] = []

        def run(*plain_args: Any) -> list[Any]:
            saved = _core.bind_hook
            _core.bind_hook = trace.rewrite
            try:
                with trace:
                    out = self.fn(*plain_args)
                leaves, treedef = tree_flatten(out)
                leaves = list(trace.rewrite(tuple(leaves)))
            finally:
                _core.bind_hook = saved
            structure.append(treedef)
            return [value_of(leaf) for leaf in leaves]

        if mode == "lax":
            import jax

            shapes = jax.eval_shape(run, *args)
            avals = [(tuple(s.shape), np.dtype(s.dtype)) for s in shapes]
        else:
            values = run(*args)
            self.returned_jax_tracer = any(is_jax_tracer(v) for v in values)
            avals = [(shape_of(v), dtype_of(v)) for v in values]
        self.captured = self._merge(trace.captured)
        return avals, structure[0]

    def _merge(self, found: list[Tracer]) -> list[Tracer]:
        known = {id(t) for t in self.captured}
        return self.captured + [t for t in found if id(t) not in known]

    def share_captures(self, other: ClosedFunction) -> None:
        """Make both functions take the union of their captured values, in one order."""
        merged = self._merge(other.captured)
        self.captured = merged
        other.captured = list(merged)

    def __call__(self, consts: Sequence[Any], *args: Any) -> tuple[list[Any], TreeDef]:
        if len(consts) != len(self.captured):
            raise ValueError(f"expected {len(self.captured)} captured operands, got {len(consts)}")
        if self.captured:
            mapping = {id(t): c for t, c in zip(self.captured, consts)}
            hook: Hook | None = _substitution_hook(self.parent_hook, mapping)
        else:
            hook = self.parent_hook
        saved = _core.bind_hook
        _core.bind_hook = hook
        try:
            out = self.fn(*args)
            leaves, treedef = tree_flatten(out)
            if hook is not None:
                # A captured value returned as it is never passes through bind.
                leaves = list(hook(tuple(leaves)))
        finally:
            _core.bind_hook = saved
        return leaves, treedef


# --------------------------------------------------------------------------
# Differentiating functions of flat lists (used inside the rules)
# --------------------------------------------------------------------------


def jvp_flat(
    fn: Callable[[list[Any]], list[Any]], primals: list[Any], tangents: list[Any]
) -> tuple[list[Any], list[Any]]:
    """Push ``tangents`` (``None`` for zero) through ``fn``; ``None`` marks a zero output tangent."""
    trace = JVPTrace()
    args = [p if t is None else JVPTracer(trace, p, t) for p, t in zip(primals, tangents)]
    with trace:
        outs = fn(args)
    values, out_tangents = [], []
    for out in outs:
        if type(out) is JVPTracer and out._trace is trace:
            values.append(out.value)
            out_tangents.append(out.tangent)
        else:
            values.append(out)
            out_tangents.append(None)
    return values, out_tangents


def vjp_flat(
    fn: Callable[[list[Any]], list[Any]], primals: list[Any], wrt: list[bool]
) -> tuple[list[Any], Callable[[list[Any]], list[Any]]]:
    """Record ``fn`` at ``primals``; return its outputs and a pullback.

    The pullback takes one cotangent per output (``None`` for zero) and
    returns one per input: zeros where ``wrt`` is true but nothing flowed, and
    ``None`` where ``wrt`` is false.
    """
    trace = ReverseTrace()
    args = [trace.leaf(p) if w else p for p, w in zip(primals, wrt)]
    with trace:
        outs = fn(args)
    values = [o.value if type(o) is ReverseTracer and o._trace is trace else o for o in outs]

    def pull(cotangents: list[Any]) -> list[Any]:
        roots, cts = [], []
        for out, ct in zip(outs, cotangents):
            if ct is not None and type(out) is ReverseTracer and out._trace is trace:
                roots.append(out)
                cts.append(ct)
        grads = backward(roots, cts) if roots else {}
        result = []
        for arg, primal, w in zip(args, primals, wrt):
            if not w:
                result.append(None)
                continue
            g = grads.get(id(arg))
            result.append(zeros_like(primal) if g is None else match_dtype(g, primal))
        return result

    return values, pull


def instantiate(tangent: Any, like: Any) -> Any:
    """Replace a symbolic zero (``None``) by an array of zeros like ``like``."""
    return zeros_like(like) if tangent is None else match_dtype(tangent, like)


def expand(values: Sequence[Any], mask: Sequence[bool]) -> list[Any]:
    """Spread ``values`` over the positions where ``mask`` is true, ``None`` elsewhere."""
    iterator = iter(values)
    return [next(iterator) if m else None for m in mask]


def select(values: Sequence[Any], mask: Sequence[bool]) -> list[Any]:
    """Keep the entries of ``values`` where ``mask`` is true."""
    return [v for v, m in zip(values, mask) if m]


class JointPullback:
    """Per-argument pullback rules that share one computation.

    A control-flow primitive computes every cotangent in one reverse loop.
    The engine requests them one argument at a time, always with the same
    cotangent tuple for one node, so the result is kept for that tuple. It
    stays referenced until the next backward visit of the same primitive.
    """

    def __init__(self, compute: Callable[..., list[Any]]) -> None:
        self.compute = compute
        self._key: Any = None
        self._result: list[Any] = []

    def __len__(self) -> int:
        return 1 << 30

    def __getitem__(self, index: int) -> Callable[..., Any]:
        def rule(g: Any, out: Any, *args: Any, **params: Any) -> Any:
            if self._key is not g:
                result = self.compute(g, out, *args, **params)
                self._key, self._result = g, result
            return self._result[index]

        return rule


# --------------------------------------------------------------------------
# Carry checks
# --------------------------------------------------------------------------

Aval = tuple[tuple[int, ...], np.dtype]


def avals_of(leaves: Sequence[Any]) -> list[Aval]:
    return [(shape_of(value_of(leaf)), dtype_of(leaf)) for leaf in leaves]


# NumPy arrays and scalars, whose .shape and .dtype check_carry reads directly.
_PLAIN_NUMPY_TYPES = frozenset(
    {np.ndarray, np.float64, np.float32, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_}
)


def _is_python_scalar(x: Any) -> bool:
    # Exact types: NumPy scalars subclass float but carry their own dtype.
    return type(x) in (bool, int, float, complex)


def check_carry(
    construct: str,
    fn_name: str,
    init_name: str,
    init_def: TreeDef,
    init_avals: Sequence[Aval],
    out_def: TreeDef,
    out_leaves: Sequence[Any],
    backend: str,
) -> list[Any]:
    """Check that a body's new carry matches the initial one; return its leaves.

    Python scalars are cast to the initial leaf's dtype. Any other difference
    in structure, shape or dtype raises, naming both values.
    """
    if out_def != init_def:
        raise TypeError(
            f"dx.{construct}: {fn_name} must return a carry with the structure of {init_name}, "
            f"but {init_name} has structure {init_def!r} and {fn_name} returned {out_def!r}."
        )
    checked = []
    for i, (leaf, (shape, dtype)) in enumerate(zip(out_leaves, init_avals)):
        # A loop on NumPy checks every leaf on every iteration, so a NumPy
        # array or scalar that matches is accepted without the general lookups.
        if type(leaf) in _PLAIN_NUMPY_TYPES and leaf.shape == shape and leaf.dtype == dtype:
            checked.append(leaf)
            continue
        if _is_python_scalar(leaf):
            leaf = asarray(leaf, dtype=dtype, backend=backend)
        out_shape, out_dtype = shape_of(value_of(leaf)), dtype_of(leaf)
        where = f"leaf {i} of the carry" if len(init_avals) > 1 else "the carry"
        if out_shape != shape:
            raise TypeError(
                f"dx.{construct}: {where} has shape {shape} in {init_name} but shape {out_shape} "
                f"in the output of {fn_name}. A loop carry keeps its shape on every iteration."
            )
        if out_dtype != dtype:
            raise TypeError(
                f"dx.{construct}: {where} has dtype {dtype} in {init_name} but dtype {out_dtype} "
                f"in the output of {fn_name}. A loop carry keeps its dtype on every iteration: "
                f"cast one of them, for example with .astype({dtype.name!r})."
            )
        checked.append(leaf)
    return checked


def split_pair(
    construct: str, fn_name: str, out_def: TreeDef, leaves: list[Any]
) -> tuple[TreeDef, list[Any], TreeDef, list[Any]]:
    """Split the flat output of a function returning ``(carry, y)``."""
    if out_def.kind not in (tuple, list) or len(out_def.children) != 2:
        raise TypeError(
            f"dx.{construct}: {fn_name} must return a pair (carry, y), but it returned a value "
            f"with structure {out_def!r}."
        )
    carry_def, y_def = out_def.children
    return carry_def, leaves[: carry_def.num_leaves], y_def, leaves[carry_def.num_leaves :]


def unflatten(treedef: TreeDef, leaves: Sequence[Any]) -> Any:
    return tree_unflatten(treedef, list(leaves))
