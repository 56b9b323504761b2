"""Values of dx.linalg and dx.einsum against NumPy and SciPy, closed-form
derivatives, finite derivatives at singular points, and error messages.

Derivatives against finite differences are in the gradient sweep
(``cases_linalg.py``).
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg

import difflux.core as dx

RNG = np.random.default_rng(42)


def _np(x):
    return np.asarray(dx.stop_gradient(x))


def _spd(n, batch=()):
    a = RNG.standard_normal(batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def _dominant(n, batch=()):
    return RNG.uniform(-1.0, 1.0, size=batch + (n, n)) + (n + 1.0) * np.eye(n)


# -- einsum ------------------------------------------------------------------------

EINSUM_TABLE = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ba,ac", [(2, 3), (3, 4)]),
    ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("iij->ji", [(3, 3, 2)]),
    ("ij->", [(2, 3)]),
    ("ij->ji", [(2, 3)]),
    ("i,j->ij", [(3,), (4,)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]),
    ("...i,...i", [(2, 3), (3,)]),
    ("i...->...", [(2, 3, 4)]),
    ("ij,ij->i", [(1, 4), (3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("bij,bjk->bik", [(5, 2, 3), (5, 3, 2)]),
    ("a b , b c -> a c", [(2, 3), (3, 2)]),
]


@pytest.mark.parametrize(("subscripts", "shapes"), EINSUM_TABLE, ids=[s for s, _ in EINSUM_TABLE])
def test_einsum_matches_numpy(backend, to_backend, subscripts, shapes):
    operands = [RNG.standard_normal(shape) for shape in shapes]
    result = dx.einsum(subscripts, *[to_backend(op) for op in operands])
    np.testing.assert_allclose(_np(result), np.einsum(subscripts, *operands), rtol=1e-12, atol=1e-12)


def test_einsum_cotangent_of_trace_is_identity(backend, to_backend):
    g = dx.grad(lambda x: dx.einsum("ii", x))(to_backend(RNG.standard_normal((3, 3))))
    np.testing.assert_array_equal(_np(g), np.eye(3))


def test_einsum_cotangent_of_broadcast_operand(backend, to_backend):
    x, y = RNG.standard_normal((1, 4)), RNG.standard_normal((3, 4))
    gx = dx.grad(lambda x: dx.sum(dx.einsum("ij,ij->i", x, to_backend(y))))(to_backend(x))
    np.testing.assert_allclose(_np(gx), y.sum(axis=0, keepdims=True), rtol=1e-12)


def test_einsum_under_jit_with_gradient():
    jax = pytest.importorskip("jax")
    x, y = RNG.standard_normal((2, 3)), RNG.standard_normal((3, 3))

    @jax.jit
    def value_and_gradient(x, y):
        return dx.value_and_grad(lambda x: dx.einsum("ij,jk,ik->", x, y, x))(x)

    value, gradient = value_and_gradient(x, y)
    np.testing.assert_allclose(float(value), np.einsum("ij,jk,ik->", x, y, x), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(gradient), x @ (y + y.T), rtol=1e-12)


@pytest.mark.parametrize(
    ("subscripts", "shapes", "message"),
    [
        ("ij,jk->ik", [(2, 3)], "name 2 operands, but 1 were given"),
        ("ij,jk->ik", [(2, 3), (4, 2)], "index 'j' has length 3 in one operand and 4"),
        ("ij->ik", [(2, 3)], "'k' of 'ij->ik' appears in no operand"),
        ("ijk->i", [(2, 3)], "has shape (2, 3) but its subscripts 'ijk' name 3 axes"),
        ("...ij->ij", [(4, 2, 3)], "the output has no '...'"),
        ("ij->ii", [(2, 3)], "repeats the letter 'i'"),
        ("i1->i", [(2, 3)], "use letters a-z, A-Z"),
    ],
)
def test_einsum_errors(subscripts, shapes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dx.einsum(subscripts, *[np.ones(shape) for shape in shapes])


def test_einsum_interleaved_form_rejected():
    with pytest.raises(TypeError, match="subscripts string first"):
        dx.einsum(np.ones(2), [0])


# -- products, diagonal, trace, cross ---------------------------------------------------


def test_tensordot_matches_numpy(backend, to_backend):
    x, y = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((4, 2, 3))
    for axes in (0, 1, ([0, 2], [1, 0])):
        expected = np.tensordot(x, y, axes=axes)
        actual = dx.tensordot(to_backend(x), to_backend(y), axes=axes)
        np.testing.assert_allclose(_np(actual), expected, rtol=1e-12)


def test_vecdot_broadcasts(backend, to_backend):
    x, y = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((3, 1))
    actual = dx.vecdot(to_backend(x), to_backend(y), axis=-2)
    np.testing.assert_allclose(_np(actual), np.sum(x * y, axis=-2), rtol=1e-12)


def test_outer_cross_trace_diagonal(backend, to_backend):
    u, v = RNG.standard_normal(3), RNG.standard_normal((2, 3))
    m = RNG.standard_normal((2, 3, 4))
    np.testing.assert_allclose(_np(dx.linalg.outer(to_backend(u), to_backend(u[:2]))), np.outer(u, u[:2]))
    np.testing.assert_allclose(_np(dx.linalg.cross(to_backend(v), to_backend(u))), np.cross(v, u), rtol=1e-12)
    for offset in (-2, 0, 1, 5):
        expected = np.diagonal(m, offset=offset, axis1=-2, axis2=-1)
        np.testing.assert_allclose(_np(dx.linalg.diagonal(to_backend(m), offset=offset)), expected)
        expected_trace = np.trace(m, offset=offset, axis1=-2, axis2=-1)
        np.testing.assert_allclose(_np(dx.linalg.trace(to_backend(m), offset=offset)), expected_trace, rtol=1e-12)


def test_linalg_names_match_top_level():
    assert dx.linalg.matmul is dx.matmul
    assert dx.linalg.tensordot is dx.tensordot
    assert dx.linalg.vecdot is dx.vecdot
    assert dx.linalg.matrix_transpose is dx.matrix_transpose


# -- solves ---------------------------------------------------------------------------


def test_solve_batched_and_vector(backend, to_backend):
    a, b = _dominant(3, (2, 1)), RNG.standard_normal((4, 3, 2))
    np.testing.assert_allclose(_np(dx.linalg.solve(to_backend(a), to_backend(b))), np.linalg.solve(a, b), rtol=1e-12)
    v = RNG.standard_normal(3)
    np.testing.assert_allclose(_np(dx.linalg.solve(to_backend(a), to_backend(v))), np.linalg.solve(a, v), rtol=1e-12)


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("trans", [0, 1, "T"])
@pytest.mark.parametrize("unit_diagonal", [False, True])
def test_solve_triangular_matches_scipy(backend, to_backend, lower, trans, unit_diagonal):
    a = _dominant(3, (2,))
    a = np.tril(a) if lower else np.triu(a)
    b = RNG.standard_normal((2, 3, 2))
    expected = scipy.linalg.solve_triangular(a, b, lower=lower, trans=trans, unit_diagonal=unit_diagonal)
    actual = dx.linalg.solve_triangular(
        to_backend(a), to_backend(b), lower=lower, trans=trans, unit_diagonal=unit_diagonal
    )
    np.testing.assert_allclose(_np(actual), expected, rtol=1e-12)


def test_solve_triangular_cotangent_stays_in_triangle(backend, to_backend):
    a = np.tril(_dominant(3))
    g = dx.grad(lambda a: dx.sum(dx.linalg.solve_triangular(a, to_backend(np.ones(3)), lower=True)))(to_backend(a))
    np.testing.assert_array_equal(np.triu(_np(g), 1), np.zeros((3, 3)))


def test_cho_solve_matches_scipy(backend, to_backend):
    a, b = _spd(4), RNG.standard_normal((4, 2))
    factor = dx.linalg.cholesky(to_backend(a))
    np.testing.assert_allclose(
        _np(dx.linalg.cho_solve((factor, True), to_backend(b))),
        scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, lower=True), b),
        rtol=1e-10,
    )
    upper = dx.linalg.cholesky(to_backend(a), upper=True)
    np.testing.assert_allclose(
        _np(dx.linalg.cholesky_solve(upper, to_backend(b[:, 0]), upper=True)), np.linalg.solve(a, b[:, 0]), rtol=1e-10
    )


def test_inv_det_slogdet(backend, to_backend):
    a = _dominant(3, (2,))
    a[1] = -a[1]  # a negative determinant
    x = to_backend(a)
    np.testing.assert_allclose(_np(dx.linalg.inv(x)), np.linalg.inv(a), rtol=1e-12)
    np.testing.assert_allclose(_np(dx.linalg.det(x)), np.linalg.det(a), rtol=1e-12)
    result = dx.linalg.slogdet(x)
    expected = np.linalg.slogdet(a)
    assert isinstance(result, dx.linalg.SlogdetResult)
    np.testing.assert_array_equal(_np(result.sign), expected.sign)
    np.testing.assert_allclose(_np(result.logabsdet), expected.logabsdet, rtol=1e-12)


def test_determinant_gradients_closed_form(backend, to_backend):
    a = _dominant(3)
    inverse_transpose = np.linalg.inv(a).T
    g_det = dx.grad(dx.linalg.det)(to_backend(a))
    np.testing.assert_allclose(_np(g_det), np.linalg.det(a) * inverse_transpose, rtol=1e-10)
    g_logdet = dx.grad(lambda x: dx.linalg.slogdet(x).logabsdet)(to_backend(a))
    np.testing.assert_allclose(_np(g_logdet), inverse_transpose, rtol=1e-10)


def test_slogdet_sign_has_no_derivative(backend, to_backend):
    g = dx.grad(lambda x: dx.linalg.slogdet(x).sign)(to_backend(_dominant(3)))
    np.testing.assert_array_equal(_np(g), np.zeros((3, 3)))


def test_pinv_matrix_power_matrix_rank(backend, to_backend):
    m = RNG.standard_normal((2, 4, 3))
    np.testing.assert_allclose(_np(dx.linalg.pinv(to_backend(m))), np.linalg.pinv(m), rtol=1e-10, atol=1e-12)
    a = _dominant(3)
    for n in (-3, 0, 1, 4):
        actual = dx.linalg.matrix_power(to_backend(a), n)
        np.testing.assert_allclose(_np(actual), np.linalg.matrix_power(a, n), rtol=1e-10)
    low_rank = RNG.standard_normal((4, 2)) @ RNG.standard_normal((2, 4))
    assert int(dx.linalg.matrix_rank(to_backend(low_rank))) == 2


# -- decompositions ----------------------------------------------------------------------


def test_cholesky_matches_numpy(backend, to_backend):
    a = _spd(3, (2,))
    np.testing.assert_allclose(_np(dx.linalg.cholesky(to_backend(a))), np.linalg.cholesky(a), rtol=1e-12)
    upper = dx.linalg.cholesky(to_backend(a), upper=True)
    np.testing.assert_allclose(_np(upper), np.linalg.cholesky(a, upper=True), rtol=1e-12)


def test_cholesky_gradient_is_symmetric(backend, to_backend):
    g = dx.grad(lambda a: dx.sum(dx.linalg.cholesky(a) ** 3))(to_backend(_spd(3)))
    np.testing.assert_allclose(_np(g), _np(g).T, rtol=1e-12)


def test_eigh_decomposes(backend, to_backend):
    a = _spd(4, (2,))
    w, v = dx.linalg.eigh(to_backend(a))
    np.testing.assert_allclose(_np(w), np.linalg.eigvalsh(a), rtol=1e-10)
    reconstructed = _np(v) @ (_np(w)[..., None] * np.swapaxes(_np(v), -1, -2))
    np.testing.assert_allclose(reconstructed, a, rtol=1e-10)
    np.testing.assert_allclose(_np(dx.linalg.eigvalsh(to_backend(a))), np.linalg.eigvalsh(a), rtol=1e-10)


def test_eigvalsh_gradient_finite_at_repeated_eigenvalues(backend, to_backend):
    # The identity has one eigenvalue of multiplicity 3; the sum of the
    # eigenvalues is the trace, whose gradient is the identity.
    g = dx.grad(lambda a: dx.sum(dx.linalg.eigvalsh(a)))(to_backend(np.eye(3)))
    np.testing.assert_allclose(_np(g), np.eye(3), atol=1e-12)


def test_svd_and_svdvals(backend, to_backend):
    for shape in ((4, 3), (2, 3, 5)):
        m = RNG.standard_normal(shape)
        u, s, vh = dx.linalg.svd(to_backend(m))
        k = min(shape[-2:])
        assert _np(u).shape == shape[:-1] + (k,)
        assert _np(vh).shape == shape[:-2] + (k, shape[-1])
        np.testing.assert_allclose(_np(s), np.linalg.svd(m, compute_uv=False), rtol=1e-10)
        np.testing.assert_allclose((_np(u) * _np(s)[..., None, :]) @ _np(vh), m, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(_np(dx.linalg.svdvals(to_backend(m))), np.linalg.svdvals(m), rtol=1e-10)


def test_qr_decomposes(backend, to_backend):
    for shape in ((4, 3), (3, 3), (2, 3, 5)):
        m = RNG.standard_normal(shape)
        q, r = dx.linalg.qr(to_backend(m))
        k = min(shape[-2:])
        assert _np(q).shape == shape[:-1] + (k,)
        np.testing.assert_allclose(_np(q) @ _np(r), m, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.tril(_np(r), -1), 0.0, atol=1e-12)


# -- norms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [2, 1, 3, 0.5, 0, math.inf, -math.inf])
def test_vector_norm_matches_numpy(backend, to_backend, order):
    x = RNG.standard_normal((2, 3, 4))
    for axis in (None, -1, (0, 2)):
        actual = dx.linalg.vector_norm(to_backend(x), axis=axis, keepdims=True, ord=order)
        expected = np.linalg.vector_norm(x, axis=axis, keepdims=True, ord=order)
        np.testing.assert_allclose(_np(actual), expected, rtol=1e-12)


@pytest.mark.parametrize("order", ["fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf])
def test_matrix_norm_matches_numpy(backend, to_backend, order):
    x = RNG.standard_normal((2, 3, 4))
    actual = dx.linalg.matrix_norm(to_backend(x), ord=order)
    np.testing.assert_allclose(_np(actual), np.linalg.matrix_norm(x, ord=order), rtol=1e-10)
    kept = dx.linalg.matrix_norm(to_backend(x), ord=order, keepdims=True)
    assert _np(kept).shape == (2, 1, 1)


@pytest.mark.parametrize(
    ("order", "axis"), [(None, None), (None, 1), (3, -1), ("nuc", (2, 0)), (1, (0, 1)), (None, (1, 2))]
)
def test_norm_matches_numpy(backend, to_backend, order, axis):
    x = RNG.standard_normal((2, 3, 4))
    actual = dx.linalg.norm(to_backend(x), ord=order, axis=axis, keepdims=True)
    np.testing.assert_allclose(_np(actual), np.linalg.norm(x, ord=order, axis=axis, keepdims=True), rtol=1e-10)


@pytest.mark.parametrize("order", [2, 1, 3, math.inf])
def test_vector_norm_gradient_at_zero_is_zero(backend, to_backend, order):
    zero = to_backend(np.zeros(3))
    g = dx.grad(lambda x: dx.linalg.vector_norm(x, ord=order))(zero)
    np.testing.assert_array_equal(_np(g), np.zeros(3))


def test_norm_second_derivative_at_zero_is_finite(backend, to_backend):
    h = dx.hessian(lambda x: dx.linalg.vector_norm(x))(to_backend(np.zeros(3)))
    assert np.all(np.isfinite(_np(h)))
    g = dx.grad(lambda x: dx.linalg.matrix_norm(x))(to_backend(np.zeros((2, 2))))
    np.testing.assert_array_equal(_np(g), np.zeros((2, 2)))


def test_vector_norm_inf_splits_ties():
    g = dx.grad(lambda x: dx.linalg.vector_norm(x, ord=math.inf))(np.array([2.0, -2.0, 1.0]))
    np.testing.assert_allclose(g, [0.5, -0.5, 0.0])


# -- transformations --------------------------------------------------------------------


def test_linalg_gradient_under_jit_matches_eager():
    jax = pytest.importorskip("jax")
    a, b = RNG.standard_normal((3, 3)), RNG.standard_normal(3)

    def loss(a, b):
        spd = a @ a.mT + 3.0 * dx.asarray(np.eye(3), backend="jax")
        factor = dx.linalg.cholesky(spd)
        x = dx.linalg.cholesky_solve(factor, b)
        return dx.sum(x**2) + dx.linalg.slogdet(spd).logabsdet + dx.sum(dx.linalg.eigvalsh(spd) ** 2)

    a_jax, b_jax = dx.asarray(a, backend="jax"), dx.asarray(b, backend="jax")
    eager = dx.grad(loss)(a_jax, b_jax)
    compiled = jax.jit(dx.grad(loss))(a_jax, b_jax)
    np.testing.assert_allclose(np.asarray(compiled), np.asarray(eager), rtol=1e-10)


def test_import_does_not_import_jax_or_scipy_linalg():
    code = (
        "import sys, numpy as np, difflux.core as dx; "
        "dx.linalg.cholesky(np.eye(2)); dx.einsum('ii', np.eye(2)); "
        "assert 'jax' not in sys.modules, 'jax was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- errors --------------------------------------------------------------------------------


def test_solve_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"a has shape \(3, 3\) but b has shape \(4, 2\)"):
        dx.linalg.solve(np.eye(3), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"a has shape \(3, 3\) but b has shape \(2,\)"):
        dx.linalg.solve(np.eye(3), np.ones(2))
    with pytest.raises(ValueError, match="batch axes"):
        dx.linalg.solve(np.ones((2, 3, 3)), np.ones((4, 3, 1)))


def test_non_square_inputs_rejected():
    square = r"square matrix .* got shape \(2, 3\)"
    for fn in (dx.linalg.cholesky, dx.linalg.inv, dx.linalg.det, dx.linalg.eigh, dx.linalg.slogdet):
        with pytest.raises(ValueError, match=square):
            fn(np.ones((2, 3)))
    with pytest.raises(ValueError, match=square):
        dx.linalg.solve_triangular(np.ones((2, 3)), np.ones(2), lower=True)
    with pytest.raises(ValueError, match=r"matrix or a stack of matrices .* got shape \(3,\)"):
        dx.linalg.svd(np.ones(3))


def test_cholesky_not_positive_definite_raises_on_numpy():
    with pytest.raises(np.linalg.LinAlgError, match=r"shape \(2, 2\): it is not positive definite"):
        dx.linalg.cholesky(np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_solve_triangular_needs_lower():
    with pytest.raises(TypeError, match="lower"):
        dx.linalg.solve_triangular(np.eye(2), np.ones(2))
    with pytest.raises(ValueError, match="trans must be"):
        dx.linalg.solve_triangular(np.eye(2), np.ones(2), lower=True, trans="X")


def test_unsupported_options_raise():
    with pytest.raises(NotImplementedError, match="full_matrices=False"):
        dx.linalg.svd(np.eye(2), full_matrices=True)
    with pytest.raises(NotImplementedError, match="mode='reduced'"):
        dx.linalg.qr(np.eye(2), mode="complete")
    with pytest.raises(ValueError, match="ord must be one of"):
        dx.linalg.matrix_norm(np.eye(2), ord=3)
    with pytest.raises(ValueError, match="ord='fro' is a matrix norm"):
        dx.linalg.norm(np.ones(3), ord="fro")
    with pytest.raises(ValueError, match="a pair of axes"):
        dx.linalg.norm(np.ones((2, 2, 2)), axis=(0, 1, 2))
    with pytest.raises(TypeError, match="integer exponent"):
        dx.linalg.matrix_power(np.eye(2), 1.5)


def test_product_shape_errors():
    with pytest.raises(ValueError, match=r"axis 1 of x1 \(shape \(2, 3\)\) has length 3"):
        dx.tensordot(np.ones((2, 3)), np.ones((4, 2)), axes=1)
    with pytest.raises(ValueError, match=r"x1 \(shape \(3,\)\) has length 3 along axis -1"):
        dx.vecdot(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="length 3 along axis -1"):
        dx.linalg.cross(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="two 1-D arrays"):
        dx.linalg.outer(np.ones((2, 2)), np.ones(2))
