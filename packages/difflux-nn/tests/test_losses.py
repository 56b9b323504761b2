"""Losses: closed forms, extreme inputs, reductions, targets and gradients."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import difflux.core as dx
from conftest import needs_jax, on_backends, to_numpy
from difflux import nn
from difflux.core.testing import check_grads

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(4, 3))
LABELS = np.array([0, 2, 1, 2])
ONE_HOT = np.eye(3)[LABELS]
PROBS = special.softmax(LOGITS, axis=-1)


def test_mse_mae_huber_values(backend, to_backend):
    y_hat, y = np.array([0.0, 1.0, 4.0]), np.array([0.5, 1.0, 1.0])
    assert float(nn.mse(to_backend(y_hat), to_backend(y))) == pytest.approx(np.mean((y_hat - y) ** 2))
    assert float(nn.mae(to_backend(y_hat), to_backend(y))) == pytest.approx(np.mean(np.abs(y_hat - y)))
    r = np.abs(y_hat - y)
    expected = np.where(r <= 1.0, 0.5 * r**2, r - 0.5)
    assert float(nn.huber(to_backend(y_hat), to_backend(y))) == pytest.approx(expected.mean())
    huber_2 = np.where(r <= 2.0, 0.5 * r**2, 2.0 * (r - 1.0))
    assert float(nn.huber(to_backend(y_hat), to_backend(y), delta=2.0)) == pytest.approx(huber_2.mean())


def test_reductions(backend, to_backend):
    y_hat, y = to_backend([1.0, 2.0, 3.0]), to_backend([0.0, 0.0, 0.0])
    assert float(nn.mse(y_hat, y, reduction="sum")) == 14.0
    np.testing.assert_allclose(to_numpy(nn.mse(y_hat, y, reduction="none")), [1.0, 4.0, 9.0])
    with pytest.raises(ValueError, match="reduction='average' is not one of"):
        nn.mse(y_hat, y, reduction="average")


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"mse: the prediction has shape \(3, 1\) but the target has shape \(3,\)"):
        nn.mse(np.ones((3, 1)), np.ones(3))


def test_logit_cross_entropy_matches_closed_form(backend, to_backend):
    expected = -np.sum(ONE_HOT * special.log_softmax(LOGITS, axis=-1), axis=-1)
    by_index = nn.logit_cross_entropy(to_backend(LOGITS), dx.asarray(LABELS, backend=backend), reduction="none")
    by_one_hot = nn.logit_cross_entropy(to_backend(LOGITS), to_backend(ONE_HOT), reduction="none")
    np.testing.assert_allclose(to_numpy(by_index), expected)
    np.testing.assert_allclose(to_numpy(by_one_hot), expected)
    assert float(nn.logit_cross_entropy(to_backend(LOGITS), to_backend(ONE_HOT))) == pytest.approx(expected.mean())


def test_cross_entropy_class_axis(backend, to_backend):
    # Classes on axis 1 of (N, C, L), as for per-position predictions.
    logits = RNG.normal(size=(2, 3, 5))
    labels = RNG.integers(0, 3, size=(2, 5))
    one_hot = np.moveaxis(np.eye(3)[labels], -1, 1)
    expected = -np.sum(one_hot * special.log_softmax(logits, axis=1), axis=1)
    loss = nn.logit_cross_entropy(to_backend(logits), dx.asarray(labels, backend=backend), axis=1, reduction="none")
    np.testing.assert_allclose(to_numpy(loss), expected)


def test_cross_entropy_equals_logit_form(backend, to_backend):
    a = nn.cross_entropy(to_backend(PROBS), dx.asarray(LABELS, backend=backend))
    b = nn.logit_cross_entropy(to_backend(LOGITS), dx.asarray(LABELS, backend=backend))
    assert float(a) == pytest.approx(float(b), rel=1e-12)


def test_nll_of_log_softmax(backend, to_backend):
    log_p = special.log_softmax(LOGITS, axis=-1)
    expected = -log_p[np.arange(4), LABELS]
    np.testing.assert_allclose(
        to_numpy(nn.nll(to_backend(log_p), dx.asarray(LABELS, backend=backend), reduction="none")), expected
    )


def test_nll_ignores_minus_infinity_of_other_classes(backend, to_backend):
    log_p = to_backend([[0.0, -np.inf]])
    loss, grad = dx.value_and_grad(lambda lp: nn.nll(lp, to_backend([[1.0, 0.0]])))(log_p)
    assert float(loss) == 0.0
    np.testing.assert_array_equal(to_numpy(grad), [[-1.0, 0.0]])


def test_label_smoothing(backend, to_backend):
    smoothed = ONE_HOT * 0.9 + 0.1 / 3
    expected = -np.sum(smoothed * special.log_softmax(LOGITS, axis=-1), axis=-1).mean()
    labels = dx.asarray(LABELS, backend=backend)
    loss = nn.logit_cross_entropy(to_backend(LOGITS), labels, label_smoothing=0.1)
    assert float(loss) == pytest.approx(expected)


def test_logit_cross_entropy_extreme_logits(backend, to_backend):
    logits = to_backend([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]])
    labels = dx.asarray(np.array([0, 0]), backend=backend)
    loss, grad = dx.value_and_grad(lambda z: nn.logit_cross_entropy(z, labels, reduction="sum"))(logits)
    assert float(loss) == pytest.approx(2e4)
    # The gradient is softmax(z) - one_hot(label).
    np.testing.assert_allclose(to_numpy(grad), [[0.0, 0.0, 0.0], [-1.0, 1.0, 0.0]], atol=1e-12)


def test_binary_cross_entropy_at_zero_and_one(backend, to_backend):
    p, y = to_backend([0.0, 1.0, 0.0, 1.0]), to_backend([0.0, 1.0, 1.0, 0.0])
    loss, grad = dx.value_and_grad(lambda p: nn.binary_cross_entropy(p, y, reduction="sum"))(p)
    eps = np.finfo(np.float64).eps
    assert float(loss) == pytest.approx(-2 * np.log(eps), rel=1e-6)
    assert np.all(np.isfinite(to_numpy(grad)))
    assert to_numpy(nn.binary_cross_entropy(p, y, reduction="none"))[:2] == pytest.approx([0.0, 0.0], abs=1e-15)


def test_binary_cross_entropy_matches_closed_form(backend, to_backend):
    p, y = np.array([0.1, 0.6, 0.95]), np.array([0.0, 1.0, 0.3])
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(
        to_numpy(nn.binary_cross_entropy(to_backend(p), to_backend(y), eps=0.0, reduction="none")), expected
    )


def test_logit_binary_cross_entropy(backend, to_backend):
    x, y = np.array([-1e4, -2.0, 0.5, 1e4]), np.array([0.0, 1.0, 0.3, 1.0])
    loss = nn.logit_binary_cross_entropy(to_backend(x), to_backend(y), reduction="none")
    p = special.expit(x[1:3])
    expected_middle = -(y[1:3] * np.log(p) + (1 - y[1:3]) * np.log(1 - p))
    np.testing.assert_allclose(to_numpy(loss), [0.0, *expected_middle, 0.0], atol=1e-12)
    grad = dx.grad(lambda z: nn.logit_binary_cross_entropy(z, to_backend(y), reduction="sum"))(to_backend(x))
    np.testing.assert_allclose(to_numpy(grad), special.expit(x) - y, atol=1e-12)


def test_binary_label_smoothing(backend, to_backend):
    x, y = to_backend([0.3]), to_backend([1.0])
    smoothed = nn.logit_binary_cross_entropy(x, y, label_smoothing=0.2)
    assert float(smoothed) == pytest.approx(float(nn.logit_binary_cross_entropy(x, to_backend([0.9]))))


def test_kl_divergence(backend, to_backend):
    q = special.softmax(RNG.normal(size=(2, 4)), axis=-1)
    p = np.array([[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    expected = np.sum(special.rel_entr(p, q), axis=-1)
    np.testing.assert_allclose(
        to_numpy(nn.kl_divergence(to_backend(q), to_backend(p), eps=0.0, reduction="none")), expected
    )
    assert float(nn.kl_divergence(to_backend(p), to_backend(p))) == pytest.approx(0.0, abs=1e-12)


def test_index_target_shape_error():
    with pytest.raises(ValueError, match=r"class-index targets must have .* \(4,\), got \(4, 1\)"):
        nn.logit_cross_entropy(LOGITS, np.zeros((4, 1), dtype=np.int64))


def _general_logit_cross_entropy(logits, labels, axis=-1):
    """Return the per-example loss of the general path: -sum(where(mask, -log_softmax, 0))."""
    log_p = dx.log_softmax(logits, axis=axis)
    classes = dx.reshape(dx.arange(logits.shape[axis]), (-1,) + (1,) * (logits.ndim - 1 - axis % logits.ndim))
    mask = dx.expand_dims(labels, axis=axis) == classes
    return dx.sum(dx.where(mask, -log_p, 0.0), axis=axis)


@pytest.mark.parametrize(("shape", "axis"), [((4, 3), -1), ((2, 3, 5), 1), ((3, 2, 4), 0)])
def test_class_index_path_matches_general_path(shape, axis):
    # The index path computes logsumexp(z) - z[label]: the same values and
    # gradients as the masked sum of -log_softmax(z), bit for bit.
    logits = RNG.normal(size=shape)
    labels = RNG.integers(0, shape[axis], size=tuple(n for i, n in enumerate(shape) if i != axis % len(shape)))
    loss, grad = dx.value_and_grad(lambda z: nn.logit_cross_entropy(z, labels, axis=axis, reduction="sum"))(logits)
    expected_loss, expected_grad = dx.value_and_grad(
        lambda z: dx.sum(_general_logit_cross_entropy(z, labels, axis=axis))
    )(logits)
    assert float(loss) == float(expected_loss)
    np.testing.assert_array_equal(grad, expected_grad)


def test_class_index_perfect_prediction_is_positive_zero():
    loss = nn.logit_cross_entropy(np.array([[0.0, -np.inf]]), np.array([0]), reduction="none")
    assert loss.tolist() == [0.0]
    assert not np.signbit(loss[0])


@pytest.mark.parametrize("labels", [np.array([0, 3, 1, 2]), np.array([0, -1, 1, 2])])
def test_class_index_out_of_range_raises(labels):
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 3\), got indices from"):
        nn.logit_cross_entropy(LOGITS, labels)


def test_class_index_batched_targets_under_vmap():
    calls = []

    def per_example(logits, label):
        calls.append(1)
        return nn.logit_cross_entropy(logits[None], label[None])

    out = dx.vmap(per_example)(LOGITS, LABELS)
    assert len(calls) == 1  # batched labels take the general path, which has batching rules
    expected = -special.log_softmax(LOGITS, axis=-1)[np.arange(4), LABELS]
    np.testing.assert_allclose(out, expected, rtol=1e-14)


def test_class_index_targets_under_jit():
    jax = pytest.importorskip("jax")
    step = jax.jit(dx.value_and_grad(lambda z, y: nn.logit_cross_entropy(z, y)))
    loss, grad = step(jax.numpy.asarray(LOGITS), jax.numpy.asarray(LABELS))
    expected_loss, expected_grad = dx.value_and_grad(lambda z: nn.logit_cross_entropy(z, LABELS))(LOGITS)
    assert float(loss) == pytest.approx(float(expected_loss), rel=1e-14)
    np.testing.assert_allclose(np.asarray(grad), expected_grad, rtol=1e-13, atol=1e-16)


def test_list_and_boolean_targets(backend, to_backend):
    assert float(nn.mse(to_backend([1.0, 2.0]), [1.0, 2.0])) == 0.0
    target = dx.asarray(np.array([False, True]), backend=backend)
    boolean = nn.binary_cross_entropy(to_backend([0.25, 0.75]), target, eps=0.0)
    assert float(boolean) == pytest.approx(-np.log(0.75))


LOSS_CASES = [
    ("mse", lambda p, y: nn.mse(p, y)),
    ("huber", lambda p, y: nn.huber(p, y, delta=0.5)),
    ("logit_cross_entropy", lambda p, y: nn.logit_cross_entropy(p, y, label_smoothing=0.1)),
    ("cross_entropy", lambda p, y: nn.cross_entropy(dx.softmax(p), y)),
    ("nll", lambda p, y: nn.nll(dx.log_softmax(p), y)),
    ("kl_divergence", lambda p, y: nn.kl_divergence(dx.softmax(p), y)),
    ("binary", lambda p, y: nn.binary_cross_entropy(dx.sigmoid(p), y)),
    ("logit_binary", lambda p, y: nn.logit_binary_cross_entropy(p, y)),
]


@pytest.mark.parametrize(
    ("backend", "case"),
    on_backends(LOSS_CASES, [LOSS_CASES[2], LOSS_CASES[5], LOSS_CASES[6]], name=lambda case: case[0]),
)
def test_loss_gradients(to_backend, case):
    _, loss = case
    target = to_backend(special.softmax(RNG.normal(size=(4, 3)), axis=-1))
    check_grads(lambda p: loss(p, target), (to_backend(LOGITS),), order=2)


CLASS_INDEX_LOSSES = [
    ("logit_cross_entropy", lambda z, y, **options: nn.logit_cross_entropy(z, y, **options)),
    ("logit_cross_entropy", lambda z, y, **options: nn.logit_cross_entropy(z, y, label_smoothing=0.1, **options)),
    ("cross_entropy", lambda z, y, **options: nn.cross_entropy(dx.softmax(z), y, **options)),
    ("nll", lambda z, y, **options: nn.nll(dx.log_softmax(z), y, **options)),
]
CLASS_INDEX_IDS = ["logit", "logit_smoothed", "probabilities", "nll"]


@pytest.mark.parametrize("case", CLASS_INDEX_LOSSES, ids=CLASS_INDEX_IDS)
@pytest.mark.parametrize(("labels", "low", "high"), [([0, 3, 1, 2], 0, 3), ([0, -1, 1, 2], -1, 2)])
def test_class_index_range_every_loss(backend, to_backend, case, labels, low, high):
    name, loss = case
    message = rf"^{name}: class indices must lie in \[0, 3\), got indices from {low} to {high}\. The prediction"
    with pytest.raises(ValueError, match=message):
        loss(to_backend(LOGITS), dx.asarray(np.array(labels), backend=backend))
    with pytest.raises(ValueError, match=message):
        loss(to_backend(LOGITS), labels)


@pytest.mark.parametrize("case", CLASS_INDEX_LOSSES, ids=CLASS_INDEX_IDS)
def test_class_index_range_python_int(backend, to_backend, case):
    name, loss = case
    with pytest.raises(ValueError, match=rf"^{name}: class indices must lie in \[0, 3\), got indices from 3 to 3"):
        loss(to_backend(LOGITS[0]), 3)
    assert float(loss(to_backend(LOGITS[0]), 2)) > 0.0


@pytest.mark.parametrize("case", CLASS_INDEX_LOSSES, ids=CLASS_INDEX_IDS)
def test_class_index_range_class_axis(backend, to_backend, case):
    name, loss = case
    logits = RNG.normal(size=(2, 3, 5))
    labels = dx.asarray(np.array([[0, 1, 2], [3, 4, 5]]), backend=backend)
    message = rf"^{name}: class indices must lie in \[0, 5\), got indices from 0 to 5\. .* 5 classes on axis 2"
    with pytest.raises(ValueError, match=message):
        loss(to_backend(logits), labels)


@pytest.mark.parametrize("case", CLASS_INDEX_LOSSES, ids=CLASS_INDEX_IDS)
def test_class_index_empty_targets(backend, to_backend, case):
    _, loss = case
    logits = to_backend(np.zeros((0, 3)))
    labels = dx.asarray(np.zeros((0,), dtype=np.int64), backend=backend)
    assert float(loss(logits, labels, reduction="sum")) == 0.0


@pytest.mark.parametrize("case", CLASS_INDEX_LOSSES, ids=CLASS_INDEX_IDS)
def test_float_class_indices_raise(backend, to_backend, case):
    name, loss = case
    message = rf"^{name}: class indices must have an integer dtype, got dtype float64\. .* shape \(4, 3\)"
    with pytest.raises(TypeError, match=message):
        loss(to_backend(LOGITS), to_backend(LABELS.astype(np.float64)))


@needs_jax
@pytest.mark.parametrize("case", CLASS_INDEX_LOSSES, ids=CLASS_INDEX_IDS)
def test_class_index_range_unchecked_under_jit(case):
    # Traced labels cannot be read, so the check is skipped (no int() of a
    # tracer) and the label 3 matches no class.
    _, loss = case
    logits = dx.asarray(LOGITS, backend="jax")
    bad = dx.jit(lambda z, y: loss(z, y))(logits, dx.asarray(np.array([0, 3, 1, 2]), backend="jax"))
    in_range = dx.jit(lambda z, y: loss(z, y))(logits, dx.asarray(LABELS, backend="jax"))
    assert np.isfinite(float(bad))
    assert float(bad) != float(in_range)


def test_class_index_range_checked_under_grad():
    def objective(z):
        return nn.cross_entropy(dx.softmax(z), dx.asarray([0, 3, 1, 2]))

    with pytest.raises(ValueError, match=r"^cross_entropy: class indices must lie in \[0, 3\)"):
        dx.grad(objective)(LOGITS)


BINARY_LOSSES = [
    ("binary_cross_entropy", lambda p, y: nn.binary_cross_entropy(dx.sigmoid(p), y)),
    ("binary_cross_entropy", lambda p, y: nn.binary_cross_entropy(dx.sigmoid(p), y, label_smoothing=0.1)),
    ("logit_binary_cross_entropy", lambda p, y: nn.logit_binary_cross_entropy(p, y)),
]


@pytest.mark.parametrize("case", BINARY_LOSSES, ids=["probabilities", "smoothed", "logit"])
@pytest.mark.parametrize(("targets", "low", "high"), [([-1.0, 1.0], -1.0, 1.0), ([0.0, 2.0], 0.0, 2.0)])
def test_binary_target_range(backend, to_backend, case, targets, low, high):
    name, loss = case
    message = rf"^{name}: targets must lie in \[0, 1\], got targets from {low} to {high}\. Map labels"
    with pytest.raises(ValueError, match=message):
        loss(to_backend([0.3, -0.2]), to_backend(targets))
    with pytest.raises(ValueError, match=message):
        loss(to_backend([0.3, -0.2]), dx.asarray(np.array(targets, dtype=np.int64), backend=backend))
    assert np.isfinite(float(loss(to_backend([0.3, -0.2]), to_backend([0.0, 1.0]))))


def test_binary_probabilities_range(backend, to_backend):
    message = (
        r"^binary_cross_entropy: probabilities must lie in \[0, 1\], got probabilities from 0.5 to 1.5\. Pass logits"
    )
    with pytest.raises(ValueError, match=message):
        nn.binary_cross_entropy(to_backend([1.5, 0.5]), to_backend([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"from -0.5 to 0.5"):
        dx.grad(lambda p: nn.binary_cross_entropy(p, to_backend([1.0, 0.0])))(to_backend([-0.5, 0.5]))


@needs_jax
def test_binary_target_unchecked_under_jit():
    logits = dx.asarray(np.array([0.3, -0.2]), backend="jax")
    targets = dx.asarray(np.array([-1.0, 1.0]), backend="jax")
    loss = dx.jit(nn.logit_binary_cross_entropy)(logits, targets)
    assert np.isfinite(float(loss))
