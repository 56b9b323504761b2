"""Sweep cases for relu, softplus, sigmoid, logit, softmax, segment sums and
the broadcasting helpers."""

from __future__ import annotations

import numpy as np

import difflux.core as dx
from sweep_case import Case, uniform

SEGMENT_IDS = np.array([2, 0, 2, 1, 2])

CASES = [
    # Finite differences need points away from the kink at 0, and the fixed
    # draws of seed 0 keep every argument of relu more than 0.5 from it.
    Case("relu", dx.relu, uniform((2, 3), low=-3.0, high=3.0)),
    Case("relu_product", lambda x, y: dx.relu(x * y) * y, uniform((4,), (4,), low=-3.0, high=3.0)),
    Case("softplus", dx.softplus, uniform((2, 3), low=-4.0, high=4.0)),
    Case("softplus_large", dx.softplus, uniform((4,), low=30.0, high=40.0)),
    Case("log_sigmoid", dx.log_sigmoid, uniform((2, 3), low=-4.0, high=4.0)),
    Case("sigmoid", dx.sigmoid, uniform((2, 3), low=-4.0, high=4.0)),
    Case("logit", dx.logit, uniform((2, 3), low=0.1, high=0.9)),
    Case("softmax", dx.softmax, uniform((2, 4))),
    Case("softmax_axis0", lambda x: dx.softmax(x, axis=0), uniform((3, 2))),
    Case("log_softmax", lambda x: dx.log_softmax(x, axis=(0, 1)), uniform((2, 3))),
    Case("segment_sum", lambda x: dx.segment_sum(x, SEGMENT_IDS, 4), uniform((5, 2))),
    Case(
        "broadcast_arrays",
        lambda x, y: dx.broadcast_arrays(x, y)[0] * dx.broadcast_arrays(x, y)[1],
        uniform((2, 1), (3,)),
    ),
    Case("meshgrid_xy", lambda x, y: dx.stack(dx.meshgrid(x, y)), uniform((2,), (3,))),
    Case("meshgrid_ij", lambda x, y, z: dx.sin(dx.meshgrid(x, y, z, indexing="ij")[2]), uniform((2,), (3,), (2,))),
]
