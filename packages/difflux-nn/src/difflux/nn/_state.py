"""Training and test mode, running statistics, and walks over a model's layers.

Design. Models are immutable ``dx.Module`` trees, so neither the mode nor
the running statistics of a layer can change in place:

* The mode is a static ``training`` field. ``train_mode(model)`` and
  ``test_mode(model)`` return a copy with the flag set on every layer that
  has one (Flux's ``trainmode!``/``testmode!``). Because the flag is static,
  ``dx.jit`` compiles one function per mode.
* Running statistics are array fields declared with :func:`state_field`.
  In training mode a layer computes their new values and hands them to
  :func:`update_state`, which stores them in the innermost active
  :func:`apply` call. ``apply`` runs the model and returns the output
  together with a copy of the model holding the new values. Layers are
  found by identity, so ``apply`` works for any nesting of containers and
  user modules, and under ``dx.jit`` and ``dx.grad``. The stored values are
  passed through ``dx.stop_gradient``, so they never carry a derivative.
"""

from __future__ import annotations

import contextvars
import dataclasses
import sys
from collections.abc import Callable, Iterator
from typing import Any

import difflux.core as dx

from ._layer import accepts_key

# The updates recorded by update_state inside the innermost apply call:
# id(layer) -> (layer, {field: new value}). None outside any apply call.
_pending_updates: contextvars.ContextVar[dict[int, tuple[Any, dict[str, Any]]] | None] = contextvars.ContextVar(
    "difflux_nn_pending_updates", default=None
)

_NOT_TRAINABLE = "difflux_nn_trainable"


def state_field(**kwargs: Any) -> Any:
    """Declare a field of state: an array that is not trained (a running mean, say).

    The field is always a pytree child, so it is saved, loaded, traced by
    ``dx.jit`` and returned by ``apply`` like a parameter, but
    :func:`trainable` marks it ``False`` and ``nn.summary`` counts it as
    non-trainable. Update it in training mode with :func:`update_state`.
    """
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata[_NOT_TRAINABLE] = False
    return dx.field(static=False, metadata=metadata, **kwargs)


def _state_field_names(module: dx.Module) -> tuple[str, ...]:
    fields = dataclasses.fields(module)  # type: ignore[arg-type]
    return tuple(f.name for f in fields if f.metadata.get(_NOT_TRAINABLE) is False)


# --------------------------------------------------------------------------
# Walking the layers of a model
# --------------------------------------------------------------------------


def _is_module(x: Any) -> bool:
    return isinstance(x, dx.Module)


def map_modules(function: Callable[[Any, Any], Any], tree: Any) -> Any:
    """Rebuild ``tree`` bottom-up, replacing each module ``m`` by ``function(m, rebuilt)``.

    ``rebuilt`` is ``m`` with its sub-modules already replaced. ``m`` is the
    original, and its identity matches the layer objects of a running call.
    """

    def visit(node: Any) -> Any:
        leaves, treedef = dx.tree_flatten(node, is_leaf=lambda x: x is not node and _is_module(x))
        rebuilt = dx.tree_unflatten(treedef, [visit(leaf) if _is_module(leaf) else leaf for leaf in leaves])
        return function(node, rebuilt) if _is_module(node) else rebuilt

    return visit(tree)


def named_modules(tree: Any, prefix: str = "") -> Iterator[tuple[str, int, dx.Module]]:
    """Yield ``(path, depth, module)`` for every module of ``tree``, parents first.

    Paths join field names and container indices with dots
    (``"layers.0.weight"`` style), the root module's path is ``""``.
    """
    yield from _named(tree, prefix, 0)


def _named(value: Any, path: str, depth: int) -> Iterator[tuple[str, int, dx.Module]]:
    if isinstance(value, dx.Module):
        yield path, depth, value
        for f in dataclasses.fields(value):  # type: ignore[arg-type]
            child = getattr(value, f.name)
            yield from _named_children(child, _join(path, f.name), depth + 1)
    else:
        yield from _named_children(value, path, depth)


def _named_children(value: Any, path: str, depth: int) -> Iterator[tuple[str, int, dx.Module]]:
    if isinstance(value, dx.Module):
        yield from _named(value, path, depth)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _named_children(item, _join(path, str(index)), depth)
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _named_children(item, _join(path, str(name)), depth)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------


def _set_training(model: Any, training: bool) -> Any:
    def switch(original: Any, module: Any) -> Any:
        has_flag = any(f.name == "training" for f in dataclasses.fields(module))  # type: ignore[arg-type]
        if has_flag and module.training != training:
            return dx.replace(module, training=training)
        return module

    return map_modules(switch, model)


def train_mode(model: Any) -> Any:
    """Return a copy of ``model`` in training mode.

    Every layer with a ``training`` field (``Dropout``, ``BatchNorm``,
    ``MultiHeadAttention``, and user modules that declare one) gets
    ``training=True``: dropout draws masks from the call's ``key``, and batch
    normalisation uses the batch's statistics and updates its running ones
    through :func:`apply`. The flag is static, so ``dx.jit`` compiles the
    training and the test model separately.

    Examples:
        >>> from difflux import nn
        >>> nn.train_mode(nn.Dropout(0.5)).training
        True
    """
    return _set_training(model, True)


def test_mode(model: Any) -> Any:
    """Return a copy of ``model`` in test mode, the mode every layer is built in.

    Dropout is the identity and batch normalisation uses its running
    statistics.
    """
    return _set_training(model, False)


# The name starts with "test", which pytest would collect as a test wherever
# it is imported into a test module.
test_mode.__test__ = False  # type: ignore[attr-defined]


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------


def update_state(layer: Any, **values: Any) -> None:
    """Store new values of ``layer``'s state fields in the active :func:`apply` call.

    Layers with running statistics call this in training mode. The values
    pass through ``dx.stop_gradient``, and ``apply`` returns a model in which
    ``layer`` has them. Several calls for one layer merge, later values
    winning.

    NOTE: inside a ``dx.scan`` or loop body, every step records its values
    and the last one wins, each computed from the state the model had
    before ``apply``. On JAX, ``apply`` raises instead, because values of
    the body cannot leave it.

    Raises:
        RuntimeError: when no ``apply`` call is active, because the values
            would be lost.
    """
    pending = _pending_updates.get()
    if pending is None:
        raise RuntimeError(
            f"{layer!r} is in training mode and computed new state ({', '.join(values)}), but the model "
            "was called directly, so the new values would be lost. Call it through nn.apply: "
            "`y, model = nn.apply(model, x, key=key)` returns the model with the new state. "
            "For inference, use nn.test_mode(model)."
        )
    names = _state_field_names(layer)
    unknown = [name for name in values if name not in names]
    if unknown:
        raise TypeError(
            f"update_state: {type(layer).__name__} has no state field {unknown[0]!r}; its state fields "
            f"are {names}. Declare state with nn.state_field()."
        )
    _, previous = pending.get(id(layer), (layer, {}))
    pending[id(layer)] = (layer, {**previous, **dx.stop_gradient(values)})


def apply(model: Any, *args: Any, key: Any = None, **kwargs: Any) -> tuple[Any, Any]:
    """Call ``model`` and return its output with the model's updated state.

    ``y, model = nn.apply(model, x, key=key)`` calls ``model(x, key=key)``
    (the key is left out when it is ``None`` or the model takes none) and
    returns the output and a copy of ``model`` in which every layer that
    called :func:`update_state` has its new state, such as BatchNorm's
    running statistics in training mode. In test mode, or without stateful
    layers, the model comes back unchanged. It works inside ``dx.jit``,
    ``dx.grad`` (return the model as auxiliary output with ``has_aux=True``)
    and ``dx.value_and_grad``.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> bn = nn.train_mode(nn.BatchNorm(2))
        >>> y, bn = nn.apply(bn, np.array([[0.0, 1.0], [2.0, 3.0]]))
        >>> bn.running_mean.tolist()
        [0.1, 0.2]
    """
    token = _pending_updates.set({})
    try:
        if key is not None and accepts_key(model):
            out = model(*args, key=key, **kwargs)
        else:
            out = model(*args, **kwargs)
        pending = _pending_updates.get()
    finally:
        _pending_updates.reset(token)
    if not pending:
        return out, model

    applied: set[int] = set()

    def put_state(original: Any, module: Any) -> Any:
        entry = pending.get(id(original))
        if entry is None:
            return module
        applied.add(id(original))
        return dx.replace(module, **entry[1])

    _check_not_leaked(pending, (model, args, kwargs, key))
    new_model = map_modules(put_state, model)
    missing = [layer for identity, (layer, _) in pending.items() if identity not in applied]
    if missing:
        raise RuntimeError(
            f"{missing[0]!r} updated its state during nn.apply but is not part of the model passed to "
            "nn.apply (was it created inside the call?), so its new state has nowhere to go. Make it a "
            "field of the model."
        )
    return out, new_model


def _jax_trace(x: Any) -> Any:
    """Return the JAX trace of a traced JAX value, ``None`` for anything else."""
    jax = sys.modules.get("jax")
    if jax is None or not isinstance(x, jax.core.Tracer):
        return None
    return getattr(x, "_trace", None)


def _check_not_leaked(pending: dict[int, tuple[Any, dict[str, Any]]], inputs: Any) -> None:
    """Raise when a new state value was traced by a JAX transformation that began inside the model.

    A layer inside a ``dx.scan``, ``dx.cond`` or loop body on JAX computes
    its new state from values of the body's trace, which cease to exist
    when the body returns. Those values may not reach the returned model.
    Values traced by the transformations around ``apply`` (``dx.jit``,
    ``jax.vmap``) are fine: their traces are those of the inputs.
    """
    outer = {id(trace) for trace in map(_jax_trace, dx.tree_leaves(inputs)) if trace is not None}
    for layer, values in pending.values():
        for value in dx.tree_leaves(values):
            trace = _jax_trace(value)
            if trace is not None and id(trace) not in outer:
                raise RuntimeError(
                    f"{layer!r} updated its state inside a dx.scan, dx.cond or loop body (or another JAX "
                    "transformation that began inside the model), and values traced there cannot leave the "
                    "body. Call the layer outside control flow, or carry its state through the loop and "
                    "return it."
                )


def trainable(model: Any) -> Any:
    """Return a tree of the model's structure with ``True`` at trained arrays.

    State fields (running statistics) and leaves that are not arrays (the
    functions in a ``Chain``, say) are ``False``. Pass the tree as a mask
    to an optimiser so that weight decay and other rules leave state alone.

    Examples:
        >>> from difflux import nn
        >>> mask = nn.trainable(nn.BatchNorm(2))
        >>> mask.scale, mask.running_mean
        (True, False)
    """
    mask = dx.tree_map(dx.is_array, model)

    def freeze(original: Any, module: Any) -> Any:
        names = _state_field_names(module)
        if not names:
            return module
        return dx.replace(module, **{name: dx.tree_map(lambda _: False, getattr(module, name)) for name in names})

    return map_modules(freeze, mask)
