"""Containers: ``Chain``, ``Parallel`` and ``SkipConnection``.

A container contains layers, functions or any other callables. When it is called with
a random ``key`` it splits the key among the children that accept one
(every ``nn.Layer``, and callables with a ``key`` parameter), so one key per
step reaches every dropout layer, however deeply nested, with a different
stream each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import difflux.core as dx

from ._layer import Layer, accepts_key, call_with_key, name_of, split_key


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _show(child: Any) -> str:
    return repr(child) if isinstance(child, dx.Module) else name_of(child)


def _multiline(name: str, entries: list[str]) -> str:
    if not entries:
        return f"{name}()"
    body = "\n".join(_indent(entry) + "," for entry in entries)
    return f"{name}(\n{body}\n)"


def _collect(kind: str, layers: tuple[Any, ...], named: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
    if layers and named:
        raise TypeError(f"{kind} takes layers either by position or by name, not both")
    if len(layers) == 1 and isinstance(layers[0], list | tuple):
        layers = tuple(layers[0])
    for index, layer in enumerate(layers or named.values()):
        if not callable(layer):
            label = index if layers else list(named)[index]
            raise TypeError(f"{kind}: entry {label!r} is a {type(layer).__name__}, not a layer or function")
    return tuple(layers) if layers else dict(named)


def _keys_for(children: list[Any], key: Any) -> list[Any]:
    """Return one key per child: split keys for the children that take keys, ``None`` for the rest."""
    if key is None:
        return [None] * len(children)
    takes = [accepts_key(child) for child in children]
    fresh = iter(split_key(key, sum(takes)))
    return [next(fresh) if take else None for take in takes]


class Chain(Layer):
    """``y = layers[-1](...layers[1](layers[0](x)))``: the layers applied in sequence.

    Layers are given by position, ``Chain(a, b, c)``, as a list,
    ``Chain([a, b, c])``, or by name, ``Chain(encoder=a, decoder=b)``. Any
    callable works as a layer (``nn.relu``, a lambda). ``chain[i]`` and
    ``chain["name"]`` return a layer and ``chain[i:j]`` a shorter chain.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> k1, k2 = dx.random.split(dx.random.key(0, backend="numpy"))
        >>> model = nn.Chain(nn.Dense(4, 8, nn.relu, key=k1), nn.Dropout(0.2), nn.Dense(8, 2, key=k2))
        >>> model
        Chain(
          Dense(4 => 8, relu),
          Dropout(0.2),
          Dense(8 => 2),
        )
        >>> model(dx.ones((3, 4))).shape
        (3, 2)
    """

    layers: tuple[Any, ...] | dict[str, Any]

    def __init__(self, *layers: Any, **named: Any) -> None:
        self.layers = _collect("Chain", layers, named)

    def _children(self) -> list[Any]:
        return list(self.layers.values()) if isinstance(self.layers, dict) else list(self.layers)

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        children = self._children()
        for child, child_key in zip(children, _keys_for(children, key)):
            x = call_with_key(child, x, child_key)
        return x

    def __getitem__(self, index: int | slice | str) -> Any:
        layers = self.layers
        if isinstance(layers, dict):
            if isinstance(index, str):
                return layers[index]
            names = list(layers)
            if isinstance(index, slice):
                return Chain(**{name: layers[name] for name in names[index]})
            return layers[names[index]]
        if isinstance(index, str):
            raise TypeError(
                f"this Chain was built with positional layers, so it has no layer named {index!r}; index it by position"
            )
        if isinstance(index, slice):
            return Chain(*layers[index])
        return layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._children())

    def _label(self) -> str:
        return "Chain"

    def __repr__(self) -> str:
        if isinstance(self.layers, dict):
            return _multiline("Chain", [f"{name}={_show(child)}" for name, child in self.layers.items()])
        return _multiline("Chain", [_show(child) for child in self.layers])


class Parallel(Layer):
    """``y = connection(layers[0](x), layers[1](x), ...)``: the layers applied side by side.

    Every layer receives the same input ``x``, except that a tuple input with
    one entry per layer gives entry ``i`` to layer ``i`` (as in Flux). The
    outputs are combined by ``connection(*outputs)``; with
    ``connection=None`` they are returned as a tuple. Layers are given by
    position or by name, as in :class:`Chain`.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> k1, k2 = dx.random.split(dx.random.key(0, backend="numpy"))
        >>> join = lambda *ys: dx.concat(ys, axis=-1)
        >>> both = nn.Parallel(join, nn.Dense(4, 2, key=k1), nn.Dense(4, 3, key=k2))
        >>> both(dx.ones((5, 4))).shape
        (5, 5)
    """

    connection: Callable[..., Any] | None
    layers: tuple[Any, ...] | dict[str, Any]

    def __init__(self, connection: Callable[..., Any] | None, *layers: Any, **named: Any) -> None:
        if connection is not None and not callable(connection):
            raise TypeError(f"Parallel: connection must be a function or None, got {type(connection).__name__}")
        self.connection = connection
        self.layers = _collect("Parallel", layers, named)

    def _children(self) -> list[Any]:
        return list(self.layers.values()) if isinstance(self.layers, dict) else list(self.layers)

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        children = self._children()
        if isinstance(x, tuple) and len(x) == len(children):
            inputs = list(x)
        else:
            inputs = [x] * len(children)
        keys = _keys_for(children, key)
        outputs = [call_with_key(child, xi, k) for child, xi, k in zip(children, inputs, keys)]
        if self.connection is None:
            return tuple(outputs)
        return self.connection(*outputs)

    def __getitem__(self, index: int | str) -> Any:
        if isinstance(index, str):
            if not isinstance(self.layers, dict):
                raise TypeError(
                    f"this Parallel was built with positional layers, so it has no layer named {index!r}; index it by position"
                )
            return self.layers[index]
        return self._children()[index]

    def __len__(self) -> int:
        return len(self.layers)

    def _label(self) -> str:
        return f"Parallel({_show(self.connection)})" if self.connection is not None else "Parallel"

    def __repr__(self) -> str:
        entries = [_show(self.connection) if self.connection is not None else "None"]
        if isinstance(self.layers, dict):
            entries += [f"{name}={_show(child)}" for name, child in self.layers.items()]
        else:
            entries += [_show(child) for child in self.layers]
        return _multiline("Parallel", entries)


class SkipConnection(Layer):
    """``y = connection(layer(x), x)``: a residual connection, ``layer(x) + x`` by default.

    Shapes: with the default ``connection=dx.add`` the layer must keep the
    input's shape (or broadcast with it). Pass another function, such as
    ``lambda y, x: dx.concat([y, x], axis=1)``, to join otherwise.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> block = nn.SkipConnection(nn.Dense(4, 4, nn.relu, key=dx.random.key(0, backend="numpy")))
        >>> block
        SkipConnection(
          Dense(4 => 4, relu),
          add,
        )
        >>> block(dx.ones((2, 4))).shape
        (2, 4)
    """

    layer: Any
    connection: Callable[[Any, Any], Any]

    def __init__(self, layer: Any, connection: Callable[[Any, Any], Any] = dx.add) -> None:
        if not callable(layer) or not callable(connection):
            raise TypeError("SkipConnection needs a callable layer and a callable connection")
        self.layer = layer
        self.connection = connection

    def __call__(self, x: Any, *, key: Any = None) -> Any:
        return self.connection(call_with_key(self.layer, x, key), x)

    def _label(self) -> str:
        return f"SkipConnection({_show(self.connection)})"

    def __repr__(self) -> str:
        return _multiline("SkipConnection", [_show(self.layer), _show(self.connection)])
