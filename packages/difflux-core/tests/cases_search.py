"""Sweep cases for the differentiable gathers: sort, top_k, take, take_along_axis."""

from __future__ import annotations

import numpy as np

import difflux.core as dx
from sweep_case import Case, uniform

# Index constants stay NumPy arrays: indexing accepts them on either backend.
REPEATED_ROWS = np.array([2, 0, 2])
ALONG_AXIS = np.array([[0, 3, 3], [2, 1, 0]])

CASES = [
    Case("sort", lambda x: dx.sort(x, axis=1), uniform((3, 4))),
    Case("sort_descending", lambda x: dx.sort(x, axis=0, descending=True), uniform((4, 2))),
    Case("top_k", lambda x: dx.top_k(x, 2)[0], uniform((3, 5))),
    Case("take_repeated", lambda x: dx.take(x, REPEATED_ROWS, axis=0), uniform((3, 2))),
    Case("take_flat", lambda x: dx.take(x, REPEATED_ROWS), uniform((2, 2))),
    Case("take_along_axis", lambda x: dx.take_along_axis(x, ALONG_AXIS, axis=1), uniform((2, 4))),
]
