"""The automatic-differentiation engine: primitives, traces and tracers.

Every differentiable operation is a :class:`Primitive`. Calling one goes
through :func:`bind`, which looks for the innermost active transformation among
the arguments (the tracer with the highest ``level``) and lets that trace
process the call; with no tracer among the arguments the primitive's
implementation runs directly on NumPy or JAX values.

Two transformations exist:

* Reverse mode (:class:`ReverseTrace`). Each call records a node on the result
  tracer: the primitive, its (lower-level) argument values, its parameters and
  its parent nodes. The backward pass walks the nodes in reverse topological
  order and calls the primitive's per-argument pullback rules. The rules are
  written in difflux operations, so when an outer transformation is active the
  backward pass is itself recorded (reverse over reverse, forward over
  reverse).
* Forward mode (:class:`JVPTrace`). Tracers carry a primal and a tangent (dual
  numbers); ``None`` stands for a tangent known to be zero.

Each transformation call creates a trace with a fresh level from a counter that
only grows, so a trace created inside another always has the higher level and
perturbations of different transformations are never confused (the tagging of
Siskind and Pearlmutter, as in JAX's Autodidax).

Inside ``jax.jit`` the values inside the tracers are JAX tracers. The same
Python runs once, so the forward pass and every pullback end up in one XLA
program.

Performance notes: a reverse tracer is its own tape node (no separate node
object), pullback rules are called only for arguments that need a cotangent,
and nodes reference only their parents, never their children. The list of
nodes in creation order that ``grad`` records is handed over to its caller
when recording ends, so the tape has no reference cycles and is freed by
reference counting. When the cotangent and a node's arguments are plain NumPy
values, nothing can be recorded, and the backward pass calls the primitive's
NumPy pullbacks, which skip the dispatch of one difflux operation per step.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _backend

# --------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------

PullbackRule = Callable[..., Any]
JVPRule = Callable[..., Any]


class Primitive:
    """A differentiable operation with its implementation and rules.

    Args:
        name: the public name, used in error messages.
        impl: ``impl(*args, **params)`` computing the result on plain NumPy or
            JAX values. It is called with unwrapped values only.
        pullbacks: one rule per positional argument,
            ``rule(cotangent, out, *args, **params)`` returning the cotangent of
            that argument (already reduced to the argument's shape). ``None``
            marks an argument that has no derivative (an integer index, say).
        jvps: one rule per positional argument,
            ``rule(tangent, out, *args, **params)`` returning that argument's
            contribution to the output tangent. The contributions are summed.
        jvp: alternatively, one rule ``jvp(tangents, out, *args, **params)``
            receiving every tangent (``None`` where zero) and returning the
            output tangent. Use it for operations such as ``concat`` whose
            tangent is the operation applied to all tangents at once.
        numpy_pullbacks: optional rules with the signature of ``pullbacks``
            that compute the same cotangents with NumPy directly. The backward
            pass uses them when the cotangent and every argument are plain
            NumPy values, so that nothing needs recording and the dispatch of
            each difflux operation inside the rule can be skipped. ``None``
            in place of a rule falls back to the ``pullbacks`` rule.
        multiple_results: whether ``impl`` returns a tuple of arrays. Pullback
            rules then receive a tuple of cotangents (zeros filled in), and a
            ``jvp`` rule returns a tuple of tangents.
        differentiable: ``False`` for operations with zero derivative
            everywhere (comparisons, ``floor``, ``argmax``); every tracer among
            the arguments is unwrapped and the result is a plain array.
    """

    __slots__ = (
        "name",
        "impl",
        "numpy_impl",
        "pullbacks",
        "numpy_pullbacks",
        "jvps",
        "jvp",
        "multiple_results",
        "differentiable",
    )

    def __init__(
        self,
        name: str,
        impl: Callable[..., Any],
        *,
        pullbacks: Sequence[PullbackRule | None] | None = None,
        jvps: Sequence[JVPRule | None] | None = None,
        jvp: JVPRule | None = None,
        numpy_pullbacks: Sequence[PullbackRule | None] | None = None,
        multiple_results: bool = False,
        differentiable: bool = True,
    ) -> None:
        self.name = name
        self.impl = impl
        # Set by make_impl: the NumPy function, for bind's fast path.
        self.numpy_impl = getattr(impl, "numpy_impl", None)
        self.pullbacks = tuple(pullbacks) if pullbacks is not None else None
        self.numpy_pullbacks = None
        if numpy_pullbacks is not None:
            generic = self.pullbacks or ()
            merged = []
            for i, fast in enumerate(numpy_pullbacks):
                if fast is None and i < len(generic):
                    fast = generic[i]
                merged.append(fast)
            self.numpy_pullbacks = tuple(merged)
        self.jvps = tuple(jvps) if jvps is not None else None
        self.jvp = jvp
        self.multiple_results = multiple_results
        self.differentiable = differentiable

    def __call__(self, *args: Any, **params: Any) -> Any:
        return bind(self, args, params)

    def __repr__(self) -> str:
        return f"Primitive({self.name!r})"


class MissingRuleError(NotImplementedError):
    """Raised when a primitive lacks the derivative rule a transformation needs."""


def _missing_rule(prim: Primitive, mode: str, index: int) -> MissingRuleError:
    return MissingRuleError(
        f"dx.{prim.name} has no {mode} rule for argument {index}, so it cannot be "
        f"differentiated with respect to that argument. Wrap the call in "
        "dx.stop_gradient if that argument should be constant, or give the "
        "function a rule with dx.custom_vjp / dx.custom_jvp."
    )


# --------------------------------------------------------------------------
# Tracers and dispatch
# --------------------------------------------------------------------------

_level_counter = itertools.count(1)
# Active traces, innermost last. dx.vmap, dx.jit and control flow read it to
# check whether a transformation is running, and choose their strategy by it.
trace_stack: list[Trace] = []


class Trace:
    """One running transformation (one ``grad``, ``jvp`` or ``vmap`` call)."""

    __slots__ = ("level", "__weakref__")
    # Whether the trace batches values (dx.vmap) rather than differentiating
    # them. It then also processes primitives without derivatives.
    batching = False

    def __init__(self) -> None:
        self.level = next(_level_counter)

    def process(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Trace:
        trace_stack.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        trace_stack.remove(self)


class Tracer:
    """A value being differentiated. Arithmetic operators call difflux ops.

    Tracers implement the Python Array API's attributes and operators, and
    ``__array_namespace__`` returns ``difflux.core``, so code written against
    the Array API differentiates too.
    """

    __slots__ = ("_trace",)
    _trace: Trace
    # NumPy must not swallow tracers into object arrays: with __array_ufunc__
    # set to None, ``ndarray + tracer`` falls back to ``tracer.__radd__``.
    __array_ufunc__ = None
    __array_priority__ = 1000

    @property
    def primal(self) -> Any:
        raise NotImplementedError

    # Attributes of the Array API ------------------------------------------------
    # Shape, dtype and device peel one level at a time, so that a tracer over
    # a dx.vmap batch tracer reports the batch tracer's (per-example) shape.
    @property
    def shape(self) -> tuple[int, ...]:
        primal = self.primal
        if isinstance(primal, Tracer):
            return primal.shape
        return tuple(np.shape(primal))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def dtype(self) -> Any:
        value = self.primal
        if isinstance(value, Tracer):
            return value.dtype
        dtype = getattr(value, "dtype", None)
        return dtype if dtype is not None else np.result_type(value)

    @property
    def device(self) -> Any:
        value = self.primal
        if isinstance(value, Tracer):
            return value.device
        return getattr(value, "device", "cpu")

    @property
    def T(self) -> Any:  # noqa: N802 (Array API name)
        from . import _ops_shape

        return _ops_shape.permute_dims(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Any:  # noqa: N802 (Array API name)
        from . import _ops_shape

        return _ops_shape.matrix_transpose(self)

    def __array_namespace__(self, *, api_version: str | None = None) -> Any:
        import difflux.core

        return difflux.core

    def __len__(self) -> int:
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d array")
        return shape[0]

    def __iter__(self) -> Any:
        from ._ops_shape import getitem

        for i in range(len(self)):
            yield getitem(self, i)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(
            "A difflux tracer was converted to a NumPy array, which would silently "
            "drop its derivative. Use difflux operations (dx.sin, dx.sum, ...) inside "
            "differentiated code, or np.asarray(dx.stop_gradient(x)) when you only "
            "need the value."
        )

    def __bool__(self) -> bool:
        return bool(_concrete(self, "bool()"))

    def __float__(self) -> float:
        # A float would silently drop the derivative, so this raises, as JAX
        # does. bool() and int() stay allowed because their results carry no
        # derivative anyway, and eager Python control flow needs bool().
        _concrete(self, "float()")
        raise TracerConversionError(
            "float() was called on a value that is being differentiated, which would "
            "silently drop its derivative. Keep the value as an array inside "
            "differentiated code, or write float(dx.stop_gradient(x)) when only the "
            "number is needed (for logging, say)."
        )

    def __int__(self) -> int:
        return int(_concrete(self, "int()"))

    def __index__(self) -> int:
        return int(_concrete(self, "an index"))

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({value_of(self)!r})"

    # Operators are attached by _operators.py once the ops exist.


def _concrete(tracer: Tracer, what: str) -> Any:
    value = value_of(tracer)
    jax = _backend.sys.modules.get("jax")
    if jax is not None and isinstance(value, jax.core.Tracer):
        raise TracerConversionError(
            f"{what} was called on a traced value inside dx.jit, where its value is "
            "not known until run time. Python `if`, `while`, `and`/`or`, int() and "
            "float() need concrete values. Use dx.cond or dx.where for branches, "
            "dx.while_loop or dx.fori_loop for loops, or mark the argument static."
        )
    return value


class TracerConversionError(TypeError):
    """Raised when a traced value is used where Python needs a concrete one."""


def value_of(x: Any) -> Any:
    """Strip every level of tracing and return the underlying array."""
    while isinstance(x, Tracer):
        x = x.primal
    return x


_NUMPY_SCALARS = frozenset(_backend._SCALAR_TYPES)
_NUMPY_TYPES = frozenset(_backend._NUMPY_TYPES)
# The stack behind _backend.default_backend(), read directly on the hot path.
_default_backends = _backend._default_stack

# Control flow (``_control.py``) sets this while it runs a loop or branch body:
# a function that rewrites the arguments of every primitive call, to find the
# traced values the body closes over and to replace them by the body's
# explicit operands. ``None``, the common case, costs one global read per call.
bind_hook: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None


def bind(prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
    """Apply ``prim`` to ``args``, letting the innermost active trace record it."""
    if bind_hook is not None:
        args = bind_hook(args)
    top = None
    level = 0
    # The eager NumPy case is the hot path of the engine. When every argument
    # is a NumPy array or a Python/NumPy scalar, and at least one is an array
    # or the default backend is NumPy (so the dispatch would pick NumPy), the
    # NumPy function is called without the generic backend dispatch.
    numpy_only = True
    has_array = False
    for arg in args:
        kind = type(arg)
        if kind is np.ndarray:
            has_array = True
        elif isinstance(arg, Tracer):
            trace = arg._trace
            if trace.level > level:
                top = trace
                level = trace.level
        elif kind not in _NUMPY_SCALARS:
            numpy_only = False
    if top is None:
        if numpy_only and (has_array or _default_backends[-1] == "numpy") and prim.numpy_impl is not None:
            return prim.numpy_impl(*args, **params) if params else prim.numpy_impl(*args)
        return prim.impl(*args, **params)
    if not prim.differentiable and not top.batching:
        # Derivative tracers are dropped; a batch tracer (dx.vmap) below them
        # still has to process the call.
        values = tuple(_strip_derivatives(a) for a in args)
        if any(isinstance(v, Tracer) for v in values):
            return bind(prim, values, params)
        return prim.impl(*values, **params)
    return top.process(prim, args, params)


def _strip_derivatives(x: Any) -> Any:
    while isinstance(x, Tracer) and not x._trace.batching:
        x = x.primal
    return x


# --------------------------------------------------------------------------
# Reverse mode
# --------------------------------------------------------------------------


class ReverseTracer(Tracer):
    """A value recorded on a reverse-mode tape; it is its own tape node.

    ``prim is None`` marks an input of the differentiated function (a leaf),
    and ``prim is _SELECT`` marks one output of a multiple-result primitive
    (``args`` then contains the shared :class:`_MultiNode` and the index).
    ``plain`` records that every argument was a plain NumPy value, so the
    backward pass may use the primitive's NumPy pullbacks.
    """

    __slots__ = ("value", "prim", "args", "params", "parents", "plain")

    def __init__(
        self,
        trace: ReverseTrace,
        value: Any,
        prim: Any,
        args: Any,
        params: Any,
        parents: Any,
        plain: bool = False,
    ) -> None:
        self._trace = trace
        self.value = value
        self.prim = prim
        self.args = args
        self.params = params
        self.parents = parents
        self.plain = plain
        tape = trace.tape
        if tape is not None and prim is not None:
            if prim is _SELECT:
                multi = args[0]
                if not multi.taped:
                    multi.taped = True
                    tape.append(multi)
            tape.append(self)

    @property
    def primal(self) -> Any:
        return self.value

    # The recorded value is usually a NumPy array, whose shape is cheaper to
    # read directly than through the generic property.
    @property
    def shape(self) -> tuple[int, ...]:
        value = self.value
        if type(value) is np.ndarray:
            return value.shape
        return Tracer.shape.fget(self)  # type: ignore[attr-defined]


_SELECT = object()
_new_object = object.__new__


class _MultiNode:
    """The shared node of a primitive with several outputs."""

    __slots__ = ("prim", "args", "params", "outs", "parents", "cotangents", "taped")

    def __init__(self, prim: Primitive, args: Any, params: Any, outs: Any, parents: Any) -> None:
        self.prim = prim
        self.args = args
        self.params = params
        self.outs = outs
        self.parents = parents
        self.cotangents: list[Any] = [None] * len(outs)
        # Whether the node is on its trace's tape, where it goes just before
        # its first output tracer.
        self.taped = False


class ReverseTrace(Trace):
    """A reverse-mode transformation.

    Args:
        keep_tape: whether to list every recorded node in creation order in
            ``tape``, which is a topological order, so that :func:`backward`
            can walk it instead of sorting the reachable nodes. The caller
            takes the tape with ``take_tape`` when recording ends, because
            the nodes refer to the trace, and a trace that kept its tape
            would form a reference cycle.
    """

    __slots__ = ("tape",)

    def __init__(self, keep_tape: bool = False) -> None:
        super().__init__()
        self.tape: list[Any] | None = [] if keep_tape else None

    def take_tape(self) -> list[Any] | None:
        """Return the recorded nodes in creation order and stop recording them."""
        tape, self.tape = self.tape, None
        return tape

    def process(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        values = []
        parents = []
        # Whether every value is NumPy, with an array among them or NumPy as
        # the default backend: then the NumPy function runs directly (see
        # bind), the common eager case, and the backward pass may call the
        # NumPy pullbacks.
        numpy_only = True
        has_array = False
        for arg in args:
            if type(arg) is ReverseTracer and arg._trace is self:
                value = arg.value
                parents.append(arg)
            else:
                value = arg
                parents.append(None)
            values.append(value)
            kind = type(value)
            if kind is np.ndarray:
                has_array = True
            elif kind not in _NUMPY_SCALARS:
                numpy_only = False
        plain = numpy_only and (has_array or _default_backends[-1] == "numpy")
        if plain and prim.numpy_impl is not None and bind_hook is None:
            out = prim.numpy_impl(*values, **params) if params else prim.numpy_impl(*values)
        else:
            out = bind(prim, tuple(values), params)
        if prim.multiple_results:
            node = _MultiNode(prim, values, params, out, parents)
            return tuple(ReverseTracer(self, o, _SELECT, (node, i), None, (node,)) for i, o in enumerate(out))
        # This does what ReverseTracer(...) does without calling __init__,
        # which costs about a third of creating the tracer, once per operation.
        tracer = _new_object(ReverseTracer)
        tracer._trace = self
        tracer.value = out
        tracer.prim = prim
        tracer.args = values
        tracer.params = params
        tracer.parents = parents
        tracer.plain = plain
        tape = self.tape
        if tape is not None:
            tape.append(tracer)
        return tracer

    def leaf(self, value: Any) -> ReverseTracer:
        return ReverseTracer(self, value, None, None, None, ())


def _toposort(roots: Sequence[Any]) -> list[Any]:
    """Return the nodes reachable from ``roots``, each after all its consumers.

    An iterative depth-first search lists every node after its parents
    (post-order); the reverse of that list is the order the backward pass
    needs. Recording with a tape (see :class:`ReverseTrace`) avoids this walk.
    """
    order: list[Any] = []
    visited: set[int] = set()
    for root in roots:
        if id(root) in visited:
            continue
        visited.add(id(root))
        stack = [(root, iter(root.parents))]
        while stack:
            node, parents = stack[-1]
            for parent in parents:
                if parent is not None and id(parent) not in visited:
                    visited.add(id(parent))
                    stack.append((parent, iter(parent.parents)))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


# Cotangent types for which the backward pass calls NumPy pullbacks: NumPy
# arrays and NumPy scalars. A Python number is left to the generic rules,
# which turn it into an array of the default backend.
_PLAIN_TYPES = frozenset(t for t in _backend._NUMPY_TYPES if t is np.ndarray or issubclass(t, np.generic))


def add_cotangents(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if (type(a) is np.ndarray or type(b) is np.ndarray) and type(a) in _NUMPY_TYPES and type(b) in _NUMPY_TYPES:
        # What the add primitive computes on these values, without its dispatch.
        return np.add(a, b)
    return _add(a, b)


_add_op: Callable[[Any, Any], Any] | None = None


def _add(a: Any, b: Any) -> Any:
    # _ops_elementwise.add, looked up once: an import here would be
    # circular at module load, and a per-call import costs time.
    global _add_op
    if _add_op is None:
        from ._ops_elementwise import add

        _add_op = add
    return _add_op(a, b)


def backward(
    outputs: Sequence[ReverseTracer], cotangents: Sequence[Any], tape: Sequence[Any] | None = None
) -> dict[int, Any]:
    """Run the backward pass; return cotangents keyed by ``id`` of each node.

    ``tape``, when given, lists the trace's nodes in creation order (see
    :class:`ReverseTrace`); otherwise the nodes reachable from ``outputs`` are
    sorted first.
    """
    grads: dict[int, Any] = {}
    for out, ct in zip(outputs, cotangents):
        grads[id(out)] = add_cotangents(grads.get(id(out)), ct)
    # Local names for the dictionary methods: this loop is the eager
    # engine's hot path, one iteration per recorded operation.
    pop = grads.pop
    get = grads.get
    plain_types = _PLAIN_TYPES
    # Leaves are never on a tape; the sorted nodes include them, and the
    # loop keeps their cotangents for the caller.
    nodes = reversed(tape) if tape is not None else _toposort(outputs)
    for node in nodes:
        if type(node) is _MultiNode:
            _backward_multi(node, grads)
            continue
        ct = pop(id(node), None)
        if ct is None:
            continue
        prim = node.prim
        if prim is None:
            grads[id(node)] = ct  # keep the leaf's cotangent for the caller
            continue
        if prim is _SELECT:
            multi, index = node.args
            multi.cotangents[index] = add_cotangents(multi.cotangents[index], ct)
            continue
        rules = prim.pullbacks
        if node.plain and type(ct) in plain_types and prim.numpy_pullbacks is not None:
            rules = prim.numpy_pullbacks
        params = node.params
        for i, parent in enumerate(node.parents):
            if parent is not None:
                try:
                    rule = rules[i]  # type: ignore[index]
                except (TypeError, IndexError):
                    rule = None
                if rule is None:
                    raise _missing_rule(prim, "pullback", i)
                if params:
                    grad = rule(ct, node.value, *node.args, **params)
                else:
                    grad = rule(ct, node.value, *node.args)
                key = id(parent)
                previous = get(key)
                grads[key] = grad if previous is None else add_cotangents(previous, grad)
    return grads


def _backward_multi(node: _MultiNode, grads: dict[int, Any]) -> None:
    cts = node.cotangents
    if all(ct is None for ct in cts):
        return
    from . import _ops_creation

    filled = tuple(_ops_creation.zeros_like(out) if ct is None else ct for out, ct in zip(node.outs, cts))
    node.cotangents = [None] * len(cts)
    rules = node.prim.pullbacks
    for i, parent in enumerate(node.parents):
        if parent is None:
            continue
        rule = rules[i] if rules is not None and i < len(rules) else None
        if rule is None:
            raise _missing_rule(node.prim, "pullback", i)
        grad = rule(filled, tuple(node.outs), *node.args, **node.params)
        grads[id(parent)] = add_cotangents(grads.get(id(parent)), grad)


# --------------------------------------------------------------------------
# Forward mode
# --------------------------------------------------------------------------


class JVPTracer(Tracer):
    """A dual number: a primal value and its tangent."""

    __slots__ = ("value", "tangent")

    def __init__(self, trace: Trace, value: Any, tangent: Any) -> None:
        self._trace = trace
        self.value = value
        self.tangent = tangent

    @property
    def primal(self) -> Any:
        return self.value


class JVPTrace(Trace):
    __slots__ = ()

    def process(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        values = []
        tangents: list[Any] = []
        for arg in args:
            if type(arg) is JVPTracer and arg._trace is self:
                values.append(arg.value)
                tangents.append(arg.tangent)
            else:
                values.append(arg)
                tangents.append(None)
        out = bind(prim, tuple(values), params)
        tangent_out = self._tangent(prim, out, values, tangents, params)
        if prim.multiple_results:
            if tangent_out is None:
                return out
            return tuple(o if t is None else JVPTracer(self, o, t) for o, t in zip(out, tangent_out))
        if tangent_out is None:
            return out
        return JVPTracer(self, out, tangent_out)

    @staticmethod
    def _tangent(prim: Primitive, out: Any, values: list[Any], tangents: list[Any], params: dict[str, Any]) -> Any:
        if all(t is None for t in tangents):
            return None
        if prim.jvp is not None:
            return prim.jvp(tangents, out, *values, **params)
        rules = prim.jvps
        total = None
        for i, tangent in enumerate(tangents):
            if tangent is None:
                continue
            rule = rules[i] if rules is not None and i < len(rules) else None
            if rule is None:
                raise _missing_rule(prim, "forward-mode (jvp)", i)
            total = add_cotangents(total, rule(tangent, out, *values, **params))
        return total
