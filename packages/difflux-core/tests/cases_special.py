"""Sweep cases for the special functions.

The incomplete gamma and beta functions have no second derivative in their
parameters, so their cases split in two: the parameters and ``x`` together
at order 1, and ``x`` alone (parameters fixed) at order 2. The ``*_grad_*``
cases check the rules of the parameter derivatives themselves, as functions
of ``x``, to order 2.
"""

from __future__ import annotations

import difflux.core as dx
from sweep_case import Case, uniform


def _parameter_grad(function, parameter: float, x):
    """dP/d(parameter) at a fixed parameter, as a function of x."""
    return dx.grad(lambda p: dx.sum(function(p, x)))(dx.full_like(x, parameter))


CASES = [
    Case("lgamma", dx.lgamma, uniform((2, 3), low=0.3, high=5.0)),
    Case("lgamma_negative", dx.lgamma, uniform((4,), low=-2.9, high=-2.1)),
    Case("digamma", dx.digamma, uniform((2, 3), low=0.3, high=5.0)),
    Case("polygamma_1", lambda x: dx.polygamma(1, x), uniform((2, 3), low=0.3, high=5.0)),
    Case("polygamma_3", lambda x: dx.polygamma(3, x), uniform((2, 3), low=0.5, high=5.0)),
    Case("betaln", dx.betaln, uniform((2, 3), (3,), low=0.3, high=5.0)),
    Case("betaln_large", dx.betaln, uniform((3,), (3,), low=8.0, high=40.0)),
    Case("erf", dx.erf, uniform((2, 3))),
    Case("erfc", dx.erfc, uniform((2, 3))),
    Case("erfinv", dx.erfinv, uniform((2, 3), low=-0.9, high=0.9)),
    Case("ndtr", dx.ndtr, uniform((2, 3), low=-3.0, high=3.0)),
    Case("ndtri", dx.ndtri, uniform((2, 3), low=0.05, high=0.95)),
    Case("log_ndtr", dx.log_ndtr, uniform((2, 3), low=-5.0, high=3.0)),
    Case("log_ndtr_left_tail", dx.log_ndtr, uniform((3,), low=-40.0, high=-30.0)),
    Case("xlogy", dx.xlogy, uniform((2, 3), (3,), low=0.2, high=3.0)),
    Case("xlogy_negative_x", dx.xlogy, uniform((2, 3), (2, 3), low=0.2, high=3.0)),
    Case("xlog1py", dx.xlog1py, uniform((2, 3), (2, 1), low=-0.5, high=2.0)),
    Case("i0e", dx.i0e, uniform((2, 3), low=0.2, high=4.0)),
    Case("i0e_negative", dx.i0e, uniform((3,), low=-4.0, high=-0.2)),
    Case("i1e", dx.i1e, uniform((2, 3), low=0.2, high=4.0)),
    Case("i1e_negative", dx.i1e, uniform((3,), low=-4.0, high=-0.2)),
    # NOTE: order 1, because the second derivative in `a` is not implemented.
    Case("gammainc", dx.gammainc, uniform((2, 3), (2, 3), low=0.3, high=5.0), order=1),
    Case("gammainc_large_x", dx.gammainc, uniform((3,), (3,), low=6.0, high=12.0), order=1),
    Case("gammainc_x", lambda x: dx.gammainc(2.5, x), uniform((2, 3), low=0.1, high=6.0)),
    Case("gammainc_x_small_a", lambda x: dx.gammainc(0.6, x), uniform((4,), low=0.1, high=3.0)),
    Case("gammainc_grad_a", lambda x: _parameter_grad(dx.gammainc, 1.7, x), uniform((4,), low=0.2, high=5.0)),
    # NOTE: order 1, as for gammainc.
    Case("gammaincc", dx.gammaincc, uniform((2, 3), (2, 3), low=0.3, high=5.0), order=1),
    Case("gammaincc_x", lambda x: dx.gammaincc(3.5, x), uniform((2, 3), low=0.1, high=8.0)),
    # NOTE: order 1, because second derivatives in `a` and `b` are not implemented.
    Case("betainc", dx.betainc, uniform((2, 3), (2, 3), (2, 3), low=0.1, high=0.9), order=1),
    Case("betainc_parameters", lambda a, b: dx.betainc(a, b, 0.35), uniform((3,), (3,), low=0.5, high=6.0), order=1),
    Case("betainc_x", lambda x: dx.betainc(2.5, 1.5, x), uniform((2, 3), low=0.05, high=0.95)),
    Case("betainc_x_broadcast", lambda x: dx.betainc(0.7, 3.0, x), uniform((4,), low=0.05, high=0.95)),
    Case(
        "betainc_grad_a",
        lambda x: _parameter_grad(lambda a, x: dx.betainc(a, 2.0, x), 1.5, x),
        uniform((4,), low=0.1, high=0.9),
    ),
    Case(
        "betainc_grad_b",
        lambda x: _parameter_grad(lambda b, x: dx.betainc(3.0, b, x), 0.8, x),
        uniform((4,), low=0.1, high=0.9),
    ),
]
