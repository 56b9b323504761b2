"""Record a function of NumPy arrays once and replay it as straight-line NumPy code.

Eager difflux code pays Python dispatch for every operation at every trace
level. A forward-mode derivative under ``dx.vmap`` passes each operation
through two traces before NumPy runs it, which costs far more than the
NumPy call on small arrays. A function that runs many times on arrays of
fixed shapes, as an ODE's vector field does at every stage of every step,
can instead be recorded once. :func:`record` runs it with its inputs
wrapped in tracers of a :class:`RecordTrace`. That trace is created first,
so every transformation inside the function sits above it, and each NumPy
call that they finally make reaches the trace with its operands. The calls
that lead to the outputs become a generated Python function of the inputs
(:class:`Program`), which makes those calls and nothing else.

A program is valid for new inputs of the recorded shapes and dtypes only if
the function would make the same calls for them. So recording raises
:class:`RecordingError` wherever the function reads the values of a
recorded array (``bool``, ``int``, ``float``, ``value_of``, conversion to
NumPy), because there it could choose its calls by the data. It raises too
wherever a traced value of another transformation, or a JAX array, enters.
Python side effects of the function (printing, counting calls) happen once,
while it is recorded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _core
from ._batching import UnbatchableError, register_array_tracer
from ._core import Primitive, Trace, Tracer
from ._ops_shape import _getitem_impl
from ._ops_shape import getitem_p as _getitem_p
from ._ops_shape import permute_dims_p as _permute_dims_p
from ._ops_shape import reshape_p as _reshape_p
from ._tree import tree_flatten, tree_unflatten

# Primitives whose NumPy result may be a view of their first operand.
_VIEW_PRIMITIVES = (_getitem_p, _reshape_p, _permute_dims_p)

# Values that a recording accepts as inputs, operands and constants without conversion.
_NUMPY_VALUE_TYPES = (np.ndarray, np.generic, bool, int, float, complex)


class RecordingError(UnbatchableError):
    """Raised when a function cannot be recorded as straight-line NumPy code.

    It is an ``UnbatchableError`` so that difflux code which handles an
    unreadable batch (``zeros_like``, say) handles a recorded value the same
    way.
    """


class RecordTracer(Tracer):
    """A recorded array: its value in the example run and its slot in the program."""

    __slots__ = ("value", "slot")

    def __init__(self, trace: RecordTrace, value: Any, slot: int) -> None:
        self._trace = trace
        self.value = value
        self.slot = slot

    @property
    def primal(self) -> Any:
        raise RecordingError(
            "the recorded function read the value of an array, so its NumPy calls may depend on the data"
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.value))

    @property
    def dtype(self) -> Any:
        return np.result_type(self.value)

    @property
    def device(self) -> Any:
        return "cpu"

    def __repr__(self) -> str:
        return f"RecordTracer(shape={self.shape}, dtype={self.dtype}, slot={self.slot})"


register_array_tracer(RecordTracer)


class RecordTrace(Trace):
    """A running :func:`record`: lists each primitive call with its operands as slots or constants.

    Attributes:
        instructions: ``(primitive, function, params, operands, output
            slots)`` in call order. An operand is ``(True, slot)`` or
            ``(False, constant index)``.
        constants: the operands that were no recorded value.
        num_slots: slots in use (inputs first, then each call's outputs).
    """

    __slots__ = ("instructions", "constants", "num_slots", "seen")
    # Process primitives without derivatives (comparisons, integer casts) too,
    # as a batching trace does: they are calls of the program like any other.
    batching = True

    def __init__(self) -> None:
        super().__init__()
        self.instructions: list[
            tuple[Primitive, Callable[..., Any], dict[str, Any], list[tuple[bool, int]], list[int]]
        ] = []
        self.constants: list[Any] = []
        self.num_slots = 0
        self.seen: dict[Any, Any] = {}

    def new_value(self, value: Any) -> RecordTracer:
        """Return a tracer for ``value`` in a fresh slot."""
        tracer = RecordTracer(self, value, self.num_slots)
        self.num_slots += 1
        return tracer

    def process(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        operands: list[tuple[bool, int]] = []
        values = []
        keys: list[Any] = []
        for arg in args:
            if type(arg) is RecordTracer and arg._trace is self:
                operands.append((True, arg.slot))
                values.append(arg.value)
                keys.append(("slot", arg.slot))
            elif isinstance(arg, Tracer):
                raise RecordingError(f"dx.{prim.name} received a traced value of another transformation")
            elif isinstance(arg, _NUMPY_VALUE_TYPES) or arg is None:
                operands.append((False, len(self.constants)))
                self.constants.append(arg)
                values.append(arg)
                keys.append(_constant_key(arg))
            else:
                raise RecordingError(f"dx.{prim.name} received a {type(arg).__name__}, which is not a NumPy value")

        # A call repeated with the same operands (the primal inside dx.jvp,
        # say, beside the same primal outside it) is recorded once.
        params_key = _hashable(params)
        key = None if params_key is None else (prim, tuple(keys), params_key)
        if key is not None and key in self.seen:
            return self.seen[key]

        function = prim.numpy_impl if prim.numpy_impl is not None else prim.impl
        out = function(*values, **params)
        outs = out if prim.multiple_results else (out,)
        for value in outs:
            if not isinstance(value, np.ndarray | np.generic):
                raise RecordingError(f"dx.{prim.name} returned a {type(value).__name__}, which is not a NumPy value")
        if prim in _VIEW_PRIMITIVES and operands[0][0] and _same_view(out, values[0]):
            result: Any = args[0]  # a view of the whole input in its own layout is no call
        else:
            tracers = [self.new_value(value) for value in outs]
            self.instructions.append((prim, function, params, operands, [tracer.slot for tracer in tracers]))
            result = tuple(tracers) if prim.multiple_results else tracers[0]
        if key is not None:
            self.seen[key] = result
        return result


class Program:
    """A recorded function: call it with NumPy arrays of the recorded shapes and dtypes.

    Attributes:
        num_calls: the NumPy calls it makes, those that lead to an output.
        source: the generated Python code, for reading and debugging.
    """

    def __init__(self, trace: RecordTrace, num_inputs: int, outputs: list[tuple[bool, int]], treedef: Any) -> None:
        self.treedef = treedef
        live = {slot for is_slot, slot in outputs if is_slot}
        kept = []
        for instruction in reversed(trace.instructions):
            if any(slot in live for slot in instruction[4]):
                kept.append(instruction)
                live.update(slot for is_slot, slot in instruction[3] if is_slot)
        kept.reverse()
        self.num_calls = len(kept)

        namespace: dict[str, Any] = {}
        lines = [f"def program({', '.join(f's{i}' for i in range(num_inputs))}):"]
        for index, (prim, function, params, operands, out_slots) in enumerate(kept):
            arguments = [_operand_name(operand, trace.constants, namespace) for operand in operands]
            targets = ", ".join(f"s{slot}" for slot in out_slots)
            if prim.multiple_results and len(out_slots) == 1:
                targets += ","
            lines.append(f"    {targets} = {_call(index, prim, function, params, arguments, namespace)}")
        results = ", ".join(_operand_name(operand, trace.constants, namespace) for operand in outputs)
        lines.append(f"    return ({results}{',' if len(outputs) == 1 else ''})")
        self.source = "\n".join(lines)
        exec(_compile(self.source), namespace)  # the code is generated above, from slot and constant names only
        self.flat: Callable[..., tuple[Any, ...]] = namespace["program"]

    def __call__(self, *inputs: Any) -> Any:
        return tree_unflatten(self.treedef, list(self.flat(*inputs)))


def _call(
    index: int,
    prim: Primitive,
    function: Callable[..., Any],
    params: dict[str, Any],
    arguments: list[str],
    namespace: dict[str, Any],
) -> str:
    """Return the Python expression of one recorded call; indexing and reshapes skip NumPy's function wrappers."""
    if prim is _getitem_p and function is _getitem_impl:
        namespace[f"p{index}"] = params["index"]
        return f"{arguments[0]}[p{index}]"
    if prim is _reshape_p and set(params) == {"shape"}:
        namespace[f"p{index}"] = tuple(params["shape"])
        return f"{arguments[0]}.reshape(p{index})"
    namespace[f"f{index}"] = functools.partial(function, **params) if params else function
    return f"f{index}({', '.join(arguments)})"


def _same_view(out: Any, value: Any) -> bool:
    """Return whether ``out`` is ``value`` itself or a view of all of it with the same shape and strides."""
    if out is value:
        return True
    if type(out) is not np.ndarray or type(value) is not np.ndarray:
        return False
    return (
        out.shape == value.shape
        and out.strides == value.strides
        and out.dtype == value.dtype
        and out.__array_interface__["data"][0] == value.__array_interface__["data"][0]
    )


def _constant_key(value: Any) -> Any:
    """Return a key under which two constant operands are the same value."""
    if isinstance(value, bool | int | float | complex | np.generic) or value is None:
        return ("value", type(value), value)
    return ("object", id(value))


def _hashable(params: Any) -> Any:
    """Return ``params`` as a hashable key, or ``None`` if it contains something compared by identity (arrays)."""
    if isinstance(params, dict):
        items = [(name, _hashable(value)) for name, value in sorted(params.items())]
        return None if any(key is None for _, key in items) else ("dict", tuple(items))
    if isinstance(params, tuple | list):
        items = [_hashable(value) for value in params]
        return None if any(key is None for key in items) else (type(params).__name__, tuple(items))
    if isinstance(params, slice):
        parts = [_hashable(part) for part in (params.start, params.stop, params.step)]
        return None if any(part is None for part in parts) else ("slice", tuple(parts))
    if params is None or params is Ellipsis:
        return (repr(params),)
    if isinstance(params, bool | int | float | str | np.integer | np.floating | np.dtype):
        return (type(params).__name__, params)
    return None


def _operand_name(operand: tuple[bool, int], constants: list[Any], namespace: dict[str, Any]) -> str:
    is_slot, index = operand
    if is_slot:
        return f"s{index}"
    namespace[f"c{index}"] = constants[index]
    return f"c{index}"


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> Any:
    # Programs of one function differ only in their constants, so a solve
    # that records its vector field again compiles nothing new.
    return compile(source, "<difflux recorded program>", "exec")


def record(function: Callable[..., Any], inputs: Sequence[Any]) -> Program:
    """Record ``function(*inputs)`` as a :class:`Program` of NumPy calls.

    Args:
        function: a function of arrays returning a structure of arrays.
        inputs: NumPy arrays (or NumPy scalars), the example inputs. The
            program takes arrays of the same shapes and dtypes.

    Raises:
        RecordingError: when the function reads a recorded value, meets a
            traced value of another transformation or a JAX array, or
            returns one. Other exceptions from the function propagate.
    """
    trace = RecordTrace()
    tracers = []
    for value in inputs:
        if not isinstance(value, np.ndarray | np.generic):
            raise RecordingError(f"record takes NumPy arrays as inputs, got a {type(value).__name__}")
        tracers.append(trace.new_value(value))
    saved_hook = _core.bind_hook
    _core.bind_hook = None
    try:
        with trace:
            out = function(*tracers)
    finally:
        _core.bind_hook = saved_hook
    leaves, treedef = tree_flatten(out)
    outputs = []
    for leaf in leaves:
        if type(leaf) is RecordTracer and leaf._trace is trace:
            outputs.append((True, leaf.slot))
        elif isinstance(leaf, Tracer) or not isinstance(leaf, np.ndarray | np.generic):
            raise RecordingError(f"the recorded function returned a {type(leaf).__name__}, which is not a NumPy value")
        else:
            outputs.append((False, len(trace.constants)))
            trace.constants.append(leaf)
    return Program(trace, len(tracers), outputs, treedef)
