"""Tests of the bijections: log-determinants against finite-difference Jacobians,
inverse round trips, shapes, and biject_to mapping into each support."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import difflux.core as dx
from conftest import HAS_JAX
from difflux.core.testing import check_grads
from difflux.ppl.dist import biject_to, constraints
from difflux.ppl.dist import transforms as T  # noqa: N812 (NumPyro code writes T for transforms)


def _tril(n: int, k: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return np.tril_indices(n, k)


def _identity(v: np.ndarray) -> np.ndarray:
    return v


def _tril_entries(m: np.ndarray) -> np.ndarray:
    return m[(..., *_tril(m.shape[-1]))]


def _strict_lower_entries(m: np.ndarray) -> np.ndarray:
    return m[(..., *_tril(m.shape[-1], -1))]


def _lower_from_entries(v: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros(v.shape[:-1] + (n, n))
    m[(..., *_tril(n))] = v
    return m


def _corr_cholesky_from_strict(v: np.ndarray, n: int) -> np.ndarray:
    # The strictly lower entries are free; each diagonal entry makes its row unit norm.
    m = np.zeros(v.shape[:-1] + (n, n))
    m[(..., *_tril(n, -1))] = v
    m[..., np.arange(n), np.arange(n)] = np.sqrt(1.0 - np.sum(m**2, axis=-1))
    return m


# The formulas are the same code on both backends, and JAX's eager dispatch
# compiles every new operation, so the JAX variants of the costlier checks
# run in the slow session.
numpy_fast_jax_slow = pytest.mark.parametrize(
    "backend",
    ["numpy", pytest.param("jax", marks=[pytest.mark.slow, pytest.mark.skipif(not HAS_JAX, reason="no JAX")])],
)


@dataclass
class Case:
    name: str
    transform: T.Transform
    # A point of the domain, as free coordinates (a vector) and the map from them to the domain.
    free_x: np.ndarray
    x_from_free: Callable[[np.ndarray], np.ndarray] = _identity
    # The free coordinates of the output.
    free_of_y: Callable[[np.ndarray], np.ndarray] = _identity


_rng = np.random.default_rng(0)
_L3 = np.array([[1.5, 0.0, 0.0], [0.3, 0.8, 0.0], [-0.4, 0.2, 1.1]])
_CORR_L3 = T.CorrCholeskyTransform()(np.array([0.3, -0.5, 0.8]))

CASES = [
    Case("Identity", T.IdentityTransform(), _rng.normal(size=3)),
    Case("Exp", T.ExpTransform(), _rng.normal(size=3)),
    Case("Softplus", T.SoftplusTransform(), _rng.normal(size=3)),
    Case("Sigmoid", T.SigmoidTransform(), _rng.normal(size=3)),
    Case("Affine", T.AffineTransform(np.array([1.0, -2.0, 0.5]), np.array([2.0, -0.5, 3.0])), _rng.normal(size=3)),
    Case("Affine-event", T.AffineTransform(1.0, np.array([2.0, -0.5, 3.0]), event_dim=1), _rng.normal(size=3)),
    Case("Power", T.PowerTransform(2.5), np.array([0.5, 1.2, 3.0])),
    Case("StickBreaking", T.StickBreakingTransform(), _rng.normal(size=3), free_of_y=lambda y: y[..., :-1]),
    Case("LowerCholesky", T.LowerCholeskyTransform(), _rng.normal(size=6), free_of_y=_tril_entries),
    Case("CorrCholesky", T.CorrCholeskyTransform(), _rng.normal(size=3), free_of_y=_strict_lower_entries),
    Case("Ordered", T.OrderedTransform(), _rng.normal(size=4)),
    Case(
        "Cholesky.inv",
        T.CholeskyTransform().inv,
        _tril_entries(_L3),
        lambda v: _lower_from_entries(v, 3),
        _tril_entries,
    ),
    Case(
        "CorrMatrixCholesky.inv",
        T.CorrMatrixCholeskyTransform().inv,
        _strict_lower_entries(np.asarray(_CORR_L3)),
        lambda v: _corr_cholesky_from_strict(v, 3),
        _strict_lower_entries,
    ),
    Case("biject_to(interval)", biject_to(constraints.interval(-1.0, 3.0)), _rng.normal(size=3)),
    Case("biject_to(greater_than)", biject_to(constraints.greater_than(2.0)), _rng.normal(size=3)),
    Case("biject_to(less_than)", biject_to(constraints.less_than(-1.0)), _rng.normal(size=3)),
    Case(
        "biject_to(positive_definite)",
        biject_to(constraints.positive_definite),
        _rng.normal(size=6),
        free_of_y=_tril_entries,
    ),
    Case(
        "biject_to(corr_matrix)",
        biject_to(constraints.corr_matrix),
        _rng.normal(size=3),
        free_of_y=_strict_lower_entries,
    ),
    Case("biject_to(real_vector)", biject_to(constraints.real_vector), _rng.normal(size=3)),
]
ids = [c.name for c in CASES]


def _np(x: Any) -> np.ndarray:
    return np.asarray(dx.stop_gradient(x), dtype=np.float64)


def _forward_free(case: Case, backend: str) -> Callable[[np.ndarray], np.ndarray]:
    def f(v: np.ndarray) -> np.ndarray:
        return case.free_of_y(_np(case.transform(dx.asarray(case.x_from_free(v), backend=backend))))

    return f


def _log_abs_det_by_differences(case: Case, backend: str, eps: float = 1e-6) -> float:
    f = _forward_free(case, backend)
    v = case.free_x
    columns = []
    for i in range(v.size):
        step = np.zeros_like(v)
        step[i] = eps
        columns.append((f(v + step) - f(v - step)) / (2 * eps))
    jacobian = np.stack(columns, axis=-1)
    assert jacobian.shape[0] == jacobian.shape[1], jacobian.shape
    return float(np.linalg.slogdet(jacobian)[1])


@pytest.mark.parametrize("case", CASES, ids=ids)
@numpy_fast_jax_slow
def test_log_abs_det_matches_finite_differences(case: Case, backend: str) -> None:
    x = dx.asarray(case.x_from_free(case.free_x), backend=backend)
    y = case.transform(x)
    log_det = _np(case.transform.log_abs_det_jacobian(x, y))
    # Element-wise transforms return one term per entry; the Jacobian's log-determinant is their sum.
    np.testing.assert_allclose(np.sum(log_det), _log_abs_det_by_differences(case, backend), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_inverse_round_trip(case: Case, backend: str) -> None:
    x = dx.asarray(case.x_from_free(case.free_x), backend=backend)
    y = case.transform(x)
    np.testing.assert_allclose(_np(case.transform.inv(y)), _np(x), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(_np(case.transform.inv.inv(x)), _np(y), rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_inverse_log_det_is_negated(case: Case, backend: str) -> None:
    x = dx.asarray(case.x_from_free(case.free_x), backend=backend)
    y = case.transform(x)
    forward = _np(case.transform.log_abs_det_jacobian(x, y))
    np.testing.assert_allclose(_np(case.transform.inv.log_abs_det_jacobian(y, x)), -forward, rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_batched_shapes(case: Case, backend: str) -> None:
    x1 = case.x_from_free(case.free_x)
    x = dx.asarray(np.stack([x1, x1]), backend=backend)
    y = case.transform(x)
    t = case.transform
    assert y.shape == t.forward_shape(x.shape)
    assert t.inverse_shape(y.shape) == x.shape
    log_det = t.log_abs_det_jacobian(x, y)
    assert log_det.shape == x.shape[: x.ndim - t.domain.event_dim]
    assert bool(np.all(_np(t.codomain.check(y)) if not isinstance(t.codomain, type(constraints.dependent)) else True))


@pytest.mark.parametrize("case", CASES, ids=ids)
@numpy_fast_jax_slow
def test_log_det_gradient(case: Case, backend: str) -> None:
    if case.x_from_free is not _identity:
        pytest.skip("the domain is a manifold: finite differences along random directions leave it")

    def log_det(x: Any) -> Any:
        return case.transform.log_abs_det_jacobian(x, case.transform(x))

    check_grads(log_det, [dx.asarray(case.free_x, backend=backend)], order=1, rtol=1e-5)
    check_grads(case.transform, [dx.asarray(case.free_x, backend=backend)], order=1, rtol=1e-5)


SUPPORTS = [
    (constraints.real, (3,)),
    (constraints.positive, (3,)),
    (constraints.nonnegative, (3,)),
    (constraints.unit_interval, (3,)),
    (constraints.interval(-2.0, 5.0), (3,)),
    (constraints.open_interval(0.0, 2.0), (3,)),
    (constraints.greater_than(1.5), (3,)),
    (constraints.less_than(-1.5), (3,)),
    (constraints.circular, (3,)),
    (constraints.real_vector, (3,)),
    (constraints.simplex, (3,)),
    (constraints.ordered_vector, (4,)),
    (constraints.lower_cholesky, (6,)),
    (constraints.corr_cholesky, (6,)),
    (constraints.positive_definite, (6,)),
    (constraints.corr_matrix, (3,)),
    (constraints.independent(constraints.positive, 1), (3,)),
]


@pytest.mark.parametrize(("constraint", "shape"), SUPPORTS, ids=[repr(c) for c, _ in SUPPORTS])
def test_biject_to_maps_into_support(constraint: constraints.Constraint, shape: tuple[int, ...], backend: str) -> None:
    t = biject_to(constraint)
    x = dx.asarray(np.random.default_rng(1).normal(scale=2.0, size=(5,) + shape), backend=backend)
    y = t(x)
    assert bool(np.all(_np(constraint.check(y))))
    assert t.codomain.event_dim == constraint.event_dim
    np.testing.assert_allclose(_np(t.inv(y)), _np(x), rtol=1e-7, atol=1e-7)


def test_biject_to_discrete_raises() -> None:
    with pytest.raises(NotImplementedError, match="integer_interval"):
        biject_to(constraints.integer_interval(0, 3))


def test_biject_to_register_new_constraint() -> None:
    class Tiny(constraints.Constraint):
        def check(self, value: Any) -> Any:
            return (value > 0) & (value < 1e-3)

    biject_to.register(Tiny, lambda c: T.ComposeTransform([T.SigmoidTransform(), T.AffineTransform(0.0, 1e-3)]))
    y = biject_to(Tiny())(np.array([-3.0, 0.0, 4.0]))
    assert bool(np.all(Tiny().check(y)))


def test_triangular_length_error() -> None:
    with pytest.raises(ValueError, match="length 5"):
        T.LowerCholeskyTransform()(np.zeros(5))


def test_compose_event_dims() -> None:
    t = biject_to(constraints.positive_definite)
    assert t.domain.event_dim == 1
    assert t.codomain.event_dim == 2
    assert T.ComposeTransform([T.ExpTransform(), T.StickBreakingTransform()]).domain.event_dim == 1


def test_extreme_inputs_stay_finite(backend: str) -> None:
    x = dx.asarray(np.array([-800.0, 0.0, 800.0]), backend=backend)
    for t in (T.SigmoidTransform(), T.SoftplusTransform(), T.CorrCholeskyTransform()):
        y = t(x)
        assert np.all(np.isfinite(_np(t.log_abs_det_jacobian(x, y))))
