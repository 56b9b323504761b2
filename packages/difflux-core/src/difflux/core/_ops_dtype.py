"""Dtype conversion."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._core import Primitive


def _astype_impl(x: Any, dtype: Any) -> Any:
    if hasattr(x, "astype"):
        return x.astype(dtype)
    return np.asarray(x, dtype=dtype)


def _is_float(dtype: Any) -> bool:
    return np.issubdtype(np.dtype(dtype), np.inexact)


astype_p = Primitive(
    "astype",
    _astype_impl,
    pullbacks=(lambda g, out, x, dtype: astype(g, x.dtype) if hasattr(x, "dtype") else g,),
    jvps=(lambda t, out, x, dtype: astype(t, dtype),),
)


# Casting to an integer or boolean type has no derivative. As a primitive it
# still has a batching rule, so dx.vmap batches code that counts with it.
astype_discrete_p = Primitive("astype_discrete", _astype_impl, differentiable=False)


def astype(x: Any, dtype: Any, /) -> Any:
    """Cast ``x`` to ``dtype``. Casting to an integer or boolean type stops the gradient."""
    if not _is_float(dtype):
        return astype_discrete_p(x, dtype=dtype)
    return astype_p(x, dtype=dtype)
