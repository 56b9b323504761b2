"""Batching rules: the vectorised implementation behind ``dx.vmap``.

A :class:`BatchTrace` is a difflux transformation, like reverse and forward
mode. Its tracers hold a batched value whose axis 0 is the batch, and
present the shape of one example. Each primitive call on a batch tracer is
replaced by one call on the whole batch, following a rule per kind of
primitive:

* element-wise primitives insert length-1 axes after the batch axis, so that
  broadcasting lines examples up with unbatched operands;
* reductions, cumulative operations, ``flip``, ``roll`` and ``concat`` shift
  their axes by one;
* ``reshape``, ``broadcast_to``, ``permute_dims``, basic indexing and
  ``matmul`` rewrite their parameters or operands for the leading batch axis.

Because the rules call difflux operations, an outer transformation (the
``dx.grad`` of a loss that maps over examples) records one batched operation
per primitive instead of one per example.

Anything else raises :class:`UnbatchableError`, and ``dx.vmap`` runs its loop
instead. That covers primitives without a rule, Python control flow on a
batched value, and code that reads the underlying array of a batched value
(``value_of``, ``dx.stop_gradient``, ``zeros_like``). Mapped code may
therefore run twice when it is not batchable, once partially.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ._core import Primitive, Trace, Tracer
from ._dispatch import shape_of


class UnbatchableError(Exception):
    """Raised inside a batch trace for an operation without a batching rule."""


class BatchTracer(Tracer):
    """A batch of values: ``value`` has the batch on axis 0."""

    __slots__ = ("value",)

    def __init__(self, trace: BatchTrace, value: Any) -> None:
        self._trace = trace
        self.value = value

    @property
    def primal(self) -> Any:
        # The underlying array has the batch axis, so no caller may see it as
        # the value of one example.
        raise UnbatchableError("the array of a batched value was read directly")

    @property
    def shape(self) -> tuple[int, ...]:
        return shape_of(self.value)[1:]

    @property
    def dtype(self) -> Any:
        value = self.value
        dtype = getattr(value, "dtype", None)
        return dtype if dtype is not None else np.result_type(value)

    @property
    def device(self) -> Any:
        return getattr(self.value, "device", "cpu")

    def __repr__(self) -> str:
        size = shape_of(self.value)[0]
        return f"BatchTracer(shape={self.shape}, dtype={self.dtype}, batch_size={size})"


# Tracer types whose ``value`` is the array under them but whose ``primal``
# raises, because the array is not one example's value: batch tracers and
# the tracers of ``_record.py``.
_ARRAY_TRACER_TYPES: set[type] = {BatchTracer}


def register_array_tracer(tracer_type: type) -> None:
    """Let :func:`underlying` read ``value`` of ``tracer_type``, whose ``primal`` raises."""
    _ARRAY_TRACER_TYPES.add(tracer_type)


def underlying(x: Any) -> Any:
    """Return the array under every tracer of ``x``, batch axes included.

    For dtype and backend queries only: the shape may carry batch axes.
    """
    while isinstance(x, Tracer):
        x = x.value if type(x) in _ARRAY_TRACER_TYPES else x.primal  # type: ignore[attr-defined]
    return x


class BatchTrace(Trace):
    """One running ``dx.vmap``; ``size`` is the batch size."""

    __slots__ = ("size",)
    batching = True

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def process(self, prim: Primitive, args: tuple[Any, ...], params: dict[str, Any]) -> Any:
        rule = _rules().get(prim)
        if rule is None or prim.multiple_results:
            raise UnbatchableError(f"dx.{prim.name} has no batching rule")
        values, batched = [], []
        for arg in args:
            if type(arg) is BatchTracer and arg._trace is self:
                values.append(arg.value)
                batched.append(True)
            else:
                values.append(arg)
                batched.append(False)
        return BatchTracer(self, rule(prim, values, batched, params))

    def wrap(self, value: Any) -> BatchTracer:
        """Return a batch tracer over ``value``, whose axis 0 is the batch."""
        return BatchTracer(self, value)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _example_rank(value: Any, batched: bool) -> int:
    return len(shape_of(value)) - (1 if batched else 0)


def _lift_rank(value: Any, rank: int) -> Any:
    """Insert length-1 axes after the batch axis so that one example has ``rank`` axes."""
    from ._ops_shape import reshape

    shape = shape_of(value)
    missing = rank - (len(shape) - 1)
    if missing <= 0:
        return value
    return reshape(value, shape[:1] + (1,) * missing + shape[1:])


def _shift_axes(axis: Any, rank: int) -> Any:
    """Map axes of one example to axes of the batch (one further right)."""
    if axis is None:
        return tuple(range(1, rank + 1))
    if isinstance(axis, int | np.integer):
        return int(axis) % max(rank, 1) + 1
    return tuple(int(a) % max(rank, 1) + 1 for a in axis)


def _broadcast_batch(value: Any, size: int) -> Any:
    from ._ops_shape import broadcast_to, reshape

    shape = shape_of(value)
    return broadcast_to(reshape(value, (1, *shape)), (size, *shape))


# --------------------------------------------------------------------------
# Rules: rule(prim, values, batched, params) -> batched output
# --------------------------------------------------------------------------


def _elementwise(prim: Primitive, values: list[Any], batched: list[bool], params: dict[str, Any]) -> Any:
    rank = max(_example_rank(v, b) for v, b in zip(values, batched))
    lifted = [_lift_rank(v, rank) if b else v for v, b in zip(values, batched)]
    return prim(*lifted, **params)


def _along_axes(prim: Primitive, values: list[Any], batched: list[bool], params: dict[str, Any]) -> Any:
    """Reductions and other operations with an ``axis`` parameter on their first operand."""
    if not batched[0]:
        raise UnbatchableError(f"dx.{prim.name} with only a secondary operand batched")
    rank = _example_rank(values[0], True)
    lifted = [values[0]] + [_lift_rank(v, rank) if b else v for v, b in zip(values[1:], batched[1:])]
    return prim(*lifted, **{**params, "axis": _shift_axes(params["axis"], rank)})


def _reshape(prim: Primitive, values: list[Any], batched: list[bool], params: dict[str, Any]) -> Any:
    x = values[0]
    return prim(x, shape=(shape_of(x)[0], *params["shape"]))


def _broadcast_to(prim: Primitive, values: list[Any], batched: list[bool], params: dict[str, Any]) -> Any:
    shape = tuple(params["shape"])
    x = _lift_rank(values[0], len(shape))
    return prim(x, shape=(shape_of(x)[0], *shape))


def _permute_dims(prim: Primitive, values: list[Any], batched: list[bool], params: dict[str, Any]) -> Any:
    return prim(values[0], axes=(0, *(int(a) + 1 for a in params["axes"])))


def _is_advanced(entry: Any) -> bool:
    return not (entry is None or entry is Ellipsis or isinstance(entry, slice | int | np.integer))


def _getitem(prim: Primitive, values: list[Any], batched: list[bool], params: dict[str, Any]) -> Any:
    index = params["index"]
    if not isinstance(index, tuple):
        index = (index,)
    _check_batchable_index(index)
    return prim(values[0], index=(slice(None), *index))


def _check_batchable_index(index: tuple[Any, ...]) -> None:
    """Raise UnbatchableError for an index whose result axes move once a batch axis is put in front."""
    advanced = [i for i, entry in enumerate(index) if _is_advanced(entry)]
    if advanced:
        for i in advanced:
            if np.dtype(getattr(index[i], "dtype", np.asarray(index[i]).dtype)).kind == "b":
                raise UnbatchableError("boolean-mask indexing has a data-dependent shape")
        # Integer scalars join the advanced indices once an array is present.
        positions = [i for i, entry in enumerate(index) if _is_advanced(entry) or isinstance(entry, int | np.integer)]
        if positions != list(range(positions[0], positions[-1] + 1)):
            raise UnbatchableError("separated advanced indices move the result's axes to the front")


def _indexed_rank(rank: int, index: tuple[Any, ...]) -> int:
    """Return the rank of ``x[index]`` for an ``x`` of rank ``rank``, from the index alone."""
    consumed = kept = advanced_rank = 0
    has_advanced = False
    for entry in index:
        if entry is None:
            kept += 1
        elif entry is Ellipsis:
            continue
        elif isinstance(entry, slice):
            consumed += 1
            kept += 1
        elif isinstance(entry, int | np.integer):
            consumed += 1
        else:
            has_advanced = True
            entry_rank = len(shape_of(entry))
            if np.dtype(entry.dtype).kind == "b":
                consumed += entry_rank
                advanced_rank = max(advanced_rank, 1)
            else:
                consumed += 1
                advanced_rank = max(advanced_rank, entry_rank)
    return rank - consumed + kept + (advanced_rank if has_advanced else 0)


def _index_update(prim: Primitive, values: list[Any], batched: list[bool], params: dict[str, Any]) -> Any:
    """Batch ``index_add`` and ``index_update``, whose static index is the same in every example."""
    index = params["index"]
    if not isinstance(index, tuple):
        index = (index,)
    _check_batchable_index(index)
    (x, update), (x_batched, update_batched) = values, batched
    size = shape_of(x if x_batched else update)[0]
    if not x_batched:
        x = _broadcast_batch(x, size)
    if update_batched:
        # One example's update broadcasts against x[index]; give it that
        # rank, so that its batch axis lines up with x's.
        update = _lift_rank(update, _indexed_rank(len(shape_of(x)) - 1, index))
    return prim(x, update, index=(slice(None), *index))


def _concat(prim: Primitive, values: list[Any], batched: list[bool], params: dict[str, Any]) -> Any:
    size = next(shape_of(v)[0] for v, b in zip(values, batched) if b)
    arrays = [v if b else _broadcast_batch(v, size) for v, b in zip(values, batched)]
    rank = _example_rank(arrays[0], True)
    return prim(*arrays, **{**params, "axis": _shift_axes(params["axis"], rank)})


def _matmul(prim: Primitive, values: list[Any], batched: list[bool], params: dict[str, Any]) -> Any:
    from ._ops_shape import reshape, squeeze

    (x, y), (x_batched, y_batched) = values, batched
    squeeze_axes = []
    if x_batched and _example_rank(x, True) == 1:
        shape = shape_of(x)
        x = reshape(x, (shape[0], 1, shape[1]))
        # The inserted row axis is second to last, or last when matmul drops
        # the axis of an unbatched vector ``y``.
        squeeze_axes.append(-1 if not y_batched and len(shape_of(y)) == 1 else -2)
    if y_batched and _example_rank(y, True) == 1:
        shape = shape_of(y)
        y = reshape(y, (*shape, 1))
        squeeze_axes.append(-1)
    rank = max(_example_rank(x, x_batched), _example_rank(y, y_batched))
    if x_batched:
        x = _lift_rank(x, rank)
    if y_batched:
        y = _lift_rank(y, rank)
    out = prim(x, y, **params)
    if squeeze_axes:
        ndim = len(shape_of(out))
        out = squeeze(out, tuple(a % ndim for a in squeeze_axes))
    return out


def _linear(prim: Primitive, values: list[Any], batched: list[bool], params: dict[str, Any]) -> Any:
    """``x @ weight.T + bias`` with a batch axis on any operand."""
    from ._ops_matmul import matmul
    from ._ops_shape import permute_dims, reshape

    (x, weight, bias), (x_batched, weight_batched, bias_batched) = values, batched
    if not weight_batched and not bias_batched:
        # linear maps every leading axis of x alike, the batch axis included.
        return prim(x, weight, bias, **params)
    x_shape = shape_of(x)
    # The leading axes of one example of x, between its batch axis and its features.
    lead = x_shape[1:-1] if x_batched else x_shape[:-1]
    if weight_batched:
        size, out_features, in_features = shape_of(weight)
        # Each example's rows of x times that example's weight, shape (B, rows, out).
        rows = reshape(x, (size if x_batched else 1, -1, in_features))
        y = reshape(matmul(rows, permute_dims(weight, (0, 2, 1))), (size, *lead, out_features))
    else:
        y = matmul(x, permute_dims(weight, (1, 0)))
    if bias_batched:
        size, out_features = shape_of(bias)
        bias = reshape(bias, (size,) + (1,) * len(lead) + (out_features,))
    return y + bias


def _einsum(prim: Primitive, values: list[Any], batched: list[bool], params: dict[str, Any]) -> Any:
    """Give the batch axis an unused letter in the batched operands and in front of the output."""
    from ._ops_einsum import _fresh_letters

    subscripts = params["subscripts"]  # explicit, without "...", as einsum_p receives it
    inputs, output = subscripts.split("->")
    (letter,) = _fresh_letters(set(subscripts), 1, subscripts)
    terms = [letter + term if b else term for term, b in zip(inputs.split(","), batched)]
    return prim(*values, subscripts=",".join(terms) + "->" + letter + output)


# --------------------------------------------------------------------------
# The rule table
# --------------------------------------------------------------------------

Rule = Callable[[Primitive, list[Any], list[bool], dict[str, Any]], Any]

# Modules whose primitives are all element-wise (broadcasting) operations.
_ELEMENTWISE_MODULES = ("_ops_elementwise", "_ops_special", "_ops_special_gamma", "_ops_extra", "_ops_dtype")
# Primitive names with an ``axis`` parameter on their first operand.
_AXIS_PRIMITIVES = {
    "_ops_reduction": (
        "sum",
        "max",
        "min",
        "prod",
        "logsumexp",
        "any",
        "all",
        "count_nonzero",
        "cumulative_sum",
        "cumulative_prod",
    ),
    "_ops_manipulation": ("flip", "roll"),
}
_SPECIAL_RULES: dict[tuple[str, str], Rule] = {
    ("_ops_shape", "reshape"): _reshape,
    ("_ops_shape", "broadcast_to"): _broadcast_to,
    ("_ops_shape", "permute_dims"): _permute_dims,
    ("_ops_shape", "getitem"): _getitem,
    ("_ops_manipulation", "concat"): _concat,
    ("_ops_matmul", "matmul"): _matmul,
    ("_ops_matmul", "linear"): _linear,
    ("_ops_index", "index_add"): _index_update,
    ("_ops_index", "index_update"): _index_update,
    ("_ops_einsum", "einsum"): _einsum,
}

_table: dict[Primitive, Rule] = {}


def _primitives(module_name: str) -> dict[str, Primitive]:
    module = importlib.import_module(f"{__package__}.{module_name}")
    return {value.name: value for value in vars(module).values() if isinstance(value, Primitive)}


def _rules() -> dict[Primitive, Rule]:
    """Return the rule table, built on first use from the modules that define the primitives."""
    if _table:
        return _table
    for module_name in _ELEMENTWISE_MODULES:
        for prim in _primitives(module_name).values():
            _table[prim] = _elementwise
    for module_name, names in _AXIS_PRIMITIVES.items():
        prims = _primitives(module_name)
        for name in names:
            if name in prims:
                _table[prims[name]] = _along_axes
    for (module_name, name), rule in _SPECIAL_RULES.items():
        prim = _primitives(module_name).get(name)
        if prim is not None:
            _table[prim] = rule
    return _table
