"""Recurrent cells (``RNNCell``, ``LSTMCell``, ``GRUCell``) and the sequence
layers over them (``RNN``, ``LSTM``, ``GRU``).

A cell computes one time step: ``output, state = cell(x, state)``. A
sequence layer runs its cell over the time axis with ``dx.scan``, which is a
Python loop on NumPy and one ``jax.lax.scan`` on JAX, and returns every
step's output and the final state.

Weights follow PyTorch's layout, so that trained PyTorch weights can be
copied: ``weight_ih`` is ``(gates * hidden, in)``, ``weight_hh`` is
``(gates * hidden, hidden)``, with the gates stacked in PyTorch's order.
The input projection ``x @ weight_ih.T + bias`` of every time step is
computed in one matrix product before the loop, so the loop itself
multiplies by ``weight_hh`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import difflux.core as dx

from ._initialisers import glorot_uniform, orthogonal, zeros
from ._layer import Layer, as_positive_int, backend_of, format_call, name_of, shape_error

Initialiser = Callable[..., Any]


class _Cell(Layer):
    """The parts every cell shares: the input projection, the zero state and the checks."""

    weight_ih: Any
    weight_hh: Any
    bias: Any
    # The number of gate blocks stacked in weight_ih and weight_hh.
    _gates = 1

    def _init_weights(
        self,
        in_features: int,
        hidden_features: int,
        key: Any,
        bias: bool,
        init: Initialiser,
        recurrent_init: Initialiser,
        bias_init: Initialiser,
        dtype: Any,
    ) -> Any:
        owner = type(self).__name__
        in_features = as_positive_int(in_features, "in_features", owner)
        hidden_features = as_positive_int(hidden_features, "hidden_features", owner)
        input_key, recurrent_key, bias_key, extra_key = dx.random.split(key, 4)
        rows = self._gates * hidden_features
        self.weight_ih = init(input_key, (rows, in_features), dtype)
        self.weight_hh = recurrent_init(recurrent_key, (rows, hidden_features), dtype)
        self.bias = bias_init(bias_key, (rows,), dtype) if bias else None
        return extra_key

    @property
    def in_features(self) -> int:
        return self.weight_ih.shape[1]

    @property
    def hidden_features(self) -> int:
        return self.weight_hh.shape[1]

    def _zeros(self, batch_shape: tuple[int, ...]) -> Any:
        weight = self.weight_hh
        return dx.zeros(batch_shape + (self.hidden_features,), dtype=weight.dtype, backend=backend_of(weight))

    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> Any:
        """Return the zero state for inputs of shape ``(*batch_shape, in_features)``."""
        return self._zeros(tuple(batch_shape))

    def _project(self, x: Any) -> Any:
        projected = dx.matmul(x, dx.matrix_transpose(self.weight_ih))
        return projected + self.bias if self.bias is not None else projected

    def _gate(self, values: Any, index: int) -> Any:
        size = self.hidden_features
        return values[..., index * size : (index + 1) * size]

    def _step(self, projected: Any, state: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def _check_input(self, x: Any) -> None:
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise shape_error(self, f"inputs with {self.in_features} features on the last axis", x)

    def __call__(self, x: Any, state: Any = None, *, key: Any = None) -> tuple[Any, Any]:
        self._check_input(x)
        if state is None:
            state = self.initial_state(tuple(x.shape[:-1]))
        return self._step(self._project(x), state)

    def _repr_positional(self) -> list[str]:
        return [f"{self.in_features} => {self.hidden_features}"]

    def __repr__(self) -> str:
        keywords = {"bias": self.bias is not None}
        return format_call(type(self).__name__, self._repr_positional(), keywords, {"bias": True})


class RNNCell(_Cell):
    """``h' = activation(x @ weight_ih.T + h @ weight_hh.T + bias)``: an Elman RNN step.

    ``output, h' = cell(x, h)`` with ``output = h'``. Shapes: ``x`` is
    ``(..., in)``, ``h`` is ``(..., hidden)`` (zeros when ``None``).
    ``weight_ih`` is ``(hidden, in)`` with ``glorot_uniform``, ``weight_hh`` is
    ``(hidden, hidden)`` with ``orthogonal``, and the single ``bias`` is
    ``(hidden,)`` with zeros (PyTorch's two biases add up to it).

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> cell = nn.RNNCell(3, 5, key=dx.random.key(0, backend="numpy"))
        >>> cell
        RNNCell(3 => 5)
        >>> output, h = cell(dx.ones((2, 3)))
        >>> output.shape, h.shape
        ((2, 5), (2, 5))
    """

    activation: Callable[[Any], Any]

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        activation: Callable[[Any], Any] = dx.tanh,
        *,
        key: Any,
        bias: bool = True,
        init: Initialiser = glorot_uniform,
        recurrent_init: Initialiser = orthogonal,
        bias_init: Initialiser = zeros,
        dtype: Any = None,
    ) -> None:
        self._init_weights(in_features, hidden_features, key, bias, init, recurrent_init, bias_init, dtype)
        self.activation = activation

    def _step(self, projected: Any, state: Any) -> tuple[Any, Any]:
        h = self.activation(projected + dx.matmul(state, dx.matrix_transpose(self.weight_hh)))
        return h, h

    def _repr_positional(self) -> list[str]:
        positional = super()._repr_positional()
        if self.activation is not dx.tanh:
            positional.append(name_of(self.activation))
        return positional


class LSTMCell(_Cell):
    """One LSTM step (Hochreiter and Schmidhuber, 1997), with PyTorch's equations and gate order.

    With ``a = x @ weight_ih.T + h @ weight_hh.T + bias`` split into the
    input, forget, cell and output blocks ``i, f, g, o``::

        c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h' = sigmoid(o) * tanh(c')

    ``output, (h', c') = cell(x, (h, c))`` with ``output = h'``. Shapes: ``x``
    is ``(..., in)``, ``h`` and ``c`` are ``(..., hidden)`` (zeros when the
    state is ``None``). ``weight_ih`` is ``(4 * hidden, in)`` with
    ``glorot_uniform``, ``weight_hh`` is ``(4 * hidden, hidden)`` with
    ``orthogonal``, and ``bias`` is ``(4 * hidden,)`` with zeros.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> cell = nn.LSTMCell(3, 5, key=dx.random.key(0, backend="numpy"))
        >>> cell
        LSTMCell(3 => 5)
        >>> output, (h, c) = cell(dx.ones((2, 3)))
        >>> output.shape, c.shape
        ((2, 5), (2, 5))
    """

    _gates = 4

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        key: Any,
        bias: bool = True,
        init: Initialiser = glorot_uniform,
        recurrent_init: Initialiser = orthogonal,
        bias_init: Initialiser = zeros,
        dtype: Any = None,
    ) -> None:
        self._init_weights(in_features, hidden_features, key, bias, init, recurrent_init, bias_init, dtype)

    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> tuple[Any, Any]:
        """Return the zero state ``(h, c)`` for inputs of shape ``(*batch_shape, in_features)``."""
        return self._zeros(tuple(batch_shape)), self._zeros(tuple(batch_shape))

    def _step(self, projected: Any, state: Any) -> tuple[Any, Any]:
        h, c = state
        a = projected + dx.matmul(h, dx.matrix_transpose(self.weight_hh))
        i, f, g, o = (self._gate(a, index) for index in range(4))
        c = dx.sigmoid(f) * c + dx.sigmoid(i) * dx.tanh(g)
        h = dx.sigmoid(o) * dx.tanh(c)
        return h, (h, c)


class GRUCell(_Cell):
    """One GRU step (Cho et al., 2014), with PyTorch's equations and gate order.

    With ``p = x @ weight_ih.T + bias`` and ``q = h @ weight_hh.T``, each
    split into the reset, update and candidate blocks ``r, z, n``::

        r = sigmoid(p_r + q_r)
        z = sigmoid(p_z + q_z)
        n = tanh(p_n + r * (q_n + bias_hn))
        h' = (1 - z) * n + z * h

    ``output, h' = cell(x, h)`` with ``output = h'``. ``bias_hn`` sits inside
    the reset product, so it cannot be merged into ``bias``; the other blocks
    of PyTorch's ``bias_hh`` can. Shapes: ``x`` is ``(..., in)``, ``h`` is
    ``(..., hidden)``. ``weight_ih`` is ``(3 * hidden, in)`` with
    ``glorot_uniform``, ``weight_hh`` is ``(3 * hidden, hidden)`` with
    ``orthogonal``, ``bias`` is ``(3 * hidden,)`` and ``bias_hn`` is
    ``(hidden,)``, both zeros.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> cell = nn.GRUCell(3, 5, key=dx.random.key(0, backend="numpy"))
        >>> cell
        GRUCell(3 => 5)
        >>> cell(dx.ones((2, 3)))[0].shape
        (2, 5)
    """

    bias_hn: Any
    _gates = 3

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        key: Any,
        bias: bool = True,
        init: Initialiser = glorot_uniform,
        recurrent_init: Initialiser = orthogonal,
        bias_init: Initialiser = zeros,
        dtype: Any = None,
    ) -> None:
        extra_key = self._init_weights(in_features, hidden_features, key, bias, init, recurrent_init, bias_init, dtype)
        self.bias_hn = bias_init(extra_key, (hidden_features,), dtype) if bias else None

    def _step(self, projected: Any, state: Any) -> tuple[Any, Any]:
        q = dx.matmul(state, dx.matrix_transpose(self.weight_hh))
        r = dx.sigmoid(self._gate(projected, 0) + self._gate(q, 0))
        z = dx.sigmoid(self._gate(projected, 1) + self._gate(q, 1))
        q_n = self._gate(q, 2)
        if self.bias_hn is not None:
            q_n = q_n + self.bias_hn
        n = dx.tanh(self._gate(projected, 2) + r * q_n)
        h = (1.0 - z) * n + z * state
        return h, h


# --------------------------------------------------------------------------
# Sequence layers
# --------------------------------------------------------------------------


class _Recurrence(Layer):
    """Runs a cell over the time axis with ``dx.scan``."""

    cell: Any
    batch_first: bool
    reverse: bool

    def __call__(self, x: Any, state: Any = None, *, key: Any = None) -> tuple[Any, Any]:
        cell = self.cell
        layout = "(N, T, features)" if self.batch_first else "(T, N, features)"
        if x.ndim not in (2, 3) or x.shape[-1] != cell.in_features:
            raise shape_error(
                self, f"an input of shape {layout} or (T, features) with features = {cell.in_features}", x
            )
        time_axis = 1 if x.ndim == 3 and self.batch_first else 0
        steps = dx.moveaxis(x, time_axis, 0) if time_axis else x
        if state is None:
            state = cell.initial_state(tuple(steps.shape[1:-1]))
        projected = cell._project(steps)

        def step(carry: Any, projected_x: Any) -> tuple[Any, Any]:
            output, new_state = cell._step(projected_x, carry)
            return new_state, output

        final_state, outputs = dx.scan(step, state, projected, reverse=self.reverse)
        if time_axis:
            outputs = dx.moveaxis(outputs, 0, time_axis)
        return outputs, final_state

    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> Any:
        """Return the cell's zero state for a batch of shape ``batch_shape``."""
        return self.cell.initial_state(batch_shape)

    def __repr__(self) -> str:
        positional = self.cell._repr_positional()
        keywords = {"batch_first": self.batch_first, "reverse": self.reverse, "bias": self.cell.bias is not None}
        return format_call(
            type(self).__name__, positional, keywords, {"batch_first": True, "reverse": False, "bias": True}
        )


class RNN(_Recurrence):
    """``y[t], h[t] = cell(x[t], h[t-1])`` for each time step ``t``: an :class:`RNNCell` over a sequence.

    ``outputs, final_state = layer(x, state=None)``. Shapes: ``x`` is
    ``(N, T, in)`` with ``batch_first=True`` (the default), ``(T, N, in)``
    with ``batch_first=False``, or ``(T, in)`` without a batch axis.
    ``outputs`` has the layout of ``x`` with ``hidden`` features and contains
    every step's output; ``final_state`` is ``h`` after the last step.
    ``state`` is the initial state (zeros when ``None``). With
    ``reverse=True`` the steps run from last to first and ``outputs`` stays
    in input order, so two layers make a bidirectional one. Other keyword
    arguments go to the cell.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> layer = nn.RNN(3, 5, key=dx.random.key(0, backend="numpy"))
        >>> layer
        RNN(3 => 5)
        >>> outputs, state = layer(dx.ones((2, 7, 3)))
        >>> outputs.shape
        (2, 7, 5)
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        activation: Callable[[Any], Any] = dx.tanh,
        *,
        key: Any,
        batch_first: bool = True,
        reverse: bool = False,
        **cell_options: Any,
    ) -> None:
        self.cell = RNNCell(in_features, hidden_features, activation, key=key, **cell_options)
        self.batch_first = batch_first
        self.reverse = reverse


class LSTM(_Recurrence):
    """``y[t], (h[t], c[t]) = cell(x[t], (h[t-1], c[t-1]))`` for each ``t``: an :class:`LSTMCell` over a sequence.

    ``outputs, final_state = layer(x, state=None)``. Shapes: ``x`` is
    ``(N, T, in)`` with ``batch_first=True`` (the default), ``(T, N, in)``
    with ``batch_first=False``, or ``(T, in)`` without a batch axis.
    ``outputs`` has the layout of ``x`` with ``hidden`` features and contains
    every step's output; ``final_state`` is ``(h, c)`` after the last step.
    ``state`` is the initial state (zeros when ``None``). With
    ``reverse=True`` the steps run from last to first and ``outputs`` stays
    in input order, so two layers make a bidirectional one. Other keyword
    arguments go to the cell.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> layer = nn.LSTM(3, 5, key=dx.random.key(0, backend="numpy"))
        >>> layer
        LSTM(3 => 5)
        >>> outputs, state = layer(dx.ones((2, 7, 3)))
        >>> outputs.shape
        (2, 7, 5)
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        key: Any,
        batch_first: bool = True,
        reverse: bool = False,
        **cell_options: Any,
    ) -> None:
        self.cell = LSTMCell(in_features, hidden_features, key=key, **cell_options)
        self.batch_first = batch_first
        self.reverse = reverse


class GRU(_Recurrence):
    """``y[t], h[t] = cell(x[t], h[t-1])`` for each time step ``t``: a :class:`GRUCell` over a sequence.

    ``outputs, final_state = layer(x, state=None)``. Shapes: ``x`` is
    ``(N, T, in)`` with ``batch_first=True`` (the default), ``(T, N, in)``
    with ``batch_first=False``, or ``(T, in)`` without a batch axis.
    ``outputs`` has the layout of ``x`` with ``hidden`` features and contains
    every step's output; ``final_state`` is ``h`` after the last step.
    ``state`` is the initial state (zeros when ``None``). With
    ``reverse=True`` the steps run from last to first and ``outputs`` stays
    in input order, so two layers make a bidirectional one. Other keyword
    arguments go to the cell.

    Examples:
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> layer = nn.GRU(3, 5, key=dx.random.key(0, backend="numpy"))
        >>> layer
        GRU(3 => 5)
        >>> outputs, state = layer(dx.ones((2, 7, 3)))
        >>> outputs.shape
        (2, 7, 5)
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        key: Any,
        batch_first: bool = True,
        reverse: bool = False,
        **cell_options: Any,
    ) -> None:
        self.cell = GRUCell(in_features, hidden_features, key=key, **cell_options)
        self.batch_first = batch_first
        self.reverse = reverse
