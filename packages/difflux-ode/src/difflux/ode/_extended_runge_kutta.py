"""Explicit pairs whose continuous extension evaluates extra stages after the step.

DOP853 (``Dopri8``) and Verner's 7(6) pair (``Vern7``) build their
high-order interpolant from the step's stages, ``f(t + h, y1)`` and a few
extra stages. Their coefficients are written as decimal strings, which
:func:`dense_row` parses into exact fractions.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any, ClassVar

import difflux.core as dx

from ._runge_kutta import AbstractRungeKutta, VectorField, hermite_cubic


def dense_row(entries: list[tuple[int, str]], length: int) -> list[Fraction]:
    """Expand sparse ``(index, decimal string)`` pairs into a row of ``length`` exact fractions."""
    row = [Fraction(0)] * length
    for index, digits in entries:
        row[index] = Fraction(digits)
    return row


def linear_combination(terms: list[tuple[Any, Any]]) -> Any:
    """Return the sum of ``weight * value`` over the ``(weight, value)`` pairs (``None`` for no pairs)."""
    total = None
    for weight, value in terms:
        term = weight * value
        total = term if total is None else total + term
    return total


@dataclasses.dataclass(frozen=True)
class AbstractExtendedRungeKutta(AbstractRungeKutta):
    """Base class of the explicit pairs whose continuous extension adds stages after each step.

    A subclass sets ``extra_c`` and ``extra_a`` besides the tableau, and
    implements :meth:`interpolate_dense`. The extension numbers its stages
    as the step's ``s`` stages, then ``f(t + h, y1)`` as stage ``s``, then
    the extra stages. Row ``i`` of ``extra_a`` lists the ``(stage index,
    decimal string)`` pairs of extra stage ``i`` in that numbering, and
    ``extra_c[i]`` is its node.

    Attributes:
        dense: compute the extra stages on every step, for the method's own
            interpolant. With ``False`` the interpolant is the cubic Hermite
            one, of order 3 only.
    """

    dense: bool = True

    extra_c: ClassVar[list[Fraction]]
    extra_a: ClassVar[list[list[tuple[int, str]]]]

    @property
    def dense_stages(self) -> int:
        return self.tableau.stages + len(self.extra_c) if self.dense else self.tableau.stages

    @property
    def function_evaluations_per_step(self) -> int:
        return self.dense_stages

    def step(self, f: VectorField, t: Any, y: Any, f0: Any, h: Any) -> tuple[Any, Any, Any, Any]:
        """Take one step as :meth:`AbstractRungeKutta.step` does, adding the dense-output stages.

        ``ks`` stacks the step's stages and then the extra ones. It leaves
        out ``f(t + h, y1)``, which the step returns as ``f1``.
        """
        y1, y_error, ks, f1 = super().step(f, t, y, f0, h)
        if not self.dense:
            return y1, y_error, ks, f1

        step_stages = self.tableau.stages
        stages = [ks[i] for i in range(step_stages)] + [f1]
        for c, row in zip(self.extra_c, self.extra_a):
            increment = linear_combination([(float(Fraction(w)), stages[j]) for j, w in row])
            stages.append(f(t + float(c) * h, y + h * increment))
        return y1, y_error, dx.stack(stages[:step_stages] + stages[step_stages + 1 :]), f1

    def interpolate(self, y0: Any, y1: Any, f0: Any, f1: Any, h: Any, ks: Any, theta: Any) -> Any:
        if not self.dense:
            return hermite_cubic(y0, y1, f0, f1, h, theta)
        step_stages = self.tableau.stages
        stages = (
            [ks[..., i, :] for i in range(step_stages)]
            + [f1]
            + [ks[..., step_stages + i, :] for i in range(len(self.extra_c))]
        )
        return self.interpolate_dense(y0, y1, f0, f1, h, stages, theta)

    def interpolate_dense(self, y0: Any, y1: Any, f0: Any, f1: Any, h: Any, stages: list[Any], theta: Any) -> Any:
        """Evaluate the method's own continuous extension at ``t0 + theta * h``.

        ``stages`` lists the stage rows in the extension's numbering, each
        of shape ``(..., d)``. The other arguments are those of
        :meth:`AbstractRungeKutta.interpolate`.
        """
        raise NotImplementedError
