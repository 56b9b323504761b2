"""BFGS with a dense inverse-Hessian approximation (Nocedal & Wright, ch. 6)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import difflux.core as dx

from ._quasi_newton import QuasiNewton
from ._quasi_newton_bounds import Box
from ._quasi_newton_tree import backend_name


@dataclasses.dataclass(frozen=True)
class BFGS(QuasiNewton):
    r"""The BFGS method: a dense approximation ``H`` of the inverse Hessian.

    The direction is :math:`p_k = -H_k g_k`, and each step
    :math:`s_k = x_{k+1} - x_k` with gradient change
    :math:`y_k = g_{k+1} - g_k` updates (Nocedal & Wright, eq. 6.17)

    .. math::

        H_{k+1} = (I - \rho_k s_k y_k^T) H_k (I - \rho_k y_k s_k^T) + \rho_k s_k s_k^T,
        \qquad \rho_k = \frac{1}{y_k^T s_k}.

    Before the first update ``H_0`` is rescaled to
    :math:`\frac{y_0^T s_0}{y_0^T y_0} I` (eq. 6.20), so the first
    quasi-Newton step has about the right length. Steps come from a strong
    Wolfe line search, which makes :math:`y_k^T s_k > 0`; a pair that
    rounding leaves without enough curvature is skipped.

    ``H`` has ``n * n`` entries, so BFGS suits up to a few thousand
    parameters; :class:`LBFGS` stores ``2 * history_size`` vectors instead.

    Attributes are those of the shared settings: ``tol``, ``ftol`` (0,
    off, by default), ``max_iter``, ``c1``, ``c2``, ``max_line_search_evals``.

    Examples:
        >>> import numpy as np
        >>> from difflux import optim
        >>> result = optim.BFGS(tol=1e-8).minimize(lambda x: (x[0] - 1.0) ** 2 + 3.0 * x[1] ** 2, np.zeros(2))
        >>> np.round(result.x, 6).tolist(), result.message.startswith("gradient norm")
        ([1.0, 0.0], True)
    """

    name: ClassVar[str] = "bfgs"

    def init_memory(self, x: Any) -> Any:
        return {"inverse_hessian": dx.eye(x.shape[0], dtype=x.dtype, backend=backend_name(x))}

    def direction(self, memory: Any, x: Any, grad: Any, box: Box | None) -> tuple[Any, Any]:
        direction = -dx.matmul(memory["inverse_hessian"], grad)
        return direction, dx.full_like(grad[0], float("inf"))

    def update(self, memory: Any, s: Any, y: Any, kept: Any, empty: Any) -> Any:
        ys = dx.sum(y * s)
        yy = dx.sum(y * y)
        rho = 1.0 / dx.where(kept, ys, 1.0)
        identity_scale = dx.where(kept, ys, 1.0) / dx.where(kept, yy, 1.0)
        h = dx.where(empty, identity_scale * memory["inverse_hessian"], memory["inverse_hessian"])

        hy = dx.matmul(h, y)
        yhy = dx.sum(y * hy)
        updated = (
            h
            - rho * (dx.linalg.outer(s, hy) + dx.linalg.outer(hy, s))
            + (rho * rho * yhy + rho) * dx.linalg.outer(s, s)
        )
        return {"inverse_hessian": dx.where(kept, updated, memory["inverse_hessian"])}
