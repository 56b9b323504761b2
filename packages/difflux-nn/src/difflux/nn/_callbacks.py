"""The record of ``nn.fit`` and its hooks for user code: ``History``, ``Callback``, ``EarlyStopping``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass
class History:
    """The per-epoch record of a ``fit`` run.

    ``loss`` and ``val_loss`` hold the mean training and validation loss of
    each epoch (``val_loss`` stays empty without validation data).
    ``metrics`` maps each metric name to its per-epoch values, training
    metrics under their own name (``"accuracy"``) and validation metrics
    with a ``val_`` prefix (``"val_accuracy"``). ``history["name"]`` reads
    any of these lists.

    The training loss and metrics of an epoch are averages over its
    batches, taken while the parameters changed, in training mode (dropout
    active). Validation values are computed after the epoch, in test mode.
    """

    loss: list[float] = dataclasses.field(default_factory=list)
    val_loss: list[float] = dataclasses.field(default_factory=list)
    metrics: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)
    # Set by EarlyStopping: the epoch (counted from 0) whose model fit returns,
    # and whether training stopped before the last epoch.
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        """Return the number of epochs completed."""
        return len(self.loss)

    def __getitem__(self, name: str) -> list[float]:
        if name == "loss":
            return self.loss
        if name == "val_loss":
            return self.val_loss
        if name in self.metrics:
            return self.metrics[name]
        known = ["loss", "val_loss", *self.metrics]
        raise KeyError(f"the history has no record {name!r}; it has {', '.join(map(repr, known))}")

    def append(self, logs: dict[str, float], seconds: float) -> None:
        """Record one epoch's ``logs`` (``{"loss": ..., "val_loss": ..., metric: ...}``)."""
        for name, value in logs.items():
            if name == "loss":
                self.loss.append(value)
            elif name == "val_loss":
                self.val_loss.append(value)
            else:
                self.metrics.setdefault(name, []).append(value)
        self.epoch_seconds.append(seconds)


@dataclasses.dataclass
class FitState:
    """The state of a running ``fit``, passed to every callback hook.

    Callbacks read it and may replace ``model`` or set ``stop_training`` to
    end training after the current epoch. ``logs`` contains the finished
    epoch's values in ``on_epoch_end``. ``batch_loss`` is the last batch's
    loss as an array, not a float: converting it waits for the device, so
    read it only when needed.
    """

    model: Any
    opt_state: Any
    history: History
    epochs: int
    log_names: tuple[str, ...]
    epoch: int = 0
    step: int = 0
    logs: dict[str, float] = dataclasses.field(default_factory=dict)
    batch_loss: Any = None
    stop_training: bool = False


class Callback:
    """Base class of ``fit`` callbacks; override the hooks you need.

    Each hook receives the :class:`FitState`. A plain function in
    ``fit(callbacks=[...])`` is called as ``on_epoch_end``.
    """

    def on_fit_begin(self, state: FitState) -> None:
        """Run once before the first epoch."""

    def on_epoch_begin(self, state: FitState) -> None:
        """Run before each epoch."""

    def on_batch_end(self, state: FitState) -> None:
        """Run after each training step."""

    def on_epoch_end(self, state: FitState) -> None:
        """Run after each epoch, once ``state.logs`` contains its values."""

    def on_fit_end(self, state: FitState) -> None:
        """Run once after the last epoch, also after an early stop."""


class EpochEndFunction(Callback):
    """Adapts a plain function ``function(state)`` to an ``on_epoch_end`` hook."""

    def __init__(self, function: Any) -> None:
        self.function = function

    def on_epoch_end(self, state: FitState) -> None:
        self.function(state)


class EarlyStopping(Callback):
    """Stop training when a monitored value stops improving; return the best model.

    After each epoch the value named by ``monitor`` is compared with the
    best so far. It improves when it is lower by more than ``min_delta``
    (or higher, for ``mode="max"``). After ``patience`` epochs in a row
    without improvement training stops. With ``restore_best`` (the default)
    ``fit`` then returns the model of the best epoch, not the last one, and
    ``history.best_epoch`` records which epoch that was. The optimiser state
    that ``fit`` returns is always the last one.

    Args:
        patience: the number of epochs without improvement to wait.
        monitor: ``"val_loss"``, ``"loss"``, or a metric name such as
            ``"val_accuracy"``.
        min_delta: the least change that counts as an improvement.
        mode: ``"min"``, ``"max"``, or ``"auto"``, which is ``"max"`` for
            names containing ``accuracy`` and ``"min"`` otherwise.
        restore_best: whether ``fit`` returns the best epoch's model.
    """

    def __init__(
        self,
        patience: int = 5,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        *,
        mode: str = "auto",
        restore_best: bool = True,
    ) -> None:
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be at least 0, got {patience}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be at least 0, got {min_delta}")
        if mode == "auto":
            mode = "max" if "accuracy" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.patience = patience
        self.monitor = monitor
        self.min_delta = min_delta
        self.mode = mode
        self.restore_best = restore_best
        self.best = math.inf
        self.best_epoch: int | None = None
        self.best_model: Any = None
        self.wait = 0

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(patience={self.patience}, monitor={self.monitor!r}, min_delta={self.min_delta}, "
            f"mode={self.mode!r}, restore_best={self.restore_best})"
        )

    def on_fit_begin(self, state: FitState) -> None:
        if self.monitor not in state.log_names:
            hint = " Pass validation_data to fit." if self.monitor.startswith("val_") else ""
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, but fit records only "
                f"{', '.join(map(repr, state.log_names))}.{hint}"
            )
        self.best, self.best_epoch, self.best_model, self.wait = math.inf, None, None, 0

    def on_epoch_end(self, state: FitState) -> None:
        value = state.logs[self.monitor]
        # Minimising the negated value maximises the value.
        signed = value if self.mode == "min" else -value
        if signed < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = signed, state.epoch, 0
            if self.restore_best:
                self.best_model = state.model
            return
        self.wait += 1
        if self.wait >= self.patience:
            state.stop_training = True

    def on_fit_end(self, state: FitState) -> None:
        state.history.best_epoch = self.best_epoch
        if self.restore_best and self.best_model is not None:
            state.model = self.best_model
