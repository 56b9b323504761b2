"""``DataLoader``: mini-batches of in-memory arrays, shuffled with an explicit key."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

import difflux.core as dx


def _as_host_array(value: Any, name: str) -> np.ndarray:
    array = np.asarray(dx.stop_gradient(value))
    if array.ndim == 0:
        raise ValueError(f"DataLoader: {name} is a scalar; every array needs a first axis that indexes the examples")
    return array


class DataLoader:
    """Iterate over mini-batches of arrays held in memory.

    ``arrays`` is one array, a tuple or list of arrays (``(x, y)``), or a
    dict of arrays; every array indexes the examples along its first axis.
    Each batch has the same form: a tuple ``(x_batch, y_batch)`` for
    ``(x, y)``, a dict for a dict. Every ``for`` loop over the loader is
    one epoch. With ``shuffle=True`` each epoch visits the examples in a new
    order, the permutation drawn with ``dx.random.fold_in(key, epoch)``, so
    epoch ``e`` of two loaders with the same key and data is the same.

    The arrays stay NumPy arrays in host memory (JAX arrays are copied there
    once) and each batch is converted to ``backend`` as it is yielded.

    Args:
        arrays: the data, as above.
        batch_size: the number of examples per batch.
        shuffle: whether to visit the examples in a random order each epoch.
        key: the random key of the shuffling (``dx.random.key(seed)``);
            required when ``shuffle`` is true.
        drop_last: whether to leave out the last batch when it is smaller
            than ``batch_size``. Otherwise it is yielded, smaller.
        backend: ``"numpy"`` or ``"jax"``, the backend of the yielded
            batches; the default backend (``dx.default_backend()``) when
            ``None``.

    Examples:
        >>> import numpy as np
        >>> import difflux.core as dx
        >>> from difflux import nn
        >>> x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
        >>> loader = nn.DataLoader((x, y), batch_size=2, key=dx.random.key(0, backend="numpy"))
        >>> len(loader), [batch[1].shape for batch in loader]
        (3, [(2,), (2,), (1,)])
    """

    def __init__(
        self,
        arrays: Any,
        batch_size: int,
        *,
        shuffle: bool = True,
        key: Any = None,
        drop_last: bool = False,
        backend: str | None = None,
    ) -> None:
        try:
            batch_size = operator.index(batch_size)
        except TypeError:
            raise TypeError(f"DataLoader: batch_size must be an int, got {batch_size!r}") from None
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be at least 1, got {batch_size}")
        if shuffle and key is None:
            raise TypeError(
                "DataLoader: shuffle=True needs a random key, e.g. key=dx.random.key(0); "
                "pass shuffle=False to visit the examples in order"
            )
        if backend not in (None, "numpy", "jax"):
            raise ValueError(f"DataLoader: backend must be 'numpy', 'jax' or None, got {backend!r}")

        self._kind, self._names, self._arrays = self._collect(arrays)
        lengths = {name: len(array) for name, array in zip(self._names, self._arrays)}
        if len(set(lengths.values())) > 1:
            described = ", ".join(f"{name}: {length}" for name, length in lengths.items())
            raise ValueError(
                f"DataLoader: the arrays have different numbers of examples along their first axis ({described}); "
                "each must hold one entry per example"
            )
        self.num_examples = len(self._arrays[0])
        if self.num_examples == 0:
            raise ValueError("DataLoader: the arrays contain no examples (their first axis has length 0)")
        if drop_last and self.num_examples < batch_size:
            raise ValueError(
                f"DataLoader: drop_last=True with {self.num_examples} examples and batch_size={batch_size} "
                "would yield no batch; lower the batch size or pass drop_last=False"
            )
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.key = key
        self.drop_last = drop_last
        self.backend = backend if backend is not None else dx.default_backend()
        # The epoch the next `for` loop runs; see set_epoch.
        self.epoch = 0

    @staticmethod
    def _collect(arrays: Any) -> tuple[str, list[Any], list[np.ndarray]]:
        """Return the container kind, a name per array (for messages) and the arrays."""
        if isinstance(arrays, Mapping):
            if not arrays:
                raise ValueError("DataLoader: the dict of arrays is empty")
            names = list(arrays)
            return "dict", names, [_as_host_array(arrays[name], f"arrays[{name!r}]") for name in names]
        if isinstance(arrays, Sequence) and not isinstance(arrays, str):
            if not arrays:
                raise ValueError("DataLoader: the sequence of arrays is empty")
            names = [f"arrays[{index}]" for index in range(len(arrays))]
            return "tuple", names, [_as_host_array(array, name) for array, name in zip(arrays, names)]
        if dx.is_array(arrays):
            return "array", ["the array"], [_as_host_array(arrays, "the array")]
        raise TypeError(
            f"DataLoader: expected an array, a tuple or list of arrays, or a dict of arrays; got {type(arrays).__name__}"
        )

    def __len__(self) -> int:
        """Return the number of batches in one epoch."""
        if self.drop_last:
            return self.num_examples // self.batch_size
        return math.ceil(self.num_examples / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """Return the example indices of epoch ``epoch`` in the order they are visited."""
        if not self.shuffle:
            return np.arange(self.num_examples)
        epoch_key = dx.random.fold_in(self.key, operator.index(epoch))
        return np.asarray(dx.random.permutation(epoch_key, self.num_examples))

    def batches(self, epoch: int) -> Iterator[Any]:
        """Yield the batches of epoch ``epoch``, without changing :attr:`epoch`."""
        order = self.order(epoch)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self._batch(order[start : start + self.batch_size])

    def _batch(self, indices: np.ndarray) -> Any:
        parts = [dx.asarray(array[indices], backend=self.backend) for array in self._arrays]
        if self._kind == "dict":
            return dict(zip(self._names, parts))
        if self._kind == "tuple":
            return tuple(parts)
        return parts[0]

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``for`` loop run epoch ``epoch`` (to resume training, say)."""
        self.epoch = operator.index(epoch)

    def __iter__(self) -> Iterator[Any]:
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.num_examples} examples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, backend={self.backend!r})"
        )
