"""L-BFGS: BFGS from the last few curvature pairs (Nocedal & Wright, ch. 7)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import difflux.core as dx

from ._quasi_newton import QuasiNewton, _check_positive_int
from ._quasi_newton_bounds import Box


def empty_pairs(x: Any, history_size: int) -> dict[str, Any]:
    """Return a memory of ``history_size`` zero pairs ``(s, y)`` for vectors like ``x``.

    Pairs are rows, oldest first, and a new pair shifts the others up by one.
    A zero row is an empty slot: its ``s . y`` is 0, while every stored pair
    has ``s . y > 0``.
    """
    rows = dx.broadcast_to(dx.zeros_like(x)[None, :], (history_size, x.shape[0]))
    return {"s": rows, "y": rows}


def push_pair(memory: dict[str, Any], s: Any, y: Any, kept: Any) -> dict[str, Any]:
    """Append ``(s, y)`` as the newest pair when ``kept``, dropping the oldest."""
    shifted_s = dx.concat([memory["s"][1:], s[None, :]])
    shifted_y = dx.concat([memory["y"][1:], y[None, :]])
    return {"s": dx.where(kept, shifted_s, memory["s"]), "y": dx.where(kept, shifted_y, memory["y"])}


def newest_ratio(memory: dict[str, Any]) -> tuple[Any, Any]:
    """Return ``s . y`` and ``y . y`` of the newest pair (zeros when the memory is empty)."""
    s, y = memory["s"][-1], memory["y"][-1]
    return dx.sum(s * y), dx.sum(y * y)


@dataclasses.dataclass(frozen=True)
class LBFGS(QuasiNewton):
    r"""Limited-memory BFGS: the inverse Hessian implied by the last ``history_size`` pairs.

    The direction :math:`p_k = -H_k g_k` comes from the two-loop recursion
    (Nocedal & Wright, Algorithm 7.4) over the stored pairs
    :math:`s_i = x_{i+1} - x_i`, :math:`y_i = g_{i+1} - g_i`, with the
    initial matrix :math:`H_k^0 = \gamma_k I`,
    :math:`\gamma_k = \frac{s_{k-1}^T y_{k-1}}{y_{k-1}^T y_{k-1}}` (eq. 7.20),
    and steps from a strong Wolfe line search (Algorithm 7.5). Memory and
    work per iteration are :math:`O(m n)` for ``m = history_size``.

    Attributes:
        history_size: the number of pairs kept, ``m`` (3 to 20 is typical).

    The other attributes are the shared settings: ``tol``, ``ftol`` (0,
    off, by default), ``max_iter``, ``c1``, ``c2``, ``max_line_search_evals``.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> result = optim.LBFGS(tol=1e-8).minimize(lambda x: (x[0] - 1.0) ** 2 + 3.0 * x[1] ** 2, np.zeros(2))
        >>> np.round(result.x, 6).tolist()
        [1.0, 0.0]
    """

    history_size: int = 10

    name: ClassVar[str] = "lbfgs"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive_int(type(self).__name__, "history_size", self.history_size, 1)

    def init_memory(self, x: Any) -> Any:
        return empty_pairs(x, self.history_size)

    def direction(self, memory: Any, x: Any, grad: Any, box: Box | None) -> tuple[Any, Any]:
        s, y = memory["s"], memory["y"]
        ys = dx.sum(s * y, axis=1)
        stored = ys > 0.0
        rho = dx.where(stored, 1.0 / dx.where(stored, ys, 1.0), 0.0)
        newest_ys, newest_yy = newest_ratio(memory)
        gamma = dx.where(newest_ys > 0.0, newest_ys / dx.where(newest_ys > 0.0, newest_yy, 1.0), 1.0)

        # Two-loop recursion: newest pair first, then oldest first. Empty
        # slots have rho = 0 and change nothing.
        # NOTE: the loops are unrolled in Python, so under jit the program,
        # and its compile time, grow with history_size.
        q = grad
        alphas = []
        for i in reversed(range(self.history_size)):
            alpha = rho[i] * dx.sum(s[i] * q)
            q = q - alpha * y[i]
            alphas.append(alpha)
        r = gamma * q
        for i, alpha in zip(range(self.history_size), reversed(alphas)):
            beta = rho[i] * dx.sum(y[i] * r)
            r = r + (alpha - beta) * s[i]
        return -r, dx.full_like(grad[0], float("inf"))

    def update(self, memory: Any, s: Any, y: Any, kept: Any, empty: Any) -> Any:
        return push_pair(memory, s, y, kept)
