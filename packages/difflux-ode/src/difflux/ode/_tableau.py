"""Butcher tableaux of explicit Runge-Kutta methods, held as exact fractions.

A tableau is data: the nodes ``c``, the lower-triangular matrix ``a``, the
weights ``b`` of the solution and, for embedded pairs, ``b_error = b - b_hat``,
the weights whose combination of stages estimates the local error.
``ButcherTableau.build`` checks consistency: rows of ``a`` sum to ``c``, ``b``
sums to 1 and ``b_error`` sums to 0. :func:`order_condition_residuals`
evaluates the order conditions (one per rooted tree, in Butcher's theory),
and the tests check them up to each method's claimed order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from fractions import Fraction
from functools import cache

import numpy as np

Number = Fraction | int | str


def _fraction(value: Number) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(value)


@dataclasses.dataclass(frozen=True)
class ButcherTableau:
    """The coefficients of an explicit Runge-Kutta method.

    Attributes:
        c: nodes, one per stage, ``c[0] == 0``.
        a: rows of the stage matrix; row ``i`` has ``i`` entries (strictly
            lower triangular).
        b: weights of the propagated solution.
        b_error: ``b - b_hat`` for an embedded pair, whose stage combination
            estimates the local error; ``None`` for a fixed-step method.
        tolerance: how far consistency sums may be from exact. It is 0 for
            tableaux given as exact rationals, and a small positive value for
            methods published only as decimals (Tsit5).
    """

    c: tuple[Fraction, ...]
    a: tuple[tuple[Fraction, ...], ...]
    b: tuple[Fraction, ...]
    b_error: tuple[Fraction, ...] | None = None
    tolerance: float = 0.0

    @classmethod
    def build(
        cls,
        c: Sequence[Number],
        a: Sequence[Sequence[Number]],
        b: Sequence[Number],
        b_error: Sequence[Number] | None = None,
        tolerance: float = 0.0,
    ) -> ButcherTableau:
        """Convert the coefficients to fractions and validate them."""
        tableau = cls(
            c=tuple(_fraction(x) for x in c),
            a=tuple(tuple(_fraction(x) for x in row) for row in a),
            b=tuple(_fraction(x) for x in b),
            b_error=None if b_error is None else tuple(_fraction(x) for x in b_error),
            tolerance=tolerance,
        )
        tableau.validate()
        return tableau

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def fsal(self) -> bool:
        """Whether the last stage is evaluated at the new solution ("first same as last")."""
        last = self.a[-1] if self.stages > 1 else ()
        return (
            self.stages > 1
            and self.c[-1] == 1
            and len(last) == self.stages - 1
            and tuple(last) == self.b[:-1]
            and self.b[-1] == 0
        )

    def validate(self) -> None:
        """Raise ``ValueError`` if the tableau's shape or consistency sums are wrong."""
        s = self.stages
        if len(self.a) != s or any(len(row) != i for i, row in enumerate(self.a)):
            raise ValueError(f"ButcherTableau: a must have rows of lengths 0..{s - 1}, got {[len(r) for r in self.a]}")
        if len(self.b) != s or (self.b_error is not None and len(self.b_error) != s):
            raise ValueError(f"ButcherTableau: b and b_error need {s} entries, one per stage")
        if self.c[0] != 0:
            raise ValueError(f"ButcherTableau: an explicit method has c[0] == 0, got {self.c[0]}")
        for i, row in enumerate(self.a):
            if abs(float(sum(row, Fraction(0)) - self.c[i])) > self.tolerance:
                raise ValueError(
                    f"ButcherTableau: row {i} of a sums to {float(sum(row))}, not c[{i}] = {float(self.c[i])}"
                )
        if abs(float(sum(self.b, Fraction(0)) - 1)) > self.tolerance:
            raise ValueError(f"ButcherTableau: the weights b sum to {float(sum(self.b))}, not 1")
        if self.b_error is not None and abs(float(sum(self.b_error, Fraction(0)))) > self.tolerance:
            raise ValueError(f"ButcherTableau: the error weights sum to {float(sum(self.b_error))}, not 0")

    def arrays(self, dtype: np.dtype | type) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Return ``(c, a, b, b_error)`` as NumPy arrays of ``dtype``; ``a`` is a full square matrix."""
        s = self.stages
        a = np.zeros((s, s), dtype=dtype)
        for i, row in enumerate(self.a):
            a[i, : len(row)] = [float(x) for x in row]
        c = np.array([float(x) for x in self.c], dtype=dtype)
        b = np.array([float(x) for x in self.b], dtype=dtype)
        e = None if self.b_error is None else np.array([float(x) for x in self.b_error], dtype=dtype)
        return c, a, b, e


# --------------------------------------------------------------------------
# Order conditions
# --------------------------------------------------------------------------

# A rooted tree is the sorted tuple of its root's subtrees; () is a single node.
Tree = tuple


@cache
def rooted_trees(order: int) -> tuple[Tree, ...]:
    """Return the rooted trees with ``order`` nodes (1, 1, 2, 4, 9, 20, ... of them)."""
    if order == 1:
        return ((),)
    return tuple(sorted(set(_forests(order - 1, order - 1)), key=repr))


def _forests(nodes: int, largest: int) -> list[Tree]:
    """Return sorted tuples of trees with ``nodes`` nodes in all, each tree at most ``largest`` nodes."""
    if nodes == 0:
        return [()]
    forests = []
    for size in range(min(nodes, largest), 0, -1):
        for tree in rooted_trees(size):
            for rest in _forests(nodes - size, size):
                forests.append(tuple(sorted((tree, *rest), key=repr)))
    return forests


def _size(tree: Tree) -> int:
    return 1 + sum(_size(t) for t in tree)


def _density(tree: Tree) -> int:
    """Return the density gamma(t) of a tree: its size times its subtrees' densities."""
    result = _size(tree)
    for t in tree:
        result *= _density(t)
    return result


def order_condition_residuals(
    tableau: ButcherTableau, order: int, weights: Sequence[Fraction] | None = None
) -> dict[Tree, float]:
    """Return ``b . Phi(t) - 1/gamma(t)`` for every rooted tree ``t`` of at most ``order`` nodes.

    All residuals are zero (exactly, for a rational tableau) if and only if
    the method with weights ``weights`` (default ``tableau.b``) has order
    ``order`` (Butcher's theorem, in Hairer, Norsett and Wanner, Solving ODEs I, 2nd ed., Section II.2).
    """
    s = tableau.stages
    a = [list(row) + [Fraction(0)] * (s - len(row)) for row in tableau.a]
    b = list(tableau.b if weights is None else weights)

    def phi(tree: Tree) -> list[Fraction]:
        values = [Fraction(1)] * s
        for child in tree:
            inner = phi(child)
            values = [values[i] * sum((a[i][j] * inner[j] for j in range(s)), Fraction(0)) for i in range(s)]
        return values

    residuals = {}
    for n in range(1, order + 1):
        for tree in rooted_trees(n):
            value = sum((bi * p for bi, p in zip(b, phi(tree))), Fraction(0))
            residuals[tree] = float(value - Fraction(1, _density(tree)))
    return residuals
