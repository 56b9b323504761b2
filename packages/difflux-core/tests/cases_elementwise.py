"""Sweep cases for the element-wise operations."""

from __future__ import annotations

import difflux.core as dx
from difflux.core._ops_elementwise import UNARY_DOMAINS
from sweep_case import Case, uniform

CASES = [
    Case(name, getattr(dx, name), uniform((2, 3), low=low, high=high)) for name, (low, high) in UNARY_DOMAINS.items()
]

CASES += [
    Case("add_broadcast", dx.add, uniform((2, 3), (3,))),
    Case("subtract_broadcast", dx.subtract, uniform((2, 1), (1, 3))),
    Case("multiply_broadcast", dx.multiply, uniform((2, 3), (2, 1))),
    Case("divide", dx.divide, uniform((2, 3), (3,), low=0.5, high=2.0)),
    Case("pow", dx.pow, uniform((2, 3), (2, 3), low=0.5, high=2.0)),
    Case("pow_scalar_exponent", lambda x: dx.pow(x, 3.0), uniform((4,))),
    Case("maximum", dx.maximum, uniform((2, 3), (2, 3))),
    Case("minimum", dx.minimum, uniform((2, 3), (3,))),
    Case("logaddexp", dx.logaddexp, uniform((2, 3), (2, 3))),
    Case("atan2", dx.atan2, uniform((2, 3), (2, 3), low=0.5, high=2.0)),
    Case("hypot", dx.hypot, uniform((2, 3), (2, 3), low=0.5, high=2.0)),
    Case("remainder", lambda x: dx.remainder(x, 0.7), uniform((5,), low=0.1, high=0.6)),
    Case("where", lambda x, y: dx.where(x > 0, x * y, dx.sin(y)), uniform((2, 3), (2, 3))),
    Case("clip", lambda x: dx.clip(x, -0.5, 0.5), uniform((6,), low=-0.45, high=0.45)),
]
