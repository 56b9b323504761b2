"""Special functions with derivative rules, also exported at the top level.

``dx.special.gammainc`` and ``dx.gammainc`` are the same function; this
namespace gathers them for readers who look for ``scipy.special``'s layout.
"""

from ._ops_special import erf, erfc, erfinv, i0e, i1e, log_ndtr, ndtr, ndtri, xlog1py, xlogy
from ._ops_special_gamma import betaln, digamma, lgamma, polygamma
from ._ops_special_incomplete import betainc, gammainc, gammaincc

gammaln = lgamma

__all__ = [
    "betainc",
    "betaln",
    "digamma",
    "erf",
    "erfc",
    "erfinv",
    "gammainc",
    "gammaincc",
    "gammaln",
    "i0e",
    "i1e",
    "lgamma",
    "log_ndtr",
    "ndtr",
    "ndtri",
    "polygamma",
    "xlog1py",
    "xlogy",
]
