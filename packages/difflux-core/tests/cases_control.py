"""Sweep cases for cond, scan, fori_loop and while_loop, each with a body
that closes over a differentiated argument."""

from __future__ import annotations

import difflux.core as dx
from sweep_case import Case, uniform


def _scan_rnn(w, xs):
    h, ys = dx.scan(lambda h, x: (dx.tanh(h * w + x), dx.sum(h * x)), dx.zeros_like(w), xs)
    return dx.sum(h) + ys


def _scan_reverse(w, xs):
    carry, ys = dx.scan(lambda c, x: (c * dx.cos(w) + x, c * x), w, xs, reverse=True)
    return dx.concat([carry, dx.reshape(ys, (-1,))])


def _scan_checkpointed(w, xs):
    carry, ys = dx.scan(lambda c, x: (dx.sin(c * w) + x, c * x), w, xs, checkpoints=2)
    return dx.concat([carry, dx.reshape(ys, (-1,))])


def _fori(w, x):
    return dx.fori_loop(0, 3, lambda i, c: dx.sin(c * w) + x * i, x)


def _while(w, x):
    def body(state):
        k, v = state
        return k + 1, v * dx.tanh(w) + x

    return dx.while_loop(lambda s: s[0] < 3, body, (0, x), max_steps=4)[1]


def _cond(w, x):
    return dx.cond(dx.sum(x) > 0, lambda v: dx.exp(v * w), lambda v: v - w, x)


CASES = [
    Case("scan_closure", _scan_rnn, uniform((2,), (3, 2))),
    Case("scan_reverse", _scan_reverse, uniform((2,), (3, 2))),
    Case("scan_checkpointed", _scan_checkpointed, uniform((2,), (5, 2))),
    Case("fori_loop_closure", _fori, uniform((2,), (2,))),
    Case("while_loop_closure", _while, uniform((2,), (2,))),
    Case("cond_closure", _cond, uniform((2,), (2,), low=0.1, high=2.0)),
    Case("cond_other_branch", _cond, uniform((2,), (2,), low=-2.0, high=-0.1)),
]
