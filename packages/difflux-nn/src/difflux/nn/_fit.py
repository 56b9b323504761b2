"""``fit`` and ``evaluate``: the standard supervised training loop.

One training step is a pure function of the trainable parameters, the rest
of the model, the optimiser state, a batch and a random key. It computes the
loss and the gradients (``dx.value_and_grad``), requests updates from the
optimiser, applies them, and takes the new running statistics of layers such
as BatchNorm from ``nn.apply``. ``dx.jit`` compiles that whole step into one
XLA program on JAX and leaves it eager on NumPy. Everything around the step
(batching, averaging, callbacks, the progress bar) is plain Python.

A loop with other needs (several models, a loss that is not a function of
predictions and targets) is short to write by hand: the package README
shows one in a screen of code.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

import difflux.core as dx

from ._callbacks import Callback, EarlyStopping, EpochEndFunction, FitState, History
from ._data import DataLoader
from ._freeze import trainable_flags
from ._metrics import Metric, resolve_metrics
from ._state import apply, test_mode, train_mode

_DEFAULT_BATCH_SIZE = 32


class FitResult(NamedTuple):
    """The result of :func:`fit`, unpacked as ``model, opt_state, history = nn.fit(...)``."""

    model: Any
    opt_state: Any
    history: History


# --------------------------------------------------------------------------
# Backends, data and masks
# --------------------------------------------------------------------------


def _model_backend(model: Any) -> str:
    for leaf in dx.tree_leaves(model):
        if dx.is_array(leaf) and not isinstance(leaf, np.ndarray | np.generic):
            return "jax"
        if isinstance(leaf, np.ndarray):
            return "numpy"
    return dx.default_backend()


def _key_on(key: Any, backend: str) -> Any:
    """Return the random key as raw key data of ``backend``."""
    is_numpy = isinstance(key, np.ndarray)
    if (backend == "numpy") == is_numpy:
        return key
    if backend == "numpy":
        return np.asarray(key)
    return dx.asarray(key, backend="jax")


def _loader(data: Any, batch_size: int | None, shuffle: bool, key: Any, backend: str, name: str) -> DataLoader:
    if isinstance(data, DataLoader):
        if batch_size is not None and batch_size != data.batch_size:
            raise ValueError(
                f"fit: {name} is a DataLoader with batch_size={data.batch_size}, which conflicts with "
                f"batch_size={batch_size}; leave batch_size out when passing a DataLoader"
            )
        return data
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(
            f"fit: {name} must be a pair of arrays (inputs, targets) or an nn.DataLoader yielding such pairs; "
            f"got {type(data).__name__}"
        )
    size = _DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    return DataLoader(tuple(data), size, shuffle=shuffle, key=key if shuffle else None, backend=backend)


def _pair(batch: Any, backend: str) -> tuple[Any, Any]:
    if not (isinstance(batch, tuple | list) and len(batch) == 2):
        raise TypeError(
            f"fit: each batch must be a pair (inputs, targets), got {type(batch).__name__}; build the DataLoader "
            "from a pair of arrays, or write a custom loop for other data"
        )
    x, y = batch
    return dx.asarray(x, backend=backend), dx.asarray(y, backend=backend)


def _split(model: Any, flags: list[bool]) -> tuple[Any, Any]:
    """Split the leaves of ``model`` by ``flags`` into (trained, rest), ``None`` filling the gaps."""
    leaves, treedef = dx.tree_flatten(model)
    if len(leaves) != len(flags):
        raise ValueError(
            f"fit: the model now has {len(leaves)} leaves but had {len(flags)} when training began; "
            "a callback must not change the model's structure"
        )
    trained = dx.tree_unflatten(treedef, [leaf if flag else None for leaf, flag in zip(leaves, flags)])
    rest = dx.tree_unflatten(treedef, [None if flag else leaf for leaf, flag in zip(leaves, flags)])
    return trained, rest


# --------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------


def make_train_step(
    loss_fn: Callable[[Any, Any], Any], optimiser: Any, metrics: dict[str, Metric], flags: list[bool]
) -> Callable[..., Any]:
    """Return ``step(params, rest, opt_state, x, y, key) -> (params, rest, opt_state, loss, metric values)``."""

    def train_step(params: Any, rest: Any, opt_state: Any, x: Any, y: Any, key: Any) -> Any:
        def objective(trained: Any) -> Any:
            prediction, new_model = apply(dx.combine(trained, rest), x, key=key)
            return loss_fn(prediction, y), (prediction, new_model)

        (loss, (prediction, new_model)), grads = dx.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        params = dx.apply_updates(params, updates)
        # The rest of the model comes from apply, because its copy contains the
        # new running statistics. Frozen parameters pass through unchanged.
        _, rest = _split(new_model, flags)
        values = tuple(metric(prediction, y) for metric in metrics.values())
        return params, rest, opt_state, loss, values

    return train_step


def make_eval_step(loss_fn: Callable[[Any, Any], Any], metrics: dict[str, Metric]) -> Callable[..., Any]:
    """Return ``step(model, x, y) -> (loss, metric values)`` for a model in test mode."""

    def eval_step(model: Any, x: Any, y: Any) -> Any:
        prediction = model(x)
        return loss_fn(prediction, y), tuple(metric(prediction, y) for metric in metrics.values())

    return eval_step


class _Averages:
    """Batch values of one pass over the data, averaged with the batch sizes as weights."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.values: list[tuple[Any, ...]] = []
        self.sizes: list[int] = []

    def add(self, loss: Any, metric_values: tuple[Any, ...], size: int) -> None:
        # Arrays are kept as they are: converting each to a float would wait
        # for the device after every step.
        self.values.append((loss, *metric_values))
        self.sizes.append(size)

    def means(self, prefix: str = "") -> dict[str, float]:
        weights = np.asarray(self.sizes, dtype=np.float64)
        table = np.array([[float(value) for value in row] for row in self.values], dtype=np.float64)
        means = weights @ table / weights.sum()
        return {prefix + name: float(mean) for name, mean in zip(self.names, means)}


def _evaluate_loader(
    eval_step: Callable[..., Any], model: Any, loader: DataLoader, names: Sequence[str], backend: str, prefix: str
) -> dict[str, float]:
    averages = _Averages(names)
    for batch in loader.batches(0):
        x, y = _pair(batch, backend)
        loss, metric_values = eval_step(model, x, y)
        averages.add(loss, metric_values, int(x.shape[0]))
    return averages.means(prefix)


def evaluate(
    model: Any,
    loss_fn: Callable[[Any, Any], Any],
    data: Any,
    *,
    batch_size: int | None = None,
    metrics: Sequence[str | Metric] | Mapping[str, Metric] = (),
    jit: bool | None = None,
) -> dict[str, float]:
    """Return the mean loss and metrics of ``model`` in test mode over ``data``.

    ``data`` is a pair ``(inputs, targets)`` or an ``nn.DataLoader``; the
    result is ``{"loss": ..., "accuracy": ...}``, exact means over the
    examples. ``jit`` works as in :func:`fit`.

    Examples:
        >>> import numpy as np
        >>> from difflux import nn
        >>> scores = lambda x: x  # a "model" that returns its input as class scores
        >>> nn.evaluate(scores, nn.logit_cross_entropy, (np.eye(3), np.arange(3)), metrics=["accuracy"])["accuracy"]
        1.0
    """
    model = test_mode(model)
    backend = _model_backend(model)
    metric_functions = resolve_metrics(metrics)
    loader = _loader(data, batch_size, False, None, backend, "data")
    step = make_eval_step(loss_fn, metric_functions)
    if jit is not False:
        step = dx.jit(step)
    return _evaluate_loader(step, model, loader, ("loss", *metric_functions), backend, "")


# --------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------

_warned_about_tqdm = False


class _Progress:
    """A tqdm bar per epoch, one printed line per epoch without tqdm, or silence."""

    def __init__(self, enabled: bool, epochs: int) -> None:
        global _warned_about_tqdm
        self.epochs = epochs
        self.enabled = enabled
        self.tqdm: Any = None
        self.bar: Any = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            if not _warned_about_tqdm:
                _warned_about_tqdm = True
                warnings.warn(
                    "nn.fit shows a progress bar with tqdm, which is not installed; printing one line per epoch "
                    "instead. Install it with `pip install 'difflux-nn[progress]'`, or pass progress=False.",
                    stacklevel=3,
                )
            return
        self.tqdm = tqdm

    def start_epoch(self, epoch: int, batches: int) -> None:
        if self.tqdm is not None:
            self.bar = self.tqdm(total=batches, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch", leave=True)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def end_epoch(self, epoch: int, logs: dict[str, float], seconds: float) -> None:
        if not self.enabled:
            return
        summary = ", ".join(f"{name}={value:.4g}" for name, value in logs.items())
        if self.bar is not None:
            self.bar.set_postfix_str(summary, refresh=True)
            self.bar.close()
            self.bar = None
            return
        print(f"epoch {epoch + 1}/{self.epochs}: {summary} ({seconds:.1f} s)", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------


def _callback_list(early_stopping: Any, callbacks: Sequence[Any]) -> list[Callback]:
    result: list[Callback] = []
    if early_stopping is not None:
        if isinstance(early_stopping, tuple):
            early_stopping = EarlyStopping(*early_stopping)
        if not isinstance(early_stopping, EarlyStopping):
            raise TypeError(
                f"fit: early_stopping must be an nn.EarlyStopping or a tuple (patience, monitor, min_delta), "
                f"got {early_stopping!r}"
            )
        result.append(early_stopping)
    for callback in callbacks:
        if isinstance(callback, Callback):
            result.append(callback)
        elif callable(callback):
            result.append(EpochEndFunction(callback))
        else:
            raise TypeError(f"fit: a callback must be an nn.Callback or a function of the FitState, got {callback!r}")
    return result


def _overrides(callback: Callback, hook: str) -> bool:
    return getattr(type(callback), hook) is not getattr(Callback, hook)


def fit(
    model: Any,
    loss_fn: Callable[[Any, Any], Any],
    optimiser: dx.Optimiser,
    data: Any,
    *,
    epochs: int,
    key: Any,
    batch_size: int | None = None,
    shuffle: bool = True,
    validation_data: Any = None,
    metrics: Sequence[str | Metric] | Mapping[str, Metric] = (),
    early_stopping: EarlyStopping | tuple[Any, ...] | None = None,
    callbacks: Sequence[Callback | Callable[[FitState], Any]] = (),
    trainable: Any = None,
    opt_state: Any = None,
    progress: bool = True,
    jit: bool | None = None,
) -> FitResult:
    """Train ``model`` to minimise ``loss_fn(model(x), y)`` over ``data`` and return it with its history.

    Each epoch visits the training batches in a new random order. Each step
    calls the model in training mode through ``nn.apply`` with a fresh key
    (for dropout) and takes the gradient of the batch loss with respect to
    the trainable leaves. It then applies the optimiser's update and keeps
    the new running statistics of BatchNorm layers. After each epoch the model is
    evaluated in test mode on ``validation_data``, the history records the
    means, and callbacks run. The returned model is in test mode.

    Args:
        model: a ``dx.Module`` (or any callable structure of arrays).
        loss_fn: ``loss_fn(prediction, target)`` returning the mean loss of
            a batch, such as ``nn.logit_cross_entropy``.
        optimiser: any object with ``init(params)`` and ``update(grads,
            state, params)``, the ``dx.Optimiser`` protocol, such as
            ``optim.Adam(1e-3)``.
        data: a pair ``(inputs, targets)`` of arrays indexed by example on
            their first axis, or an ``nn.DataLoader`` yielding such pairs.
        epochs: the number of passes over ``data``.
        key: the random key (``dx.random.key(seed)``) of the shuffling and
            of the dropout masks; one key makes a run reproducible.
        batch_size: the examples per step for array data (32 when
            ``None``); a DataLoader brings its own.
        shuffle: whether to shuffle array data each epoch.
        validation_data: a pair or DataLoader evaluated after each epoch.
        metrics: names of built-in metrics (``"accuracy"``,
            ``"binary_accuracy"``, ``"mse"``, ``"mae"``), functions
            ``metric(prediction, target)``, or a dict naming them.
        early_stopping: an :class:`EarlyStopping`, or a tuple of its
            arguments ``(patience, monitor, min_delta)``.
        callbacks: :class:`Callback` objects, or functions called with the
            :class:`FitState` after each epoch.
        trainable: a mask of leaves to train, from ``nn.trainable`` or
            ``nn.freeze``; ``nn.trainable(model)`` by default, which leaves
            out running statistics. Other leaves get no gradient and no
            update.
        opt_state: the optimiser state from an earlier ``fit`` on the same
            model and mask, to continue training; ``optimiser.init`` when
            ``None``.
        progress: whether to show a progress bar (tqdm, an optional extra:
            ``pip install 'difflux-nn[progress]'``). Without tqdm one line per
            epoch is printed to standard error instead.
        jit: ``None`` or ``True`` compiles each step with ``dx.jit``, which
            compiles on JAX and runs eagerly on NumPy; ``False`` runs the
            step eagerly everywhere, for debugging with print and pdb.

    Returns:
        ``FitResult(model, opt_state, history)``, a named tuple.

    Raises:
        ValueError: when no leaf is trainable, or a callback or mask does
            not fit the model.
    """
    if not isinstance(optimiser, dx.Optimiser):
        raise TypeError(
            f"fit: the optimiser must have init(params) and update(grads, state, params) methods (the "
            f"dx.Optimiser protocol), got {type(optimiser).__name__}. Use a rule such as optim.Adam(1e-3)."
        )
    if epochs < 0:
        raise ValueError(f"fit: epochs must be at least 0, got {epochs}")
    backend = _model_backend(model)
    shuffle_key, dropout_key = dx.random.split(_key_on(key, backend))
    loader = _loader(data, batch_size, shuffle, shuffle_key, backend, "data")
    val_loader = None
    if validation_data is not None:
        val_loader = _loader(validation_data, batch_size, False, None, backend, "validation_data")
    metric_functions = resolve_metrics(metrics)
    log_names = ("loss", *metric_functions)
    if val_loader is not None:
        log_names += tuple(f"val_{name}" for name in log_names)

    model = train_mode(model)
    flags = trainable_flags(model, trainable)
    if not any(flags):
        raise ValueError(
            "fit: the model has no trainable leaf (floating-point arrays where the trainable mask is true), "
            "so there is nothing to train"
        )
    params, rest = _split(model, flags)
    if opt_state is None:
        opt_state = optimiser.init(params)

    train_step = make_train_step(loss_fn, optimiser, metric_functions, flags)
    eval_step = make_eval_step(loss_fn, metric_functions)
    if jit is not False:
        train_step, eval_step = dx.jit(train_step), dx.jit(eval_step)

    hooks = _callback_list(early_stopping, callbacks)
    batch_hooks = [hook for hook in hooks if _overrides(hook, "on_batch_end")]
    state = FitState(model=model, opt_state=opt_state, history=History(), epochs=epochs, log_names=log_names)
    reporter = _Progress(progress, epochs)
    for hook in hooks:
        hook.on_fit_begin(state)

    for epoch in range(epochs):
        state.epoch = epoch
        for hook in hooks:
            hook.on_epoch_begin(state)
        started = time.perf_counter()
        averages = _Averages(("loss", *metric_functions))
        reporter.start_epoch(epoch, len(loader))

        for batch in loader.batches(epoch):
            x, y = _pair(batch, backend)
            step_key = dx.random.fold_in(dropout_key, state.step)
            params, rest, opt_state, loss, metric_values = train_step(params, rest, opt_state, x, y, step_key)
            averages.add(loss, metric_values, int(x.shape[0]))
            state.step += 1
            state.batch_loss = loss
            if batch_hooks:
                state.model, state.opt_state = dx.combine(params, rest), opt_state
                for hook in batch_hooks:
                    hook.on_batch_end(state)
            reporter.advance()

        state.model, state.opt_state = dx.combine(params, rest), opt_state
        logs = averages.means()
        if val_loader is not None:
            logs.update(
                _evaluate_loader(eval_step, test_mode(state.model), val_loader, averages.names, backend, "val_")
            )
        seconds = time.perf_counter() - started
        state.logs = logs
        state.history.append(logs, seconds)
        reporter.end_epoch(epoch, logs, seconds)
        for hook in hooks:
            hook.on_epoch_end(state)

        # Callbacks may replace the model or the optimiser state.
        params, rest = _split(state.model, flags)
        opt_state = state.opt_state
        if state.stop_training:
            state.history.stopped_early = epoch < epochs - 1
            break

    for hook in hooks:
        hook.on_fit_end(state)
    return FitResult(test_mode(state.model), state.opt_state, state.history)
