"""Tests of nn.fit and nn.evaluate: training, history, callbacks, early stopping, jit and progress."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from conftest import needs_jax, to_numpy
from difflux import nn, optim
from difflux.nn import _fit


class Linear(dx.Module):
    """``y = x @ weight + bias``: a model without nn layers, called without a key."""

    weight: Any
    bias: Any

    def __call__(self, x: Any) -> Any:
        return x @ self.weight + self.bias


def _linear(backend: str, inputs: int = 3, outputs: int = 1) -> Linear:
    return Linear(dx.zeros((inputs, outputs), backend=backend), dx.zeros(outputs, backend=backend))


def _regression(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return x, x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3


def _classification(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def _classifier(backend: str) -> nn.Chain:
    k1, k2 = dx.random.split(dx.random.key(1, backend=backend))
    with dx.backend(backend):
        return nn.Chain(nn.Dense(4, 16, nn.relu, key=k1), nn.BatchNorm(16), nn.Dropout(0.1), nn.Dense(16, 2, key=k2))


def _fit_quietly(*args: Any, **kwargs: Any) -> nn.FitResult:
    kwargs.setdefault("progress", False)
    return nn.fit(*args, **kwargs)


def test_fit_loss_decreases(backend):
    result = _fit_quietly(
        _linear(backend), nn.mse, optim.Adam(0.1), _regression(), epochs=5, batch_size=16, key=dx.random.key(0)
    )
    losses = result.history.loss
    assert len(losses) == 5
    assert losses[-1] < 0.1 * losses[0]


def test_fit_result_unpacks(key):
    model, opt_state, history = _fit_quietly(
        _linear("numpy"), nn.mse, optim.Descent(0.1), _regression(), epochs=1, key=key
    )
    assert isinstance(model, Linear)
    assert isinstance(history, nn.History)
    assert opt_state is not None


def test_fit_history_contents():
    x, y = _classification()
    result = _fit_quietly(
        _classifier("numpy"),
        nn.logit_cross_entropy,
        optim.Adam(1e-2),
        (x[:64], y[:64]),
        epochs=3,
        batch_size=16,
        key=dx.random.key(0),
        validation_data=(x[64:], y[64:]),
        metrics=["accuracy"],
    )
    history = result.history
    assert history.epochs == 3
    assert len(history.val_loss) == 3
    assert set(history.metrics) == {"accuracy", "val_accuracy"}
    assert len(history["val_accuracy"]) == 3
    assert all(0.0 <= value <= 1.0 for value in history["accuracy"])
    assert len(history.epoch_seconds) == 3
    assert history.best_epoch is None
    assert not history.stopped_early


def test_fit_validation_loss_is_exact_mean():
    x, y = _classification()
    result = _fit_quietly(
        _classifier("numpy"),
        nn.logit_cross_entropy,
        optim.Adam(1e-2),
        (x[:64], y[:64]),
        epochs=1,
        batch_size=10,
        key=dx.random.key(0),
        validation_data=(x[64:], y[64:]),
        metrics=["accuracy"],
    )
    prediction = result.model(x[64:])
    assert result.history.val_loss[0] == pytest.approx(float(nn.logit_cross_entropy(prediction, y[64:])))
    assert result.history["val_accuracy"][0] == pytest.approx(float(nn.accuracy(prediction, y[64:])))


def test_fit_returns_test_mode_model():
    result = _fit_quietly(
        _classifier("numpy"),
        nn.logit_cross_entropy,
        optim.Adam(1e-2),
        _classification(),
        epochs=1,
        key=dx.random.key(0),
    )
    assert not result.model.layers[1].training
    assert not result.model.layers[2].training


def test_fit_updates_batchnorm_state():
    model = _classifier("numpy")
    result = _fit_quietly(
        model, nn.logit_cross_entropy, optim.Adam(1e-2), _classification(), epochs=1, key=dx.random.key(0)
    )
    running_mean = result.model.layers[1].running_mean
    assert np.all(model.layers[1].running_mean == 0.0)
    assert np.any(running_mean != 0.0)


def test_fit_same_key_same_result():
    def run(seed: int) -> nn.FitResult:
        return _fit_quietly(
            _classifier("numpy"),
            nn.logit_cross_entropy,
            optim.Adam(1e-2),
            _classification(),
            epochs=2,
            key=dx.random.key(seed),
        )

    first, second, other = run(0), run(0), run(1)
    assert first.history.loss == second.history.loss
    assert first.history.loss != other.history.loss


def test_fit_with_data_loader():
    x, y = _regression()
    loader = nn.DataLoader((x, y), batch_size=8, key=dx.random.key(3))
    result = _fit_quietly(_linear("numpy"), nn.mse, optim.Adam(0.1), loader, epochs=2, key=dx.random.key(0))
    assert result.history.epochs == 2


def test_fit_resumes_from_opt_state():
    # Without shuffling or dropout, two epochs in one call equal one epoch
    # each in two calls that pass the optimiser state along.
    data = _regression()
    kwargs: dict[str, Any] = {"batch_size": 16, "shuffle": False, "key": dx.random.key(0)}
    whole = _fit_quietly(_linear("numpy"), nn.mse, optim.Adam(0.1), data, epochs=2, **kwargs)
    half = _fit_quietly(_linear("numpy"), nn.mse, optim.Adam(0.1), data, epochs=1, **kwargs)
    rest = _fit_quietly(half.model, nn.mse, optim.Adam(0.1), data, epochs=1, opt_state=half.opt_state, **kwargs)
    np.testing.assert_allclose(rest.model.weight, whole.model.weight, rtol=1e-12)


def test_fit_trains_only_unfrozen_leaves():
    model = _classifier("numpy")
    mask = nn.freeze(model, "layers.0")
    result = _fit_quietly(
        model,
        nn.logit_cross_entropy,
        optim.Adam(1e-2),
        _classification(),
        epochs=1,
        key=dx.random.key(0),
        trainable=mask,
    )
    np.testing.assert_array_equal(result.model.layers[0].weight, model.layers[0].weight)
    np.testing.assert_array_equal(result.model.layers[0].bias, model.layers[0].bias)
    assert np.any(result.model.layers[3].weight != model.layers[3].weight)
    assert np.any(result.model.layers[1].running_mean != 0.0)


def test_fit_custom_metric_names():
    def max_error(prediction: Any, target: Any) -> Any:
        return dx.max(dx.abs(prediction - target))

    result = _fit_quietly(
        _linear("numpy"),
        nn.mse,
        optim.Adam(0.1),
        _regression(),
        epochs=1,
        key=dx.random.key(0),
        metrics={"worst": max_error, "mae": "mae"},
    )
    assert set(result.history.metrics) == {"worst", "mae"}


# --------------------------------------------------------------------------
# Early stopping and callbacks
# --------------------------------------------------------------------------


def _diverging_validation() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    # Training pulls the model towards y = x @ w; the validation targets are
    # -x @ w, so every epoch of training makes the validation loss worse.
    x, y = _regression()
    return (x, y), (x, -y)


def test_early_stopping_triggers():
    train, validation = _diverging_validation()
    result = _fit_quietly(
        _linear("numpy"),
        nn.mse,
        optim.Adam(0.05),
        train,
        epochs=20,
        key=dx.random.key(0),
        validation_data=validation,
        early_stopping=nn.EarlyStopping(patience=2),
    )
    history = result.history
    assert history.epochs == 3
    assert history.stopped_early
    assert history.best_epoch == 0


def test_early_stopping_restores_best_model():
    train, validation = _diverging_validation()
    models = []
    result = _fit_quietly(
        _linear("numpy"),
        nn.mse,
        optim.Adam(0.05),
        train,
        epochs=20,
        key=dx.random.key(0),
        validation_data=validation,
        early_stopping=(2, "val_loss", 0.0),
        callbacks=[lambda state: models.append(state.model)],
    )
    np.testing.assert_array_equal(result.model.weight, models[0].weight)
    assert np.any(models[-1].weight != models[0].weight)


def test_early_stopping_min_delta():
    # With a learning rate of 0 the loss never changes, so nothing improves.
    result = _fit_quietly(
        _linear("numpy"),
        nn.mse,
        optim.Descent(0.0),
        _regression(),
        epochs=10,
        key=dx.random.key(0),
        early_stopping=nn.EarlyStopping(patience=1, monitor="loss", min_delta=1e-3),
    )
    assert result.history.epochs == 2


def test_early_stopping_needs_validation():
    with pytest.raises(ValueError, match=r"monitors 'val_loss'.*Pass validation_data"):
        _fit_quietly(
            _linear("numpy"),
            nn.mse,
            optim.Descent(0.1),
            _regression(),
            epochs=1,
            key=dx.random.key(0),
            early_stopping=nn.EarlyStopping(),
        )


def test_early_stopping_auto_mode():
    assert nn.EarlyStopping(monitor="val_accuracy").mode == "max"
    assert nn.EarlyStopping(monitor="val_loss").mode == "min"


class Recorder(nn.Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_fit_begin(self, state: nn.FitState) -> None:
        self.calls.append("fit_begin")

    def on_epoch_begin(self, state: nn.FitState) -> None:
        self.calls.append(f"epoch_begin {state.epoch}")

    def on_batch_end(self, state: nn.FitState) -> None:
        self.calls.append(f"batch_end {state.step}")

    def on_epoch_end(self, state: nn.FitState) -> None:
        self.calls.append(f"epoch_end {state.epoch} {sorted(state.logs)}")

    def on_fit_end(self, state: nn.FitState) -> None:
        self.calls.append("fit_end")


def test_callbacks_called_in_order():
    recorder = Recorder()
    epochs_seen = []
    _fit_quietly(
        _linear("numpy"),
        nn.mse,
        optim.Descent(0.1),
        _regression(20),
        epochs=2,
        batch_size=10,
        key=dx.random.key(0),
        callbacks=[recorder, lambda state: epochs_seen.append(state.epoch)],
    )
    assert recorder.calls == [
        "fit_begin",
        "epoch_begin 0",
        "batch_end 1",
        "batch_end 2",
        "epoch_end 0 ['loss']",
        "epoch_begin 1",
        "batch_end 3",
        "batch_end 4",
        "epoch_end 1 ['loss']",
        "fit_end",
    ]
    assert epochs_seen == [0, 1]


def test_callback_stops_training():
    def stop_after_first(state: nn.FitState) -> None:
        state.stop_training = True

    result = _fit_quietly(
        _linear("numpy"),
        nn.mse,
        optim.Descent(0.1),
        _regression(),
        epochs=5,
        key=dx.random.key(0),
        callbacks=[stop_after_first],
    )
    assert result.history.epochs == 1
    assert result.history.stopped_early


def test_callback_replaces_model():
    def reset(state: nn.FitState) -> None:
        state.model = _linear("numpy")

    result = _fit_quietly(
        _linear("numpy"), nn.mse, optim.Descent(0.1), _regression(), epochs=2, key=dx.random.key(0), callbacks=[reset]
    )
    assert np.all(result.model.weight == 0.0)


# --------------------------------------------------------------------------
# jit
# --------------------------------------------------------------------------


def _assert_same_runs(compiled: nn.FitResult, eager: nn.FitResult) -> None:
    np.testing.assert_allclose(compiled.history.loss, eager.history.loss, rtol=1e-10)
    for a, b in zip(dx.tree_leaves(compiled.model), dx.tree_leaves(eager.model)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-9, atol=1e-12)


@needs_jax
def test_jit_matches_eager_on_jax():
    # The first two steps, one epoch of two batches, with dropout keys.
    x, y = _classification(32)
    k1, k2 = dx.random.split(dx.random.key(1, backend="jax"))

    def run(jit: bool) -> nn.FitResult:
        model = nn.Chain(nn.Dense(4, 8, nn.relu, key=k1), nn.Dropout(0.2), nn.Dense(8, 2, key=k2))
        return _fit_quietly(
            model,
            nn.logit_cross_entropy,
            optim.Adam(1e-2),
            (x, y),
            epochs=1,
            batch_size=16,
            key=dx.random.key(0),
            jit=jit,
        )

    _assert_same_runs(run(True), run(False))


@needs_jax
@pytest.mark.slow
def test_jit_matches_eager_with_batchnorm():
    x, y = _classification(32)

    def run(jit: bool) -> nn.FitResult:
        return _fit_quietly(
            _classifier("jax"),
            nn.logit_cross_entropy,
            optim.Adam(1e-2),
            (x, y),
            epochs=1,
            batch_size=16,
            key=dx.random.key(0),
            jit=jit,
        )

    _assert_same_runs(run(True), run(False))


@needs_jax
def test_fit_compiles_one_step(monkeypatch):
    compiled = []
    jit = dx.jit

    def counting_jit(function: Any, **kwargs: Any) -> Any:
        wrapped = jit(function, **kwargs)
        compiled.append(wrapped)
        return wrapped

    monkeypatch.setattr(_fit.dx, "jit", counting_jit)
    x, y = _regression(32)
    _fit_quietly(_linear("jax"), nn.mse, optim.Adam(0.1), (x, y), epochs=3, batch_size=16, key=dx.random.key(0))
    train_step = compiled[0]
    # Full batches of one shape: one compilation for all six steps.
    assert len(train_step._cache) == 1


# --------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------


def test_progress_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    nn.fit(_linear("numpy"), nn.mse, optim.Descent(0.1), _regression(), epochs=2, key=dx.random.key(0))
    err = capsys.readouterr().err
    assert "epoch 2/2" in err
    assert "loss=" in err


def test_progress_without_tqdm_prints_lines(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setattr(_fit, "_warned_about_tqdm", False)
    with pytest.warns(UserWarning, match=r"tqdm, which is not installed.*difflux-nn\[progress\]") as warned:
        nn.fit(_linear("numpy"), nn.mse, optim.Descent(0.1), _regression(), epochs=2, key=dx.random.key(0))
    assert warned[0].filename == __file__
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("epoch 1/2: loss=")
    assert lines[1].startswith("epoch 2/2: loss=")


def test_progress_off_is_silent(capsys):
    _fit_quietly(_linear("numpy"), nn.mse, optim.Descent(0.1), _regression(), epochs=1, key=dx.random.key(0))
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


# --------------------------------------------------------------------------
# evaluate and errors
# --------------------------------------------------------------------------


def test_evaluate_exact_means(backend):
    x, y = _classification(50)
    model = _classifier(backend)
    result = nn.evaluate(model, nn.logit_cross_entropy, (x, y), batch_size=16, metrics=["accuracy"])
    prediction = nn.test_mode(model)(dx.asarray(x, backend=backend))
    assert result["loss"] == pytest.approx(float(nn.logit_cross_entropy(prediction, dx.asarray(y, backend=backend))))
    assert result["accuracy"] == pytest.approx(float(nn.accuracy(prediction, dx.asarray(y, backend=backend))))


def test_accuracy_one_hot_targets():
    prediction = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert float(nn.accuracy(prediction, np.eye(2)[[0, 1, 1]])) == pytest.approx(2 / 3)


def test_accuracy_rejects_wrong_target_shape():
    with pytest.raises(ValueError, match=r"class labels of shape \(3,\)"):
        nn.accuracy(np.zeros((3, 2)), np.zeros((3, 5)))


def test_fit_rejects_non_optimiser():
    with pytest.raises(TypeError, match=r"dx\.Optimiser protocol"):
        _fit_quietly(_linear("numpy"), nn.mse, object(), _regression(), epochs=1, key=dx.random.key(0))


def test_fit_rejects_unpaired_data():
    with pytest.raises(TypeError, match=r"pair of arrays \(inputs, targets\)"):
        _fit_quietly(_linear("numpy"), nn.mse, optim.Descent(0.1), _regression()[0], epochs=1, key=dx.random.key(0))


def test_fit_rejects_conflicting_batch_size():
    loader = nn.DataLoader(_regression(), batch_size=8, shuffle=False)
    with pytest.raises(ValueError, match="conflicts with batch_size=16"):
        _fit_quietly(
            _linear("numpy"), nn.mse, optim.Descent(0.1), loader, epochs=1, batch_size=16, key=dx.random.key(0)
        )


def test_fit_rejects_nothing_trainable():
    model = _linear("numpy")
    mask = nn.freeze(model, ["weight", "bias"])
    with pytest.raises(ValueError, match="no trainable leaf"):
        _fit_quietly(model, nn.mse, optim.Descent(0.1), _regression(), epochs=1, key=dx.random.key(0), trainable=mask)


def test_fit_rejects_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric 'precision'"):
        _fit_quietly(
            _linear("numpy"),
            nn.mse,
            optim.Descent(0.1),
            _regression(),
            epochs=1,
            key=dx.random.key(0),
            metrics=["precision"],
        )


# --------------------------------------------------------------------------
# The custom loop of the README
# --------------------------------------------------------------------------


def test_custom_loop_one_screen(backend):
    # The loop of the package README, on the classification data.
    images, labels = _classification()
    key = dx.random.key(0, backend=backend)
    data_key, dropout_key = dx.random.split(key)

    model = nn.train_mode(_classifier(backend))
    rule = optim.Adam(1e-2)
    params, rest = nn.partition_trainable(model)
    opt_state = rule.init(params)

    def loss_fn(params, rest, x, y, key):
        prediction, model = nn.apply(dx.combine(params, rest), x, key=key)
        return nn.logit_cross_entropy(prediction, y), model

    @dx.jit
    def step(params, rest, opt_state, x, y, key):
        (loss, model), grads = dx.value_and_grad(loss_fn, has_aux=True)(params, rest, x, y, key)
        updates, opt_state = rule.update(grads, opt_state, params)
        _, rest = nn.partition_trainable(model)
        return dx.apply_updates(params, updates), rest, opt_state, loss

    loader = nn.DataLoader((images, labels), batch_size=16, key=data_key, backend=backend)
    losses = []
    for epoch in range(3):
        for i, (x, y) in enumerate(loader):
            step_key = dx.random.fold_in(dropout_key, epoch * len(loader) + i)
            params, rest, opt_state, loss = step(params, rest, opt_state, x, y, step_key)
            losses.append(float(loss))
    model = nn.test_mode(dx.combine(params, rest))

    accuracy = nn.evaluate(model, nn.logit_cross_entropy, (images, labels), metrics=["accuracy"])["accuracy"]
    assert np.mean(losses[-6:]) < np.mean(losses[:6])
    assert accuracy > 0.85
