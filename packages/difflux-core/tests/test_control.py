"""Tests of dx.cond, dx.scan, dx.fori_loop and dx.while_loop.

Every construct is checked against the same computation written as a plain
Python loop or ``if``, the "unrolled" reference, which the tape
differentiates directly. The checks cover values, reverse-mode gradients,
forward-mode tangents and second derivatives, eagerly on both backends and
under ``jax.jit`` on JAX. Then come closures, nesting, the memory bound of
reverse-mode ``while_loop`` and the error messages.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import difflux.core as dx
from conftest import HAS_JAX
from difflux.core.testing import check_grads

needs_jax = pytest.mark.skipif(not HAS_JAX, reason="JAX is not installed")


def _arr(backend, x):
    return dx.asarray(np.asarray(x, dtype=np.float64), backend=backend)


def _close(actual, expected, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------
# Pairs of (construct version, unrolled version) taking (w, x) -> scalar
# --------------------------------------------------------------------------


def scan_rnn(w, xs):
    # The body closes over w, the parameter being differentiated.
    def cell(h, x):
        h = dx.tanh(h * w + x)
        return h, dx.sum(h * x)

    h, ys = dx.scan(cell, dx.zeros_like(w), xs)
    return dx.sum(h) + dx.sum(ys**2)


def scan_rnn_unrolled(w, xs):
    h = dx.zeros_like(w)
    ys = []
    for t in range(xs.shape[0]):
        h = dx.tanh(h * w + xs[t])
        ys.append(dx.sum(h * xs[t]))
    return dx.sum(h) + dx.sum(dx.stack(ys) ** 2)


def scan_structured(w, xs):
    # A dict carry, a tuple of xs, a reverse scan and a structured y.
    def step(carry, x):
        first, second = x
        a = carry["a"] * w + first
        b = carry["b"] + dx.sum(dx.sin(a)) * second[0]
        return {"a": a, "b": b}, {"out": a * b}

    carry, ys = dx.scan(step, {"a": w, "b": dx.sum(w)}, (xs, xs[:, :1] * 2.0), reverse=True)
    return dx.sum(carry["a"]) * carry["b"] + dx.sum(ys["out"])


def scan_structured_unrolled(w, xs):
    a, b = w, dx.sum(w)
    outs = []
    for t in reversed(range(xs.shape[0])):
        a = a * w + xs[t]
        b = b + dx.sum(dx.sin(a)) * (xs[t, :1] * 2.0)[0]
        outs.append(a * b)
    return dx.sum(a) * b + dx.sum(dx.stack(outs[::-1]))


def fori(w, xs):
    return dx.sum(dx.fori_loop(1, 4, lambda i, c: c * w + dx.sin(xs[i] * i), xs[0]))


def fori_unrolled(w, xs):
    c = xs[0]
    for i in range(1, 4):
        c = c * w + dx.sin(xs[i] * i)
    return dx.sum(c)


def while_fixed(w, xs):
    # Five iterations, counted in an integer leaf of the carry.
    def body(state):
        k, v = state
        return k + 1, dx.sin(v * w) + xs[0]

    _, v = dx.while_loop(lambda state: state[0] < 5, body, (0, xs[1]), max_steps=8)
    return dx.sum(v)


def while_fixed_unrolled(w, xs):
    v = xs[1]
    for _ in range(5):
        v = dx.sin(v * w) + xs[0]
    return dx.sum(v)


def while_data_dependent(w, xs):
    # The trip count depends on the values (3 iterations at the test point).
    def body(v):
        return v * (1.5 + 0.1 * dx.sin(w)) + dx.abs(xs[0])

    return dx.sum(dx.while_loop(lambda v: dx.sum(v) < 20.0, body, dx.abs(xs[1]) + 1.0, max_steps=50))


def while_data_dependent_unrolled(w, xs):
    v = dx.abs(xs[1]) + 1.0
    while dx.sum(v) < 20.0:
        v = v * (1.5 + 0.1 * dx.sin(w)) + dx.abs(xs[0])
    return dx.sum(v)


def cond_closure(w, xs):
    return dx.cond(dx.sum(xs) > 0, lambda v: dx.sum(dx.sin(w) * v), lambda v: dx.sum(dx.cos(w * v)), xs[0])


def cond_closure_unrolled(w, xs):
    if dx.sum(xs) > 0:
        return dx.sum(dx.sin(w) * xs[0])
    return dx.sum(dx.cos(w * xs[0]))


PAIRS = {
    "scan": (scan_rnn, scan_rnn_unrolled),
    "scan_structured": (scan_structured, scan_structured_unrolled),
    "fori_loop": (fori, fori_unrolled),
    "while_fixed": (while_fixed, while_fixed_unrolled),
    "while_data_dependent": (while_data_dependent, while_data_dependent_unrolled),
    "cond": (cond_closure, cond_closure_unrolled),
}

W = np.array([0.7, -0.4])
XS = np.array([[0.5, -1.0], [0.3, 0.8], [-0.6, 0.2], [1.1, -0.3]])
XS_NEGATIVE = -np.abs(XS)  # takes the other branch of cond_closure
TANGENT_W = np.array([0.3, -1.2])
TANGENT_XS = np.linspace(-1.0, 1.0, XS.size).reshape(XS.shape)


def _derivatives(f, w, xs, tw, txs):
    """Value, gradient, tangent and a second derivative of ``f`` at ``(w, xs)``."""
    value = f(w, xs)
    grads = dx.grad(f, argnums=(0, 1))(w, xs)
    _, tangent = dx.jvp(f, (w, xs), (tw, txs))
    # Forward over reverse: the derivative of the gradient along (tw, txs).
    _, second = dx.jvp(lambda a, b: dx.grad(f, argnums=(0, 1))(a, b), (w, xs), (tw, txs))
    return value, grads, tangent, second


def _assert_same(actual, expected):
    value, grads, tangent, second = actual
    value_ref, grads_ref, tangent_ref, second_ref = expected
    _close(value, value_ref)
    for g, g_ref in zip(grads, grads_ref):
        _close(g, g_ref)
    _close(tangent, tangent_ref)
    for s, s_ref in zip(second, second_ref):
        _close(s, s_ref)


@pytest.mark.parametrize("xs_value", [XS, XS_NEGATIVE], ids=["xs", "negative_xs"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_matches_unrolled_loop(name, xs_value, backend):
    construct, unrolled = PAIRS[name]
    args = [_arr(backend, v) for v in (W, xs_value, TANGENT_W, TANGENT_XS)]
    _assert_same(_derivatives(construct, *args), _derivatives(unrolled, *args))


@needs_jax
@pytest.mark.parametrize("name", list(PAIRS))
def test_matches_unrolled_loop_under_jit(name):
    import jax

    construct, unrolled = PAIRS[name]
    args = [_arr("jax", v) for v in (W, XS, TANGENT_W, TANGENT_XS)]
    expected = _derivatives(unrolled, *args)
    actual = jax.jit(lambda *a: _derivatives(construct, *a))(*args)
    _assert_same(actual, expected)


@pytest.mark.parametrize("name", list(PAIRS))
def test_check_grads(name, backend):
    construct, _ = PAIRS[name]
    # Second order on NumPy; first order on JAX keeps the compile time short,
    # and test_matches_unrolled_loop covers second derivatives there.
    order = 2 if backend == "numpy" else 1
    check_grads(construct, (_arr(backend, W), _arr(backend, XS)), order=order)


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


def test_scan_values_and_structure(backend, to_backend):
    xs = {"u": to_backend([1.0, 2.0, 3.0]), "v": to_backend([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])}

    def step(carry, x):
        total, count = carry
        return (total + x["u"] * x["v"], count + 1), (x["u"] * 2.0, None)

    (total, count), (doubled, nothing) = dx.scan(step, (to_backend([0.0, 0.0]), 0), xs)
    _close(total, [4.0, 5.0])
    assert int(count) == 3
    _close(doubled, [2.0, 4.0, 6.0])
    assert nothing is None


def test_scan_reverse_keeps_ys_in_order(backend, to_backend):
    carry, ys = dx.scan(lambda c, x: (c * 10.0 + x, c), 0.0, to_backend([1.0, 2.0, 3.0]), reverse=True)
    _close(carry, 321.0)
    _close(ys, [32.0, 3.0, 0.0])


def test_scan_without_xs_uses_length(backend):
    with dx.backend(backend):
        carry, ys = dx.scan(lambda c, _: (c * 2.0, c), dx.asarray(1.0), None, length=4)
    _close(carry, 16.0)
    _close(ys, [1.0, 2.0, 4.0, 8.0])


def test_scan_of_length_zero(backend, to_backend):
    carry, ys = dx.scan(lambda c, x: (c + x, c * x), to_backend([1.0, 2.0]), to_backend(np.zeros((0, 2))))
    _close(carry, [1.0, 2.0])
    assert ys.shape == (0, 2)


def test_fori_loop_values(backend, to_backend):
    out = dx.fori_loop(2, 5, lambda i, c: c * 2.0 + i, to_backend([1.0, 0.0]))
    _close(out, [((1.0 * 2 + 2) * 2 + 3) * 2 + 4, (2 * 2 + 3) * 2 + 4])
    assert float(dx.fori_loop(3, 3, lambda i, c: c + 1.0, to_backend(5.0))) == 5.0


def test_fori_loop_index_on_numpy_is_python_int():
    seen = []
    dx.fori_loop(0, 3, lambda i, c: seen.append(type(i)) or c, np.float64(0.0))
    assert seen == [int, int, int]


def test_while_loop_values(backend, to_backend):
    out = dx.while_loop(lambda c: c[1] < 100.0, lambda c: (c[0] + 1, c[1] * 3.0), (0, to_backend(1.0)))
    assert int(out[0]) == 5
    _close(out[1], 243.0)


def test_while_loop_stops_at_max_steps(backend, to_backend):
    # cond_fun is still true after 4 steps: the loop stops there and returns the
    # carry reached, with no error.
    out = dx.while_loop(lambda c: c < 1e9, lambda c: c * 2.0, to_backend(1.0), max_steps=4)
    _close(out, 16.0)
    g = dx.grad(lambda x: dx.while_loop(lambda c: c < 1e9, lambda c: c * c, x, max_steps=3))(to_backend(1.5))
    _close(g, 8 * 1.5**7)


def test_cond_values(backend, to_backend):
    x = to_backend([1.0, -2.0])
    assert float(dx.cond(True, lambda a: dx.sum(a), lambda a: dx.sum(a * a), x)) == -1.0
    assert float(dx.cond(dx.sum(x) > 0, lambda a: dx.sum(a), lambda a: dx.sum(a * a), x)) == 5.0


@needs_jax
def test_values_under_jit():
    import jax

    @jax.jit
    def run(x):
        c, ys = dx.scan(lambda c, v: (c + v, c * v), 0.0, x)
        w = dx.while_loop(lambda c: c < 50.0, lambda c: c * 2.0, x[0] + 1.0)
        f = dx.fori_loop(0, 3, lambda i, c: c + x[i], 0.0)
        b = dx.cond(x[1] > x[0], lambda: x[1], lambda: x[0])
        return c, ys, w, f, b

    c, ys, w, f, b = run(_arr("jax", [1.0, 2.0, 3.0]))
    _close(c, 6.0)
    _close(ys, [0.0, 2.0, 9.0])
    _close(w, 64.0)
    _close(f, 6.0)
    _close(b, 2.0)


# --------------------------------------------------------------------------
# Closures and nesting
# --------------------------------------------------------------------------


def test_scan_closure_over_parameter(backend, to_backend):
    xs = to_backend([1.0, 2.0, 3.0])
    g = dx.grad(lambda w: dx.scan(lambda c, x: (c * w + x, c), 0.0, xs)[0])(to_backend(0.5))
    # carry = w**2 + 2w + 3 after three steps.
    _close(g, 2 * 0.5 + 2)


def test_grad_of_grad_of_scan(backend, to_backend):
    xs = to_backend([1.0, 2.0, 3.0])

    def f(w):
        return dx.scan(lambda c, x: (dx.sin(c * w) + x, c), 0.5, xs)[0]

    def f_unrolled(w):
        c = 0.5
        for t in range(3):
            c = dx.sin(c * w) + xs[t]
        return c

    w = to_backend(0.8)
    _close(dx.grad(dx.grad(f))(w), dx.grad(dx.grad(f_unrolled))(w))
    _close(dx.grad(dx.grad(dx.grad(f)))(w), dx.grad(dx.grad(dx.grad(f_unrolled)))(w))


def _nested(w, xs):
    # A scan inside a scan, a cond on a carry-dependent predicate and a
    # while loop inside a fori loop, all closing over w.
    def outer(c, x):
        inner, _ = dx.scan(lambda a, y: (a * w + y, None), c, x)
        branch = dx.cond(dx.sum(inner) > 0, lambda v: v * w, lambda v: v - w, inner)
        return branch, dx.sum(branch)

    c, ys = dx.scan(outer, w, xs)

    def fori_body(i, v):
        return dx.while_loop(lambda s: s[0] < 2, lambda s: (s[0] + 1, dx.sin(s[1]) * w), (0, v), max_steps=3)[1]

    return dx.sum(dx.fori_loop(0, 2, fori_body, c)) + dx.sum(ys)


def _nested_unrolled(w, xs):
    c = w
    ys = []
    for t in range(xs.shape[0]):
        inner = c
        for j in range(xs.shape[1]):
            inner = inner * w + xs[t, j]
        c = inner * w if dx.sum(inner) > 0 else inner - w
        ys.append(dx.sum(c))
    for _ in range(2):
        for _ in range(2):
            c = dx.sin(c) * w
    return dx.sum(c) + dx.sum(dx.stack(ys))


def test_nested_constructs(backend):
    args = [_arr(backend, v) for v in (np.array([0.9, -0.5]), XS[:3, :, None] * np.ones(2), TANGENT_W, TANGENT_W)]
    w, xs, tw, _ = args
    _close(_nested(w, xs), _nested_unrolled(w, xs))
    _close(dx.grad(_nested)(w, xs), dx.grad(_nested_unrolled)(w, xs))
    _close(
        dx.jvp(_nested, (w, xs), (tw, dx.zeros_like(xs)))[1],
        dx.jvp(_nested_unrolled, (w, xs), (tw, dx.zeros_like(xs)))[1],
    )


@needs_jax
def test_nested_constructs_under_jit():
    import jax

    w, xs = _arr("jax", [0.9, -0.5]), _arr("jax", XS[:3, :, None] * np.ones(2))
    _close(jax.jit(dx.grad(_nested))(w, xs), dx.grad(_nested_unrolled)(w, xs))
    hvp = jax.jit(lambda w, v: dx.jvp(lambda a: dx.grad(_nested)(a, xs), (w,), (v,))[1])
    expected = dx.jvp(lambda a: dx.grad(_nested_unrolled)(a, xs), (w,), (w,))[1]
    _close(hvp(w, w), expected)


@needs_jax
def test_scan_is_one_lax_loop_under_jit():
    import jax

    xs = _arr("jax", np.linspace(0.0, 1.0, 1000))

    def f(w):
        return dx.scan(lambda c, x: (dx.sin(c * w + x), None), 0.0, xs)[0]

    program = str(jax.make_jaxpr(jax.jit(dx.grad(f)))(_arr("jax", 0.5)))
    assert "scan" in program
    # An unrolled loop would have a thousand sin equations.
    assert program.count("sin") < 10


@needs_jax
def test_long_eager_scan_gradients():
    # Longer than the eager Python-loop limit, so it runs as jax.lax.scan.
    xs = _arr("jax", np.linspace(-1.0, 1.0, 40))

    def f(w, xs):
        return dx.scan(lambda c, x: (dx.sin(c * w) + x, None), 0.1, xs)[0]

    def f_unrolled(w, xs):
        c = 0.1
        for t in range(40):
            c = dx.sin(c * w) + xs[t]
        return c

    w = _arr("jax", 0.9)
    _close(dx.grad(f, argnums=(0, 1))(w, xs)[1], dx.grad(f_unrolled, argnums=(0, 1))(w, xs)[1])
    _close(dx.grad(dx.grad(f))(w, xs), dx.grad(dx.grad(f_unrolled))(w, xs))
    _close(dx.jvp(f, (w, xs), (w, xs))[1], dx.jvp(f_unrolled, (w, xs), (w, xs))[1])


def _second_derivative(f, xs):
    # Reverse over reverse: the gradient of a function of the gradient.
    return dx.grad(lambda w: dx.sum(dx.grad(f)(w, xs) * dx.sin(w)))


@needs_jax
@pytest.mark.parametrize("name", ["scan", "while_fixed", "cond"])
def test_reverse_over_reverse_under_jit(name):
    import jax

    construct, unrolled = PAIRS[name]
    w, xs = _arr("jax", W), _arr("jax", XS)
    _close(jax.jit(_second_derivative(construct, xs))(w), _second_derivative(unrolled, xs)(w))


@needs_jax
def test_custom_vjp_in_lax_loop_body():
    # A custom rule dispatches outside bind, so it must apply the bind hook too.
    import jax

    @dx.custom_vjp
    def scaled_sin(x):
        return dx.sin(x)

    scaled_sin.defvjp(lambda x: (dx.sin(x), x), lambda x, g: (g * dx.cos(x),))
    xs = _arr("jax", [0.1, 0.2, 0.3])

    def f(w):
        return dx.scan(lambda c, x: (c + scaled_sin(w) * x, None), 0.0, xs)[0]

    _close(jax.jit(dx.grad(f))(_arr("jax", 0.7)), np.cos(0.7) * 0.6)


@needs_jax
def test_cond_on_traced_predicate_differentiates_taken_branch():
    import jax

    def f(x):
        return dx.cond(x > 0, lambda: dx.log(x), lambda: -x)

    grad = jax.jit(dx.grad(f))
    _close(grad(_arr("jax", 2.0)), 0.5)
    # The untaken branch would give log(-3) = nan; lax.switch never runs it.
    _close(grad(_arr("jax", -3.0)), -1.0)


def test_while_loop_jvp_needs_no_max_steps(backend, to_backend):
    f = lambda x: dx.while_loop(lambda c: c < 10.0, lambda c: c * c, x)  # noqa: E731
    value, tangent = dx.jvp(f, (to_backend(1.5),), (to_backend(1.0),))
    _close(value, 1.5**8)
    _close(tangent, 8 * 1.5**7)


def test_gradient_with_respect_to_while_carry_structure(backend, to_backend):
    def f(params):
        state = dx.while_loop(
            lambda s: s["k"] < 3,
            lambda s: {"k": s["k"] + 1, "v": s["v"] * params["scale"]},
            {"k": 0, "v": params["start"]},
            max_steps=5,
        )
        return dx.sum(state["v"])

    g = dx.grad(f)({"scale": to_backend(2.0), "start": to_backend([1.0, 3.0])})
    _close(g["scale"], 3 * 2.0**2 * 4.0)
    _close(g["start"], [8.0, 8.0])


# --------------------------------------------------------------------------
# Reverse-mode while_loop: memory bound
# --------------------------------------------------------------------------


def _long_loop(w, v0, steps):
    # The trip count sits in the carry, so it is known only at run time.
    def body(state):
        k, v = state
        return k + 1, v + 1e-3 * dx.sin(v * w)

    return dx.while_loop(lambda s: s[0] < steps, body, (0, v0), max_steps=steps + 500)[1]


def _long_loop_unrolled(w, v0, steps):
    v = v0
    for _ in range(steps):
        v = v + 1e-3 * dx.sin(v * w)
    return v


@pytest.mark.parametrize("steps", [1_000, pytest.param(10_000, marks=pytest.mark.slow)])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_while_reverse_mode_memory_is_sublinear(backend, jit, steps):
    if jit and backend != "jax":
        pytest.skip("jax.jit needs the JAX backend")
    w, v0 = 0.8, 0.3
    grad = dx.grad(lambda w, v: _long_loop(w, v, steps), argnums=(0, 1))
    if jit:
        import jax

        grad = jax.jit(grad)
    with dx.checkpoint_stats() as stats:
        g_w, g_v = grad(_arr(backend, w), _arr(backend, v0))
    expected = dx.grad(lambda w, v: _long_loop_unrolled(w, v, steps), argnums=(0, 1))(np.float64(w), np.float64(v0))
    _close(g_w, expected[0], rtol=1e-9)
    _close(g_v, expected[1], rtol=1e-9)
    assert len(stats) == 1
    max_steps = steps + 500
    assert stats[0].max_steps == max_steps
    # The default schedule stores about 2 * sqrt(max_steps) carries.
    assert stats[0].stored_carries <= 2 * math.isqrt(max_steps) + 2
    assert stats[0].checkpoints > 0
    assert stats[0].segment_carries > 0


def test_while_checkpoints_argument_sets_segments(backend, to_backend):
    f = lambda x: _long_loop_unrolled(x, x, 1)  # noqa: E731

    def loop(x):
        return dx.while_loop(lambda s: s[0] < 30, lambda s: (s[0] + 1, f(s[1])), (0, x), max_steps=40, checkpoints=4)[1]

    with dx.checkpoint_stats() as stats:
        g = dx.grad(loop)(to_backend(0.4))
    _close(g, dx.grad(lambda x: dx.fori_loop(0, 30, lambda i, v: f(v), x))(to_backend(0.4)))
    assert stats[0].checkpoints == 4
    assert stats[0].segment_carries == 10


def test_while_pullback_does_not_rerun_forward_loop():
    # The forward pass stores the checkpoints, so the pullback runs the body
    # twice per step: once to recompute the segment's carries, once under vjp.
    steps = 12
    calls = {"count": 0}

    def body(state):
        calls["count"] += 1
        k, v = state
        return k + 1, dx.sin(v) * 1.1

    def loop(x):
        return dx.while_loop(lambda s: s[0] < steps, body, (0, x), max_steps=30)[1]

    out, pullback = dx.vjp(loop, np.float64(0.7))
    forward_calls = calls["count"]
    (gradient,) = pullback(np.float64(1.0))
    backward_calls = calls["count"] - forward_calls

    v, expected = 0.7, 1.0
    for _ in range(steps):
        expected *= 1.1 * np.cos(v)
        v = np.sin(v) * 1.1
    _close(out, v)
    _close(gradient, expected)
    # One more forward call than steps: the run that finds closed-over values.
    assert forward_calls <= steps + 1
    assert backward_calls == 2 * steps


def _scan_loss(w, xs, checkpoints, reverse):
    def step(c, x):
        return dx.sin(c * w) + x, dx.sum(c * x)

    c, ys = dx.scan(step, w, xs, reverse=reverse, checkpoints=checkpoints)
    return dx.sum(c) + dx.sum(ys**2)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_scan_checkpoints_match_plain_scan(backend, reverse):
    # 103 steps in 10 segments of 11: the last segment is padded.
    xs = _arr(backend, np.linspace(-1.0, 1.0, 103)[:, None] * np.ones(2))
    w = _arr(backend, W)
    expected = dx.grad(_scan_loss, argnums=(0, 1))(w, xs, None, reverse)
    with dx.checkpoint_stats() as stats:
        actual = dx.grad(_scan_loss, argnums=(0, 1))(w, xs, 10, reverse)
    _close(actual[0], expected[0])
    _close(actual[1], expected[1])
    assert len(stats) == 1
    assert stats[0].checkpoints == 10
    assert stats[0].segment_carries == 11
    tangent = dx.jvp(lambda a: _scan_loss(a, xs, 10, reverse), (w,), (w,))[1]
    _close(tangent, dx.jvp(lambda a: _scan_loss(a, xs, None, reverse), (w,), (w,))[1])


def test_scan_checkpoints_check_grads(backend):
    xs = _arr(backend, XS)
    order = 2 if backend == "numpy" else 1
    check_grads(lambda w, x: _scan_loss(w, x, 2, True), (_arr(backend, W), xs), order=order)


@needs_jax
def test_scan_checkpoints_under_jit():
    import jax

    xs = _arr("jax", np.linspace(-1.0, 1.0, 1000)[:, None] * np.ones(2))
    w = _arr("jax", W)
    expected = dx.grad(_scan_loss, argnums=(0, 1))(w, xs, None, False)
    with dx.checkpoint_stats() as stats:
        actual = jax.jit(lambda w, xs: dx.grad(_scan_loss, argnums=(0, 1))(w, xs, 32, False))(w, xs)
    _close(actual[0], expected[0])
    _close(actual[1], expected[1])
    assert stats[0].stored_carries <= 2 * math.isqrt(1000) + 2
    second = jax.jit(_second_derivative(lambda w, x: _scan_loss(w, x, 32, False), xs))
    _close(second(w), _second_derivative(lambda w, x: _scan_loss(w, x, None, False), xs)(w))


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_scan_carry_structure_mismatch_names_both(backend, to_backend):
    with pytest.raises(TypeError, match=r"f must return a carry with the structure of init.*tuple"):
        dx.scan(lambda c, x: ((c, c), None), to_backend(0.0), to_backend([1.0, 2.0]))


def test_scan_carry_shape_mismatch(backend, to_backend):
    with pytest.raises(TypeError, match=r"shape \(2,\) in init but shape \(2, 2\) in the output of f"):
        dx.scan(lambda c, x: (c * c[:, None], None), to_backend([1.0, 2.0]), to_backend([1.0, 2.0]))


def test_scan_carry_dtype_mismatch(backend, to_backend):
    with pytest.raises(TypeError, match=r"dtype int.* in init but dtype float64 in the output of f"):
        dx.scan(lambda c, x: (c + x, None), dx.asarray(np.array(0), backend=backend), to_backend([1.0, 2.0]))


def test_scan_must_return_a_pair(backend, to_backend):
    with pytest.raises(TypeError, match=r"f must return a pair \(carry, y\)"):
        dx.scan(lambda c, x: c + x, to_backend(0.0), to_backend([1.0, 2.0]))


def test_scan_xs_errors(backend, to_backend):
    with pytest.raises(ValueError, match="different leading lengths"):
        dx.scan(lambda c, x: (c, None), 0.0, (to_backend([1.0, 2.0]), to_backend([1.0])))
    with pytest.raises(ValueError, match="leaf 0 is a scalar"):
        dx.scan(lambda c, x: (c, None), 0.0, to_backend(1.0))
    with pytest.raises(ValueError, match="give length="):
        dx.scan(lambda c, x: (c, None), 0.0, None)
    with pytest.raises(ValueError, match="length=3 but xs has leading length 2"):
        dx.scan(lambda c, x: (c, None), 0.0, to_backend([1.0, 2.0]), length=3)


def test_fori_and_while_body_mismatch_names_both(backend, to_backend):
    with pytest.raises(TypeError, match="body_fun must return a carry with the structure of init_val"):
        dx.fori_loop(0, 2, lambda i, c: (c, c), to_backend(1.0))
    with pytest.raises(TypeError, match="shape \\(\\) in init_val but shape \\(2,\\) in the output of body_fun"):
        dx.while_loop(lambda c: c[0] < 2, lambda c: (c[0] + 1, dx.stack([c[1], c[1]])), (0, to_backend(1.0)))


def test_error_inside_differentiated_loop(backend, to_backend):
    with pytest.raises(TypeError, match="body_fun"):
        dx.grad(lambda x: dx.while_loop(lambda c: c < 2.0, lambda c: (c, c), x, max_steps=4))(to_backend(1.0))


def test_while_reverse_mode_without_max_steps_raises(backend, to_backend):
    with pytest.raises(ValueError, match="reverse-mode differentiation needs max_steps"):
        dx.grad(lambda x: dx.while_loop(lambda c: c < 10.0, lambda c: c * 2.0, x))(to_backend(1.0))


def test_scan_invalid_checkpoints(backend, to_backend):
    with pytest.raises(ValueError, match="checkpoints must be an integer >= 1"):
        dx.scan(lambda c, x: (c, None), 0.0, to_backend([1.0]), checkpoints=0)


def test_while_invalid_bounds(backend, to_backend):
    with pytest.raises(ValueError, match="max_steps must be an integer >= 0"):
        dx.while_loop(lambda c: c < 1.0, lambda c: c, to_backend(0.0), max_steps=-1)
    with pytest.raises(ValueError, match="checkpoints must be an integer >= 1"):
        dx.while_loop(lambda c: c < 1.0, lambda c: c, to_backend(0.0), max_steps=3, checkpoints=0)


def test_cond_predicate_errors(backend, to_backend):
    x = to_backend([1.0, 2.0])
    with pytest.raises(TypeError, match=r"pred must be a scalar boolean, got shape \(2,\)"):
        dx.cond(x > 0, lambda: x, lambda: x)
    with pytest.raises(TypeError, match="pred must be a boolean, got dtype float64"):
        dx.cond(x[0], lambda: x, lambda: x)


@needs_jax
def test_cond_branch_mismatch_names_both():
    import jax

    @jax.jit
    def f(x):
        return dx.cond(x > 0, lambda: x, lambda: dx.stack([x, x]))

    with pytest.raises(TypeError, match=r"true_fun and shape \(2,\).*from false_fun"):
        f(_arr("jax", 1.0))


@needs_jax
def test_fori_loop_with_traced_bounds():
    import jax

    def f(x, n):
        return dx.fori_loop(0, n, lambda i, c: c * x, 1.0)

    _close(jax.jit(f)(_arr("jax", 2.0), 5), 32.0)
    tangent = jax.jit(lambda x, n: dx.jvp(lambda y: f(y, n), (x,), (dx.ones_like(x),))[1])
    _close(tangent(_arr("jax", 2.0), 5), 5 * 2.0**4)
    with pytest.raises(ValueError, match="fori_loop: the loop bounds are traced"):
        jax.jit(dx.grad(lambda x, n: dx.fori_loop(0, n, lambda i, c: c * x, 1.0)))(_arr("jax", 2.0), 5)
