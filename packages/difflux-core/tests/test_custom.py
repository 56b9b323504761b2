"""Tests of custom derivative rules, checkpointing and stop_gradient."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import difflux.core as dx
from difflux.core._core import ReverseTrace, _toposort
from difflux.core.testing import check_grads

# --------------------------------------------------------------------------
# custom_vjp
# --------------------------------------------------------------------------


@dx.custom_vjp
def sin_times(x, y):
    return dx.sin(x) * y


def _sin_times_fwd(x, y):
    return sin_times(x, y), (x, y)


def _sin_times_bwd(residuals, g):
    x, y = residuals
    return g * dx.cos(x) * y, g * dx.sin(x)


sin_times.defvjp(_sin_times_fwd, _sin_times_bwd)


# The body is sin(x), but the rule claims the derivative x**2; every level of
# differentiation must see the rule (its own derivative is 2x), never the body.
@dx.custom_vjp
def fake_sin(x):
    return dx.sin(x)


fake_sin.defvjp(lambda x: (dx.sin(x), x), lambda x, g: (g * x**2,))


def test_custom_vjp_gradient_matches_rule(backend, to_backend):
    x = to_backend([0.3, 1.2])
    y = to_backend([2.0, -1.0])
    g = dx.grad(lambda x: dx.sum(sin_times(x, y)))(x)
    np.testing.assert_allclose(np.asarray(g), np.cos([0.3, 1.2]) * [2.0, -1.0], rtol=1e-12)


def test_custom_vjp_check_grads(backend, to_backend):
    x = to_backend([0.3, 1.2, -0.7])
    y = to_backend([2.0, -1.0, 0.5])
    check_grads(sin_times, (x, y), order=2)


def test_custom_vjp_rule_used_at_every_level(backend, to_backend):
    x = to_backend([0.5, -1.5])
    xs = np.array([0.5, -1.5])
    first = dx.grad(lambda x: dx.sum(fake_sin(x)))(x)
    second = dx.grad(lambda x: dx.sum(dx.grad(lambda z: dx.sum(fake_sin(z)))(x)))(x)
    np.testing.assert_allclose(np.asarray(first), xs**2)
    np.testing.assert_allclose(np.asarray(second), 2 * xs)


def test_custom_vjp_value_uses_body(backend, to_backend):
    x = to_backend([0.5, -1.5])
    np.testing.assert_allclose(np.asarray(fake_sin(x)), np.sin([0.5, -1.5]))
    value, _ = dx.value_and_grad(lambda x: dx.sum(fake_sin(x)))(x)
    assert float(value) == pytest.approx(float(np.sum(np.sin([0.5, -1.5]))))


def test_custom_vjp_under_vmap_runs_fwd_once(backend, to_backend):
    # Batching does not differentiate, so fwd's output serves as the value:
    # the body does not run a second time beside fwd.
    calls = {"body": 0, "fwd": 0}

    @dx.custom_vjp
    def counted_sin(x):
        calls["body"] += 1
        return dx.sin(x)

    def fwd(x):
        calls["fwd"] += 1
        return dx.sin(x), x

    counted_sin.defvjp(fwd, lambda x, g: (g * dx.cos(x),))
    xs = to_backend([[0.5, -1.5], [2.0, 0.1]])
    values, grads = dx.vmap(dx.value_and_grad(lambda x: dx.sum(counted_sin(x))))(xs)
    np.testing.assert_allclose(np.asarray(values), np.sum(np.sin(np.asarray(xs)), axis=1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grads), np.cos(np.asarray(xs)), rtol=1e-12)
    assert calls["body"] == 0
    assert calls["fwd"] == 1


def test_custom_vjp_forward_mode_transposes_bwd(backend, to_backend):
    x = to_backend([0.5, -1.5])
    t = to_backend([1.0, 2.0])
    out, tangent = dx.jvp(fake_sin, (x,), (t,))
    np.testing.assert_allclose(np.asarray(out), np.sin([0.5, -1.5]))
    np.testing.assert_allclose(np.asarray(tangent), np.array([0.25, 2.25]) * [1.0, 2.0])


def test_custom_vjp_hessian_forward_over_reverse(backend, to_backend):
    x = to_backend([0.5, -1.5])
    h = dx.hessian(lambda x: dx.sum(fake_sin(x)))(x)
    np.testing.assert_allclose(np.asarray(h), np.diag([1.0, -3.0]))


def test_custom_vjp_defjvp_overrides_transpose(backend, to_backend):
    @dx.custom_vjp
    def f(x):
        return x * 2.0

    f.defvjp(lambda x: (x * 2.0, None), lambda _, g: (g * 2.0,))
    f.defjvp(lambda primals, tangents: (primals[0] * 2.0, tangents[0] * 7.0))
    x = to_backend([1.0])
    assert float(dx.jvp(f, (x,), (to_backend([1.0]),))[1][0]) == 7.0
    assert float(dx.grad(lambda x: dx.sum(f(x)))(x)[0]) == 2.0


def test_custom_vjp_straight_through_estimator(backend, to_backend):
    @dx.custom_vjp
    def straight_through_round(x):
        return dx.round(x)

    straight_through_round.defvjp(lambda x: (dx.round(x), None), lambda _, g: (g,))
    x = to_backend([0.2, 1.7])
    g = dx.grad(lambda x: dx.sum(straight_through_round(x) * x))(x)
    # d/dx [round(x) x] with d round/dx := 1 is x + round(x).
    np.testing.assert_allclose(np.asarray(g), [0.2 + 0.0, 1.7 + 2.0])


def test_custom_vjp_structures(backend, to_backend):
    @dx.custom_vjp
    def affine(params, inputs):
        return {"out": params["w"] * inputs[0] + params["b"], "count": 3}

    def fwd(params, inputs):
        return affine(params, inputs), (params, inputs)

    def bwd(residuals, g):
        params, inputs = residuals
        grad_out = g["out"]
        assert g["count"] is None
        params_bar = {"w": dx.sum(grad_out * inputs[0]), "b": dx.sum(grad_out), "name": None}
        return params_bar, (grad_out * params["w"], None)

    affine.defvjp(fwd, bwd)
    params = {"w": to_backend(2.0), "b": to_backend(0.5), "name": "layer"}
    inputs = (to_backend([1.0, 3.0]), to_backend([4.0]))

    def loss(params, inputs):
        return dx.sum(affine(params, inputs)["out"] ** 2)

    g_params, g_inputs = dx.grad(loss, argnums=(0, 1))(params, inputs)
    residual = 2.0 * np.array([1.0, 3.0]) + 0.5
    assert float(g_params["w"]) == pytest.approx(float(np.sum(2 * residual * [1.0, 3.0])))
    assert float(g_params["b"]) == pytest.approx(float(np.sum(2 * residual)))
    assert g_params["name"] is None
    np.testing.assert_allclose(np.asarray(g_inputs[0]), 2 * residual * 2.0)
    np.testing.assert_allclose(np.asarray(g_inputs[1]), [0.0])


def test_custom_vjp_nondiff_argnums(backend, to_backend):
    @functools.partial(dx.custom_vjp, nondiff_argnums=(0,))
    def apply(fn, x):
        return fn(x)

    def fwd(fn, x):
        return fn(x), x

    def bwd(fn, x, g):
        # A deliberately scaled rule: 10 times the true derivative.
        _, back = dx.pullback(fn, x)
        return (10.0 * back(g)[0],)

    apply.defvjp(fwd, bwd)
    x = to_backend([0.5, 1.0])
    g = dx.grad(lambda x: dx.sum(apply(dx.exp, x)))(x)
    np.testing.assert_allclose(np.asarray(g), 10 * np.exp([0.5, 1.0]))


def test_custom_vjp_decorator_with_options(backend, to_backend):
    @dx.custom_vjp(nondiff_argnums=(1,))
    def scale(x, factor):
        return x * factor

    scale.defvjp(lambda x, factor: (x * factor, None), lambda factor, _, g: (g * factor,))
    assert float(dx.grad(lambda x: scale(x, 3.0))(to_backend(1.0))) == 3.0


def test_custom_vjp_keyword_and_default_arguments(backend, to_backend):
    @dx.custom_vjp
    def weighted(x, weight=2.0):
        return x * weight

    weighted.defvjp(lambda x, weight=2.0: (x * weight, weight), lambda weight, g: (g * weight, None))
    x = to_backend(1.5)
    assert float(dx.grad(lambda x: weighted(x))(x)) == 2.0
    assert float(dx.grad(lambda x: weighted(x, weight=5.0))(x)) == 5.0


def test_custom_vjp_under_jit():
    jax = pytest.importorskip("jax")
    x = dx.asarray([0.3, 1.2], backend="jax")
    y = dx.asarray([2.0, -1.0], backend="jax")
    g = jax.jit(dx.grad(lambda x, y: dx.sum(sin_times(x, y))))(x, y)
    np.testing.assert_allclose(np.asarray(g), np.cos([0.3, 1.2]) * [2.0, -1.0], rtol=1e-12)
    h = jax.jit(dx.hessian(lambda x: dx.sum(fake_sin(x))))(x)
    np.testing.assert_allclose(np.asarray(h), np.diag([0.6, 2.4]), rtol=1e-12)


def test_custom_vjp_without_rule_raises(to_backend):
    @dx.custom_vjp
    def f(x):
        return x

    assert float(f(2.0)) == 2.0
    with pytest.raises(dx.CustomRuleError, match="defvjp"):
        dx.grad(f)(to_backend(1.0))


def test_custom_vjp_bwd_wrong_length_raises(to_backend):
    @dx.custom_vjp
    def f(x, y):
        return x * y

    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: g * res[1])
    with pytest.raises(dx.CustomRuleError, match="one cotangent per differentiable"):
        dx.grad(f)(to_backend(1.0), to_backend(2.0))


def test_custom_vjp_bwd_wrong_shape_raises(to_backend):
    @dx.custom_vjp
    def f(x):
        return dx.sum(x)

    f.defvjp(lambda x: (dx.sum(x), None), lambda _, g: (g,))
    with pytest.raises(dx.CustomRuleError, match=r"shape \(\) for a leaf of argument 0 of shape \(3,\)"):
        dx.grad(f)(to_backend([1.0, 2.0, 3.0]))


def test_custom_vjp_bwd_wrong_structure_raises(to_backend):
    @dx.custom_vjp
    def f(pair):
        return pair[0] * pair[1]

    f.defvjp(lambda pair: (pair[0] * pair[1], pair), lambda pair, g: ([g * pair[1]],))
    with pytest.raises(dx.CustomRuleError, match="structure"):
        dx.grad(f)((to_backend(1.0), to_backend(2.0)))


def test_custom_vjp_closure_over_traced_value_raises(to_backend):
    @dx.custom_vjp
    def identity(x):
        return x

    identity.defvjp(lambda x: (x, None), lambda _, g: (g,))

    def outer(w):
        inner = dx.custom_vjp(lambda x: x * w)
        inner.defvjp(lambda x: (x * w, None), lambda _, g: (g,))
        return inner(identity(w))

    with pytest.raises(dx.CustomRuleError, match="closes over"):
        dx.grad(outer)(to_backend(2.0))


def test_custom_vjp_traced_nondiff_argument_raises(to_backend):
    @functools.partial(dx.custom_vjp, nondiff_argnums=(1,))
    def scale(x, factor):
        return x * factor

    scale.defvjp(lambda x, factor: (x * factor, None), lambda factor, _, g: (g * factor,))
    with pytest.raises(dx.CustomRuleError, match="nondiff_argnums"):
        dx.grad(lambda x: scale(x, x))(to_backend(2.0))


def test_custom_vjp_forward_with_numpy_bwd_raises():
    @dx.custom_vjp
    def f(x):
        return x * 2.0

    f.defvjp(lambda x: (x * 2.0, None), lambda _, g: (np.asarray(g) * 2.0,))
    assert float(dx.grad(f)(np.asarray(1.0))) == 2.0
    with pytest.raises(dx.CustomRuleError, match="transposes its bwd rule"):
        dx.jvp(f, (np.asarray(1.0),), (np.asarray(1.0),))


# --------------------------------------------------------------------------
# custom_jvp
# --------------------------------------------------------------------------


# log(1 + e^x) with a primal that is stable for large x; its automatic
# derivative meets e^x = inf in the unselected branch, the rule does not.
@dx.custom_jvp
def softplus(x):
    return dx.where(x > 30.0, x, dx.log1p(dx.exp(x)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), t / (1.0 + dx.exp(-x))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_custom_jvp_gradient_stable_for_large_input(backend, to_backend):
    x = to_backend([-3.0, 0.0, 1000.0])
    with np.errstate(over="ignore"):
        g = dx.grad(lambda x: dx.sum(softplus(x)))(x)
    np.testing.assert_allclose(np.asarray(g), _sigmoid(np.array([-3.0, 0.0, 1000.0])), rtol=1e-12)


def test_custom_jvp_forward_mode_uses_rule(backend, to_backend):
    x = to_backend([0.5, 2.0])
    out, tangent = dx.jvp(softplus, (x,), (to_backend([1.0, 3.0]),))
    np.testing.assert_allclose(np.asarray(out), np.log1p(np.exp([0.5, 2.0])))
    np.testing.assert_allclose(np.asarray(tangent), _sigmoid(np.array([0.5, 2.0])) * [1.0, 3.0])


def test_custom_jvp_check_grads(backend, to_backend):
    check_grads(softplus, (to_backend([-1.5, 0.2, 2.5]),), order=2)


def test_custom_jvp_second_derivative(backend, to_backend):
    x = to_backend([0.3, -1.0])
    second = dx.grad(lambda x: dx.sum(dx.grad(lambda z: dx.sum(softplus(z)))(x)))(x)
    s = _sigmoid(np.array([0.3, -1.0]))
    np.testing.assert_allclose(np.asarray(second), s * (1 - s), rtol=1e-12)


def test_custom_jvp_rule_replaces_body_in_reverse(backend, to_backend):
    # The rule claims d/dx x = 3, so reverse mode must report 3, not 1.
    @dx.custom_jvp
    def tripled_slope(x):
        return x

    tripled_slope.defjvp(lambda primals, tangents: (primals[0], 3.0 * tangents[0]))
    x = to_backend([1.0, 2.0])
    np.testing.assert_allclose(np.asarray(dx.grad(lambda x: dx.sum(tripled_slope(x)))(x)), [3.0, 3.0])


def test_custom_jvp_several_arguments_and_structures(backend, to_backend):
    @dx.custom_jvp
    def mul_add(pair, c):
        a, b = pair
        return {"p": a * b + c}

    @mul_add.defjvp
    def _(primals, tangents):
        (a, b), c = primals
        (ta, tb), tc = tangents
        return mul_add((a, b), c), {"p": ta * b + a * tb + tc}

    a, b, c = to_backend([1.0, 2.0]), to_backend([3.0, -1.0]), to_backend([0.5, 0.5])
    ga, gb, gc = dx.grad(lambda a, b, c: dx.sum(mul_add((a, b), c)["p"] ** 2), argnums=(0, 1, 2))(a, b, c)
    p = np.array([1.0, 2.0]) * [3.0, -1.0] + 0.5
    np.testing.assert_allclose(np.asarray(ga), 2 * p * [3.0, -1.0])
    np.testing.assert_allclose(np.asarray(gb), 2 * p * [1.0, 2.0])
    np.testing.assert_allclose(np.asarray(gc), 2 * p)
    check_grads(lambda a, b, c: mul_add((a, b), c)["p"], (a, b, c), order=2)


def test_custom_jvp_nondiff_argnums(backend, to_backend):
    @functools.partial(dx.custom_jvp, nondiff_argnums=(0,))
    def power(n, x):
        return x**n

    @power.defjvp
    def _(n, primals, tangents):
        (x,), (t,) = primals, tangents
        return power(n, x), n * x ** (n - 1) * t

    x = to_backend([1.5, 2.0])
    np.testing.assert_allclose(np.asarray(dx.grad(lambda x: dx.sum(power(3, x)))(x)), 3 * np.array([1.5, 2.0]) ** 2)
    check_grads(lambda x: power(3, x), (x,), order=2)


def test_custom_jvp_under_jit():
    jax = pytest.importorskip("jax")
    x = dx.asarray([-3.0, 0.0, 1000.0], backend="jax")
    g = jax.jit(dx.grad(lambda x: dx.sum(softplus(x))))(x)
    np.testing.assert_allclose(np.asarray(g), _sigmoid(np.array([-3.0, 0.0, 1000.0])), rtol=1e-12)


def test_custom_jvp_numpy_rule_raises_in_reverse():
    @dx.custom_jvp
    def f(x):
        return x

    f.defjvp(lambda primals, tangents: (primals[0], np.asarray(tangents[0]) * 2.0))
    with pytest.raises(dx.CustomRuleError, match="transposes its jvp rule"):
        dx.grad(f)(np.asarray(1.0))


def test_custom_jvp_tangent_wrong_structure_raises(to_backend):
    @dx.custom_jvp
    def f(x):
        return x, x

    f.defjvp(lambda primals, tangents: ((primals[0], primals[0]), tangents[0]))
    with pytest.raises(dx.CustomRuleError, match="structure"):
        dx.jvp(f, (to_backend(1.0),), (to_backend(1.0),))


# --------------------------------------------------------------------------
# checkpoint
# --------------------------------------------------------------------------


def _chain(x, length=20):
    for _ in range(length):
        x = dx.sin(x) * 1.1
    return x


def _count_nodes(f, x):
    trace = ReverseTrace()
    with trace:
        out = f(trace.leaf(x))
    return len(_toposort([out]))


def test_checkpoint_gradient_matches_plain(backend, to_backend):
    x = to_backend([0.3, 1.2, -0.4])
    plain = dx.grad(lambda x: dx.sum(_chain(x)))(x)
    checkpointed = dx.grad(lambda x: dx.sum(dx.checkpoint(_chain)(x)))(x)
    np.testing.assert_allclose(np.asarray(checkpointed), np.asarray(plain), rtol=1e-12)


def test_checkpoint_records_fewer_nodes(backend, to_backend):
    x = to_backend([0.3, 1.2])
    plain_nodes = _count_nodes(_chain, x)
    checkpointed_nodes = _count_nodes(dx.checkpoint(_chain), x)
    assert plain_nodes == 41  # the input and two nodes per step
    assert checkpointed_nodes == 3  # the input, the call and its output


def test_checkpoint_reruns_body_once_per_pullback(backend, to_backend):
    calls = []

    def body(x):
        calls.append(1)
        return dx.exp(x) * x

    x = to_backend([0.5, 1.5])
    g = dx.grad(lambda x: dx.sum(dx.checkpoint(body)(x)))(x)
    assert len(calls) == 2
    np.testing.assert_allclose(np.asarray(g), np.exp([0.5, 1.5]) * (1 + np.array([0.5, 1.5])))


def test_checkpoint_check_grads(backend, to_backend):
    check_grads(
        dx.checkpoint(lambda x, y: dx.sin(x) * dx.exp(y) + x * y), (to_backend([0.3, -1.2]), to_backend([0.8, 0.1]))
    )


def test_checkpoint_nested_levels(backend, to_backend):
    x = to_backend([0.3, 1.2])
    block = dx.checkpoint(_chain)

    def grad_sum(f):
        return dx.grad(lambda x: dx.sum(f(x)))

    second = dx.grad(lambda x: dx.sum(grad_sum(block)(x)))(x)
    expected = dx.grad(lambda x: dx.sum(grad_sum(_chain)(x)))(x)
    np.testing.assert_allclose(np.asarray(second), np.asarray(expected), rtol=1e-12)
    hessian = dx.hessian(lambda x: dx.sum(block(x)))(x)
    np.testing.assert_allclose(np.asarray(hessian), np.diag(np.asarray(expected)), rtol=1e-12, atol=1e-15)


def test_checkpoint_structures_and_keywords(backend, to_backend):
    @dx.checkpoint
    def layer(params, x, *, scale):
        return {"y": dx.tanh(params["w"] * x + params["b"]) * scale, "steps": 1}

    params = {"w": to_backend([0.5, -1.0]), "b": to_backend([0.1, 0.2])}
    x = to_backend([1.0, 2.0])

    def loss(params, x):
        return dx.sum(layer(params, x, scale=2.0)["y"] ** 2)

    got = dx.grad(loss, argnums=(0, 1))(params, x)
    expected = dx.grad(lambda p, x: dx.sum((dx.tanh(p["w"] * x + p["b"]) * 2.0) ** 2), argnums=(0, 1))(params, x)
    np.testing.assert_allclose(np.asarray(got[0]["w"]), np.asarray(expected[0]["w"]), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(got[0]["b"]), np.asarray(expected[0]["b"]), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(got[1]), np.asarray(expected[1]), rtol=1e-12)


def test_checkpoint_closure_warns_and_stays_correct(backend, to_backend):
    w = to_backend(2.0)
    x = to_backend([1.0, 0.5])

    def loss(w):
        return dx.sum(dx.checkpoint(lambda z: z * w)(dx.sin(w) * x))

    with pytest.warns(UserWarning, match="without checkpointing"):
        g = dx.grad(loss)(w)
    assert float(g) == pytest.approx(1.5 * (np.cos(2.0) * 2.0 + np.sin(2.0)))


def test_checkpoint_forward_mode(backend, to_backend):
    x = to_backend([0.3, 1.2])
    _, tangent = dx.jvp(dx.checkpoint(_chain), (x,), (to_backend([1.0, 1.0]),))
    np.testing.assert_allclose(np.asarray(tangent), np.asarray(dx.grad(lambda x: dx.sum(_chain(x)))(x)), rtol=1e-12)


def test_checkpoint_under_jit():
    jax = pytest.importorskip("jax")
    x = dx.asarray([0.3, 1.2], backend="jax")
    got = jax.jit(dx.grad(lambda x: dx.sum(dx.checkpoint(_chain)(x))))(x)
    expected = dx.grad(lambda x: dx.sum(_chain(x)))(x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-12)


def test_remat_is_checkpoint():
    assert dx.remat is dx.checkpoint


# --------------------------------------------------------------------------
# Inside control flow
# --------------------------------------------------------------------------


# A rule that differs from the body: d/dc = 2 and d/dw = 3 at every step.
@dx.custom_vjp
def fake_step(c, w):
    return dx.sin(c) * w


fake_step.defvjp(lambda c, w: (dx.sin(c) * w, None), lambda _, g: (2.0 * g, 3.0 * g))


def _scan_loss(step):
    def loss(w):
        # The initial carry depends on w and the body closes over w, so
        # dx.scan has to find w by closure conversion.
        carry, _ = dx.scan(lambda c, _: (step(c, w), None), w * 0.5, None, length=4)
        return dx.sum(carry)

    return loss


def _loop_loss(step):
    def loss(w):
        c = w * 0.5
        for _ in range(4):
            c = step(c, w)
        return dx.sum(c)

    return loss


@pytest.mark.parametrize(
    "step", [fake_step, dx.checkpoint(lambda c, w: dx.sin(c) * w)], ids=["custom_vjp", "checkpoint"]
)
def test_rules_inside_scan_body(backend, to_backend, step):
    w = to_backend([1.1, 0.9])
    expected = dx.grad(_loop_loss(step))(w)
    np.testing.assert_allclose(np.asarray(dx.grad(_scan_loss(step))(w)), np.asarray(expected), rtol=1e-12)
    if backend == "jax":
        import jax

        jitted = jax.jit(dx.grad(_scan_loss(step)))(w)
        np.testing.assert_allclose(np.asarray(jitted), np.asarray(expected), rtol=1e-12)


# --------------------------------------------------------------------------
# stop_gradient
# --------------------------------------------------------------------------


def test_stop_gradient_first_order(backend, to_backend):
    x = to_backend([1.5, -2.0])
    g = dx.grad(lambda x: dx.sum(x * dx.stop_gradient(x)))(x)
    np.testing.assert_allclose(np.asarray(g), [1.5, -2.0])


def test_stop_gradient_every_level(backend, to_backend):
    # The inner gradient is stop_gradient(x)**2; the outer one must see a
    # constant, so the second derivative is 0, not 2x.
    x = to_backend([1.5, -2.0])
    second = dx.grad(lambda x: dx.sum(dx.grad(lambda z: dx.sum(z * dx.stop_gradient(z) ** 2))(x)))(x)
    np.testing.assert_allclose(np.asarray(second), [0.0, 0.0])
    _, tangent = dx.jvp(lambda x: dx.stop_gradient(x) * 3.0, (x,), (to_backend([1.0, 1.0]),))
    np.testing.assert_allclose(np.asarray(tangent), [0.0, 0.0])


def test_stop_gradient_structures(backend, to_backend):
    def loss(params):
        frozen = dx.stop_gradient(params)
        assert frozen["n"] == 3
        assert frozen["name"] == "layer"
        assert not isinstance(frozen["w"], dx.Tracer)
        return dx.sum(params["w"] * frozen["w"]) + dx.sum(frozen["pair"][0] * params["pair"][1])

    params = {"w": to_backend([1.0, 2.0]), "n": 3, "name": "layer", "pair": (to_backend(3.0), to_backend(4.0))}
    g = dx.grad(loss)(params)
    np.testing.assert_allclose(np.asarray(g["w"]), [1.0, 2.0])
    assert float(g["pair"][0]) == 0.0
    assert float(g["pair"][1]) == 3.0


def test_stop_gradient_under_jit():
    jax = pytest.importorskip("jax")
    x = dx.asarray([1.5, -2.0], backend="jax")
    g = jax.jit(dx.grad(lambda x: dx.sum(x * dx.stop_gradient(x))))(x)
    np.testing.assert_allclose(np.asarray(g), [1.5, -2.0])
